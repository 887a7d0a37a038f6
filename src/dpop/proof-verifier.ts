import { createHash } from 'node:crypto';
import { calculateJwkThumbprint, errors as joseErrors, importJWK, jwtVerify, type JWK } from 'jose';
import { decodeJsonPart } from '../identity/json-duplicates.js';
import type { ReplayStore } from '../store/repositories/replay.js';
import { DPOP_ALGORITHMS, DpopError, type DpopAlgorithm, type DpopCheck } from './errors.js';
import { comparableUri } from './htu.js';

/** RFC 9449 §4.2: the proof's media type, as its `typ` header says. */
export const DPOP_TYP = 'dpop+jwt';

/**
 * Longest proof accepted, in bytes. An ES256 proof with `ath` is about 700 bytes; the cap
 * keeps junk from costing a parse and a signature check (jose verifies a 1.4 MB JWT
 * without complaint).
 */
export const MAX_PROOF_BYTES = 4096;

/** Longest `jti` accepted: it becomes part of a replay-store key. */
export const MAX_JTI_LENGTH = 256;

// The signature may be empty so that alg:none is refused by name, not as garbage.
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/** Members of a private or symmetric JWK (RFC 7518 §6.2.2, §6.3.2, §6.4.1; RFC 8037 §2): a proof's `jwk` must have none. */
const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

/** Header members that would point key lookup elsewhere or change how the JWS is read (RFC 8725 §2.9, RFC 7515 §4.1.11, RFC 7797). */
const FORBIDDEN_HEADER_MEMBERS = ['jku', 'x5u', 'x5c', 'crit', 'b64'];

/** The key each algorithm takes (RFC 7518 §3.4, RFC 8037 §3.1). */
const KEY_OF: Record<DpopAlgorithm, { kty: string; crv: string; members: string[] }> = {
  ES256: { kty: 'EC', crv: 'P-256', members: ['x', 'y'] },
  EdDSA: { kty: 'OKP', crv: 'Ed25519', members: ['x'] },
};

export interface VerifiedProof {
  /** RFC 7638 SHA-256 thumbprint of the proof's key (what `cnf.jkt` binds a token to, RFC 9449 §6.1). */
  jkt: string;
  jti: string;
  iat: number;
}

export interface ProofRequest {
  /** The request's method. */
  method: string;
  /** The request's URI without query: Port's public URL and the request path (see requestHtu). */
  url: string;
  /** With an access token (at a protected resource): `ath` must be its hash (RFC 9449 §4.3 check 12). */
  accessToken?: string;
  /** The thumbprint the token is bound to: a proof made with another key is refused before it is consumed. */
  jkt?: string;
}

/**
 * Checks a DPoP proof (RFC 9449 §4.3) for one request, in order: exactly one proof, its
 * size and compact form, no duplicate JSON members, `typ` `dpop+jwt`, `alg` ES256 or
 * EdDSA (never `none` or a MAC), a public `jwk` of the algorithm's key type and nothing
 * that points elsewhere, the signature by that key, `htm` and `htu` naming this request,
 * `iat` within `maxAge` either way (§11.1), a `jti` of at most 256 characters, `ath` with an
 * access token, the bound key when one is expected, and last, single use: `jti` is
 * consumed in the store (`dpop:<jkt>:<jti>`) until the proof could no longer pass the
 * `iat` check (§11.1). Throws DpopError (400 `invalid_dpop_proof`) naming the check.
 */
export class DpopVerifier {
  private readonly maxAge: number;
  private readonly replay: ReplayStore;

  /**
   * Imported keys and their thumbprints by the members that define them: a host proves
   * the same key on every request, and importing and validating it (point on the curve)
   * each time cost more than the signature check. Only keys that imported are kept.
   */
  private readonly keys = new Map<string, { key: CryptoKey | Uint8Array; jkt: string }>();

  constructor(o: { maxAge: number; replay: ReplayStore }) {
    if (!(o.maxAge > 0)) throw new RangeError('The DPoP proof age limit must be longer than 0 s.');
    this.maxAge = o.maxAge;
    this.replay = o.replay;
  }

  /**
   * `proof`: the `DPoP` header's value, or every value when the request carried the field
   * more than once (refused: §4.3 check 1). `now` in milliseconds.
   */
  async verify(proof: string | readonly string[] | undefined, req: ProofRequest, now = Date.now()): Promise<VerifiedProof> {
    const text = single(proof);
    if (Buffer.byteLength(text) > MAX_PROOF_BYTES) throw refuse('proof_too_large', `The DPoP proof is larger than ${MAX_PROOF_BYTES} bytes.`);
    if (!COMPACT_JWS.test(text)) throw refuse('proof_malformed', 'The DPoP proof is not a signed JWT in compact form (three base64url parts).');
    const [headerB64, payloadB64] = text.split('.') as [string, string];
    const header = decodeJson(headerB64, 'header');
    const claims = decodeJson(payloadB64, 'payload');

    if (header.typ !== DPOP_TYP) throw refuse('wrong_typ', `The DPoP proof's typ is not ${DPOP_TYP}.`);
    const alg = header.alg;
    if (typeof alg !== 'string' || !(DPOP_ALGORITHMS as readonly string[]).includes(alg)) {
      throw refuse('alg_not_allowed', `The DPoP proof's alg is not allowed; sign it with ${DPOP_ALGORITHMS.join(' or ')}.`);
    }
    const extra = FORBIDDEN_HEADER_MEMBERS.find((m) => m in header);
    if (extra !== undefined) throw refuse('header_not_allowed', `The DPoP proof's header carries "${extra}", which Port does not accept.`);
    const jwk = publicJwk(header.jwk, alg as DpopAlgorithm);

    const { key, jkt } = await this.keyOf(jwk, alg as DpopAlgorithm);
    try {
      await jwtVerify(text, key, { algorithms: [alg], typ: DPOP_TYP, currentDate: new Date(now), clockTolerance: this.maxAge });
    } catch (err) {
      throw joseRefusal(err);
    }

    for (const name of ['htm', 'htu', 'jti'] as const) {
      if (claims[name] === undefined) throw refuse('missing_claim', `The DPoP proof has no ${name} claim.`);
      if (typeof claims[name] !== 'string' || claims[name] === '') throw refuse('invalid_claim', `The DPoP proof's ${name} claim is not a non-empty string.`);
    }
    const { htm, htu, jti } = claims as { htm: string; htu: string; jti: string };
    if (claims.iat === undefined) throw refuse('missing_claim', 'The DPoP proof has no iat claim.');
    if (typeof claims.iat !== 'number' || !Number.isFinite(claims.iat)) throw refuse('invalid_claim', "The DPoP proof's iat claim is not a number.");
    const iat = claims.iat;
    if (jti.length > MAX_JTI_LENGTH) throw refuse('invalid_claim', `The DPoP proof's jti is longer than ${MAX_JTI_LENGTH} characters.`);

    // RFC 9110 §9.1: methods are case-sensitive.
    if (htm !== req.method) throw refuse('htm_mismatch', `The DPoP proof was made for another method than ${safeMethod(req.method)} (its htm).`);
    const expected = comparableUri(req.url, false);
    if (expected === undefined || comparableUri(htu, true) !== expected) {
      throw refuse('htu_mismatch', `The DPoP proof was made for another URL than ${expected ?? 'this request'} (its htu, without query or fragment).`);
    }
    const nowS = now / 1000;
    if (iat < nowS - this.maxAge) throw refuse('iat_stale', `The DPoP proof is older than ${this.maxAge} s (its iat); make a fresh one for each request.`);
    if (iat > nowS + this.maxAge) throw refuse('iat_future', `The DPoP proof's iat is more than ${this.maxAge} s in the future; check the host's clock.`);

    if (req.accessToken !== undefined) {
      if (claims.ath === undefined) throw refuse('ath_missing', 'The DPoP proof has no ath claim (the hash of the access token it is sent with).');
      if (claims.ath !== accessTokenHash(req.accessToken)) throw refuse('ath_mismatch', "The DPoP proof's ath is not the hash of the access token it is sent with.");
    }

    if (req.jkt !== undefined && jkt !== req.jkt) {
      throw refuse('key_mismatch', 'The DPoP proof is made with another key than the one the token is bound to.');
    }
    // Kept until the proof's iat leaves the window: until then the same proof would pass every other check.
    const firstUse = await this.replay.consume(`dpop:${jkt}:${jti}`, Math.ceil((iat + this.maxAge + 1) * 1000));
    if (!firstUse) throw refuse('replayed', 'The DPoP proof was already used (its jti); make a fresh proof for each request.');
    return { jkt, jti, iat };
  }

  /** The proof's key, imported, and its RFC 7638 thumbprint; cached by its defining members (publicJwk keeps only those). */
  private async keyOf(jwk: JWK, alg: DpopAlgorithm): Promise<{ key: CryptoKey | Uint8Array; jkt: string }> {
    const id = `${alg} ${jwk.x} ${jwk.y ?? ''}`;
    const hit = this.keys.get(id);
    if (hit !== undefined) return hit;
    let key: CryptoKey | Uint8Array;
    try {
      key = await importJWK(jwk, alg);
    } catch (err) {
      throw refuse('jwk_invalid', "The DPoP proof's jwk is not a valid public key for its alg.", err);
    }
    const entry = { key, jkt: await calculateJwkThumbprint(jwk, 'sha256') };
    if (this.keys.size >= MAX_CACHED_KEYS) this.keys.delete(this.keys.keys().next().value!);
    this.keys.set(id, entry);
    return entry;
  }
}

const MAX_CACHED_KEYS = 1000;

/** RFC 9449 §4.2 `ath`: base64url of the SHA-256 of the access token's ASCII bytes. */
export function accessTokenHash(token: string): string {
  return createHash('sha256').update(token, 'ascii').digest('base64url');
}

function single(proof: string | readonly string[] | undefined): string {
  const values = proof === undefined ? [] : typeof proof === 'string' ? [proof] : proof;
  if (values.length === 0 || (values.length === 1 && values[0]!.trim() === '')) {
    throw refuse('proof_missing', 'The request has no DPoP proof: send one in the DPoP header, made with the key the token is bound to.');
  }
  // A compact JWS has no comma or space: a value with them is several fields folded into one (RFC 9110 §5.3).
  if (values.length > 1 || /[,\s]/.test(values[0]!.trim())) {
    throw refuse('proof_multiple', 'The request carries more than one DPoP header; send exactly one proof.');
  }
  return values[0]!.trim();
}

/** The proof's `jwk`: a public key of the algorithm's type, reduced to the members that define it (RFC 7638 §3.2). */
function publicJwk(value: unknown, alg: DpopAlgorithm): JWK {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw refuse('jwk_invalid', "The DPoP proof's header has no jwk object (the public key that signed it).");
  }
  const jwk = value as Record<string, unknown>;
  const priv = PRIVATE_JWK_MEMBERS.find((m) => m in jwk);
  if (priv !== undefined) throw refuse('jwk_private', `The DPoP proof's jwk holds private key material ("${priv}"); it must be the public key only.`);
  const want = KEY_OF[alg];
  if (jwk.kty !== want.kty || jwk.crv !== want.crv) throw refuse('jwk_invalid', `The DPoP proof's jwk is not a ${want.kty} ${want.crv} public key, as ${alg} needs.`);
  const out: Record<string, string> = { kty: want.kty, crv: want.crv };
  for (const m of want.members) {
    const v = jwk[m];
    if (typeof v !== 'string' || !/^[A-Za-z0-9_-]+$/.test(v)) throw refuse('jwk_invalid', `The DPoP proof's jwk has no valid "${m}".`);
    out[m] = v;
  }
  if (alg === 'EdDSA' && smallOrderEd25519(out.x!)) throw refuse('jwk_invalid', "The DPoP proof's jwk is not a valid public key for its alg.");
  return out as JWK;
}

/** 2^255 - 19, the field of Ed25519 (RFC 8032 §5.1). */
const ED25519_P = 2n ** 255n - 19n;
/** The four points of order 8 on edwards25519 have y = this or P minus this (doubled, they give y = 0: order 4). */
const ED25519_ORDER8_Y = 2707385501144840649318225287225658788936804267575313519463743609750303402022n;

/**
 * Whether `x` (RFC 8037 §2: the 32-byte RFC 8032 encoding) is one of the eight points of
 * small order, or a non-canonical encoding of one. RFC 8032 §5.1.7 verification holds for
 * R = identity, S = 0 whenever [k]A is the identity — always for A = identity, often for the
 * others — so a proof "signed" by such a key proves possession of nothing; Node accepts both
 * the key and the signature. Their y is 1, -1 (orders 1, 2), 0 (order 4) or ±ED25519_ORDER8_Y.
 */
function smallOrderEd25519(x: string): boolean {
  const bytes = Buffer.from(x, 'base64url');
  if (bytes.length !== 32) return false; // not a key at all: importJWK refuses it
  let y = 0n;
  for (let i = 31; i >= 0; i--) y = (y << 8n) | BigInt(i === 31 ? bytes[i]! & 0x7f : bytes[i]!);
  y %= ED25519_P;
  return y === 0n || y === 1n || y === ED25519_P - 1n || y === ED25519_ORDER8_Y || y === ED25519_P - ED25519_ORDER8_Y;
}

function decodeJson(part: string, what: 'header' | 'payload'): Record<string, unknown> {
  const decoded = decodeJsonPart(part);
  if ('value' in decoded) return decoded.value;
  // JSON.parse keeps the last of two equal members; another parser may keep the first (RFC 8725 §2.6).
  if (decoded.problem === 'duplicate_member') throw refuse('duplicate_member', `The DPoP proof's ${what} names a member twice.`);
  throw refuse('proof_malformed', decoded.problem === 'not_json' ? `The DPoP proof's ${what} is not base64url-encoded JSON.` : `The DPoP proof's ${what} is not a JSON object.`);
}

function joseRefusal(err: unknown): Error {
  if (err instanceof joseErrors.JWSSignatureVerificationFailed || err instanceof TypeError) {
    // TypeError: the key does not fit the algorithm (RFC 8725 §3.1).
    return refuse('bad_signature', "The DPoP proof's signature does not verify with the jwk in its header.", err);
  }
  if (err instanceof joseErrors.JWTExpired) return refuse('iat_stale', 'The DPoP proof has expired (its exp).', err);
  if (err instanceof joseErrors.JWTClaimValidationFailed) return refuse('invalid_claim', `The DPoP proof's ${err.claim} claim is invalid.`, err);
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return refuse('alg_not_allowed', "The DPoP proof's alg is not allowed.", err);
  if (err instanceof joseErrors.JOSEError) return refuse('proof_malformed', 'The DPoP proof is not a well-formed JWT.', err);
  return err instanceof Error ? err : new Error(String(err));
}

function refuse(check: DpopCheck, message: string, cause?: unknown): DpopError {
  return new DpopError(check, message, cause === undefined ? {} : { cause });
}

/** The method as echoed in a message: a token (RFC 9110 §5.6.2), else not at all. */
function safeMethod(method: string): string {
  return /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,32}$/.test(method) ? method : 'this request';
}
