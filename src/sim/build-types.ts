/**
 * Shapes of the simulator's builds, users, agents, unblock records and webhook
 * deliveries (https://buildkite.com/docs/apis/rest-api, https://buildkite.com/docs/apis/webhooks/pipelines,
 * https://buildkite.com/docs/pipelines/configure/step-types/block-step). Objects handed out are live views: read them after a
 * REST call to see its effect; change them only through the simulator's methods.
 */
import type { BuildSource, SimJob } from './types.js';

/** A Buildkite user of the simulated organization (`creator`, `unblocked_by`, members). */
export interface SimUser {
  readonly id: string;
  readonly graphqlId: string;
  readonly name: string;
  readonly email: string;
  readonly createdAt: Date;
}

export interface SimUserInit {
  name: string;
  email: string;
  /** A fixed UUID; random by default. */
  id?: string;
}

/** A block step's field, as in `pipeline.yml` (block step docs). */
export type SimBlockField =
  | { text: string; key: string; hint?: string; required?: boolean; default?: string; format?: string }
  | {
      select: string;
      key: string;
      options: { label: string; value: string }[];
      hint?: string;
      required?: boolean;
      multiple?: boolean;
      default?: string | string[];
    };

/** A build's state while blocked at a step with this `blocked_state` (block step docs; default `passed`). */
export type SimBlockedState = 'passed' | 'failed' | 'running';

/** A pipeline step of a simulated build: `command`, `wait` and `block`. */
export type SimStepInit =
  | { type: 'command'; key?: string; label?: string; command?: string; agentTags?: Record<string, string> }
  | { type: 'wait'; key?: string }
  | { type: 'block'; key?: string; label: string; prompt?: string; fields?: SimBlockField[]; blockedState?: SimBlockedState };

export interface SimAuthor {
  name: string;
  email: string;
  username?: string;
}

export interface SimBuildInit {
  pipelineSlug: string;
  /** The build number; the pipeline's next by default. */
  number?: number;
  branch?: string;
  tag?: string | null;
  commit?: string;
  message?: string;
  source?: BuildSource;
  /** The Buildkite user who created the build; null for a build Buildkite names no creator for. */
  creator: SimUser | null;
  /** The commit's author, when the build names one (`build.author`). */
  author?: SimAuthor;
  steps: SimStepInit[];
}

/** REST job types the simulator makes: `command` → `script`, `wait` → `waiter`, `block` → `manual`. */
export type SimBuildJobType = 'script' | 'waiter' | 'manual';

export type SimBuildJobState =
  | 'waiting' | 'blocked' | 'unblocked' | 'running' | 'passed' | 'failed' | 'canceled' | 'broken';

export type SimBuildState = 'running' | 'passed' | 'failed' | 'canceled';

export interface SimBuildJob {
  readonly id: string;
  readonly graphqlId: string;
  readonly type: SimBuildJobType;
  readonly buildId: string;
  readonly stepKey: string | null;
  readonly label: string | null;
  readonly command: string | null;
  /** Block steps: prompt, fields and `blocked_state` from the step (not served over REST). */
  readonly prompt: string | null;
  readonly fields: readonly SimBlockField[];
  readonly blockedState: SimBlockedState;
  readonly agentTags: Readonly<Record<string, string>>;
  readonly state: SimBuildJobState;
  readonly unblockable: boolean;
  readonly unblockedBy: SimUser | null;
  readonly unblockedAt: Date | null;
  readonly exitStatus: number | null;
  readonly createdAt: Date;
  readonly startedAt: Date | null;
  readonly finishedAt: Date | null;
  /** Command jobs once running: the job as the OIDC service knows it (mint tokens with it). */
  readonly oidcJob: SimJob | null;
}

export interface SimBuild {
  readonly id: string;
  readonly graphqlId: string;
  readonly number: number;
  readonly organizationSlug: string;
  readonly pipelineSlug: string;
  readonly pipelineId: string;
  readonly branch: string;
  readonly tag: string | null;
  readonly commit: string;
  readonly message: string;
  readonly source: BuildSource;
  readonly creator: SimUser | null;
  readonly author: SimAuthor | null;
  /** REST `state`: a blocked build keeps the state its block step names (`blocked_state`). */
  readonly state: SimBuildState;
  readonly blocked: boolean;
  readonly jobs: readonly SimBuildJob[];
  /** Build meta-data; block-step field values land here on unblock (block step docs). */
  readonly metaData: Readonly<Record<string, string>>;
  readonly createdAt: Date;
  readonly startedAt: Date | null;
  readonly finishedAt: Date | null;
}

export type SimAgentConnectionState = 'never_connected' | 'connected' | 'disconnected' | 'stopping' | 'stopped' | 'lost';

/**
 * An agent (https://buildkite.com/docs/apis/rest-api/agents). A cluster agent token
 * registers its agent into one queue of its cluster, the one its `queue` tag names
 * (https://buildkite.com/docs/pipelines/security/clusters); an agent outside clusters has
 * no cluster or queue.
 */
export interface SimAgent {
  readonly id: string;
  readonly name: string;
  readonly hostname: string;
  readonly ipAddress: string;
  readonly version: string;
  readonly osId: string;
  readonly arch: string;
  readonly connectionState: SimAgentConnectionState;
  /** Tags as `key=value` (`meta_data`). */
  readonly metaData: readonly string[];
  readonly creator: SimUser | null;
  readonly createdAt: Date;
  /** `connected_at`, `disconnected_at` (a graceful disconnection) and `lost_at` (no more pings). */
  readonly connectedAt: Date | null;
  readonly disconnectedAt: Date | null;
  readonly lostAt: Date | null;
  readonly clusterId: string | null;
  readonly clusterName: string | null;
  /** The cluster queue it registered into (REST `queue`). */
  readonly queueId: string | null;
  readonly queueKey: string | null;
  /** The job it runs now, if any. */
  readonly currentJobId: string | null;
}

export interface SimAgentInit {
  id?: string;
  name?: string;
  hostname?: string;
  ipAddress?: string;
  version?: string;
  osId?: string;
  arch?: string;
  connectionState?: SimAgentConnectionState;
  /** Tags; `{queue: <queueKey>}` by default. */
  tags?: Record<string, string>;
  creator?: SimUser | null;
  /** The cluster (`default` unless null: an agent outside clusters); its id follows the name, as a job's does. */
  clusterName?: string | null;
  clusterId?: string | null;
  /** The queue it registers into: its `queue` tag, else `default` (within a cluster). */
  queueKey?: string | null;
  queueId?: string | null;
}

/** One `PUT …/unblock` the simulator received, answered or refused ("Unblock a job", https://buildkite.com/docs/apis/rest-api/jobs). */
export interface UnblockCall {
  readonly at: Date;
  readonly jobId: string;
  /** The build of the job, when the job exists. */
  readonly build: { readonly id: string; readonly pipelineSlug: string; readonly number: number } | null;
  /** `unblocker` as sent (null when absent). */
  readonly unblocker: string | null;
  /** `fields` as sent (null when absent). */
  readonly fields: unknown;
  /** The answer's status: 200, or the refusal's 4xx. */
  readonly status: number;
  /** The refusal's `message`; null on success. */
  readonly message: string | null;
  /** On success, the user credited as unblocker (the token's owner when `unblocker` was absent). */
  readonly unblockedBy: SimUser | null;
}

/** One REST request the simulator answered. */
export interface ApiRequestRecord {
  readonly at: Date;
  readonly method: string;
  /** Path and query. */
  readonly path: string;
  readonly status: number;
}

/** How a webhook proves itself (https://buildkite.com/docs/apis/webhooks/pipelines): an HMAC key (`X-Buildkite-Signature`) or a plain token (`X-Buildkite-Token`). */
export type WebhookAuth = { secret: string } | { token: string };

export interface DeliverWebhookOptions {
  /** Unix seconds for the signature's `timestamp`; now by default (a stale one for replay tests). */
  timestamp?: number;
  /**
   * Send something other than what was signed: `true` adds a space inside the JSON (same
   * meaning, different bytes), a function rewrites the raw body. In token mode, `true`
   * sends a wrong token.
   */
  tamper?: boolean | ((rawBody: string) => string);
  /** Send this raw body instead of `JSON.stringify(payload)` (signed as is). */
  rawBody?: string;
  /** Extra or replacing request headers. */
  headers?: Record<string, string>;
  timeoutMs?: number;
}

export interface WebhookDelivery {
  readonly at: Date;
  readonly url: string;
  readonly event: string;
  /** The request as sent. */
  readonly request: { readonly headers: Readonly<Record<string, string>>; readonly body: string };
  /** The receiver's answer; status 0 when no answer came (`error` says why). */
  readonly status: number;
  readonly body: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly error?: string;
}

/** Where the simulator sends webhooks on its own, as Buildkite would on state changes. */
export interface WebhookTarget {
  url: string;
  auth: WebhookAuth;
  /** Events to send; default `build.finished`, `job.finished`, `job.activated`. */
  events?: string[];
}
