/**
 * The simulator's agents (https://buildkite.com/docs/apis/rest-api/agents). Every job created
 * through the OIDC side runs on an agent, so `GET …/agents/{agent_id}` answers for the
 * `agent_id` in that job's tokens; further agents can be created directly. An agent belongs
 * to a cluster and registers into one of its queues, the one its `queue` tag names
 * (https://buildkite.com/docs/pipelines/security/clusters); its connection state changes
 * as Buildkite's does (`connected`, `disconnected`, `lost`, `stopping`, `stopped`).
 */
import type { SimAgent, SimAgentConnectionState, SimAgentInit } from './build-types.js';
import { SimApiError } from './errors.js';
import { uuid } from './ids.js';
import type { SimJob } from './types.js';

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** Stable cluster and queue ids, shared with the jobs (one name, one id). */
export interface ClusterIds {
  clusterId(name: string): string;
  queueId(clusterId: string | null, key: string): string;
}

const localIds = (): ClusterIds => {
  const ids = new Map<string, string>();
  const stable = (key: string): string => {
    let id = ids.get(key);
    if (id === undefined) ids.set(key, (id = uuid()));
    return id;
  };
  return { clusterId: (name) => stable(`cluster:${name}`), queueId: (clusterId, key) => stable(`queue:${clusterId ?? ''}:${key}`) };
};

export class AgentRegistry {
  private readonly agents = new Map<string, Mutable<SimAgent>>();
  private counter = 0;

  constructor(private readonly ids: ClusterIds = localIds()) {}

  create(init: SimAgentInit = {}): SimAgent {
    const id = init.id ?? uuid();
    if (this.agents.has(id)) throw new Error(`agent ${id} already exists`);
    const n = ++this.counter;
    const clusterName = init.clusterName === undefined ? 'default' : init.clusterName;
    const clusterId = init.clusterId === undefined ? (clusterName === null ? null : this.ids.clusterId(clusterName)) : init.clusterId;
    const queueKey = init.queueKey === undefined ? (clusterName === null ? null : (init.tags?.queue ?? 'default')) : init.queueKey;
    const queueId = init.queueId === undefined ? (queueKey === null ? null : this.ids.queueId(clusterId, queueKey)) : init.queueId;
    const tags = init.tags ?? (queueKey === null ? {} : { queue: queueKey });
    const state = init.connectionState ?? 'connected';
    const createdAt = new Date();
    const agent: Mutable<SimAgent> = {
      id,
      name: init.name ?? `sim-agent-${n}`,
      hostname: init.hostname ?? `sim-host-${n}`,
      ipAddress: init.ipAddress ?? '127.0.0.1',
      version: init.version ?? '3.80.0',
      osId: init.osId ?? 'linux',
      arch: init.arch ?? 'amd64',
      connectionState: state,
      metaData: Object.entries(tags).map(([k, v]) => `${k}=${v}`),
      creator: init.creator ?? null,
      createdAt,
      connectedAt: state === 'never_connected' ? null : createdAt,
      disconnectedAt: null,
      lostAt: null,
      clusterId,
      clusterName,
      queueId,
      queueKey,
      currentJobId: null,
    };
    this.agents.set(id, agent);
    return agent;
  }

  get(id: string): SimAgent | undefined {
    return this.agents.get(id);
  }

  /** Registers (or updates) the agent a job runs on, tagged and queued as the job's agent is. */
  assign(job: SimJob): SimAgent {
    const agent =
      this.agents.get(job.agentId) ??
      this.create({ id: job.agentId, tags: job.agentTags, clusterName: job.clusterName, clusterId: job.clusterId, queueKey: job.queueKey, queueId: job.queueId });
    (agent as Mutable<SimAgent>).currentJobId = job.jobId;
    return agent;
  }

  /**
   * A new connection state, with the timestamps Buildkite keeps: `connected_at`,
   * `disconnected_at` for a graceful disconnection, `lost_at` when pings stopped.
   */
  setConnectionState(id: string, state: SimAgentConnectionState): SimAgent {
    const agent = this.agents.get(id);
    if (agent === undefined) throw new Error(`unknown agent ${id}`);
    const now = new Date();
    agent.connectionState = state;
    if (state === 'connected') Object.assign(agent, { connectedAt: now, disconnectedAt: null, lostAt: null });
    if (state === 'disconnected' || state === 'stopped') agent.disconnectedAt = now;
    if (state === 'lost') agent.lostAt = now;
    return agent;
  }

  /**
   * `buildkite-agent start --acquire-job ID` (https://buildkite.com/docs/agent/v3/cli-start):
   * the agent takes that job whatever its tags, so an agent registered into another queue
   * of the job's cluster may run it. Refused for an agent that is not connected or is in
   * another cluster. Unconfirmed: Buildkite's status and wording for those refusals.
   */
  acquire(job: SimJob, agentId: string): SimAgent {
    const agent = this.agents.get(agentId);
    if (agent === undefined) throw new SimApiError('not_found', 'No agent found', 404);
    if (agent.connectionState !== 'connected') throw new SimApiError('unprocessable', 'Only connected agents may acquire jobs', 422);
    if (agent.clusterId !== job.clusterId) throw new SimApiError('unprocessable', "The job is not in the agent's cluster", 422);
    const previous = this.agents.get(job.agentId);
    if (previous !== undefined && previous.currentJobId === job.jobId) previous.currentJobId = null;
    agent.currentJobId = job.jobId;
    return agent;
  }

  /** The agent's tags as a map (from `meta_data`). */
  static tags(agent: SimAgent): Record<string, string> {
    const tags: Record<string, string> = {};
    for (const entry of agent.metaData) {
      const eq = entry.indexOf('=');
      if (eq > 0) tags[entry.slice(0, eq)] = entry.slice(eq + 1);
    }
    return tags;
  }
}
