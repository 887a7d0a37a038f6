import type Database from 'better-sqlite3';
import type { LeaseRecord, LeaseStore } from '../repositories/leases.js';
import type { WriteBatcher } from './write-batcher.js';

/**
 * The `leases` table of the SQLite store. Writes go through the store's WriteBatcher
 * (IMMEDIATE transactions), so the upsert's condition and its write are one step even
 * with several Port processes on the file.
 */
export class SqliteLeases implements LeaseStore {
  private readonly s;

  constructor(
    db: Database.Database,
    private readonly batcher: WriteBatcher,
  ) {
    this.s = {
      // The row is written only when free, lapsed or already the owner's: the compare-and-set.
      acquire: db.prepare(
        `INSERT INTO leases (name, owner, until) VALUES (?, ?, ?)
         ON CONFLICT(name) DO UPDATE SET owner = excluded.owner, until = excluded.until
         WHERE leases.until <= ? OR leases.owner = excluded.owner`,
      ),
      release: db.prepare('DELETE FROM leases WHERE name = ? AND owner = ?'),
      holder: db.prepare('SELECT name, owner, until FROM leases WHERE name = ? AND until > ?'),
    };
  }

  acquire(name: string, owner: string, now: number, ttlMs: number): Promise<boolean> {
    return this.batcher.write(() => this.s.acquire.run(name, owner, now + ttlMs, now).changes === 1);
  }

  async release(name: string, owner: string): Promise<void> {
    await this.batcher.write(() => this.s.release.run(name, owner));
  }

  async holder(name: string, now: number): Promise<LeaseRecord | undefined> {
    return this.s.holder.get(name, now) as LeaseRecord | undefined;
  }
}
