/**
 * The `buildkite` attestation: a live check, with Buildkite's REST API, that the token's
 * job runs now on the token's agent, that this agent is connected and registered into the
 * pool the token claims, and that the job was not taken by an agent outside its own queue
 * (`buildkite-agent start --acquire-job` runs any job of the cluster whatever the agent's
 * tags: https://buildkite.com/docs/agent/v3/cli-start). A job token can mint OIDC tokens for
 * its own job only (https://buildkite.com/docs/agent/v3/tokens), but Buildkite asserts
 * which agent and queue the job has, not that the agent is where the pool's rules want it.
 *
 * Calls: `GET /v2/organizations/{org}/jobs/{id}` (scope `read_builds`,
 * https://buildkite.com/docs/apis/rest-api/jobs) and `GET …/agents/{id}` (scope
 * `read_agents`, https://buildkite.com/docs/apis/rest-api/agents). Answers are reused for
 * `attestation.buildkite_cache_ttl` seconds (concurrent asks share one call); failures are
 * never reused. Fail closed: no answer is `buildkite_unavailable`, never a pass.
 */
import { agentQueue, isRunning, jobAgentId, jobQueue } from '../buildkite/agents.js';
import { BuildkiteApiError } from '../buildkite/errors.js';
import type { BuildkiteAgent, BuildkiteJob } from '../buildkite/types.js';
import type { AgentCheck } from '../identity/errors.js';
import type { JobIdentity } from '../identity/job-identity.js';

/** What the live check reads (BuildkiteApi has both). */
export interface BuildkiteAgentApi {
  getJob(jobId: string): Promise<BuildkiteJob>;
  getAgent(agentId: string): Promise<BuildkiteAgent>;
}

export type LiveCheckResult =
  | { passed: true; connected: true }
  | {
      passed: false;
      check: AgentCheck;
      /** One sentence: what is wrong and what to do. */
      message: string;
      /** The agent's connection as Buildkite reported it, when it was read. */
      connected?: boolean;
    };

export interface BuildkiteLiveCheckOptions {
  /** Seconds an answer is reused (`attestation.buildkite_cache_ttl`); 0: ask every time. */
  cacheTtl: number;
  /** Most answers kept (oldest dropped first). Default 10 000. */
  maxEntries?: number;
  now?: () => number;
}

interface Entry<T> {
  expiresAt: number;
  value: Promise<T>;
}

const RETRY_SECONDS = 5;
export const BUILDKITE_RETRY_AFTER_SECONDS = RETRY_SECONDS;

export class BuildkiteLiveCheck {
  private readonly jobs = new Map<string, Entry<BuildkiteJob>>();
  private readonly agents = new Map<string, Entry<BuildkiteAgent>>();
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;

  constructor(
    private readonly api: BuildkiteAgentApi,
    opts: BuildkiteLiveCheckOptions,
  ) {
    this.ttlMs = opts.cacheTtl * 1000;
    this.maxEntries = opts.maxEntries ?? 10_000;
    this.now = opts.now ?? Date.now;
  }

  async verify(identity: Pick<JobIdentity, 'jobId' | 'agentId' | 'clusterName' | 'queueKey' | 'queueId' | 'clusterId'>): Promise<LiveCheckResult> {
    const { jobId, agentId } = identity;
    let job: BuildkiteJob;
    try {
      job = await this.cached(this.jobs, jobId, () => this.api.getJob(jobId));
    } catch (err) {
      if (notFound(err)) return refuse('job_not_running', `Buildkite has no job ${jobId}; request a fresh token from the running job.`);
      return unavailable(err);
    }
    if (!isRunning(job)) {
      return refuse('job_not_running', `Buildkite says job ${jobId} is ${job.state ?? 'in no known state'}, not running; only a running job gets anything.`);
    }
    const runner = jobAgentId(job);
    if (runner !== agentId) {
      return refuse(
        'job_not_on_agent',
        runner === undefined
          ? `Buildkite names no agent for job ${jobId}, so it can't be on agent ${agentId}; request a fresh token from the running job.`
          : `Buildkite says job ${jobId} runs on agent ${runner}, not on agent ${agentId} named by the token.`,
      );
    }
    let agent: BuildkiteAgent;
    try {
      agent = await this.cached(this.agents, agentId, () => this.api.getAgent(agentId));
    } catch (err) {
      if (notFound(err)) return refuse('agent_not_connected', `Buildkite has no agent ${agentId}; the job's agent must be connected.`);
      return unavailable(err);
    }
    const connected = agent.connection_state === 'connected';
    if (!connected) {
      return refuse('agent_not_connected', `Buildkite says agent ${agentId} is ${agent.connection_state ?? 'in no known state'}, not connected; only a connected agent's jobs are served.`, false);
    }
    const onAgent = agentQueue(agent);
    if (onAgent.conflict) {
      return refuse('agent_wrong_pool', `Buildkite's answer names two queues for agent ${agentId} (its queue and its queue tag differ); Port can't tell its pool.`, true);
    }
    // The job's own queue against its agent's: a job taken by an agent of another queue
    // (--acquire-job) is refused whatever the token claims.
    const own = jobQueue(job);
    if ((own.key !== undefined && onAgent.key !== undefined && own.key !== onAgent.key) || (own.id !== undefined && onAgent.id !== undefined && own.id !== onAgent.id)) {
      return refuse(
        'job_acquired_outside_pool',
        `Job ${jobId} belongs to queue ${own.key ?? own.id} but runs on agent ${agentId} of queue ${onAgent.key ?? onAgent.id}: it was acquired outside its pool (buildkite-agent start --acquire-job).`,
        true,
      );
    }
    // The job's own queue against the pool the token claims: where Buildkite names one
    // and not the other for the agent (a queue id without a key), this still holds the
    // job to its claim.
    if ((own.key !== undefined && identity.queueKey !== undefined && own.key !== identity.queueKey) || (own.id !== undefined && identity.queueId !== undefined && own.id !== identity.queueId)) {
      return refuse('agent_wrong_pool', `Buildkite says job ${jobId} belongs to queue ${own.key ?? own.id}, not to pool ${poolName(identity)} that the token claims.`, true);
    }
    // The agent against the pool the token claims.
    if (onAgent.key === undefined && onAgent.id === undefined) {
      return refuse('agent_wrong_pool', `Buildkite doesn't say which queue agent ${agentId} is registered into; Port can't place it in pool ${poolName(identity)}.`, true);
    }
    const keyDiffers = onAgent.key !== undefined && identity.queueKey !== undefined && onAgent.key !== identity.queueKey;
    const idDiffers = onAgent.id !== undefined && identity.queueId !== undefined && onAgent.id !== identity.queueId;
    const keyUnknown = onAgent.key === undefined && (onAgent.id === undefined || identity.queueId === undefined);
    const clusterDiffers = identity.clusterId !== undefined && typeof job.cluster_id === 'string' && job.cluster_id !== '' && job.cluster_id !== identity.clusterId;
    if (keyDiffers || idDiffers || keyUnknown || clusterDiffers) {
      return refuse(
        'agent_wrong_pool',
        keyUnknown
          ? `Buildkite doesn't name agent ${agentId}'s queue key; Port can't place it in pool ${poolName(identity)} (request --claim queue_id too).`
          : `Agent ${agentId} is registered into queue ${onAgent.key ?? onAgent.id}, not in pool ${poolName(identity)} that the token claims.`,
        true,
      );
    }
    return { passed: true, connected: true };
  }

  private cached<T>(map: Map<string, Entry<T>>, key: string, load: () => Promise<T>): Promise<T> {
    const now = this.now();
    const hit = map.get(key);
    if (hit !== undefined && hit.expiresAt > now) return hit.value;
    if (hit !== undefined) map.delete(key);
    const value = load();
    // In flight it is shared (expiresAt: never, until settled); kept for the TTL once answered; a failure is dropped.
    const entry: Entry<T> = { expiresAt: Number.POSITIVE_INFINITY, value };
    if (map.size >= this.maxEntries) map.delete(map.keys().next().value!);
    map.set(key, entry);
    value.then(
      () => {
        if (map.get(key) !== entry) return;
        if (this.ttlMs <= 0) map.delete(key);
        else entry.expiresAt = this.now() + this.ttlMs;
      },
      () => {
        if (map.get(key) === entry) map.delete(key);
      },
    );
    return value;
  }
}

function poolName(identity: Pick<JobIdentity, 'clusterName' | 'queueKey'>): string {
  return identity.clusterName !== undefined ? `${identity.clusterName}/${identity.queueKey ?? '?'}` : `queue ${identity.queueKey ?? '?'}`;
}

function refuse(check: AgentCheck, message: string, connected?: boolean): LiveCheckResult {
  return { passed: false, check, message, ...(connected !== undefined ? { connected } : {}) };
}

function notFound(err: unknown): boolean {
  return err instanceof BuildkiteApiError && err.code === 'buildkite_not_found';
}

/** Buildkite did not answer (or refused Port's API token): nothing is verified, retry later. */
function unavailable(err: unknown): LiveCheckResult {
  if (err instanceof BuildkiteApiError && (err.code === 'buildkite_unauthorized' || err.code === 'buildkite_forbidden')) {
    return refuse('buildkite_unavailable', `Buildkite's REST API refused Port's API token (${err.httpStatus}); buildkite.api_token needs the scopes read_builds and read_agents.`);
  }
  const what = err instanceof BuildkiteApiError ? err.code.replace(/^buildkite_/, '').replace(/_/g, ' ') : 'failure';
  return refuse('buildkite_unavailable', `Port could not check the job's agent with Buildkite's REST API (${what}); retry in a few seconds.`);
}
