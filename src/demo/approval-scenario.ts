/**
 * The demo's approval: a deploy build in the Buildkite simulator that waits at a block
 * step, announced to Port by a signed `build.finished` webhook as Buildkite sends one
 * when a build blocks (https://buildkite.com/docs/apis/webhooks/pipelines/build-events).
 * Port's `unblock` policy refuses to open it by itself, so Port opens an approval request.
 */
import type { RunningPort } from '../server/port-server.js';
import type { BuildkiteSimulator } from '../sim/index.js';
import { DEMO_PEOPLE } from './identity-provider.js';

export interface DemoApproval {
  url: string;
  pipeline: string;
  buildNumber: number;
  blockJobId: string;
  stepLabel: string;
}

const STEP_LABEL = 'Deploy to production?';

export async function openDemoApproval(opts: { sim: BuildkiteSimulator; port: RunningPort; publicUrl: string; webhookSecret: string }): Promise<DemoApproval> {
  const { sim, port, publicUrl } = opts;
  const webhookUrl = `${publicUrl}/webhooks/buildkite`;
  // The demo people are members of the Buildkite organization too, so Port can credit the
  // approver as the step's unblocker.
  const members = DEMO_PEOPLE.map((p) => sim.createUser({ name: p.name, email: p.email }));
  const author = members[1]!;
  // From now on the simulator reports an unblocked step (`job.activated`), as Buildkite would.
  sim.configureWebhook({ url: webhookUrl, auth: { secret: opts.webhookSecret }, events: ['job.activated'] });
  const build = sim.createBuild({
    pipelineSlug: 'deploy',
    branch: 'main',
    message: 'Ship the new login page',
    creator: author,
    steps: [
      { type: 'command', key: 'build', label: 'Build and test' },
      { type: 'block', key: 'deploy', label: STEP_LABEL },
    ],
  });
  const block = build.jobs.find((j) => j.type === 'manual');
  if (!block) throw new Error('the simulator made no block step');
  const delivery = await sim.blockAndNotify(webhookUrl, build, { secret: opts.webhookSecret });
  if (delivery.status !== 202) throw new Error(`Port answered the simulator's build webhook with ${delivery.status}`);
  // Port answers 202 first and decides just after.
  const deadline = Date.now() + 15_000;
  for (;;) {
    const request = await port.store.approvals.getByJob(block.id);
    if (request) {
      return { url: `${publicUrl}/approvals/${request.id}`, pipeline: `acme/${build.pipelineSlug}`, buildNumber: build.number, blockJobId: block.id, stepLabel: STEP_LABEL };
    }
    if (Date.now() > deadline) throw new Error('Port opened no approval request for the demo build within 15 s');
    await new Promise((r) => setTimeout(r, 50));
  }
}
