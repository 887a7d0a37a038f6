import { errors as joseErrors, type JWTPayload } from 'jose';
import type { PortConfig } from '../config/config.js';
import { identityFromClaims } from './claims.js';
import { TokenRejectedError, type JwksFetchError, type TokenCheck } from './errors.js';
import type { JobIdentity } from './job-identity.js';
import { decodeJsonPart } from './json-duplicates.js';
import { JwksCache } from './jwks-cache.js';
import { verifyJwsSignature } from './jws-signature.js';
import { checkVerifiedClaims } from './verified-claims.js';

/** Buildkite caps a token's lifetime at 2 hours ("Maximum OIDC lifetime", https://buildkite.com/docs/platform/limits). */
const MAX_BUILDKITE_LIFETIME = 7200;

// The signature part may be empty so that alg:none is refused by name, not as garbage.
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/** Header members Buildkite never sends and that would point key lookup elsewhere (RFC 8725 §2.9). */
const FORBIDDEN_HEADER_MEMBERS = ['jwk', 'jku', 'x5u', 'x5c', 'crit', 'b64'];

export interface VerifiedJobToken {
  identity: JobIdentity;
  kid: string;
  /** Key for the single-use cache: the `jti`, or job id + iat when there is none (a Buildkite token is a bearer credential, so each is accepted once). */
  replayKey: string;
  claims: JWTPayload;
}

/**
 * Verifies a Buildkite OIDC job token (https://buildkite.com/docs/agent/v3/cli-oidc;
 * checks per RFC 7519 §7.2 and RFC 8725 §3): size cap, compact
 * form, no duplicate members, algorithm allow-list, key by `kid` from the cached
 * JWKS, exact `iss` and `aud`, `exp`/`nbf`/`iat` with bounded leeway, the configured
 * organization, and the required claims. Each refusal names the check that failed.
 *
 * The signature is checked with synchronous node:crypto (src/identity/jws-signature.ts),
 * then jose checks the claims of exactly the bytes it covers (src/identity/verified-claims.ts):
 * the header checks `jwtVerify` would make are made here first, and are stricter
 * (`crit` and `b64` are refused outright, so jose's extension handling has nothing to do).
 */
export class BuildkiteTokenVerifier {
  readonly jwks: JwksCache;

  constructor(
    private readonly config: PortConfig['buildkite'],
    options: { onJwksError?: (err: JwksFetchError) => void } = {},
  ) {
    this.jwks = new JwksCache({
      url: config.jwksUrl,
      algorithms: config.algorithms,
      refreshInterval: config.jwksRefreshInterval,
      minRefreshInterval: config.jwksMinRefreshInterval,
      maxAge: config.jwksMaxAge,
      timeout: config.jwksFetchTimeout * 1000,
      requestWait: config.jwksRequestWait * 1000,
      ...(options.onJwksError ? { onRefreshError: options.onJwksError } : {}),
    });
  }

  async verify(token: string, nowMs = Date.now()): Promise<VerifiedJobToken> {
    const cfg = this.config;
    if (Buffer.byteLength(token) > cfg.maxTokenBytes) {
      throw reject('too_large', `The subject token is larger than ${cfg.maxTokenBytes} bytes.`);
    }
    if (!COMPACT_JWS.test(token)) {
      throw reject('malformed', 'The subject token is not a signed JWT in compact form (three base64url parts).');
    }
    const [headerB64, payloadB64, signatureB64] = token.split('.') as [string, string, string];
    const header = decodeJson(headerB64, 'header');
    decodeJson(payloadB64, 'payload');
    if (typeof header.alg !== 'string' || !cfg.algorithms.includes(header.alg)) {
      throw reject('alg_not_allowed', `The subject token's alg is not allowed; Buildkite tokens are signed with ${cfg.algorithms.join(' or ')}.`);
    }
    const extra = FORBIDDEN_HEADER_MEMBERS.find((m) => m in header);
    if (extra) throw reject('header_not_allowed', `The subject token header carries "${extra}", which Port does not accept.`);

    // The key named by `kid`, pinned to one algorithm: the header's alg must be that one.
    const { alg, key } = await this.jwks.keyFor(header);
    if (!verifyJwsSignature(alg, key, `${headerB64}.${payloadB64}`, signatureB64)) {
      throw reject('bad_signature', "The subject token's signature does not verify against Buildkite's key.");
    }
    let payload: JWTPayload;
    try {
      payload = checkVerifiedClaims(payloadB64, {
        issuer: cfg.issuer,
        audience: cfg.audience,
        clockTolerance: cfg.clockSkew,
        currentDate: new Date(nowMs),
        requiredClaims: ['iss', 'aud', 'exp', 'iat', 'nbf'],
      });
    } catch (err) {
      throw mapJoseError(err, cfg);
    }
    const now = Math.floor(nowMs / 1000);
    if ((payload.iat as number) > now + cfg.clockSkew) {
      throw reject('issued_in_future', `The subject token's iat is more than ${cfg.clockSkew} s in the future.`);
    }
    if ((payload.exp as number) - (payload.iat as number) > MAX_BUILDKITE_LIFETIME) {
      throw reject('lifetime_too_long', `The subject token claims a lifetime over Buildkite's ${MAX_BUILDKITE_LIFETIME} s maximum.`);
    }
    if (payload.organization_slug !== cfg.organization) {
      throw reject('wrong_organization', `The subject token belongs to another organization than ${cfg.organization}.`);
    }
    if (cfg.organizationId !== undefined && payload.organization_id !== cfg.organizationId) {
      throw reject(
        'wrong_organization',
        payload.organization_id === undefined
          ? 'The subject token has no organization_id claim; request it with --claim organization_id.'
          : 'The subject token\'s organization_id is not the configured organization\'s.',
      );
    }
    let identity: JobIdentity;
    try {
      identity = identityFromClaims(payload as Record<string, unknown>);
    } catch (err) {
      throw reject('missing_claim', `The subject token's claims are incomplete: ${(err as Error).message}`);
    }
    const replayKey = identity.jti !== undefined ? `jti:${identity.jti}` : `job:${identity.jobId}:${identity.issuedAt}`;
    return { identity, kid: header.kid as string, replayKey, claims: payload };
  }
}

function reject(check: TokenCheck, description: string, cause?: unknown): TokenRejectedError {
  return new TokenRejectedError(check, description, cause === undefined ? undefined : { cause });
}

function decodeJson(part: string, what: 'header' | 'payload'): Record<string, unknown> {
  const decoded = decodeJsonPart(part);
  if ('value' in decoded) return decoded.value;
  if (decoded.problem === 'duplicate_member') throw reject('duplicate_member', `The subject token's ${what} names a member twice.`);
  throw reject('malformed', decoded.problem === 'not_json' ? `The subject token's ${what} is not base64url-encoded JSON.` : `The subject token's ${what} is not a JSON object.`);
}

/** jose's claim-check errors (checkVerifiedClaims) as the refusal naming the check. */
function mapJoseError(err: unknown, cfg: PortConfig['buildkite']): Error {
  if (err instanceof TokenRejectedError) return err;
  if (err instanceof joseErrors.JWTExpired) {
    return reject('expired', `The subject token has expired (exp is more than ${cfg.clockSkew} s in the past).`, err);
  }
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    switch (err.claim) {
      case 'iss':
        return reject('wrong_issuer', `The subject token was not issued by ${cfg.issuer}.`, err);
      case 'aud':
        return reject('wrong_audience', `The subject token's aud is not ${cfg.audience}; request it with --audience ${cfg.audience}.`, err);
      case 'nbf':
        return reject('not_yet_valid', `The subject token is not valid yet (nbf is more than ${cfg.clockSkew} s in the future).`, err);
      default:
        if (err.reason === 'missing') return reject('missing_claim', `The subject token has no ${err.claim} claim.`, err);
        return reject('invalid_claim', `The subject token's ${err.claim} claim is invalid.`, err);
    }
  }
  if (err instanceof joseErrors.JWTInvalid || err instanceof joseErrors.JWSInvalid || err instanceof joseErrors.JOSENotSupported) {
    return reject('malformed', 'The subject token is not a well-formed JWT.', err);
  }
  return err instanceof Error ? err : new Error(String(err));
}
