/**
 * The simulator's signing keys: RSA-2048, RS256, each with a `kid` of 64 lowercase
 * hex characters (the real token in https://github.com/rubygems/rubygems.org/issues/5412
 * carries `{"kid": <64 hex>, "alg": "RS256"}`,
 * and Buildkite's own verifier, internal/oidc/verifier.go in https://github.com/buildkite/github-api-proxy,
 * loads only JWKS keys with `use: sig` and `alg: RS256`).
 */
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';

export const SIGNING_ALG = 'RS256';

/** A private key with its kid, as tests need it to forge tokens. */
export interface SigningKey {
  kid: string;
  alg: typeof SIGNING_ALG;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
}

/** A public key as served in the JWKS. */
export interface PublicJwk extends JWK {
  kty: 'RSA';
  kid: string;
  alg: typeof SIGNING_ALG;
  use: 'sig';
  n: string;
  e: string;
}

interface KeyEntry {
  signing: SigningKey;
  jwk: PublicJwk;
}

/**
 * Unconfirmed: how Buildkite derives its kid. 64 hex characters is the length of a
 * SHA-256 digest, so the simulator uses the RFC 7638 SHA-256 thumbprint in hex.
 */
async function hexThumbprint(jwk: JWK): Promise<string> {
  const b64 = await calculateJwkThumbprint(jwk, 'sha256');
  return Buffer.from(b64, 'base64url').toString('hex');
}

async function newKey(): Promise<KeyEntry> {
  const { privateKey, publicKey } = await generateKeyPair(SIGNING_ALG, { modulusLength: 2048, extractable: true });
  const exported = await exportJWK(publicKey);
  if (exported.n === undefined || exported.e === undefined) throw new Error('RSA public key export lacks n/e');
  const kid = await hexThumbprint(exported);
  return {
    signing: { kid, alg: SIGNING_ALG, privateKey, publicKey },
    jwk: { kty: 'RSA', kid, alg: SIGNING_ALG, use: 'sig', n: exported.n, e: exported.e },
  };
}

/** The current signer plus older keys that stay published until retired. */
export class KeyRing {
  private constructor(private keys: KeyEntry[]) {}

  static async create(): Promise<KeyRing> {
    return new KeyRing([await newKey()]);
  }

  /** The key new tokens are signed with (the newest). */
  get current(): SigningKey {
    const last = this.keys[this.keys.length - 1];
    if (last === undefined) throw new Error('key ring is empty');
    return last.signing;
  }

  /** A new key becomes the signer; older keys stay in the JWKS so their tokens still verify. */
  async rotate(): Promise<SigningKey> {
    this.keys.push(await newKey());
    return this.current;
  }

  /** Drop every key but the current one from the JWKS. */
  retireOldKeys(): void {
    this.keys = this.keys.slice(-1);
  }

  /** The JWKS document (`{"keys": [...]}`), newest key first. */
  jwks(): { keys: PublicJwk[] } {
    return { keys: this.keys.map((k) => ({ ...k.jwk })).reverse() };
  }
}
