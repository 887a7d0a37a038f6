/**
 * Builds the claims of a Buildkite OIDC token for a job and a token request, and
 * refuses requests Buildkite would refuse. Sources: https://buildkite.com/docs/agent/v3/cli-oidc
 * (claims), https://buildkite.com/docs/platform/limits (the 2-hour lifetime cap), and the
 * real token sample (with `jti`) in https://github.com/rubygems/rubygems.org/issues/5412.
 *
 * Assumptions the docs do not settle are marked "Unconfirmed" and kept here only.
 */
import { unprocessable } from './errors.js';
import { uuidv7 } from './ids.js';
import type { OidcClaims, OidcTokenRequest, SimJob } from './types.js';

/** `exp` defaults to issue time + 5 min (oidc.md, `exp`). */
export const DEFAULT_LIFETIME_SECONDS = 300;
/** Server-side cap: "Maximum OIDC lifetime" = 2 hours (`pages/platform/limits.md`). */
export const MAX_LIFETIME_SECONDS = 7200;

/** Claims requested with `--claim` (oidc.md "Optional claims"), besides `agent_tag:NAME`. */
export const OPTIONAL_CLAIMS = [
  'organization_id',
  'pipeline_id',
  'build_id',
  'cluster_id',
  'cluster_name',
  'queue_id',
  'queue_key',
] as const;
export type OptionalClaim = (typeof OPTIONAL_CLAIMS)[number];
export const AGENT_TAG_PREFIX = 'agent_tag:';

/** `--subject-claim` accepts only these immutable ids (oidc.md "Custom subject claims"). */
export const SUBJECT_CLAIMS = [
  'organization_id',
  'pipeline_id',
  'cluster_id',
  'queue_id',
  'build_id',
  'job_id',
  'agent_id',
] as const;

/** The nested claim `--aws-session-tag` fills (oidc.md "AWS session tags"). */
export const AWS_TAGS_CLAIM = 'https://aws.amazon.com/tags';

/**
 * Job claims present in every token, in the order of the real sample (rubygems#5412).
 * These, plus the optional claims, are what `--aws-session-tag` may copy.
 */
const DEFAULT_JOB_CLAIMS = [
  'organization_slug',
  'pipeline_slug',
  'build_number',
  'build_branch',
  'build_tag',
  'build_commit',
  'step_key',
  'job_id',
  'agent_id',
  'build_source',
  'runner_environment',
] as const;

/**
 * Unconfirmed: what an optional claim holds when the job has no such value (a job
 * outside clusters asked for `cluster_id`, or an agent without the requested tag).
 * The docs say "if using clusters"; the simulator answers null, like `step_key`.
 */
const ABSENT_OPTIONAL_VALUE = null;

/** Unconfirmed wording: the docs do not quote these 422 messages (only the lifetime one is known). */
const messages = {
  lifetimeTooHigh: (n: number) => `Requested lifetime too high (requested: ${n} max: ${MAX_LIFETIME_SECONDS})`,
  lifetimeInvalid: (v: unknown) => `Requested lifetime is invalid (requested: ${String(v)})`,
  unknownClaim: (name: string) => `Unknown claim requested: ${name}`,
  unknownSessionTag: (name: string) => `Unknown claim requested as AWS session tag: ${name}`,
  invalidSubjectClaim: (name: string) =>
    `Invalid subject claim: ${name} (allowed: ${SUBJECT_CLAIMS.join(', ')})`,
  emptySubjectClaim: (name: string) => `Subject claim ${name} has no value for this job`,
};

/** The organization-level `sub`: `organization:ORG:pipeline:PIPE:ref:REF:commit:SHA:step:KEY` (oidc.md `sub`). */
export function compoundSubject(job: SimJob): string {
  const ref = job.tag !== null && job.tag !== '' ? `refs/tags/${job.tag}` : `refs/heads/${job.branch}`;
  // A step without a key leaves the segment empty: the real sample ends in `:step:`.
  return `organization:${job.organizationSlug}:pipeline:${job.pipelineSlug}:ref:${ref}:commit:${job.commit}:step:${job.stepKey ?? ''}`;
}

/** The value of a default or optional job claim, or `undefined` if `name` is neither. */
export function jobClaimValue(job: SimJob, name: string): unknown {
  switch (name) {
    case 'organization_slug':
      return job.organizationSlug;
    case 'pipeline_slug':
      return job.pipelineSlug;
    case 'build_number':
      return job.buildNumber;
    case 'build_branch':
      return job.branch;
    case 'build_tag':
      // The docs say "only included if the tag is set"; the real sample carries null.
      return job.tag ?? null;
    case 'build_commit':
      return job.commit;
    case 'step_key':
      return job.stepKey ?? null;
    case 'job_id':
      return job.jobId;
    case 'agent_id':
      return job.agentId;
    case 'build_source':
      return job.buildSource;
    case 'runner_environment':
      return job.runnerEnvironment;
    case 'organization_id':
      return job.organizationId;
    case 'pipeline_id':
      return job.pipelineId;
    case 'build_id':
      return job.buildId;
    case 'cluster_id':
      return job.clusterId ?? ABSENT_OPTIONAL_VALUE;
    case 'cluster_name':
      return job.clusterName ?? ABSENT_OPTIONAL_VALUE;
    case 'queue_id':
      return job.queueId ?? ABSENT_OPTIONAL_VALUE;
    case 'queue_key':
      return job.queueKey ?? ABSENT_OPTIONAL_VALUE;
    default:
      if (name.startsWith(AGENT_TAG_PREFIX) && name.length > AGENT_TAG_PREFIX.length) {
        const tag = name.slice(AGENT_TAG_PREFIX.length);
        return Object.hasOwn(job.agentTags, tag) ? job.agentTags[tag] : ABSENT_OPTIONAL_VALUE;
      }
      return undefined;
  }
}

function isOptionalClaim(name: string): boolean {
  return (
    (OPTIONAL_CLAIMS as readonly string[]).includes(name) ||
    (name.startsWith(AGENT_TAG_PREFIX) && name.length > AGENT_TAG_PREFIX.length)
  );
}

/** Unconfirmed: session tags may name any job claim, default or optional (oidc.md: "any of the supported claims"). */
function isSessionTagClaim(name: string): boolean {
  return (DEFAULT_JOB_CLAIMS as readonly string[]).includes(name) || isOptionalClaim(name);
}

/** AWS session tag values are strings: numbers become strings, null becomes "" (oidc.md). */
function sessionTagValue(value: unknown): string {
  if (value === null || value === undefined) return '';
  return String(value);
}

/** The lifetime the token gets, or a 422 as Buildkite answers it. 0 or absent means the default. */
export function effectiveLifetime(requested: number | undefined): number {
  if (requested === undefined || requested === 0) return DEFAULT_LIFETIME_SECONDS;
  if (!Number.isSafeInteger(requested) || requested < 0) throw unprocessable(messages.lifetimeInvalid(requested));
  if (requested > MAX_LIFETIME_SECONDS) throw unprocessable(messages.lifetimeTooHigh(requested));
  return requested;
}

export interface BuildClaimsInput {
  job: SimJob;
  request: OidcTokenRequest;
  issuer: string;
  /** Issue time, seconds since the epoch. */
  now: number;
}

/** The token's payload, in Buildkite's claim order; throws a 422 `SimApiError` for a bad request. */
export function buildClaims({ job, request, issuer, now }: BuildClaimsInput): OidcClaims {
  const lifetime = effectiveLifetime(request.lifetime);
  const requested = dedupe(request.claims ?? []);
  for (const name of requested) if (!isOptionalClaim(name)) throw unprocessable(messages.unknownClaim(name));
  const tags = dedupe(request.awsSessionTags ?? []);
  for (const name of tags) if (!isSessionTagClaim(name)) throw unprocessable(messages.unknownSessionTag(name));
  const subjectClaim = request.subjectClaim === '' ? undefined : request.subjectClaim;
  if (subjectClaim !== undefined && !(SUBJECT_CLAIMS as readonly string[]).includes(subjectClaim)) {
    throw unprocessable(messages.invalidSubjectClaim(subjectClaim));
  }

  // Unconfirmed: a subject claim the job has no value for (cluster_id outside clusters) is refused
  // rather than signed as a `sub` of "null".
  const subject = subjectClaim === undefined ? compoundSubject(job) : jobClaimValue(job, subjectClaim);
  if (subject === null || subject === undefined) throw unprocessable(messages.emptySubjectClaim(subjectClaim ?? ''));

  const audience =
    request.audience !== undefined && request.audience !== ''
      ? request.audience
      : `https://buildkite.com/${job.organizationSlug}`;

  const claims: OidcClaims = {
    iss: issuer,
    // With --subject-claim, `sub` is just that immutable id (oidc.md "Custom subject claims").
    sub: String(subject),
    aud: audience,
    iat: now,
    nbf: now,
    exp: now + lifetime,
    jti: uuidv7(now * 1000),
  };
  for (const name of DEFAULT_JOB_CLAIMS) claims[name] = jobClaimValue(job, name);
  for (const name of requested) claims[name] = jobClaimValue(job, name);
  // "When --subject-claim is used, the specified claim is automatically included."
  if (subjectClaim !== undefined && !(subjectClaim in claims)) claims[subjectClaim] = jobClaimValue(job, subjectClaim);
  if (tags.length > 0) {
    const principalTags: Record<string, string[]> = {};
    for (const name of tags) principalTags[name] = [sessionTagValue(jobClaimValue(job, name))];
    claims[AWS_TAGS_CLAIM] = { principal_tags: principalTags };
  }
  return claims;
}

/** Replace claims (`undefined` deletes) after building: for tests that need a malformed token. */
export function applyOverrides(claims: OidcClaims, overrides: Record<string, unknown> | undefined): OidcClaims {
  if (overrides === undefined) return claims;
  const out: OidcClaims = { ...claims };
  for (const [name, value] of Object.entries(overrides)) {
    if (value === undefined) delete out[name];
    else out[name] = value;
  }
  return out;
}

function dedupe(names: readonly string[]): string[] {
  return [...new Set(names)];
}
