import type { JWK } from 'jose';
import type { SigningKeyRecord, SigningKeyStore } from '../repositories/signing-keys.js';
import { recordChanges } from './change-feed.js';
import { num, type PgDatabase, type Queryable } from './pg-database.js';

interface Row {
  kid: string;
  alg: SigningKeyRecord['alg'];
  public_jwk: string;
  private_key: string;
  created_at: string;
  retires_at: string;
  expires_at: string;
}

/**
 * The `signing_keys` table on PostgreSQL. Keys are only ever inserted (never updated or
 * deleted): a second insert of a `kid` fails on the primary key, as on SQLite, and the
 * caller sees it; `insertUnlessCovered` is the compare-and-set of replicas rotating at once.
 */
export class PostgresSigningKeys implements SigningKeyStore {
  constructor(private readonly db: PgDatabase) {}

  async list(): Promise<SigningKeyRecord[]> {
    // `kid` breaks ties so every replica lists keys created in the same millisecond alike.
    const r = await this.db.query<Row>('SELECT * FROM signing_keys ORDER BY created_at, kid');
    return r.rows.map(toRecord);
  }

  async insert(key: SigningKeyRecord): Promise<void> {
    await this.db.transaction((tx) => insertKey(tx, key));
  }

  insertUnlessCovered(key: SigningKeyRecord, at: number): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      // Rotations by several replicas queue here, so only the first of them inserts.
      await tx.query('SELECT pg_advisory_xact_lock($1::bigint)', [KEYS_LOCK_KEY]);
      const covered = await tx.query('SELECT 1 FROM signing_keys WHERE alg = $1 AND created_at <= $2 AND retires_at > $2', [key.alg, at]);
      if (covered.rows.length > 0) return false;
      await insertKey(tx, key);
      return true;
    });
  }
}

/**
 * Transaction-level advisory lock of key rotation: SHA-256("buildkite-port signing keys"),
 * first 8 bytes (https://www.postgresql.org/docs/current/explicit-locking.html#ADVISORY-LOCKS).
 */
const KEYS_LOCK_KEY = '-8423495811737455024';

async function insertKey(tx: Queryable, key: SigningKeyRecord): Promise<void> {
  await tx.query(
    `INSERT INTO signing_keys (kid, alg, public_jwk, private_key, created_at, retires_at, expires_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7)`,
    [key.kid, key.alg, JSON.stringify(key.publicJwk), key.privateKey, key.createdAt, key.retiresAt, key.expiresAt],
  );
  // Every replica publishes the new key in its JWKS (and signs with it once it is due).
  await recordChanges(tx, 'signing_keys', [key.kid]);
}

function toRecord(r: Row): SigningKeyRecord {
  return {
    kid: r.kid,
    alg: r.alg,
    publicJwk: JSON.parse(r.public_jwk) as JWK,
    privateKey: r.private_key,
    createdAt: num(r.created_at),
    retiresAt: num(r.retires_at),
    expiresAt: num(r.expires_at),
  };
}
