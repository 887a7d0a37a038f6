import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, TEST_POLICIES, type Harness } from '../helpers/port-harness.js';
import { APPROVAL_POLICIES } from '../helpers/approval-policies.js';
import { waitUntil } from '../helpers/relay/util.js';

/** Polls an async check until it yields a value. */
async function eventually<T>(check: () => Promise<T | undefined>, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const SECRET = 'webhook-hmac-secret';
let h: Harness;
let hook: string;

beforeAll(async () => {
  process.env.PORT_TEST_WEBHOOK_SECRET = SECRET;
  h = await startHarness({
    policies: { ...TEST_POLICIES, 'approvals.cedar': APPROVAL_POLICIES },
    config: (sim) => {
      process.env.PORT_TEST_BK_API_TOKEN = sim.apiToken;
      return {
        buildkite: {
          organization: 'acme',
          issuer: sim.issuer,
          jwks_url: sim.jwksUrl,
          audience: 'https://port.acme.test',
          api_url: sim.url,
          api_token: 'env:PORT_TEST_BK_API_TOKEN',
          webhook_secret: 'env:PORT_TEST_WEBHOOK_SECRET',
        },
      };
    },
  });
  hook = `${h.url}/webhooks/buildkite`;
}, 60_000);
afterAll(async () => {
  await h?.close();
});

const steps = [{ type: 'command' as const, key: 'build', label: 'Build' }, { type: 'block' as const, key: 'deploy', label: 'Deploy to production?' }];

describe('approvals over webhooks, against the Buildkite simulator', () => {
  it('(a) a release tag from main built by a deployer is unblocked by policy; the simulator records it and the log says why', async () => {
    const rel = h.sim.createUser({ name: 'Rel Ease', email: 'rel@acme.test' });
    await h.port.store.users.upsert({ email: 'rel@acme.test', active: true, groups: ['deployers'], updatedAt: Date.now() });
    const build = h.sim.createBuild({ pipelineSlug: 'deploy', branch: 'main', tag: 'v1.4.0', creator: rel, steps });
    const delivery = await h.sim.blockAndNotify(hook, build, { secret: SECRET });
    expect(delivery.status).toBe(202);
    const call = await waitUntil(() => h.sim.unblockCalls.find((c) => c.build?.number === build.number), 10_000, 'the unblock call');
    expect(call.status).toBe(200);
    const log = await h.port.store.decisions.read(0, 1000);
    const unblock = log.find((e) => e.record.action === 'unblock' && e.record.principal === `Port::Build::"acme/deploy/${build.number}"`)!;
    expect(unblock.record).toMatchObject({ decision: 'allow', policies: [{ id: 'release-tags-open', reason: 'release tags from main built by a deployer open by themselves' }] });
  });

  it('(b) a feature-branch deploy opens an approval request instead; nothing is unblocked', async () => {
    const dev = h.sim.createUser({ name: 'Dev', email: 'dev@acme.test' });
    const build = h.sim.createBuild({ pipelineSlug: 'deploy', branch: 'feature/login', creator: dev, steps });
    expect((await h.sim.blockAndNotify(hook, build, { secret: SECRET })).status).toBe(202);
    const manual = build.jobs.find((j) => j.type === 'manual')!;
    const request = await eventually(() => h.port.store.approvals.getByJob(manual.id), 10_000, 'the approval request');
    expect(request).toMatchObject({ status: 'pending', authors: ['dev@acme.test'], requirement: { groups: ['platform', 'security'] } });
    expect(h.sim.unblockCalls.some((c) => c.jobId === manual.id)).toBe(false);
  });

  it('refuses forged, stale and replayed deliveries', async () => {
    const dev = h.sim.createUser({ name: 'Eve', email: 'eve@acme.test' });
    const build = h.sim.createBuild({ pipelineSlug: 'deploy', branch: 'main', tag: 'v9.9.9', creator: dev, steps });
    expect((await h.sim.blockAndNotify(hook, build, { secret: 'not-the-secret' })).status).toBe(401);
    const stale = await h.sim.blockAndNotify(hook, build, { secret: SECRET }, { timestamp: Math.floor(Date.now() / 1000) - 600 });
    expect(stale.status).toBe(401);
    expect(h.sim.unblockCalls.some((c) => c.build?.number === build.number)).toBe(false);
    // A captured genuine delivery sent again, byte for byte: refused, and handled only once.
    const other = h.sim.createBuild({ pipelineSlug: 'deploy', branch: 'feature/replay', creator: dev, steps });
    const first = await h.sim.blockAndNotify(hook, other, { secret: SECRET });
    expect(first.status).toBe(202);
    const replay = await fetch(hook, { method: 'POST', headers: first.request.headers, body: first.request.body });
    expect(replay.status).toBe(409);
    expect((await replay.json()).error).toBe('replayed_delivery');
  });

  it('job.finished revokes every Port token of that job, and its unexchanged Buildkite tokens buy nothing', async () => {
    const job = h.sim.createJob({ pipelineSlug: 'deploy', branch: 'main' });
    const leaked = await h.sim.mintToken(job, { audience: h.audience, lifetime: 3600 });
    const res = await h.exchange(await h.sim.mintToken(job, { audience: h.audience }), { scope: 'deploy-token' });
    const token = res.body.access_token as string;
    const active = async () => (await h.post('/oauth/introspect', { token }, { authorization: `Bearer ${token}` })).status;
    expect(await active()).toBe(200);
    const dev = h.sim.createUser({ name: 'Dev', email: 'dev2@acme.test' });
    const build = h.sim.createBuild({ pipelineSlug: 'deploy', branch: 'main', creator: dev, steps: [{ type: 'command', key: 'x', label: 'x' }] });
    const payload = {
      event: 'job.finished',
      job: { id: job.jobId, type: 'script', state: 'passed', step_key: null, label: 'x' },
      build: { id: build.id, number: build.number, state: 'passed', blocked: false, branch: 'main', tag: null, commit: build.commit, source: 'ui', creator: null },
      pipeline: { slug: 'deploy' },
      sender: { id: 'u', name: 'Buildkite' },
    };
    expect((await h.sim.deliverWebhook(hook, 'job.finished', payload, { secret: SECRET })).status).toBe(202);
    // The holder's own introspection stops working once the job's tokens are revoked.
    await eventually(async () => ((await active()) === 401 ? true : undefined), 10_000, 'the revocation');
    // A Buildkite token of the finished job, never exchanged, is refused.
    const late = await h.exchange(leaked);
    expect(late.status).toBe(400);
    expect(late.body).toMatchObject({ error: 'invalid_grant' });
    expect(late.body.error_description).toMatch(/finished or was revoked/);
  });
});
