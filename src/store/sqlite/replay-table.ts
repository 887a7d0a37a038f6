import type Database from 'better-sqlite3';
import type { DecisionRecord } from '../records/decisions.js';
import type { ReplayStore } from '../repositories/replay.js';
import type { SqliteDecisionLog } from './decision-log-tables.js';
import type { WriteBatcher } from './write-batcher.js';

/** Single-use keys on SQLite (`replay_cache`). */
export class SqliteReplay implements ReplayStore {
  private readonly consumeStmt;

  constructor(
    db: Database.Database,
    private readonly batcher: WriteBatcher,
    private readonly log: SqliteDecisionLog,
  ) {
    this.consumeStmt = db.prepare(
      // An expired row for the same key may be reused; a live one may not.
      `INSERT INTO replay_cache (key, expires_at) VALUES (?, ?)
       ON CONFLICT(key) DO UPDATE SET expires_at = excluded.expires_at WHERE replay_cache.expires_at <= ?`,
    );
  }

  consume(key: string, expiresAt: number): Promise<boolean> {
    return this.batcher.write(() => this.consumeNow(key, expiresAt));
  }

  async consumeAndLog(key: string, expiresAt: number, ifFirstUse: DecisionRecord[], ifReplayed: () => DecisionRecord[]): Promise<boolean> {
    const { firstUse } = await this.log.logged(
      () => {
        const firstUse = this.consumeNow(key, expiresAt);
        return { firstUse, entries: this.log.appendInTransaction(firstUse ? ifFirstUse : ifReplayed()) };
      },
      (r) => r.entries,
    );
    return firstUse;
  }

  private consumeNow(key: string, expiresAt: number): boolean {
    return this.consumeStmt.run(key, expiresAt, Date.now()).changes === 1;
  }
}
