import { OAuthError, PortError } from '../errors.js';

/** Which verification check refused a subject token; recorded in the decision log. */
export type TokenCheck =
  | 'malformed'
  | 'too_large'
  | 'duplicate_member'
  | 'alg_not_allowed'
  | 'header_not_allowed'
  | 'missing_kid'
  | 'unknown_kid'
  | 'jwks_unavailable'
  | 'bad_signature'
  | 'wrong_issuer'
  | 'wrong_audience'
  | 'expired'
  | 'not_yet_valid'
  | 'issued_in_future'
  | 'lifetime_too_long'
  | 'missing_claim'
  | 'invalid_claim'
  | 'wrong_organization'
  | 'replayed'
  | 'job_revoked'
  /** A user revocation is in force and the Buildkite API can't say who started the build (retry). */
  | 'creator_unknown'
  | AgentCheck;

/**
 * The agent checks (src/agents/agent-gate.ts): the token verified, but the agent it names
 * may not be served. Each answers `403 access_denied` with its reason, except
 * `buildkite_unavailable` (503, retry).
 */
export const AGENT_CHECKS = [
  /** Pools are configured and the token lacks `cluster_name`/`queue_key`. */
  'pool_claims_missing',
  /** No current attestation of the agent covers what its pool requires. */
  'agent_not_attested',
  /** Buildkite's REST API says the agent is not connected. */
  'agent_not_connected',
  /** The agent is registered into another queue than the pool the token claims. */
  'agent_wrong_pool',
  /** Buildkite's REST API says another agent (or none) runs the job. */
  'job_not_on_agent',
  /** The job's own queue is not its agent's (`buildkite-agent start --acquire-job`). */
  'job_acquired_outside_pool',
  /** The job is not running (finished, or unknown to Buildkite). */
  'job_not_running',
  /** Buildkite's REST API could not answer the live check. */
  'buildkite_unavailable',
  /** A host-bound pool's token must be bound to the host key: no DPoP proof came. */
  'dpop_required',
  /** The DPoP proof's key is not the one the agent's attestation registered. */
  'dpop_key_mismatch',
] as const;
export type AgentCheck = (typeof AGENT_CHECKS)[number];

const UNAVAILABLE: ReadonlySet<TokenCheck> = new Set(['jwks_unavailable', 'creator_unknown', 'buildkite_unavailable']);
const AGENT_REFUSALS: ReadonlySet<TokenCheck> = new Set(AGENT_CHECKS.filter((c) => c !== 'buildkite_unavailable'));

/** Whether a check is one of the agent checks (403, or 503 for Buildkite's outage). */
export function isAgentCheck(check: TokenCheck): check is AgentCheck {
  return (AGENT_CHECKS as readonly string[]).includes(check);
}

/**
 * A subject token was refused. It answers `400 invalid_grant` (RFC 8693 §2.2.2) with
 * a description naming the failed check; the token itself is never repeated. An agent
 * check answers `403 access_denied` (RFC 6749 §5.2's code for a refused request that is
 * valid); what only Buildkite or its keys can settle answers `503 temporarily_unavailable`,
 * with `retryAfterSeconds` for `Retry-After` (RFC 9110 §10.2.3) when set.
 */
export class TokenRejectedError extends OAuthError {
  /** Seconds the caller should wait before retrying (a 503's `Retry-After`). */
  readonly retryAfterSeconds: number | undefined;
  /** Decision-log context of the refusal (e.g. `agent`), never a token or a body. */
  readonly context: Readonly<Record<string, unknown>> | undefined;

  constructor(
    readonly check: TokenCheck,
    description: string,
    options?: { cause?: unknown; retryAfterSeconds?: number; context?: Record<string, unknown> },
  ) {
    super(UNAVAILABLE.has(check) ? 'temporarily_unavailable' : AGENT_REFUSALS.has(check) ? 'access_denied' : 'invalid_grant', description, undefined, options);
    this.retryAfterSeconds = options?.retryAfterSeconds;
    this.context = options?.context;
  }
}

/** Why one fetch of Buildkite's JWKS failed. */
export type JwksFetchFailure = 'timeout' | 'aborted' | 'network' | 'http_status' | 'too_large' | 'invalid_json' | 'no_keys';

/**
 * One fetch of Buildkite's JWKS failed; the cached set stays in use until `jwks_max_age`.
 * The message names the URL-independent reason (never a response body) for logs and `/readyz`.
 */
export class JwksFetchError extends PortError {
  constructor(
    readonly reason: JwksFetchFailure,
    message: string,
    options?: { cause?: unknown },
  ) {
    super('jwks_fetch_failed', message, 503, options);
  }
}
