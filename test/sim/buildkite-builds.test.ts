import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BuildkiteSimulator, type SimBuild, type SimUser } from '../../src/sim/index.js';

let sim: BuildkiteSimulator;
let alice: SimUser;
let bob: SimUser;

beforeAll(async () => {
  sim = await BuildkiteSimulator.start({ organization: 'acme' });
  alice = sim.createUser({ name: 'Alice', email: 'alice@example.com' });
  bob = sim.createUser({ name: 'Bob', email: 'bob@example.com' });
});
afterAll(async () => {
  await sim.close();
});

async function unblock(build: SimBuild, index = 0, unblocker = bob.id): Promise<number> {
  const job = build.jobs.filter((j) => j.type === 'manual')[index]!;
  const res = await fetch(`${sim.apiUrl}/v2/organizations/acme/jobs/${job.id}/unblock`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${sim.apiToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ unblocker }),
  });
  return res.status;
}

const states = (build: SimBuild) => build.jobs.map((j) => `${j.stepKey}:${j.state}`);

describe('build lifecycle', () => {
  it('a build without block steps runs and passes', () => {
    const build = sim.createBuild({ pipelineSlug: 'lib', creator: alice, steps: [{ type: 'command', key: 'a' }, { type: 'wait' }, { type: 'command', key: 'b' }] });
    expect(build).toMatchObject({ state: 'running', blocked: false });
    expect(states(build)).toEqual(['a:running', 'null:waiting', 'b:waiting']);
    sim.advanceBuild(build);
    expect(states(build)).toEqual(['a:passed', 'null:passed', 'b:passed']);
    expect(build.state).toBe('passed');
    expect(build.finishedAt).toBeInstanceOf(Date);
  });

  it('blocks at each block step in turn', async () => {
    const build = sim.createBuild({
      pipelineSlug: 'deploy',
      creator: alice,
      steps: [
        { type: 'command', key: 'build' },
        { type: 'block', key: 'staging-gate', label: 'Staging?' },
        { type: 'command', key: 'staging' },
        { type: 'block', key: 'prod-gate', label: 'Production?', blockedState: 'running' },
        { type: 'command', key: 'prod' },
      ],
    });
    expect(states(build)).toEqual(['build:passed', 'staging-gate:blocked', 'staging:waiting', 'prod-gate:waiting', 'prod:waiting']);
    expect(build.jobs[3]?.unblockable).toBe(false);
    // A block not yet reached cannot be unblocked.
    expect(await unblock(build, 1)).toBe(422);
    expect(await unblock(build, 0)).toBe(200);
    expect(states(build)).toEqual(['build:passed', 'staging-gate:unblocked', 'staging:running', 'prod-gate:waiting', 'prod:waiting']);
    sim.advanceBuild(build);
    expect(states(build)).toEqual(['build:passed', 'staging-gate:unblocked', 'staging:passed', 'prod-gate:blocked', 'prod:waiting']);
    // `blocked_state: running` keeps the blocked build `running` (https://buildkite.com/docs/pipelines/configure/step-types/block-step).
    expect(build).toMatchObject({ blocked: true, state: 'running' });
    expect(await unblock(build, 1)).toBe(200);
    sim.advanceBuild(build);
    expect(build).toMatchObject({ blocked: false, state: 'passed' });
  });

  it('numbers builds per pipeline, or as asked', () => {
    const a = sim.createBuild({ pipelineSlug: 'numbers', creator: null, steps: [] });
    const b = sim.createBuild({ pipelineSlug: 'numbers', creator: null, steps: [] });
    const c = sim.createBuild({ pipelineSlug: 'numbers', number: 40, creator: null, steps: [] });
    const d = sim.createBuild({ pipelineSlug: 'numbers', creator: null, steps: [] });
    expect([a.number, b.number, c.number, d.number]).toEqual([1, 2, 40, 41]);
    expect(() => sim.createBuild({ pipelineSlug: 'numbers', number: 2, creator: null, steps: [] })).toThrow(/already exists/);
    expect(sim.build(c.id)).toBe(c);
  });

  it('a failed command job fails the build before its next block step', async () => {
    const build = sim.createBuild({
      pipelineSlug: 'fails',
      creator: alice,
      steps: [{ type: 'block', key: 'gate-1', label: 'Go?' }, { type: 'command', key: 'a' }, { type: 'wait' }, { type: 'block', key: 'gate-2', label: 'Again?' }],
    });
    expect(await unblock(build)).toBe(200);
    sim.finishBuildJob(build.jobs[1]!, { passed: false, exitStatus: 3 });
    expect(build).toMatchObject({ state: 'failed', blocked: false });
    expect(build.jobs[1]).toMatchObject({ state: 'failed', exitStatus: 3 });
    expect(build.jobs[3]?.state).toBe('broken');
  });
});

describe('command jobs are OIDC jobs once running', () => {
  it('mints tokens whose claims match the build, and stops when the job finishes', async () => {
    const build = sim.createBuild({
      pipelineSlug: 'release',
      branch: 'main',
      tag: 'v2.0.0',
      source: 'api',
      creator: alice,
      steps: [{ type: 'block', key: 'gate', label: 'Release?' }, { type: 'command', key: 'publish', agentTags: { queue: 'deploy' } }],
    });
    expect(build.jobs[1]?.oidcJob).toBeNull();
    expect(await unblock(build)).toBe(200);
    const publish = build.jobs[1]!;
    const oidcJob = publish.oidcJob!;
    expect(oidcJob).toMatchObject({ jobId: publish.id, buildId: build.id, buildNumber: build.number, pipelineSlug: 'release', pipelineId: build.pipelineId, tag: 'v2.0.0', commit: build.commit, stepKey: 'publish', buildSource: 'api' });
    const claims = decodeJwt(await sim.mintToken(oidcJob, { audience: 'https://port.example' }));
    expect(claims).toMatchObject({ job_id: publish.id, build_number: build.number, pipeline_slug: 'release', build_tag: 'v2.0.0', step_key: 'publish' });

    // The REST job names the agent the job runs on; the agent names the job.
    const restJob = (await (await fetch(`${sim.apiUrl}/v2/organizations/acme/jobs/${publish.id}`, { headers: { authorization: `Bearer ${sim.apiToken}` } })).json()) as { agent: { id: string; meta_data: string[] } };
    expect(restJob.agent).toMatchObject({ id: oidcJob.agentId, meta_data: ['queue=deploy'] });
    expect(sim.agent(oidcJob.agentId)?.currentJobId).toBe(publish.id);

    sim.finishBuildJob(publish);
    const res = await fetch(`${sim.agentEndpoint}/jobs/${publish.id}/oidc/tokens`, {
      method: 'POST',
      headers: { authorization: `Token ${oidcJob.jobToken}`, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(res.status).toBe(401);
    expect(build.state).toBe('passed');
  });
});
