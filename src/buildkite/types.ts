/**
 * Buildkite REST API objects as Port reads them (https://buildkite.com/docs/apis/rest-api/builds,
 * .../rest-api/jobs, .../rest-api/agents; block steps:
 * https://buildkite.com/docs/pipelines/configure/step-types/block-step; webhooks:
 * https://buildkite.com/docs/apis/webhooks/pipelines). Only what Port uses is typed; everything else Buildkite sends is kept on the
 * object untyped. Buildkite omits or nulls many fields by job type and age, so most are
 * optional and nullable; enumerations stay open (`KnownX | string`) so a value Buildkite
 * adds later does not break parsing.
 */

/** Job `type` values (the builds page's job data model); block steps are `manual`. */
export type BuildkiteJobType = 'script' | 'manual' | 'waiter' | 'trigger';

/** Job `state` values (the builds page); a block job is `blocked` until unblocked. */
export type BuildkiteJobState =
  | 'pending' | 'waiting' | 'waiting_failed' | 'blocked' | 'blocked_failed' | 'unblocked' | 'unblocked_failed'
  | 'scheduled' | 'assigned' | 'accepted' | 'running' | 'passed' | 'failed' | 'timed_out' | 'timing_out'
  | 'canceled' | 'canceling' | 'skipped' | 'broken' | 'expired' | 'limited' | 'finished';

/** Build `state` values; a blocked build keeps its previous state and sets `blocked` (the builds page). */
export type BuildkiteBuildState =
  | 'scheduled' | 'running' | 'passed' | 'failed' | 'blocked' | 'canceled' | 'canceling' | 'skipped'
  | 'not_run' | 'waiting' | 'waiting_failed' | 'failing' | 'finished';

/** `build.source` (the builds page; the same values as the OIDC `build_source` claim). */
export type BuildkiteBuildSource = 'webhook' | 'api' | 'ui' | 'trigger_job' | 'schedule';

/** Agent `connection_state` (the agents page). */
export type BuildkiteAgentConnectionState = 'never_connected' | 'connected' | 'disconnected' | 'stopping' | 'stopped' | 'lost';

/** An open enumeration: the known values, or anything else Buildkite sends. */
export type Open<T extends string> = T | (string & {});

/** A Buildkite user as embedded in builds (`creator`), jobs (`unblocked_by`) and agents (`creator`). */
export interface BuildkiteUser {
  /** The user's UUID: what `unblocker` takes ("Unblock a job", the jobs page). */
  id: string;
  graphql_id?: string | null;
  name: string | null;
  email: string | null;
  avatar_url?: string | null;
  created_at?: string | null;
  [extra: string]: unknown;
}

/** The commit author Buildkite was told about (`build.author`); not a Buildkite user. */
export interface BuildkiteAuthor {
  name?: string | null;
  email?: string | null;
  username?: string | null;
  [extra: string]: unknown;
}

export interface BuildkitePipelineRef {
  id?: string | null;
  slug: string;
  name?: string | null;
  [extra: string]: unknown;
}

export interface BuildkiteJob {
  id: string;
  graphql_id?: string | null;
  type: Open<BuildkiteJobType>;
  /** Null when Buildkite omits it (waiter jobs carry little more than id and type). */
  state: Open<BuildkiteJobState> | null;
  name?: string | null;
  /** A block step's label (`- block: "Label"` in the block step docs). */
  label?: string | null;
  step_key?: string | null;
  web_url?: string | null;
  /** Manual jobs: whether it can be unblocked now. */
  unblockable?: boolean | null;
  /** Manual jobs: who unblocked it, once unblocked (the jobs page's unblock response). */
  unblocked_by?: BuildkiteUser | null;
  unblocked_at?: string | null;
  unblock_url?: string | null;
  /**
   * Not documented on REST jobs (the jobs page lists none): a block step's field definitions are
   * not known to be served. Typed only so a deployment that sees them can read them.
   */
  fields?: unknown;
  /** The agent that ran (or runs) the job, once assigned; in build payloads only `id`, `url` and `name`. */
  agent?: BuildkiteAgent | null;
  /** The rules that route the job to agents, e.g. `["queue=deploy"]`; null when unreadable. */
  agent_query_rules?: string[] | null;
  /** The cluster's and cluster queue's UUIDs, if using clusters (the builds page's job data model). */
  cluster_id?: string | null;
  cluster_queue_id?: string | null;
  created_at?: string | null;
  started_at?: string | null;
  finished_at?: string | null;
  exit_status?: number | null;
  [extra: string]: unknown;
}

export interface BuildkiteBuild {
  id: string;
  graphql_id?: string | null;
  url?: string | null;
  web_url?: string | null;
  number: number;
  state: Open<BuildkiteBuildState>;
  /** True while the build waits at a block step (the builds page). */
  blocked: boolean;
  branch: string;
  /** Not in every payload; null or absent for untagged builds. */
  tag?: string | null;
  commit: string;
  message: string | null;
  source: Open<BuildkiteBuildSource>;
  /** The Buildkite user who created the build; null when Buildkite names none (e.g. some webhook builds). */
  creator: BuildkiteUser | null;
  author?: BuildkiteAuthor | null;
  pipeline?: BuildkitePipelineRef | null;
  /** Absent with `exclude_jobs` and in webhook payloads (build webhooks carry no jobs). */
  jobs?: BuildkiteJob[];
  /** Block-step field values land here after an unblock (stored as build meta-data, per the block step docs). */
  meta_data?: Record<string, string> | null;
  created_at?: string | null;
  finished_at?: string | null;
  [extra: string]: unknown;
}

/** An agent (the agents page). */
export interface BuildkiteAgent {
  id: string;
  graphql_id?: string | null;
  name: string | null;
  connection_state: Open<BuildkiteAgentConnectionState> | null;
  hostname?: string | null;
  ip_address?: string | null;
  user_agent?: string | null;
  version?: string | null;
  os_id?: string | null;
  arch?: string | null;
  /** "Queue the agent is registered to": its shape is not documented (read with `agentQueue`, src/buildkite/agents.ts). */
  queue?: unknown;
  /** Not in the agents page's data model; read when present. */
  cluster_id?: string | null;
  creator?: BuildkiteUser | null;
  job?: BuildkiteJob | null;
  /** Agent tags as `key=value` strings. */
  meta_data?: string[] | null;
  created_at?: string | null;
  connected_at?: string | null;
  disconnected_at?: string | null;
  lost_at?: string | null;
  [extra: string]: unknown;
}

/**
 * An organization member (https://buildkite.com/docs/apis/rest-api/organizations/members;
 * scope `read_organizations`): the only REST way from an e-mail to
 * the user id `unblocker` needs.
 */
export interface BuildkiteMember {
  id: string;
  name: string | null;
  email: string | null;
  role?: string | null;
  sso_mode?: string | null;
  [extra: string]: unknown;
}

/** One page of `GET …/builds/{number}/jobs` (the jobs page: `items` + `links.next`). */
export interface BuildkiteJobPage {
  items: BuildkiteJob[];
  /** The `after` cursor of the next page, or null on the last page. */
  nextCursor: string | null;
}

/** Body of `PUT …/jobs/{id}/unblock` ("Unblock a job", the jobs page: both optional). */
export interface UnblockJobRequest {
  /** Block-field key → value; a multiple select's values are joined with newlines (block step docs). */
  fields?: Record<string, string>;
  /** The user id credited as unblocker; defaults to the API token's owner (the jobs page). */
  unblocker?: string;
}

/** The `RateLimit-*` headers of the last response (https://buildkite.com/docs/apis/rest-api/rate-limits). Null where a header was absent. */
export interface BuildkiteRateLimit {
  limit: number | null;
  remaining: number | null;
  /** Seconds until the organization window resets. */
  resetSeconds: number | null;
  userLimit: number | null;
  userRemaining: number | null;
  userResetSeconds: number | null;
}
