import type { DecisionRecord } from '../records/decisions.js';
import type { AllowCountStore, PendingAllowRecord } from '../repositories/allow-counts.js';
import { addToOutbox } from './decision-outbox.js';
import type { PgDatabase } from './pg-database.js';

/** Relay allow counts on PostgreSQL (`relay_allow_pending`); each replica owns its rows. */
export class PostgresAllowCounts implements AllowCountStore {
  constructor(private readonly db: PgDatabase) {}

  async save(owner: string, pending: PendingAllowRecord[], now: number): Promise<void> {
    await this.db.transaction(async (tx) => {
      await tx.query('UPDATE relay_allow_pending SET updated_at = $1 WHERE owner = $2', [now, owner]);
      if (pending.length === 0) return;
      await tx.query(
        `INSERT INTO relay_allow_pending (owner, key, updated_at, record)
         SELECT $1, k, $2, r FROM unnest($3::text[], $4::text[]) AS t(k, r)
         ON CONFLICT (owner, key) DO UPDATE SET updated_at = EXCLUDED.updated_at, record = EXCLUDED.record`,
        [owner, now, pending.map((p) => p.key), pending.map((p) => JSON.stringify(p.record))],
      );
    });
  }

  async commitWindow(owner: string, keys: string[], records: DecisionRecord[]): Promise<void> {
    await this.db.transaction(async (tx) => {
      await tx.query('DELETE FROM relay_allow_pending WHERE owner = $1 AND key = ANY($2::text[])', [owner, keys]);
      await addToOutbox(tx, records);
    });
  }

  recover(recoverer: string, staleBefore: number, mark: (record: DecisionRecord) => DecisionRecord): Promise<number> {
    return this.db.transaction(async (tx) => {
      // Two replicas recovering at once: the row locks (SKIP LOCKED) give each row to one of them.
      const rows = (
        await tx.query<{ owner: string; key: string; record: string }>(
          `SELECT owner, key, record FROM relay_allow_pending WHERE updated_at < $1 AND owner <> $2
           ORDER BY updated_at, owner, key FOR UPDATE SKIP LOCKED`,
          [staleBefore, recoverer],
        )
      ).rows;
      if (rows.length === 0) return 0;
      await tx.query('DELETE FROM relay_allow_pending WHERE (owner, key) IN (SELECT * FROM unnest($1::text[], $2::text[]))', [
        rows.map((r) => r.owner),
        rows.map((r) => r.key),
      ]);
      await addToOutbox(tx, rows.map((r) => mark(JSON.parse(r.record) as DecisionRecord)));
      return rows.length;
    });
  }
}
