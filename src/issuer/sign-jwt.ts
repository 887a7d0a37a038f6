import type { KeyObject } from 'node:crypto';
import type { JWTPayload } from 'jose';
import { signJws, type JwsAlgorithm } from '../identity/jws-signature.js';

/** The protected header of a JWT Port signs: its algorithm, key and type (RFC 7515 §4.1.1, §4.1.4, §4.1.9). */
export interface SignedJwtHeader {
  alg: JwsAlgorithm;
  kid: string;
  typ: string;
}

/**
 * A JWT in JWS compact serialization (RFC 7519 §7.1, RFC 7515 §7.1), byte for byte what
 * jose's `new SignJWT(claims).setProtectedHeader(header).sign(key)` produces — the header
 * and the claims serialized with `JSON.stringify` in their own member order, base64url
 * without padding (RFC 7515 §2) of their UTF-8 bytes, the same `iat`/`nbf`/`exp` check —
 * but signed with synchronous node:crypto (src/identity/jws-signature.ts) instead of a
 * WebCrypto call on the thread pool, and encoded with Node's native base64url (jose's
 * encoder builds the text in JavaScript, several times the garbage per token). For ECDSA
 * the signature is R ‖ S (RFC 7518 §3.4); Ed25519 is deterministic, so an EdDSA token is
 * identical to jose's.
 */
export function signJwt(header: SignedJwtHeader, claims: JWTPayload, key: KeyObject): string {
  for (const claim of ['iat', 'nbf', 'exp'] as const) {
    const value = claims[claim];
    if (typeof value === 'number' && !Number.isFinite(value)) throw new TypeError(`"${claim}" claim must be a finite number`);
  }
  const input = `${encodedHeader(header)}.${Buffer.from(JSON.stringify(claims), 'utf8').toString('base64url')}`;
  return `${input}.${signJws(header.alg, key, input)}`;
}

/** Encoded headers by their JSON: a signer has a few keys over its life, and each header is the same every time. */
const headers = new Map<string, string>();
const HEADERS_MAX = 64;

function encodedHeader(header: SignedJwtHeader): string {
  const json = JSON.stringify(header);
  let encoded = headers.get(json);
  if (encoded === undefined) {
    encoded = Buffer.from(json, 'utf8').toString('base64url');
    if (headers.size >= HEADERS_MAX) headers.clear();
    headers.set(json, encoded);
  }
  return encoded;
}
