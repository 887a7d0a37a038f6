import { PortError } from '../errors.js';

/** The signature algorithms Port accepts in a DPoP proof (RFC 9449 §4.3 check 5: asymmetric, never `none`). */
export const DPOP_ALGORITHMS = ['ES256', 'EdDSA'] as const;
export type DpopAlgorithm = (typeof DPOP_ALGORITHMS)[number];

/** Which check refused a DPoP proof, or the way a bound token was presented; recorded as the decision's `check`. */
export type DpopCheck =
  | 'proof_missing'
  | 'proof_multiple'
  | 'proof_too_large'
  | 'proof_malformed'
  | 'duplicate_member'
  | 'wrong_typ'
  | 'alg_not_allowed'
  | 'header_not_allowed'
  | 'jwk_invalid'
  | 'jwk_private'
  | 'bad_signature'
  | 'missing_claim'
  | 'invalid_claim'
  | 'htm_mismatch'
  | 'htu_mismatch'
  | 'iat_stale'
  | 'iat_future'
  | 'ath_missing'
  | 'ath_mismatch'
  | 'key_mismatch'
  | 'replayed'
  /** A token bound to a key (`cnf.jkt`) presented as Bearer or Basic. */
  | 'bound_token_as_bearer'
  /** The DPoP scheme with a token that is not bound to a key. */
  | 'token_not_bound';

/**
 * A DPoP proof refused, or a bound token presented without one. The code is RFC 9449's:
 * `invalid_dpop_proof` (§5 at the token endpoint with 400, §7.1 at a resource with 401)
 * or `invalid_token` (RFC 6750 §3.1) when the token was sent with the wrong scheme. The
 * message names the check; it never repeats the proof or the token.
 */
export class DpopError extends PortError {
  declare readonly code: 'invalid_dpop_proof' | 'invalid_token';

  constructor(
    readonly check: DpopCheck,
    message: string,
    opts: { code?: 'invalid_dpop_proof' | 'invalid_token'; status?: number; cause?: unknown } = {},
  ) {
    super(opts.code ?? 'invalid_dpop_proof', message, opts.status ?? 400, opts.cause === undefined ? undefined : { cause: opts.cause });
  }

  /** The same refusal as a protected resource answers it: 401 (RFC 9449 §7.1). */
  atResource(): DpopError {
    return this.status === 401 ? this : new DpopError(this.check, this.message, { code: this.code, status: 401, cause: this });
  }

  /** RFC 9449 §7.1: the `WWW-Authenticate` challenge of a 401, naming the error and the algorithms Port accepts. */
  get challenge(): string {
    return dpopChallenge(this.code);
  }
}

/** `DPoP algs="ES256 EdDSA"`, with `error="…"` when there is one (RFC 9449 §7.1, RFC 6750 §3). */
export function dpopChallenge(error?: string): string {
  return `DPoP ${error !== undefined ? `error="${error}", ` : ''}algs="${DPOP_ALGORITHMS.join(' ')}"`;
}
