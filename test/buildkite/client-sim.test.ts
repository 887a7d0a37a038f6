import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BuildkiteApi, BuildkiteApiError, blockedManualJobs, isUnblockable } from '../../src/buildkite/index.js';
import { BuildkiteSimulator, type SimUser } from '../../src/sim/index.js';

let sim: BuildkiteSimulator;
let api: BuildkiteApi;
let alice: SimUser;
let bob: SimUser;

beforeAll(async () => {
  sim = await BuildkiteSimulator.start({ organization: 'acme' });
  alice = sim.createUser({ name: 'Alice', email: 'alice@example.com' });
  bob = sim.createUser({ name: 'Bob', email: 'Bob@Example.com' });
  api = new BuildkiteApi({ baseUrl: sim.apiUrl, organization: 'acme', token: () => sim.apiToken, baseDelayMs: 1, sleep: async () => undefined });
});
afterAll(async () => {
  await sim.close();
});

function blocked() {
  return sim.createBuild({
    pipelineSlug: 'web',
    branch: 'main',
    tag: 'v1.0.0',
    creator: alice,
    author: { name: 'Alice', email: 'alice@example.com' },
    steps: [{ type: 'command', key: 'build' }, { type: 'block', key: 'deploy-gate', label: 'Deploy' }, { type: 'command', key: 'deploy' }],
  });
}

describe('BuildkiteApi against the simulator', () => {
  it('reads a blocked build, finds its block step and unblocks it as an approver found by e-mail', async () => {
    const simBuild = blocked();
    const build = await api.getBuild('web', simBuild.number);
    expect(build).toMatchObject({ blocked: true, tag: 'v1.0.0', creator: { id: alice.id, email: 'alice@example.com' }, author: { email: 'alice@example.com' } });
    const [gate] = blockedManualJobs(build.jobs ?? []);
    expect(gate).toMatchObject({ step_key: 'deploy-gate', label: 'Deploy' });
    expect(isUnblockable(gate!)).toBe(true);

    const member = await api.findOrganizationMemberByEmail('bob@example.com', { perPage: 1 });
    expect(member?.id).toBe(bob.id);

    const job = await api.unblockJob(gate!.id, { unblocker: member!.id, fields: { note: 'ok' } });
    expect(job).toMatchObject({ state: 'unblocked', unblocked_by: { id: bob.id } });
    expect(sim.unblockCalls.at(-1)).toMatchObject({ jobId: gate!.id, unblocker: bob.id, fields: { note: 'ok' }, status: 200 });
    expect((await api.getJob(gate!.id)).state).toBe('unblocked');
    expect(api.rateLimit?.limit).toBe(200);
  });

  it('lists all jobs across pages', async () => {
    const simBuild = blocked();
    const jobs = await api.listAllBuildJobs('web', simBuild.number, { perPage: 1 });
    expect(jobs.map((j) => j.step_key)).toEqual(['build', 'deploy-gate', 'deploy']);
  });

  it('gets the agent of a running job', async () => {
    const job = sim.createJob({ agentTags: { queue: 'deploy' } });
    const agent = await api.getAgent(job.agentId);
    expect(agent).toMatchObject({ id: job.agentId, connection_state: 'connected', meta_data: ['queue=deploy'], job: { id: job.jobId } });
  });

  it('retries through injected 500s and 429s', async () => {
    const simBuild = blocked();
    sim.failApiRequests(2, 500);
    await expect(api.getBuild('web', simBuild.number)).resolves.toMatchObject({ number: simBuild.number });
    sim.failApiRequests(1, 429, { resetSeconds: 0 });
    await expect(api.getBuild('web', simBuild.number)).resolves.toMatchObject({ number: simBuild.number });
  });

  it('surfaces the simulator’s refusals as typed errors', async () => {
    const simBuild = blocked();
    const gate = simBuild.jobs.find((j) => j.type === 'manual')!;
    const badUser = await api.unblockJob(gate.id, { unblocker: '00000000-0000-4000-8000-000000000000' }).catch((e: unknown) => e);
    expect(badUser).toBeInstanceOf(BuildkiteApiError);
    expect(badUser).toMatchObject({ code: 'buildkite_unprocessable', httpStatus: 422, buildkiteMessage: 'Unblocker is not a valid user id for this organization' });
    const wrongType = await api.unblockJob(simBuild.jobs[0]!.id).catch((e: unknown) => e);
    expect(wrongType).toMatchObject({ code: 'buildkite_bad_request', buildkiteMessage: 'This job type cannot be unblocked' });
    const unauth = await new BuildkiteApi({ baseUrl: sim.apiUrl, organization: 'acme', token: () => 'bkua_wrong' }).getJob(gate.id).catch((e: unknown) => e);
    expect(unauth).toMatchObject({ code: 'buildkite_unauthorized', httpStatus: 401 });
  });
});
