import type { DecisionRecord } from '../records/decisions.js';
import type { ReplayStore } from '../repositories/replay.js';
import { addToOutbox } from './decision-outbox.js';
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

  consumeAndLog(key: string, expiresAt: number, ifFirstUse: DecisionRecord[], ifReplayed: DecisionRecord[]): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      const firstUse = await consumeKey(tx, key, expiresAt);
      await addToOutbox(tx, firstUse ? ifFirstUse : ifReplayed);
      return firstUse;
    });
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
