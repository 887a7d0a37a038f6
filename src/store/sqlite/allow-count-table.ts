import type Database from 'better-sqlite3';
import type { DecisionRecord } from '../records/decisions.js';
import type { AllowCountStore, PendingAllowRecord } from '../repositories/allow-counts.js';
import type { SqliteDecisionLog } from './decision-log-tables.js';
import type { WriteBatcher } from './write-batcher.js';

/** Relay allow counts on SQLite (`relay_allow_pending`). */
export class SqliteAllowCounts implements AllowCountStore {
  private readonly s;

  constructor(
    db: Database.Database,
    private readonly batcher: WriteBatcher,
    private readonly log: SqliteDecisionLog,
  ) {
    this.s = {
      save: db.prepare(
        'INSERT INTO relay_allow_pending (owner, key, updated_at, record) VALUES (?, ?, ?, ?) ON CONFLICT(owner, key) DO UPDATE SET updated_at = excluded.updated_at, record = excluded.record',
      ),
      touch: db.prepare('UPDATE relay_allow_pending SET updated_at = ? WHERE owner = ?'),
      delete: db.prepare('DELETE FROM relay_allow_pending WHERE owner = ? AND key = ?'),
      stale: db.prepare('SELECT owner, key, record FROM relay_allow_pending WHERE updated_at < ? AND owner != ? ORDER BY updated_at'),
    };
  }

  save(owner: string, pending: PendingAllowRecord[], now: number): Promise<void> {
    return this.batcher.write(() => {
      this.s.touch.run(now, owner);
      for (const p of pending) this.s.save.run(owner, p.key, now, JSON.stringify(p.record));
    });
  }

  async commitWindow(owner: string, keys: string[], records: DecisionRecord[]): Promise<void> {
    await this.log.logged(() => {
      for (const key of keys) this.s.delete.run(owner, key);
      return this.log.appendInTransaction(records);
    });
  }

  async recover(recoverer: string, staleBefore: number, mark: (record: DecisionRecord) => DecisionRecord): Promise<number> {
    const entries = await this.log.logged(() => {
      const rows = this.s.stale.all(staleBefore, recoverer) as { owner: string; key: string; record: string }[];
      for (const r of rows) this.s.delete.run(r.owner, r.key);
      return this.log.appendInTransaction(rows.map((r) => mark(JSON.parse(r.record) as DecisionRecord)));
    });
    return entries.length;
  }
}
