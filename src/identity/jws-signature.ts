import { constants, sign, verify, type KeyObject } from 'node:crypto';

/**
 * JWS signatures (RFC 7515 §5.1 step 5, §5.2 step 8) computed with synchronous node:crypto
 * instead of WebCrypto. jose's WebCrypto calls each hop to the libuv thread pool and back:
 * on a busy core that doubles their cost (BENCHMARKS.md, "Signatures off the WebCrypto
 * thread pool"). Only the signature moves here; everything else about a JWT stays jose's.
 */

/** The JWS algorithms Port signs or accepts, and how node:crypto computes each (RFC 7518 §3.1). */
export type JwsAlgorithm = 'RS256' | 'RS384' | 'RS512' | 'PS256' | 'PS384' | 'PS512' | 'ES256' | 'ES384' | 'ES512' | 'EdDSA';

interface AlgorithmSpec {
  /** The digest node:crypto is given; null for Ed25519, which hashes internally (RFC 8037 §3.1). */
  hash: 'sha256' | 'sha384' | 'sha512' | null;
  kind: 'rsa' | 'rsa-pss' | 'ec' | 'ed25519';
  /** PSS: the salt is as long as the hash (RFC 7518 §3.5). */
  saltLength?: number;
  /** ECDSA: OpenSSL's curve name, and the bytes of R and of S (RFC 7518 §3.4). */
  curve?: string;
  coordinateBytes?: number;
}

const ALGORITHMS: Readonly<Record<JwsAlgorithm, AlgorithmSpec>> = {
  RS256: { hash: 'sha256', kind: 'rsa' },
  RS384: { hash: 'sha384', kind: 'rsa' },
  RS512: { hash: 'sha512', kind: 'rsa' },
  PS256: { hash: 'sha256', kind: 'rsa-pss', saltLength: 32 },
  PS384: { hash: 'sha384', kind: 'rsa-pss', saltLength: 48 },
  PS512: { hash: 'sha512', kind: 'rsa-pss', saltLength: 64 },
  ES256: { hash: 'sha256', kind: 'ec', curve: 'prime256v1', coordinateBytes: 32 },
  ES384: { hash: 'sha384', kind: 'ec', curve: 'secp384r1', coordinateBytes: 48 },
  ES512: { hash: 'sha512', kind: 'ec', curve: 'secp521r1', coordinateBytes: 66 },
  // jose's "EdDSA" is Ed25519 only (RFC 8037 §3.1).
  EdDSA: { hash: null, kind: 'ed25519' },
};

/** Signing input must be ASCII (RFC 7515 §5.1 step 5: ASCII(BASE64URL(header) || '.' || BASE64URL(payload))). */
const NON_ASCII = /[^\x00-\x7f]/;

/** RFC 7518 §3.3 and §3.5: "A key of size 2048 bits or larger MUST be used" (jose refuses smaller ones too). */
const MIN_RSA_BITS = 2048;

export function isJwsAlgorithm(alg: unknown): alg is JwsAlgorithm {
  return typeof alg === 'string' && Object.hasOwn(ALGORITHMS, alg);
}

/**
 * Why a key can't be used with `alg`, or undefined when it can: the key type and curve
 * jose's `checkCryptoKey` requires of a CryptoKey for the algorithm, and the RSA size.
 */
function keyProblem(spec: AlgorithmSpec, key: KeyObject, type: 'public' | 'private'): string | undefined {
  if (key.type !== type) return `a ${type} key is needed`;
  const kind = key.asymmetricKeyType;
  switch (spec.kind) {
    case 'rsa':
    case 'rsa-pss': {
      if (kind !== 'rsa' && !(spec.kind === 'rsa-pss' && kind === 'rsa-pss')) return 'the key is not an RSA key';
      const bits = key.asymmetricKeyDetails?.modulusLength;
      return bits !== undefined && bits >= MIN_RSA_BITS ? undefined : `RSA keys must be ${MIN_RSA_BITS} bits or larger`;
    }
    case 'ec':
      return kind === 'ec' && key.asymmetricKeyDetails?.namedCurve === spec.curve ? undefined : `the key is not on ${spec.curve}`;
    case 'ed25519':
      return kind === 'ed25519' ? undefined : 'the key is not an Ed25519 key';
  }
}

/** The signature's exact length in bytes: an RSA signature is as long as the modulus (RFC 8017 §8.2.2 step 1). */
function signatureBytes(spec: AlgorithmSpec, key: KeyObject): number {
  if (spec.kind === 'ec') return 2 * spec.coordinateBytes!;
  if (spec.kind === 'ed25519') return 64;
  return Math.ceil(key.asymmetricKeyDetails!.modulusLength! / 8);
}

/**
 * node:crypto's options for the algorithm. ECDSA signatures are R ‖ S, each zero-padded to
 * the curve's size (`ieee-p1363`), never DER (RFC 7518 §3.4); PSS uses MGF1 with the same
 * hash and a salt as long as the hash (RFC 7518 §3.5).
 */
function keyOptions(spec: AlgorithmSpec, key: KeyObject) {
  if (spec.kind === 'ec') return { key, dsaEncoding: 'ieee-p1363' as const };
  if (spec.kind === 'rsa-pss') return { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: spec.saltLength! };
  return { key };
}

/** Base64url as RFC 7515 §2 defines it (no padding), accepting only the one canonical spelling of the bytes. */
function decodeCanonical(part: string): Buffer | undefined {
  const bytes = Buffer.from(part, 'base64url');
  return bytes.toString('base64url') === part ? bytes : undefined;
}

/**
 * Whether `signature` (the third part of a compact JWS, base64url) is `alg`'s signature of
 * `signingInput` (`<header>.<payload>` as received, ASCII) under the public `key`. False for
 * anything that is not: a key of the wrong type, curve or size, a signature of the wrong
 * length or encoding (a DER ECDSA signature included), or a mismatch. Never throws for
 * attacker-controlled input.
 */
export function verifyJwsSignature(alg: JwsAlgorithm, key: KeyObject, signingInput: string, signature: string): boolean {
  const spec = ALGORITHMS[alg];
  if (keyProblem(spec, key, 'public') !== undefined || NON_ASCII.test(signingInput)) return false;
  const bytes = decodeCanonical(signature);
  if (bytes === undefined || bytes.length !== signatureBytes(spec, key)) return false;
  try {
    return verify(spec.hash, Buffer.from(signingInput, 'latin1'), keyOptions(spec, key), bytes);
  } catch {
    return false;
  }
}

/**
 * Signs `signingInput` (`<header>.<payload>`, ASCII) with the private `key` for `alg`; returns
 * the signature part, base64url-encoded without padding (RFC 7515 §2). Throws a TypeError
 * for a key that doesn't fit the algorithm, as jose does.
 */
export function signJws(alg: JwsAlgorithm, key: KeyObject, signingInput: string): string {
  const spec = ALGORITHMS[alg];
  const problem = keyProblem(spec, key, 'private');
  if (problem !== undefined) throw new TypeError(`Key for the ${alg} algorithm can't sign: ${problem}.`);
  if (NON_ASCII.test(signingInput)) throw new TypeError('The JWS signing input must be ASCII.');
  return sign(spec.hash, Buffer.from(signingInput, 'latin1'), keyOptions(spec, key)).toString('base64url');
}
