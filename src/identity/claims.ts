/**
 * Buildkite OIDC claims → JobIdentity (claim tables in
 * https://buildkite.com/docs/agent/v3/cli-oidc). Pure: no signature or time
 * checks here — the token verifier does those first; `port policy test` and
 * `port policy explain` call this on hand-written claims.
 *
 * Tolerances, kept in one place because the docs leave them open ("unconfirmed"):
 * - `build_tag` and `step_key` may be missing or null (the docs say "only when set",
 *   the real sample carries null); an empty string counts as none.
 * - An optional claim (`organization_id`, `cluster_name`, `agent_tag:NAME`, …) that is
 *   null is treated as absent: Buildkite's answer for "requested but not applicable"
 *   is undocumented, and absent makes policies that need it fail closed.
 */
import { PortError } from '../errors.js';
import type { JobIdentity } from './job-identity.js';

/** A claim is missing or has the wrong type; `claim` names it, the value is never echoed. */
export class InvalidClaimError extends PortError {
  readonly claim: string;
  constructor(claim: string, problem: string) {
    super('invalid_claim', `the ${claim} claim ${problem}`, 400);
    this.claim = claim;
  }
}

const AGENT_TAG_PREFIX = 'agent_tag:';

/** The optional string claims and the JobIdentity field each one fills. */
const OPTIONAL_STRING_CLAIMS = {
  organization_id: 'organizationId',
  pipeline_id: 'pipelineId',
  build_id: 'buildId',
  cluster_id: 'clusterId',
  cluster_name: 'clusterName',
  queue_id: 'queueId',
  queue_key: 'queueKey',
  jti: 'jti',
} as const satisfies Record<string, keyof JobIdentity>;

export function identityFromClaims(claims: Readonly<Record<string, unknown>>): JobIdentity {
  const identity: JobIdentity = {
    subject: requiredString(claims, 'sub'),
    organizationSlug: requiredString(claims, 'organization_slug'),
    pipelineSlug: requiredString(claims, 'pipeline_slug'),
    buildNumber: requiredInteger(claims, 'build_number'),
    branch: requiredString(claims, 'build_branch', { allowEmpty: true }),
    tag: nullableString(claims, 'build_tag'),
    commit: requiredString(claims, 'build_commit'),
    stepKey: nullableString(claims, 'step_key'),
    jobId: requiredString(claims, 'job_id'),
    agentId: requiredString(claims, 'agent_id'),
    buildSource: requiredString(claims, 'build_source'),
    runnerEnvironment: requiredString(claims, 'runner_environment'),
    agentTags: agentTags(claims),
    issuedAt: requiredNumericDate(claims, 'iat'),
    expiresAt: requiredNumericDate(claims, 'exp'),
  };
  for (const [claim, field] of Object.entries(OPTIONAL_STRING_CLAIMS)) {
    const value = optionalString(claims, claim);
    if (value !== undefined) identity[field] = value;
  }
  return identity;
}

function requiredString(claims: Readonly<Record<string, unknown>>, name: string, opts?: { allowEmpty?: boolean }): string {
  const value = claims[name];
  if (value === undefined || value === null) throw new InvalidClaimError(name, 'is missing');
  if (typeof value !== 'string') throw new InvalidClaimError(name, 'must be a string');
  if (value === '' && opts?.allowEmpty !== true) throw new InvalidClaimError(name, 'must not be empty');
  return value;
}

function requiredInteger(claims: Readonly<Record<string, unknown>>, name: string): number {
  const value = claims[name];
  if (value === undefined || value === null) throw new InvalidClaimError(name, 'is missing');
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new InvalidClaimError(name, 'must be a non-negative integer');
  }
  return value;
}

/** RFC 7519 §2 NumericDate: seconds since the epoch (fractions allowed). */
function requiredNumericDate(claims: Readonly<Record<string, unknown>>, name: string): number {
  const value = claims[name];
  if (value === undefined || value === null) throw new InvalidClaimError(name, 'is missing');
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new InvalidClaimError(name, 'must be a NumericDate (seconds since the epoch)');
  }
  return value;
}

/** `build_tag` / `step_key`: missing, null and "" all mean "none". */
function nullableString(claims: Readonly<Record<string, unknown>>, name: string): string | null {
  const value = claims[name];
  if (value === undefined || value === null || value === '') return null;
  if (typeof value !== 'string') throw new InvalidClaimError(name, 'must be a string or null');
  return value;
}

function optionalString(claims: Readonly<Record<string, unknown>>, name: string): string | undefined {
  const value = claims[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw new InvalidClaimError(name, 'must be a string');
  return value;
}

function agentTags(claims: Readonly<Record<string, unknown>>): Record<string, string> {
  // fromEntries defines own properties, so a tag named `__proto__` can't reach the prototype.
  const tags: [string, string][] = [];
  for (const name of Object.keys(claims)) {
    if (!name.startsWith(AGENT_TAG_PREFIX)) continue;
    const tag = name.slice(AGENT_TAG_PREFIX.length);
    if (tag === '') throw new InvalidClaimError(name, 'has no tag name');
    const value = optionalString(claims, name);
    if (value !== undefined) tags.push([tag, value]);
  }
  return Object.fromEntries(tags);
}
