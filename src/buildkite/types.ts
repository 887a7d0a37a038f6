/**
 * Buildkite REST API objects as Port reads them (buildkite.md §4; the Buildkite docs
 * `pages/apis/rest_api/{builds,jobs,agents}.md` for the fields §4 names without
 * listing). Only what Port uses is typed; everything else Buildkite sends is kept on the
 * object untyped. Buildkite omits or nulls many fields by job type and age, so most are
 * optional and nullable; enumerations stay open (`KnownX | string`) so a value Buildkite
 * adds later does not break parsing.
 */

/** Job `type` values (builds.md "Job data model"); block steps are `manual` (§3). */
export type BuildkiteJobType = 'script' | 'manual' | 'waiter' | 'trigger';

/** Job `state` values (builds.md); a block job is `blocked` until unblocked (§3). */
export type BuildkiteJobState =
  | 'pending' | 'waiting' | 'waiting_failed' | 'blocked' | 'blocked_failed' | 'unblocked' | 'unblocked_failed'
  | 'scheduled' | 'assigned' | 'accepted' | 'running' | 'passed' | 'failed' | 'timed_out' | 'timing_out'
  | 'canceled' | 'canceling' | 'skipped' | 'broken' | 'expired' | 'limited' | 'finished';

/** Build `state` values; a blocked build keeps its previous state and sets `blocked` (§3). */
export type BuildkiteBuildState =
  | 'scheduled' | 'running' | 'passed' | 'failed' | 'blocked' | 'canceled' | 'canceling' | 'skipped'
  | 'not_run' | 'waiting' | 'waiting_failed' | 'failing' | 'finished';

/** `build.source` (§1.4, builds.md). */
export type BuildkiteBuildSource = 'webhook' | 'api' | 'ui' | 'trigger_job' | 'schedule';

/** Agent `connection_state` (§4.2). */
export type BuildkiteAgentConnectionState = 'never_connected' | 'connected' | 'disconnected' | 'stopping' | 'stopped' | 'lost';

/** An open enumeration: the known values, or anything else Buildkite sends. */
export type Open<T extends string> = T | (string & {});

/** A Buildkite user as embedded in builds (`creator`), jobs (`unblocked_by`) and agents (`creator`). */
export interface BuildkiteUser {
  /** The user's UUID: what `unblocker` takes (§4.2). */
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
  /** A block step's label (`- block: "Label"`, §4.4). */
  label?: string | null;
  step_key?: string | null;
  web_url?: string | null;
  /** Manual jobs: whether it can be unblocked now (§3 "Check `unblockable`"). */
  unblockable?: boolean | null;
  /** Manual jobs: who unblocked it, once unblocked (§3, §4.2). */
  unblocked_by?: BuildkiteUser | null;
  unblocked_at?: string | null;
  unblock_url?: string | null;
  /**
   * Not documented on REST jobs (§4.2 lists none): a block step's field definitions are
   * not known to be served. Typed only so a deployment that sees them can read them.
   */
  fields?: unknown;
  agent?: BuildkiteAgent | null;
  created_at?: string | null;
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
  /** True while the build waits at a block step (§3). */
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
  /** Absent with `exclude_jobs` and in webhook payloads (§3). */
  jobs?: BuildkiteJob[];
  /** Block-step field values land here after an unblock (§4.4). */
  meta_data?: Record<string, string> | null;
  created_at?: string | null;
  finished_at?: string | null;
  [extra: string]: unknown;
}

/** An agent (§4.2 "Agent object fields"). */
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
  queue?: unknown;
  creator?: BuildkiteUser | null;
  job?: BuildkiteJob | null;
  /** Agent tags as `key=value` strings. */
  meta_data?: string[] | null;
  created_at?: string | null;
  [extra: string]: unknown;
}

/**
 * An organization member (`pages/apis/rest_api/organizations/members.md`; scope
 * `read_organizations`). Not in buildkite.md: it is the only REST way from an e-mail to
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

/** One page of `GET …/builds/{number}/jobs` (§4.2: `items` + `links.next`). */
export interface BuildkiteJobPage {
  items: BuildkiteJob[];
  /** The `after` cursor of the next page, or null on the last page. */
  nextCursor: string | null;
}

/** Body of `PUT …/jobs/{id}/unblock` (§4.2: both optional). */
export interface UnblockJobRequest {
  /** Block-field key → value; a multiple select's values are joined with newlines (§4.4). */
  fields?: Record<string, string>;
  /** The user id credited as unblocker; defaults to the API token's owner (§4.2). */
  unblocker?: string;
}

/** The `RateLimit-*` headers of the last response (§4.1). Null where a header was absent. */
export interface BuildkiteRateLimit {
  limit: number | null;
  remaining: number | null;
  /** Seconds until the organization window resets. */
  resetSeconds: number | null;
  userLimit: number | null;
  userRemaining: number | null;
  userResetSeconds: number | null;
}
