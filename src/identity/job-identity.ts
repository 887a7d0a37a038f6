/**
 * A Buildkite job's identity, built only from the verified claims of its OIDC token
 * (claims: https://buildkite.com/docs/agent/v3/cli-oidc). Optional claims are present only when the agent asked for
 * them with `--claim`; absent stays absent so policies that need them fail closed.
 */
export interface JobIdentity {
  /** The token's `sub` (compound by default, or one immutable id with --subject-claim). */
  subject: string;
  organizationSlug: string;
  organizationId?: string;
  pipelineSlug: string;
  pipelineId?: string;
  buildNumber: number;
  buildId?: string;
  branch: string;
  /** `build_tag`: absent or null in real tokens when the build has no tag. */
  tag: string | null;
  commit: string;
  /** `step_key`: null when the step has no key. */
  stepKey: string | null;
  jobId: string;
  agentId: string;
  /** `ui`, `api`, `webhook`, `trigger_job` or `schedule`. */
  buildSource: string;
  /** `buildkite-hosted` or `self-hosted`. */
  runnerEnvironment: string;
  clusterId?: string;
  clusterName?: string;
  queueId?: string;
  queueKey?: string;
  /** `agent_tag:NAME` claims, keyed by NAME. */
  agentTags: Record<string, string>;
  /** The token's `jti` when present (seen in real tokens but not in Buildkite's claim table, so optional). */
  jti?: string;
  /** `iat` and `exp` of the Buildkite token, seconds since the epoch. */
  issuedAt: number;
  expiresAt: number;
}

/** The identity's Pool id (`cluster_name/queue_key`), when the token carries both claims. */
export function poolId(identity: JobIdentity): string | undefined {
  if (identity.clusterName === undefined || identity.queueKey === undefined) return undefined;
  return `${identity.clusterName}/${identity.queueKey}`;
}
