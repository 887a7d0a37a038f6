import {
  ISSUED_KEPT_MS,
  type IssuedCredentialFilter,
  type IssuedCredentialRecord,
  type IssuedCredentialStore,
  type SecretVersionRecord,
  type SecretVersionStore,
} from '../repositories/credentials.js';
import { issuedWhere } from '../issued-where.js';
import { num, type PgDatabase, type Queryable } from './pg-database.js';


/**
 * The `issued_credentials` table on PostgreSQL: the record as JSON, with the columns it
 * is searched by beside it. Rows are only inserted (one per credential handed out, under
 * a fresh id) and purged, so replicas never contend on one.
 */
export class PostgresIssuedCredentials implements IssuedCredentialStore {
  constructor(private readonly db: PgDatabase) {}

  async record(r: IssuedCredentialRecord): Promise<void> {
    await this.db.write(
      `INSERT INTO issued_credentials (id, credential, job_id, build, agent_id, pool, creator, token_jti_hash, issued_at, expires_at, record)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
      [r.id, r.credential, r.jobId, r.build, r.agentId, r.pool ?? null, r.creator ?? null, r.tokenJtiHash, r.issuedAt, r.expiresAt, JSON.stringify(r)],
    );
  }

  async list(filter: IssuedCredentialFilter): Promise<IssuedCredentialRecord[]> {
    const where = issuedWhere(filter, (n) => `$${n}`);
    // `id` breaks ties so every replica lists credentials issued in the same millisecond alike.
    const r = await this.db.query<{ record: string }>(`SELECT record FROM issued_credentials${where.sql} ORDER BY issued_at, id`, where.values);
    return r.rows.map((row) => JSON.parse(row.record) as IssuedCredentialRecord);
  }

  /**
   * Deletes rows more than ISSUED_KEPT_MS past their expiry at `now`: on
   * `tx` inside the store's purge transaction, else as one autocommitted write.
   */
  async purge(now: number, tx?: Queryable): Promise<void> {
    const sql = 'DELETE FROM issued_credentials WHERE expires_at <= $1';
    const values = [now - ISSUED_KEPT_MS];
    await (tx ? tx.query(sql, values) : this.db.write(sql, values));
  }
}

interface SecretVersionRow {
  credential: string;
  version: number;
  sealed_value: string | null;
  created_at: string;
  retires_at: string | null;
  retired_at: string | null;
}

/**
 * The `secret_versions` table on PostgreSQL, one row per (credential, version).
 *
 * A rotation is a compare-and-set without a table lock: inside one transaction it checks
 * that `next.version` follows the newest stored version, then inserts it with
 * `ON CONFLICT DO NOTHING`. Two replicas rotating at once both pass the check, but their
 * inserts collide on the primary key: the second waits for the first to commit and then
 * inserts nothing (https://www.postgresql.org/docs/current/sql-insert.html#SQL-ON-CONFLICT),
 * so it returns false before touching the previous version. Exactly one rotation wins.
 */
export class PostgresSecretVersions implements SecretVersionStore {
  constructor(private readonly db: PgDatabase) {}

  async list(credential: string): Promise<SecretVersionRecord[]> {
    const r = await this.db.query<SecretVersionRow>('SELECT * FROM secret_versions WHERE credential = $1 ORDER BY version', [credential]);
    return r.rows.map(toSecretVersion);
  }

  async init(record: SecretVersionRecord): Promise<void> {
    // Only when the credential has no version at all; two replicas starting at once both
    // pass NOT EXISTS, and the primary key turns the second insert of version 0 into nothing.
    await this.db.write(
      `INSERT INTO secret_versions (credential, version, sealed_value, created_at, retires_at, retired_at)
       SELECT $1::text, $2::integer, $3::text, $4::bigint, $5::bigint, $6::bigint
       WHERE NOT EXISTS (SELECT 1 FROM secret_versions WHERE credential = $1)
       ON CONFLICT DO NOTHING`,
      row(record),
    );
  }

  add(next: SecretVersionRecord, previousRetiresAt: number): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      const newest = (await tx.query<{ v: number | null }>('SELECT max(version) AS v FROM secret_versions WHERE credential = $1', [next.credential])).rows[0]?.v ?? null;
      if (newest === null || newest !== next.version - 1) return false;
      const inserted = await tx.query(
        `INSERT INTO secret_versions (credential, version, sealed_value, created_at, retires_at, retired_at)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`,
        row(next),
      );
      if (inserted.rowCount !== 1) return false;
      await tx.query('UPDATE secret_versions SET retires_at = $1 WHERE credential = $2 AND version = $3', [previousRetiresAt, next.credential, newest]);
      return true;
    });
  }

  async markRetired(credential: string, version: number, at: number): Promise<void> {
    await this.db.write('UPDATE secret_versions SET retired_at = $1 WHERE credential = $2 AND version = $3', [at, credential, version]);
  }
}

function row(r: SecretVersionRecord): unknown[] {
  return [r.credential, r.version, r.sealedValue, r.createdAt, r.retiresAt ?? null, r.retiredAt ?? null];
}

function toSecretVersion(r: SecretVersionRow): SecretVersionRecord {
  return {
    credential: r.credential,
    version: r.version,
    sealedValue: r.sealed_value,
    createdAt: num(r.created_at),
    ...(r.retires_at !== null ? { retiresAt: num(r.retires_at) } : {}),
    ...(r.retired_at !== null ? { retiredAt: num(r.retired_at) } : {}),
  };
}
