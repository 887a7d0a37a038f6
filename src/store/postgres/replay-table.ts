import type { DecisionRecord } from '../records/decisions.js';
import type { ReplayStore } from '../repositories/replay.js';
import type { PgDatabase, Queryable } from './pg-database.js';

/**
 * Single-use keys on PostgreSQL (`replay_cache`). The insert is the whole check: of two
 * replicas consuming one key at once, the second waits on the first's row lock and then
 * finds the conflict, so exactly one sees a first use
 * (https://www.postgresql.org/docs/current/sql-insert.html#SQL-ON-CONFLICT).
 */
export class PostgresReplay implements ReplayStore {
  constructor(private readonly db: PgDatabase) {}

  async consume(key: string, expiresAt: number): Promise<boolean> {
    return consumeKey({ query: (text, values) => this.db.write(text, values) }, key, expiresAt);
  }

  /**
   * One statement, so one round trip and atomic on its own (no BEGIN/COMMIT, no row lock
   * held while this process's event loop is busy): the key's insert and the matching
   * records' insert are data-modifying CTEs of one query, and the second reads the first's
   * RETURNING (https://www.postgresql.org/docs/current/queries-with.html#QUERIES-WITH-MODIFYING).
   * The outbox rows take ids in the records' order, as addToOutbox's do. The replay's
   * records go with the query, so they are made whether or not they are needed.
   */
  async consumeAndLog(key: string, expiresAt: number, ifFirstUse: DecisionRecord[], ifReplayed: () => DecisionRecord[]): Promise<boolean> {
    const r = await this.db.write<{ first: boolean }>(
      `WITH used AS (
         INSERT INTO replay_cache (key, expires_at) VALUES ($1, $2)
         ON CONFLICT (key) DO UPDATE SET expires_at = EXCLUDED.expires_at WHERE replay_cache.expires_at <= $3
         RETURNING 1
       ), logged AS (
         INSERT INTO decision_outbox (record, created_at)
         SELECT rec, $3 FROM unnest(CASE WHEN EXISTS (SELECT 1 FROM used) THEN $4::text[] ELSE $5::text[] END) WITH ORDINALITY AS t(rec, n) ORDER BY n
         RETURNING 1
       )
       SELECT EXISTS (SELECT 1 FROM used) AS first, (SELECT count(*) FROM logged) AS logged`,
      [key, expiresAt, Date.now(), ifFirstUse.map((x) => JSON.stringify(x)), ifReplayed().map((x) => JSON.stringify(x))],
    );
    return r.rows[0]!.first;
  }
}

async function consumeKey(q: Queryable, key: string, expiresAt: number): Promise<boolean> {
  // An expired row for the same key may be reused; a live one may not.
  const r = await q.query(
    `INSERT INTO replay_cache (key, expires_at) VALUES ($1, $2)
     ON CONFLICT (key) DO UPDATE SET expires_at = EXCLUDED.expires_at WHERE replay_cache.expires_at <= $3`,
    [key, expiresAt, Date.now()],
  );
  return r.rowCount === 1;
}
