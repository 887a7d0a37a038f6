/**
 * Shapes shared by the simulator's parts: a simulated job, a token request as the
 * Agent API receives it, and the options for minting a token directly.
 */

/** `build_source` values (https://buildkite.com/docs/agent/v3/cli-oidc). */
export type BuildSource = 'ui' | 'api' | 'webhook' | 'trigger_job' | 'schedule';

/** `runner_environment` values (https://buildkite.com/docs/agent/v3/cli-oidc). */
export type RunnerEnvironment = 'buildkite-hosted' | 'self-hosted';

/** A job in a build of a pipeline, as far as its OIDC token can tell (its claims). */
export interface SimJob {
  jobId: string;
  /** The job's `BUILDKITE_AGENT_ACCESS_TOKEN`; mints tokens for this job only. */
  jobToken: string;
  /** Bearer token for this job's local Job API (redactions), `BUILDKITE_AGENT_JOB_API_TOKEN`. */
  jobApiToken: string;
  organizationSlug: string;
  organizationId: string;
  pipelineSlug: string;
  pipelineId: string;
  buildNumber: number;
  buildId: string;
  branch: string;
  /** The build's tag, or null (then `build_tag` is null and `sub` uses `refs/heads/BRANCH`). */
  tag: string | null;
  /** 40 lowercase hex characters. */
  commit: string;
  /** The step `key`, or null when the step has none. */
  stepKey: string | null;
  agentId: string;
  buildSource: BuildSource;
  runnerEnvironment: RunnerEnvironment;
  /** Cluster and queue; null for a job outside clusters (the optional claims are then null). */
  clusterId: string | null;
  clusterName: string | null;
  queueId: string | null;
  queueKey: string | null;
  /** The agent's tags (`agent_tag:NAME` claims), e.g. `{queue: "deploy"}`. */
  agentTags: Record<string, string>;
}

/** What `createJob` accepts: any field of a job; the rest gets sensible defaults. */
export type SimJobInit = Partial<Omit<SimJob, 'jobApiToken'>>;

/**
 * The body of `POST /v3/jobs/{job_id}/oidc/tokens` after validation
 * (api/oidc.go in https://github.com/buildkite/agent; every key is optional and omitted when empty by the agent).
 */
export interface OidcTokenRequest {
  audience?: string;
  lifetime?: number;
  claims?: string[];
  awsSessionTags?: string[];
  subjectClaim?: string;
}

/** Options for `BuildkiteSimulator.mintToken`: a token request plus test-only knobs. */
export interface MintOptions {
  audience?: string;
  lifetime?: number;
  claims?: string[];
  subjectClaim?: string;
  awsSessionTags?: string[];
  /** Issue time in seconds since the epoch (for expired or not-yet-valid tokens). */
  now?: number;
  /** Applied after the claims are built: a value replaces the claim, `undefined` deletes it. */
  overrides?: Record<string, unknown>;
}

/** A JWT payload in Buildkite's claim order. */
export type OidcClaims = Record<string, unknown>;
