/**
 * The simulator's objects in Buildkite's REST JSON (field sets from
 * https://buildkite.com/docs/apis/rest-api/builds, .../jobs, .../agents and
 * .../organizations/members). Webhook payloads reuse these (the build object in build
 * webhooks has no jobs: https://buildkite.com/docs/apis/webhooks/pipelines/build-events).
 * API URLs point at the simulator; `web_url`s are shaped like Buildkite's but not served.
 */
import { createHash } from 'node:crypto';
import type { SimAgent, SimBuild, SimBuildJob, SimUser } from './build-types.js';
import type { SimJob } from './types.js';

export type Json = Record<string, unknown>;

export interface RestContext {
  /** The simulator's base URL (API URLs start with it). */
  baseUrl: string;
  organizationSlug: string;
  organizationId: string;
  /** The agent a job runs on, for the job's `agent`. */
  agentOfJob?: (jobId: string) => SimAgent | undefined;
}

/** Buildkite's GraphQL ids are base64 of `Type---uuid` (e.g. `QnVpbGQtLS0…` = `Build---…`). */
export function graphqlId(type: 'Build' | 'Job' | 'User' | 'Agent' | 'Pipeline' | 'Organization', id: string): string {
  return Buffer.from(`${type}---${id}`).toString('base64');
}

const iso = (d: Date | null): string | null => (d === null ? null : d.toISOString());

function orgApi(ctx: RestContext): string {
  return `${ctx.baseUrl}/v2/organizations/${ctx.organizationSlug}`;
}

function buildApi(ctx: RestContext, build: SimBuild): string {
  return `${orgApi(ctx)}/pipelines/${build.pipelineSlug}/builds/${build.number}`;
}

function buildWeb(ctx: RestContext, build: SimBuild): string {
  return `${ctx.baseUrl}/${ctx.organizationSlug}/${build.pipelineSlug}/builds/${build.number}`;
}

/** A user as embedded in `creator`, `unblocked_by` and an agent's `creator`. */
export function userJson(user: SimUser): Json {
  return {
    id: user.id,
    graphql_id: user.graphqlId,
    name: user.name,
    email: user.email,
    avatar_url: `https://www.gravatar.com/avatar/${createHash('md5').update(user.email.trim().toLowerCase()).digest('hex')}`,
    created_at: iso(user.createdAt),
  };
}

/** `{id, name}`: the webhook's creator (the payload's `sender`). */
export function senderJson(user: SimUser): Json {
  return { id: user.id, name: user.name };
}

export function memberJson(user: SimUser, role: 'admin' | 'member'): Json {
  return { id: user.id, name: user.name, email: user.email, role, sso_mode: 'optional' };
}

export function organizationJson(ctx: RestContext): Json {
  return {
    id: ctx.organizationId,
    graphql_id: graphqlId('Organization', ctx.organizationId),
    url: orgApi(ctx),
    web_url: `${ctx.baseUrl}/${ctx.organizationSlug}`,
    name: ctx.organizationSlug,
    slug: ctx.organizationSlug,
  };
}

export function pipelineJson(ctx: RestContext, build: SimBuild): Json {
  return {
    id: build.pipelineId,
    graphql_id: graphqlId('Pipeline', build.pipelineId),
    url: `${orgApi(ctx)}/pipelines/${build.pipelineSlug}`,
    web_url: `${ctx.baseUrl}/${ctx.organizationSlug}/${build.pipelineSlug}`,
    name: build.pipelineSlug,
    slug: build.pipelineSlug,
    repository: `git@github.com:${ctx.organizationSlug}/${build.pipelineSlug}.git`,
    default_branch: 'main',
  };
}

export function buildJson(ctx: RestContext, build: SimBuild, opts: { jobs: boolean; pipeline?: boolean } = { jobs: true }): Json {
  const out: Json = {
    id: build.id,
    graphql_id: build.graphqlId,
    url: buildApi(ctx, build),
    web_url: buildWeb(ctx, build),
    number: build.number,
    state: build.state,
    blocked: build.blocked,
    cancel_reason: null,
    message: build.message,
    commit: build.commit,
    branch: build.branch,
    tag: build.tag,
    env: {},
    source: build.source,
    creator: build.creator === null ? null : userJson(build.creator),
  };
  if (build.author !== null) {
    out.author = { ...(build.author.username === undefined ? {} : { username: build.author.username }), name: build.author.name, email: build.author.email };
  }
  if (opts.jobs) out.jobs = build.jobs.map((job) => jobJson(ctx, build, job));
  Object.assign(out, {
    created_at: iso(build.createdAt),
    scheduled_at: iso(build.createdAt),
    started_at: iso(build.startedAt),
    finished_at: iso(build.finishedAt),
    meta_data: { ...build.metaData },
    pull_request: null,
    rebuilt_from: null,
  });
  if (opts.pipeline ?? true) out.pipeline = pipelineJson(ctx, build);
  return out;
}

export function jobJson(ctx: RestContext, build: SimBuild, job: SimBuildJob): Json {
  switch (job.type) {
    case 'waiter':
      // Waiter jobs carry little more than their identity.
      return { id: job.id, graphql_id: job.graphqlId, type: 'waiter' };
    case 'manual':
      // The unblock response's field set ("Unblock a job" on the jobs page), plus `step_key` (as in job webhooks).
      return {
        id: job.id,
        graphql_id: job.graphqlId,
        type: 'manual',
        label: job.label,
        step_key: job.stepKey,
        state: job.state,
        web_url: null,
        unblocked_by: job.unblockedBy === null ? null : userJson(job.unblockedBy),
        unblocked_at: iso(job.unblockedAt),
        unblockable: job.unblockable,
        unblock_url: `${buildWeb(ctx, build)}#${job.id}`,
      };
    case 'script': {
      const agent = ctx.agentOfJob?.(job.id);
      const jobApi = `${buildApi(ctx, build)}/jobs/${job.id}`;
      return {
        id: job.id,
        graphql_id: job.graphqlId,
        type: 'script',
        name: job.label ?? job.command,
        step_key: job.stepKey,
        step: { id: job.id, signature: null },
        priority: { number: 0 },
        agent_query_rules: Object.entries(job.agentTags).map(([k, v]) => `${k}=${v}`),
        state: job.state,
        build_url: buildApi(ctx, build),
        web_url: `${buildWeb(ctx, build)}#${job.id}`,
        log_url: `${jobApi}/log`,
        raw_log_url: `${jobApi}/log.txt`,
        artifacts_url: `${jobApi}/artifacts`,
        command: job.command,
        soft_failed: false,
        exit_status: job.exitStatus,
        signal: null,
        signal_reason: null,
        artifact_paths: null,
        agent: agent === undefined ? null : agentJson(ctx, agent, null),
        created_at: iso(job.createdAt),
        scheduled_at: iso(job.createdAt),
        runnable_at: iso(job.startedAt),
        started_at: iso(job.startedAt),
        finished_at: iso(job.finishedAt),
        expired_at: null,
        retried: false,
        retried_in_job_id: null,
        retries_count: null,
        retry_source: null,
        retry_type: null,
        parallel_group_index: null,
        parallel_group_total: null,
        matrix: null,
        ...clusterFields(ctx, job.oidcJob?.clusterId ?? null, job.oidcJob?.queueId ?? null),
      };
    }
  }
}

/**
 * A job created only on the OIDC side (`createJob`), as `GET /v2/organizations/{org}/jobs/{id}`
 * answers it and as an agent's `job`: `agent` is the agent that runs it (assigned, or
 * acquired with `--acquire-job`), `agent_query_rules` its step's own rules, and
 * `cluster_id`/`cluster_queue_id` its cluster and queue (the builds page's job data model).
 */
export function oidcJobJson(ctx: RestContext, job: SimJob, finished: boolean, agentQueryRules: string[]): Json {
  const api = `${orgApi(ctx)}/pipelines/${job.pipelineSlug}/builds/${job.buildNumber}`;
  const agent = ctx.agentOfJob?.(job.jobId);
  return {
    id: job.jobId,
    graphql_id: graphqlId('Job', job.jobId),
    type: 'script',
    step_key: job.stepKey,
    agent_query_rules: agentQueryRules,
    state: finished ? 'passed' : 'running',
    build_url: api,
    web_url: `${ctx.baseUrl}/${job.organizationSlug}/${job.pipelineSlug}/builds/${job.buildNumber}#${job.jobId}`,
    agent: agent === undefined ? null : agentJson(ctx, agent, null),
    ...clusterFields(ctx, job.clusterId, job.queueId),
  };
}

/** A job's `cluster_id`, `cluster_url`, `cluster_queue_id` and `cluster_queue_url` (null outside clusters). */
function clusterFields(ctx: RestContext, clusterId: string | null, queueId: string | null): Json {
  const cluster = clusterId === null ? null : `${orgApi(ctx)}/clusters/${clusterId}`;
  return {
    cluster_id: clusterId,
    cluster_url: cluster,
    cluster_queue_id: queueId,
    cluster_queue_url: cluster === null || queueId === null ? null : `${cluster}/queues/${queueId}`,
  };
}

/**
 * An agent (the agents page's data model). Unconfirmed: the shape of `queue` ("Queue the
 * agent is registered to"); the simulator sends the queue's key, and `meta_data` carries
 * the `queue` tag that chose it. `web_url` names the cluster and queue as the page's example does.
 */
export function agentJson(ctx: RestContext, agent: SimAgent, job: Json | null): Json {
  const web =
    agent.clusterId !== null && agent.queueId !== null
      ? `${ctx.baseUrl}/organizations/${ctx.organizationSlug}/clusters/${agent.clusterId}/queues/${agent.queueId}/agents/${agent.id}`
      : `${ctx.baseUrl}/organizations/${ctx.organizationSlug}/agents/${agent.id}`;
  return {
    id: agent.id,
    graphql_id: graphqlId('Agent', agent.id),
    url: `${orgApi(ctx)}/agents/${agent.id}`,
    web_url: web,
    name: agent.name,
    connection_state: agent.connectionState,
    hostname: agent.hostname,
    ip_address: agent.ipAddress,
    user_agent: `buildkite-agent/${agent.version} (${agent.osId}; ${agent.arch})`,
    version: agent.version,
    os_id: agent.osId,
    arch: agent.arch,
    queue: agent.queueKey,
    creator: agent.creator === null ? null : userJson(agent.creator),
    created_at: iso(agent.createdAt),
    connected_at: iso(agent.connectedAt),
    disconnected_at: iso(agent.disconnectedAt),
    lost_at: iso(agent.lostAt),
    job,
    last_job_finished_at: null,
    priority: null,
    meta_data: [...agent.metaData],
  };
}
