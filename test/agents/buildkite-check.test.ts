import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BuildkiteLiveCheck, type BuildkiteAgentApi } from '../../src/agents/buildkite-check.js';
import { BuildkiteApi } from '../../src/buildkite/client.js';
import { BuildkiteApiError } from '../../src/buildkite/errors.js';
import { agentQueue, jobQueue } from '../../src/buildkite/agents.js';
import type { BuildkiteAgent, BuildkiteJob } from '../../src/buildkite/types.js';
import { BuildkiteSimulator } from '../../src/sim/index.js';

/**
 * The live check against Buildkite's answers: its cache (reused for the TTL, shared while
 * in flight, failures never kept), and the tolerant reading of fields Buildkite leaves
 * open — each undetermined case refused, never passed.
 */
const JOB = '01980000-0000-7000-8000-000000000001';
const AGENT = '01980000-0000-7000-8000-0000000000a1';
const QUEUE_ID = '01980000-0000-7000-8000-0000000000f1';
const identity = { jobId: JOB, agentId: AGENT, clusterName: 'linux', queueKey: 'deploy' };

function job(extra: Partial<BuildkiteJob> = {}): BuildkiteJob {
  return { id: JOB, type: 'script', state: 'running', agent: { id: AGENT, name: 'a', connection_state: null }, agent_query_rules: ['queue=deploy'], cluster_queue_id: QUEUE_ID, ...extra };
}

function agent(extra: Partial<BuildkiteAgent> = {}): BuildkiteAgent {
  return { id: AGENT, name: 'a', connection_state: 'connected', meta_data: ['queue=deploy'], ...extra };
}

/** A fake API counting calls; `fail` makes the next calls throw. */
function fakeApi(answers: { job: () => BuildkiteJob; agent: () => BuildkiteAgent }) {
  const calls = { job: 0, agent: 0 };
  let fail: unknown;
  const api: BuildkiteAgentApi = {
    async getJob() {
      calls.job++;
      if (fail) throw fail;
      return answers.job();
    },
    async getAgent() {
      calls.agent++;
      if (fail) throw fail;
      return answers.agent();
    },
  };
  return { api, calls, failWith: (e: unknown) => (fail = e) };
}

const serverError = () => new BuildkiteApiError('buildkite_server_error', 'answered 502', { method: 'GET', path: '/v2/x', httpStatus: 502, buildkiteMessage: null, attempts: 2 });

describe('the cache', () => {
  it('reuses answers for the TTL, then asks again', async () => {
    let now = 1_000_000;
    const { api, calls } = fakeApi({ job, agent });
    const check = new BuildkiteLiveCheck(api, { cacheTtl: 5, now: () => now });
    expect(await check.verify(identity)).toEqual({ passed: true, connected: true });
    expect(await check.verify(identity)).toEqual({ passed: true, connected: true });
    expect(calls).toEqual({ job: 1, agent: 1 });
    now += 5_001;
    await check.verify(identity);
    expect(calls).toEqual({ job: 2, agent: 2 });
  });

  it('shares one call among concurrent checks, and asks every time with a TTL of 0', async () => {
    const { api, calls } = fakeApi({ job, agent });
    const check = new BuildkiteLiveCheck(api, { cacheTtl: 0 });
    await Promise.all([check.verify(identity), check.verify(identity), check.verify(identity)]);
    expect(calls).toEqual({ job: 1, agent: 1 });
    await check.verify(identity);
    expect(calls).toEqual({ job: 2, agent: 2 });
  });

  it('never keeps a failure: the outage refuses (fail closed), the next check asks again', async () => {
    const { api, calls, failWith } = fakeApi({ job, agent });
    const check = new BuildkiteLiveCheck(api, { cacheTtl: 60 });
    failWith(serverError());
    expect(await check.verify(identity)).toMatchObject({ passed: false, check: 'buildkite_unavailable', message: expect.stringMatching(/server error/) });
    failWith(undefined);
    expect(await check.verify(identity)).toEqual({ passed: true, connected: true });
    expect(calls.job).toBe(2);
  });

  it("names the missing scopes when Buildkite refuses Port's API token", async () => {
    const { api, failWith } = fakeApi({ job, agent });
    failWith(new BuildkiteApiError('buildkite_forbidden', 'answered 403', { method: 'GET', path: '/v2/x', httpStatus: 403, buildkiteMessage: null, attempts: 1 }));
    const result = await new BuildkiteLiveCheck(api, { cacheTtl: 0 }).verify(identity);
    expect(result).toMatchObject({ passed: false, check: 'buildkite_unavailable', message: expect.stringMatching(/needs the scopes read_builds and read_agents/) });
  });
});

describe('what Buildkite leaves open', () => {
  const verify = (j: BuildkiteJob, a: BuildkiteAgent, id: Record<string, string> = identity) =>
    new BuildkiteLiveCheck(fakeApi({ job: () => j, agent: () => a }).api, { cacheTtl: 0 }).verify(id as typeof identity);

  it("reads the agent's queue from `queue` (a key, a UUID or an object) and from its queue tag", () => {
    expect(agentQueue(agent({ queue: 'deploy', meta_data: [] }))).toEqual({ key: 'deploy' });
    expect(agentQueue(agent({ queue: QUEUE_ID, meta_data: ['queue=deploy'] }))).toEqual({ key: 'deploy', id: QUEUE_ID });
    expect(agentQueue(agent({ queue: { id: QUEUE_ID, key: 'deploy' }, meta_data: [] }))).toEqual({ key: 'deploy', id: QUEUE_ID });
    expect(agentQueue(agent({ queue: 'build', meta_data: ['queue=deploy'] }))).toEqual({ conflict: true });
    expect(agentQueue(agent({ queue: null, meta_data: ['queue=a', 'queue=b'] }))).toEqual({});
    expect(jobQueue(job({ agent_query_rules: ['os=linux'], cluster_queue_id: null }))).toEqual({});
  });

  it('passes a job and agent that agree with the token, whichever way the queue is named', async () => {
    expect(await verify(job(), agent({ queue: { id: QUEUE_ID, key: 'deploy' } }))).toMatchObject({ passed: true });
    // A default-queue job (no queue rule): the agent's key against the token's claim.
    expect(await verify(job({ agent_query_rules: ['*'] }), agent())).toMatchObject({ passed: true });
  });

  it('refuses what it cannot place, never passes it', async () => {
    expect(await verify(job(), agent({ meta_data: [] }))).toMatchObject({ passed: false, check: 'agent_wrong_pool' });
    expect(await verify(job(), agent({ queue: 'build', meta_data: ['queue=deploy'] }))).toMatchObject({ passed: false, check: 'agent_wrong_pool', message: expect.stringMatching(/two queues/) });
    // Only a queue id known for the agent, and the token carries no queue_id to compare with.
    expect(await verify(job({ agent_query_rules: [], cluster_queue_id: null }), agent({ queue: QUEUE_ID, meta_data: [] }))).toMatchObject({ passed: false, check: 'agent_wrong_pool' });
    expect(await verify(job({ agent: null }), agent())).toMatchObject({ passed: false, check: 'job_not_on_agent', message: expect.stringMatching(/names no agent/) });
    expect(await verify(job({ state: null }), agent())).toMatchObject({ passed: false, check: 'job_not_running' });
    expect(await verify(job({ state: 'accepted' }), agent())).toMatchObject({ passed: false, check: 'job_not_running' });
    expect(await verify(job(), agent({ connection_state: null }))).toMatchObject({ passed: false, check: 'agent_not_connected', connected: false });
    // The job's cluster is not the one the token claims.
    expect(await verify(job({ cluster_id: 'c-2' }), agent(), { ...identity, clusterId: 'c-1' })).toMatchObject({ passed: false, check: 'agent_wrong_pool' });
  });
});

describe('against the simulator', () => {
  let sim: BuildkiteSimulator;
  let api: BuildkiteApi;
  beforeAll(async () => {
    sim = await BuildkiteSimulator.start({ organization: 'acme' });
    api = new BuildkiteApi({ baseUrl: sim.apiUrl, token: () => sim.apiToken, organization: 'acme', maxRetries: 0 });
  });
  afterAll(async () => {
    await sim?.close();
  });

  it("reads a job's agent, rules and queue, and an agent's connection and queue, from GET …/jobs/{id} and GET …/agents/{id}", async () => {
    const j = sim.createJob({ clusterName: 'linux', queueKey: 'deploy' });
    const got = await api.getJob(j.jobId);
    expect(got).toMatchObject({ state: 'running', agent: { id: j.agentId }, agent_query_rules: ['queue=deploy'], cluster_id: j.clusterId, cluster_queue_id: j.queueId });
    const a = await api.getAgent(j.agentId);
    expect(a).toMatchObject({ connection_state: 'connected', queue: 'deploy', meta_data: ['queue=deploy'] });
    expect(agentQueue(a)).toEqual({ key: 'deploy' });
    const check = new BuildkiteLiveCheck(api, { cacheTtl: 0 });
    expect(await check.verify({ jobId: j.jobId, agentId: j.agentId, clusterName: 'linux', queueKey: 'deploy', clusterId: j.clusterId! })).toEqual({ passed: true, connected: true });
    expect(await check.verify({ jobId: j.jobId, agentId: j.agentId, clusterName: 'linux', queueKey: 'build' })).toMatchObject({ passed: false, check: 'agent_wrong_pool' });
    expect(await check.verify({ jobId: '01980000-0000-7000-8000-00000000dead', agentId: j.agentId, clusterName: 'linux', queueKey: 'deploy' })).toMatchObject({
      passed: false,
      check: 'job_not_running',
      message: expect.stringMatching(/Buildkite has no job/),
    });
  });
});

describe("the job's own queue", () => {
  it('is held to the pool the token claims, even when the agent names only its queue id', async () => {
    const { api } = fakeApi({ job: () => job({ agent_query_rules: ['queue=build'] }), agent: () => agent({ meta_data: [], cluster_queue_id: QUEUE_ID } as Partial<BuildkiteAgent>) });
    const check = new BuildkiteLiveCheck(api, { cacheTtl: 0 });
    expect(await check.verify({ ...identity, queueId: QUEUE_ID })).toMatchObject({ passed: false, check: 'agent_wrong_pool', message: expect.stringContaining('belongs to queue build, not to pool linux/deploy') });
  });
});
