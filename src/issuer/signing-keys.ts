import { calculateJwkThumbprint, createLocalJWKSet, exportJWK, generateKeyPair, importJWK, type JWK, type JWTVerifyGetKey, type CryptoKey } from 'jose';
import type { SigningKeyRecord, Store } from '../store/store.js';
import { openPrivateKey, sealPrivateKey } from './key-wrap.js';

export interface SigningKeysOptions {
  algorithm: 'ES256' | 'EdDSA';
  /** Seconds a key signs before a new one takes over. */
  rotation: number;
  /** Seconds a retired key stays published: the longest lifetime of a token it signed, plus skew. */
  overlap: number;
  /** Seals private keys at rest (issuer.key_encryption_key, derived with deriveKeyEncryptionKey). */
  keyEncryptionKey?: Buffer;
}

export interface ActiveKey {
  kid: string;
  alg: 'ES256' | 'EdDSA';
  key: CryptoKey;
}

/**
 * Port's own signing keys, kept in the store. One key signs at a time; after
 * `rotation` a new key takes over and the old one stays in the JWKS for `overlap`
 * so tokens it signed keep verifying until they expire.
 */
export class SigningKeys {
  private records: SigningKeyRecord[] = [];
  private active: ActiveKey | undefined;
  private localJwks: JWTVerifyGetKey = createLocalJWKSet({ keys: [] });
  private published: JWK[] = [];

  private constructor(
    private readonly store: Store,
    private readonly options: SigningKeysOptions,
  ) {}

  static async open(store: Store, options: SigningKeysOptions, now = Date.now()): Promise<SigningKeys> {
    const keys = new SigningKeys(store, options);
    await keys.rotateIfDue(now);
    return keys;
  }

  /** Makes a new key when none may sign at `now`; reloads the published set either way. */
  async rotateIfDue(now = Date.now()): Promise<boolean> {
    this.records = await this.store.keys.list();
    let rotated = false;
    if (!this.signerAt(now)) {
      await this.store.keys.insert(await this.generate(now));
      this.records = await this.store.keys.list();
      rotated = true;
    }
    await this.refresh(now);
    return rotated;
  }

  private signerAt(now: number): SigningKeyRecord | undefined {
    // The newest key that has not retired signs.
    return this.records.filter((r) => r.createdAt <= now && r.retiresAt > now && r.alg === this.options.algorithm).at(-1);
  }

  private async generate(now: number): Promise<SigningKeyRecord> {
    const alg = this.options.algorithm;
    const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true, ...(alg === 'EdDSA' ? { crv: 'Ed25519' } : {}) });
    const publicJwk = await exportJWK(publicKey);
    // RFC 7638 thumbprint as kid: stable, derived from the key, collision-free in practice.
    const kid = await calculateJwkThumbprint(publicJwk);
    const retiresAt = now + this.options.rotation * 1000;
    return {
      kid,
      alg,
      publicJwk: { ...publicJwk, kid, alg, use: 'sig' },
      privateKey: sealPrivateKey({ ...(await exportJWK(privateKey)), kid, alg }, kid, this.options.keyEncryptionKey),
      createdAt: now,
      retiresAt,
      expiresAt: retiresAt + this.options.overlap * 1000,
    };
  }

  private async refresh(now: number): Promise<void> {
    const signer = this.signerAt(now);
    if (signer && signer.kid !== this.active?.kid) {
      const jwk = openPrivateKey(signer.privateKey, signer.kid, this.options.keyEncryptionKey);
      this.active = { kid: signer.kid, alg: signer.alg, key: (await importJWK(jwk, signer.alg)) as CryptoKey };
    }
    this.published = this.records.filter((r) => r.expiresAt > now).map((r) => r.publicJwk);
    this.localJwks = createLocalJWKSet({ keys: this.published });
  }

  /** The key that signs now. */
  signer(): ActiveKey {
    if (!this.active) throw new Error('no active signing key');
    return this.active;
  }

  /** The public keys verifiers may use (RFC 7517 JWK Set). */
  jwks(): { keys: JWK[] } {
    return { keys: this.published };
  }

  /** Key resolver for verifying Port's own tokens (only published keys). */
  get verificationKeys(): JWTVerifyGetKey {
    return this.localJwks;
  }

  /** Every public key ever used, by kid — for verifying old audit checkpoints. */
  allPublicKeys(): Map<string, JWK> {
    return new Map(this.records.map((r) => [r.kid, r.publicJwk]));
  }
}
