import type { JWK } from 'jose';

/** Times are milliseconds since the epoch. */
export interface SigningKeyRecord {
  kid: string;
  alg: 'ES256' | 'EdDSA';
  publicJwk: JWK;
  /** The private JWK, serialized and possibly sealed (src/issuer/key-wrap.ts); opaque to the store. */
  privateKey: string;
  createdAt: number;
  /** After this the key no longer signs. */
  retiresAt: number;
  /** After this the key leaves the JWKS (retiresAt + the longest token lifetime). */
  expiresAt: number;
}

/** Issuer signing keys (src/issuer). Keys are never deleted: old checkpoints need them. */
export interface SigningKeyStore {
  list(): Promise<SigningKeyRecord[]>;
  insert(key: SigningKeyRecord): Promise<void>;
  /**
   * Compare-and-set for rotation by several processes: inserts `key` unless a stored key
   * of its algorithm already signs at `at` (created at or before it, retiring after it), in
   * one transaction. False, inserting nothing, when another process got there first.
   * `at` is the moment the caller needs a key for: the successor's start when rotating, the
   * caller's own now for a key made because none signs (that key is dated back so that it
   * covers the now of processes whose clocks read a little earlier; src/issuer/signing-keys.ts).
   * A key created after `at` (a successor stored ahead of time) does not cover it.
   */
  insertUnlessCovered(key: SigningKeyRecord, at: number): Promise<boolean>;
}
