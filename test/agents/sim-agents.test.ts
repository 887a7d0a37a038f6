import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BuildkiteSimulator } from '../../src/sim/index.js';

/**
 * The simulator's agents as Buildkite's REST API describes them (clusters, queues,
 * connection states) and `buildkite-agent start --acquire-job`: what the agent checks
 * are tested against.
 */
let sim: BuildkiteSimulator;
beforeAll(async () => {
  sim = await BuildkiteSimulator.start({ organization: 'acme' });
});
afterAll(async () => {
  await sim?.close();
});

async function api(path: string): Promise<{ status: number; body: any }> {
  const res = await fetch(`${sim.apiUrl}${path}`, { headers: { authorization: `Bearer ${sim.apiToken}` } });
  return { status: res.status, body: await res.json() };
}

describe('agents in clusters and queues', () => {
  it("registers a job's agent into the job's cluster queue, and describes it", async () => {
    const job = sim.createJob({ clusterName: 'linux', agentTags: { queue: 'deploy', os: 'linux' } });
    // The queue tag picks the job's queue.
    expect(job.queueKey).toBe('deploy');
    const agent = sim.agent(job.agentId)!;
    expect(agent).toMatchObject({ clusterName: 'linux', clusterId: job.clusterId, queueKey: 'deploy', queueId: job.queueId, currentJobId: job.jobId });
    const { body } = await api(`/v2/organizations/acme/agents/${job.agentId}`);
    expect(body).toMatchObject({ connection_state: 'connected', queue: 'deploy', meta_data: ['queue=deploy', 'os=linux'], disconnected_at: null, lost_at: null });
    expect(body.connected_at).toEqual(expect.any(String));
    expect(body.web_url).toContain(`/clusters/${job.clusterId}/queues/${job.queueId}/agents/${job.agentId}`);
  });

  it('answers GET /v2/organizations/{org}/jobs/{id} for a job with its agent, rules, cluster and queue', async () => {
    const job = sim.createJob({ clusterName: 'linux', queueKey: 'deploy' });
    const { status, body } = await api(`/v2/organizations/acme/jobs/${job.jobId}`);
    expect(status).toBe(200);
    expect(body).toMatchObject({ id: job.jobId, state: 'running', agent: { id: job.agentId }, agent_query_rules: ['queue=deploy'], cluster_id: job.clusterId, cluster_queue_id: job.queueId });
    sim.finishJob(job);
    expect((await api(`/v2/organizations/acme/jobs/${job.jobId}`)).body.state).toBe('passed');
    expect((await api('/v2/organizations/acme/jobs/00000000-0000-4000-8000-000000000000')).status).toBe(404);
  });

  it('gives one cluster one id and one queue per cluster one id, for jobs and agents alike', () => {
    const job = sim.createJob({ clusterName: 'linux', queueKey: 'build' });
    const agent = sim.createAgent({ clusterName: 'linux', queueKey: 'build' });
    expect(agent.clusterId).toBe(job.clusterId);
    expect(agent.queueId).toBe(job.queueId);
    expect(sim.createAgent({ clusterName: null })).toMatchObject({ clusterId: null, queueKey: null, metaData: [] });
  });

  it('changes connection states with the timestamps Buildkite keeps', async () => {
    const agent = sim.createAgent({ clusterName: 'linux', queueKey: 'deploy' });
    sim.setAgentConnectionState(agent, 'lost');
    let { body } = await api(`/v2/organizations/acme/agents/${agent.id}`);
    expect(body.connection_state).toBe('lost');
    expect(body.lost_at).toEqual(expect.any(String));
    sim.setAgentConnectionState(agent.id, 'connected');
    sim.setAgentConnectionState(agent.id, 'disconnected');
    ({ body } = await api(`/v2/organizations/acme/agents/${agent.id}`));
    expect(body).toMatchObject({ connection_state: 'disconnected', lost_at: null });
    expect(body.disconnected_at).toEqual(expect.any(String));
  });
});

describe('buildkite-agent start --acquire-job', () => {
  it("moves the job to an agent of another queue: its tokens name that agent, its rules and queue stay the job's", async () => {
    const job = sim.createJob({ clusterName: 'linux', queueKey: 'deploy' });
    const first = job.agentId;
    const outsider = sim.createAgent({ clusterName: 'linux', queueKey: 'build', tags: { queue: 'build', size: 'large' } });
    sim.acquireJob(job, outsider);
    const claims = decodeJwt(await sim.mintToken(job, { claims: ['queue_key', 'agent_tag:queue', 'agent_tag:size'] }));
    expect(claims).toMatchObject({ agent_id: outsider.id, queue_key: 'deploy', 'agent_tag:queue': 'build', 'agent_tag:size': 'large' });
    const { body } = await api(`/v2/organizations/acme/jobs/${job.jobId}`);
    expect(body).toMatchObject({ agent: { id: outsider.id, queue: 'build' }, agent_query_rules: ['queue=deploy'], cluster_queue_id: job.queueId });
    expect(sim.agent(first)!.currentJobId).toBeNull();
    expect((await api(`/v2/organizations/acme/agents/${outsider.id}`)).body.job).toMatchObject({ id: job.jobId });
  });

  it('takes command jobs of builds too', async () => {
    const build = sim.createBuild({ pipelineSlug: 'app', creator: null, steps: [{ type: 'command', key: 'deploy', agentTags: { queue: 'deploy' } }] });
    const jobId = build.jobs[0]!.id;
    const outsider = sim.createAgent({ clusterName: 'default', queueKey: 'build' });
    sim.acquireJob(jobId, outsider.id);
    const { body } = await api(`/v2/organizations/acme/jobs/${jobId}`);
    expect(body).toMatchObject({ agent: { id: outsider.id }, agent_query_rules: ['queue=deploy'] });
  });

  it('is refused for an agent of another cluster, a disconnected agent, or a finished job', () => {
    const job = sim.createJob({ clusterName: 'linux', queueKey: 'deploy' });
    expect(() => sim.acquireJob(job, sim.createAgent({ clusterName: 'mac', queueKey: 'deploy' }))).toThrow(/not in the agent's cluster/);
    expect(() => sim.acquireJob(job, sim.createAgent({ clusterName: 'linux', connectionState: 'disconnected' }))).toThrow(/Only connected agents/);
    sim.finishJob(job);
    expect(() => sim.acquireJob(job, sim.createAgent({ clusterName: 'linux' }))).toThrow(/not running/);
  });
});
