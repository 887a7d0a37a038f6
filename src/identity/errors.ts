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
  | 'creator_unknown';

/**
 * A subject token was refused. It answers `400 invalid_grant` (RFC 8693 §2.2.2) with
 * a description naming the failed check; the token itself is never repeated.
 */
export class TokenRejectedError extends OAuthError {
  constructor(
    readonly check: TokenCheck,
    description: string,
    options?: { cause?: unknown },
  ) {
    super(check === 'jwks_unavailable' || check === 'creator_unknown' ? 'temporarily_unavailable' : 'invalid_grant', description, undefined, options);
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
