/**
 * The simulator's jobs: creation with sensible defaults, lookup by id and by job
 * token, and finishing (a finished job's token no longer works). Related ids stay
 * consistent: one pipeline slug keeps one pipeline id, one build number of a
 * pipeline one build id, one cluster name one cluster id, one queue key per cluster
 * one queue id — as they would in a real organization.
 */
import { commitSha, jobToken, uuid } from './ids.js';
import type { SimJob, SimJobInit } from './types.js';

export interface Organization {
  slug: string;
  id: string;
}

export class JobRegistry {
  private readonly jobs = new Map<string, SimJob>();
  private readonly byToken = new Map<string, string>();
  private readonly byJobApiToken = new Map<string, string>();
  private readonly finished = new Set<string>();
  private readonly rules = new Map<string, string[]>();
  private readonly stableIds = new Map<string, string>();
  private readonly nextBuildNumber = new Map<string, number>();

  constructor(private readonly org: Organization) {}

  create(init: SimJobInit = {}): SimJob {
    const organizationSlug = init.organizationSlug ?? this.org.slug;
    const organizationId =
      init.organizationId ??
      (organizationSlug === this.org.slug ? this.org.id : this.stable(`org:${organizationSlug}`));
    const pipelineSlug = init.pipelineSlug ?? 'web-app';
    const pipelineKey = `${organizationSlug}/${pipelineSlug}`;
    const buildNumber = init.buildNumber ?? this.allocateBuildNumber(pipelineKey);
    const clusterName = init.clusterName === undefined ? 'default' : init.clusterName;
    const clusterId = init.clusterId === undefined ? (clusterName === null ? null : this.clusterId(clusterName)) : init.clusterId;
    // A cluster job runs in the queue its `queue` agent tag names, else the default queue
    // (https://buildkite.com/docs/pipelines/security/clusters).
    const queueKey = init.queueKey === undefined ? (clusterName === null ? null : (init.agentTags?.queue ?? 'default')) : init.queueKey;
    const queueId = init.queueId === undefined ? (queueKey === null ? null : this.queueId(clusterId, queueKey)) : init.queueId;

    const job: SimJob = {
      jobId: init.jobId ?? uuid(),
      jobToken: init.jobToken ?? jobToken(),
      jobApiToken: jobToken(),
      organizationSlug,
      organizationId,
      pipelineSlug,
      pipelineId: init.pipelineId ?? this.stable(`pipeline:${pipelineKey}`),
      buildNumber,
      buildId: init.buildId ?? this.stable(`build:${pipelineKey}#${buildNumber}`),
      branch: init.branch ?? 'main',
      tag: init.tag ?? null,
      // Jobs of one build share its commit unless told otherwise.
      commit: init.commit ?? this.stable(`commit:${pipelineKey}#${buildNumber}`, commitSha),
      stepKey: init.stepKey ?? null,
      agentId: init.agentId ?? uuid(),
      buildSource: init.buildSource ?? 'ui',
      runnerEnvironment: init.runnerEnvironment ?? 'self-hosted',
      clusterId,
      clusterName,
      queueId,
      queueKey,
      agentTags: { ...(init.agentTags ?? (queueKey === null ? {} : { queue: queueKey })) },
    };
    if (this.jobs.has(job.jobId)) throw new Error(`job ${job.jobId} already exists`);
    if (this.byToken.has(job.jobToken)) throw new Error('job token already in use');
    this.jobs.set(job.jobId, job);
    // The step's agent query rules stay the job's own, whichever agent ends up running it.
    this.rules.set(job.jobId, Object.entries(job.agentTags).map(([k, v]) => `${k}=${v}`));
    this.byToken.set(job.jobToken, job.jobId);
    this.byJobApiToken.set(job.jobApiToken, job.jobId);
    return job;
  }

  get(jobId: string): SimJob | undefined {
    return this.jobs.get(jobId);
  }

  /** The job's `agent_query_rules` (https://buildkite.com/docs/apis/rest-api/builds): its step's agent tags as `key=value`. */
  agentQueryRules(jobId: string): string[] {
    return [...(this.rules.get(jobId) ?? [])];
  }

  /**
   * The job now runs on another agent (`buildkite-agent start --acquire-job`): its tokens
   * carry that agent's `agent_id` and tags (`agent_tag:NAME`); its cluster and queue
   * claims stay the job's. Unconfirmed: Buildkite documents neither way for a job
   * acquired by an agent of another queue; the simulator keeps the job's queue, as the
   * REST job's `cluster_queue_id` does.
   */
  reassign(jobId: string, agent: { id: string; tags: Record<string, string> }): SimJob {
    const job = this.jobs.get(jobId);
    if (job === undefined) throw new Error(`unknown job ${jobId}`);
    job.agentId = agent.id;
    job.agentTags = { ...agent.tags };
    return job;
  }

  /** One cluster name, one cluster id (as in an organization). */
  clusterId(name: string): string {
    return this.stable(`cluster:${name}`);
  }

  /** One queue key per cluster, one queue id. */
  queueId(clusterId: string | null, key: string): string {
    return this.stable(`queue:${clusterId ?? ''}:${key}`);
  }

  /** The running job a job token belongs to; undefined for unknown tokens and finished jobs. */
  byAccessToken(token: string): SimJob | undefined {
    const id = this.byToken.get(token);
    return id === undefined || this.finished.has(id) ? undefined : this.jobs.get(id);
  }

  /** The running job a Job API token belongs to. */
  byJobApi(token: string): SimJob | undefined {
    const id = this.byJobApiToken.get(token);
    return id === undefined || this.finished.has(id) ? undefined : this.jobs.get(id);
  }

  finish(jobId: string): void {
    if (!this.jobs.has(jobId)) throw new Error(`unknown job ${jobId}`);
    this.finished.add(jobId);
  }

  isFinished(jobId: string): boolean {
    return this.finished.has(jobId);
  }

  private stable(key: string, make: () => string = uuid): string {
    let id = this.stableIds.get(key);
    if (id === undefined) {
      id = make();
      this.stableIds.set(key, id);
    }
    return id;
  }

  private allocateBuildNumber(pipelineKey: string): number {
    const n = this.nextBuildNumber.get(pipelineKey) ?? 1;
    this.nextBuildNumber.set(pipelineKey, n + 1);
    return n;
  }
}
