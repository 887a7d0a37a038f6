import type Database from 'better-sqlite3';
import type { SigningKeyRecord, SigningKeyStore } from '../repositories/signing-keys.js';
import type { SqliteChangeFeed } from './change-feed.js';
import type { WriteBatcher } from './write-batcher.js';

/** Issuer signing keys on SQLite (`signing_keys`). */
export class SqliteSigningKeys implements SigningKeyStore {
  private readonly s;

  constructor(
    db: Database.Database,
    private readonly batcher: WriteBatcher,
    private readonly feed: SqliteChangeFeed,
  ) {
    this.s = {
      list: db.prepare('SELECT * FROM signing_keys ORDER BY created_at'),
      insert: db.prepare('INSERT INTO signing_keys (kid, alg, public_jwk, private_key, created_at, retires_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)'),
      covered: db.prepare('SELECT 1 FROM signing_keys WHERE alg = ? AND created_at <= ? AND retires_at > ?'),
    };
  }

  async list(): Promise<SigningKeyRecord[]> {
    return (this.s.list.all() as Record<string, unknown>[]).map((r) => ({
      kid: r.kid as string,
      alg: r.alg as SigningKeyRecord['alg'],
      publicJwk: JSON.parse(r.public_jwk as string),
      privateKey: r.private_key as string,
      createdAt: r.created_at as number,
      retiresAt: r.retires_at as number,
      expiresAt: r.expires_at as number,
    }));
  }

  async insert(k: SigningKeyRecord): Promise<void> {
    await this.batcher.write(() => {
      this.s.insert.run(k.kid, k.alg, JSON.stringify(k.publicJwk), k.privateKey, k.createdAt, k.retiresAt, k.expiresAt);
      this.feed.record('signing_keys', [k.kid]);
    });
    this.feed.catchUpNow();
  }

  async insertUnlessCovered(k: SigningKeyRecord, at: number): Promise<boolean> {
    const inserted = await this.batcher.write(() => {
      if (this.s.covered.get(k.alg, at, at) !== undefined) return false;
      this.s.insert.run(k.kid, k.alg, JSON.stringify(k.publicJwk), k.privateKey, k.createdAt, k.retiresAt, k.expiresAt);
      this.feed.record('signing_keys', [k.kid]);
      return true;
    });
    if (inserted) this.feed.catchUpNow();
    return inserted;
  }
}
