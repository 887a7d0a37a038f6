import { KeyObject, type webcrypto } from 'node:crypto';
import { calculateJwkThumbprint, createLocalJWKSet, exportJWK, generateKeyPair, importJWK, type JWK, type JWTVerifyGetKey, type CryptoKey } from 'jose';
import type { SigningKeyRecord, Store } from '../store/store.js';
import { MAX_CLOCK_SKEW_SECONDS } from '../config/schema.js';
import { openPrivateKey, sealPrivateKey } from './key-wrap.js';

export interface SigningKeysOptions {
  algorithm: 'ES256' | 'EdDSA';
  /** Seconds a key signs before a new one takes over. */
  rotation: number;
  /** Seconds a retired key stays published: the longest lifetime of a token it signed, plus skew. */
  overlap: number;
  /** Seals private keys at rest (issuer.key_encryption_key, derived with deriveKeyEncryptionKey). */
  keyEncryptionKey?: Buffer;
  /**
   * Seconds before the signing key retires that its successor is stored (and so published
   * in every replica's JWKS, and in verifiers' caches of it) — it signs only from then on.
   * Default: a tenth of `rotation`, at most 5 minutes.
   */
  prepublish?: number;
}

export interface ActiveKey {
  kid: string;
  alg: 'ES256' | 'EdDSA';
  /** For jose (`SignJWT`, `CompactSign`). */
  key: CryptoKey;
}

/** The signing key as SigningKeys holds it: also for node:crypto. */
export interface SigningKey extends ActiveKey {
  /** The same private key: Port tokens are signed with it synchronously (src/issuer/port-token.ts). */
  keyObject: KeyObject;
}

/**
 * How far back a key made because none signs (Port's first start, or a start after every
 * key retired) is dated: the longest clock skew Port allows anywhere. Processes starting
 * together (`server.workers`, replicas) read clocks that disagree by milliseconds, or by
 * the skew between hosts; dated back this far, the key the first of them stores already
 * signs at the `now` of every other, so each of them finds it covering and signs with it —
 * they keep one key between them.
 */
const NEW_KEY_BACKDATE_MS = MAX_CLOCK_SKEW_SECONDS * 1000;

/**
 * Port's own signing keys, kept in the store. One key signs at a time; after
 * `rotation` a new key takes over and the old one stays in the JWKS for `overlap`
 * so tokens it signed keep verifying until they expire.
 */
export class SigningKeys {
  private records: SigningKeyRecord[] = [];
  private active: SigningKey | undefined;
  private localJwks: JWTVerifyGetKey = createLocalJWKSet({ keys: [] });
  private published: JWK[] = [];
  private publishedKids = '';
  private lastUnknownKidReload = 0;
  private readonly unsubscribe: () => void;

  private constructor(
    private readonly store: Store,
    private readonly options: SigningKeysOptions,
  ) {
    // A key stored by another Port process (the leader's rotation) is published here at once.
    this.unsubscribe = store.changes.subscribe((changes) => {
      if (changes.some((c) => c.topic === 'signing_keys')) void this.reload().catch(() => undefined);
    });
  }

  static async open(store: Store, options: SigningKeysOptions, now = Date.now()): Promise<SigningKeys> {
    const keys = new SigningKeys(store, options);
    await keys.rotateIfDue(now);
    return keys;
  }

  /**
   * Makes a key when none may sign at `now`, and stores the next key `prepublish` seconds
   * before the signing one retires (it signs from that moment, by then in every JWKS);
   * reloads the published set either way. With several Port processes only the leader
   * runs this on schedule (src/cluster/leadership.ts).
   */
  async rotateIfDue(now = Date.now()): Promise<boolean> {
    this.records = await this.store.keys.list();
    let rotated = false;
    const signer = this.signerAt(now);
    // Compare-and-set: of several processes rotating at once (replicas starting together),
    // one stores the key; the others find it covered and use that one.
    if (!signer) {
      // Dating it back changes only which clocks see it signing (of two keys that both sign
      // at some moment, the newest signs). It still retires `rotation` after now, and covering
      // is asked about this clock's now: a key another process dated back covers it.
      const key = await this.generate(now - NEW_KEY_BACKDATE_MS, now + this.options.rotation * 1000);
      rotated = await this.store.keys.insertUnlessCovered(key, now);
    } else {
      const prepublishMs = (this.options.prepublish ?? Math.min(this.options.rotation / 10, 300)) * 1000;
      const successor = this.records.some((r) => r.alg === this.options.algorithm && r.createdAt >= signer.retiresAt);
      // The successor is not dated back: it signs from the moment its predecessor retires, after
      // `prepublish` in every JWKS (a process whose clock is behind keeps signing with the old one).
      if (!successor && signer.retiresAt - now <= prepublishMs) {
        rotated = await this.store.keys.insertUnlessCovered(await this.generate(signer.retiresAt), signer.retiresAt);
      }
    }
    if (!signer || rotated) this.records = await this.store.keys.list();
    await this.refresh(now);
    return rotated;
  }

  /** Re-reads the keys from the store (another process stored one) and republishes. */
  async reload(now = Date.now()): Promise<void> {
    this.records = await this.store.keys.list();
    await this.refresh(now);
  }

  /** Moves signing to the successor once it is due; every process calls this often (cheap, no store read). */
  tick(now = Date.now()): Promise<void> {
    return this.refresh(now);
  }

  close(): void {
    this.unsubscribe();
  }

  private signerAt(now: number): SigningKeyRecord | undefined {
    // The newest key that has not retired signs.
    return this.records.filter((r) => r.createdAt <= now && r.retiresAt > now && r.alg === this.options.algorithm).at(-1);
  }

  /** A new key that signs from `createdAt` until `retiresAt`. */
  private async generate(createdAt: number, retiresAt = createdAt + this.options.rotation * 1000): Promise<SigningKeyRecord> {
    const alg = this.options.algorithm;
    const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true, ...(alg === 'EdDSA' ? { crv: 'Ed25519' } : {}) });
    const publicJwk = await exportJWK(publicKey);
    // RFC 7638 thumbprint as kid: stable, derived from the key, collision-free in practice.
    const kid = await calculateJwkThumbprint(publicJwk);
    return {
      kid,
      alg,
      publicJwk: { ...publicJwk, kid, alg, use: 'sig' },
      privateKey: sealPrivateKey({ ...(await exportJWK(privateKey)), kid, alg }, kid, this.options.keyEncryptionKey),
      createdAt,
      retiresAt,
      expiresAt: retiresAt + this.options.overlap * 1000,
    };
  }

  private async refresh(now: number): Promise<void> {
    const signer = this.signerAt(now);
    if (signer && signer.kid !== this.active?.kid) {
      const jwk = openPrivateKey(signer.privateKey, signer.kid, this.options.keyEncryptionKey);
      const key = (await importJWK(jwk, signer.alg)) as CryptoKey;
      this.active = { kid: signer.kid, alg: signer.alg, key, keyObject: KeyObject.from(key as webcrypto.CryptoKey) };
    }
    const published = this.records.filter((r) => r.expiresAt > now);
    const kids = published.map((r) => r.kid).join(' ');
    if (kids === this.publishedKids) return;
    this.publishedKids = kids;
    this.published = published.map((r) => r.publicJwk);
    this.localJwks = createLocalJWKSet({ keys: this.published });
  }

  /** The key that signs now. */
  signer(): SigningKey {
    if (!this.active) throw new Error('no active signing key');
    return this.active;
  }

  /** The public keys verifiers may use (RFC 7517 JWK Set). */
  jwks(): { keys: JWK[] } {
    return { keys: this.published };
  }

  /**
   * Key resolver for verifying Port's own tokens (only published keys). A kid this
   * process doesn't know makes it re-read the store once a second at most: another Port
   * process may have stored a key the change feed hasn't delivered here yet.
   */
  get verificationKeys(): JWTVerifyGetKey {
    return async (header, token) => {
      try {
        return await this.localJwks(header, token);
      } catch (err) {
        const now = Date.now();
        if (typeof header.kid !== 'string' || this.publishedKids.split(' ').includes(header.kid) || now - this.lastUnknownKidReload < 1000) throw err;
        this.lastUnknownKidReload = now;
        await this.reload(now);
        return this.localJwks(header, token);
      }
    };
  }

  /** Every public key ever used, by kid — for verifying old audit checkpoints. */
  allPublicKeys(): Map<string, JWK> {
    return new Map(this.records.map((r) => [r.kid, r.publicJwk]));
  }
}
