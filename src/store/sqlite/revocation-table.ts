import type Database from 'better-sqlite3';
import type { RevocationRecord, RevocationStore } from '../repositories/revocations.js';
import { revocationFromRow, type RevocationRow } from '../revocation-rows.js';
import type { SqliteChangeFeed } from './change-feed.js';
import type { WriteBatcher } from './write-batcher.js';

/** The revocation list on SQLite (`revocations`), one row per revocation or lift. */
export class SqliteRevocations implements RevocationStore {
  private readonly s;

  constructor(
    db: Database.Database,
    private readonly batcher: WriteBatcher,
    private readonly feed: SqliteChangeFeed,
  ) {
    this.s = {
      add: db.prepare(
        `INSERT INTO revocations (id, kind, scope, target, origin, revoked_at, expires_at, reason, subject) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT(id) DO UPDATE SET revoked_at = max(revoked_at, excluded.revoked_at), expires_at = max(expires_at, excluded.expires_at),
           reason = CASE WHEN excluded.revoked_at >= revoked_at THEN excluded.reason ELSE reason END`,
      ),
      active: db.prepare('SELECT * FROM revocations WHERE expires_at > ?'),
      byId: db.prepare('SELECT * FROM revocations WHERE id = ?'),
    };
  }

  async add(r: RevocationRecord): Promise<void> {
    await this.batcher.write(() => {
      this.s.add.run(r.id, r.kind, r.scope, r.target, r.origin, r.revokedAt, r.expiresAt, r.reason, r.subject ?? null);
      this.feed.record('revocations', [r.id]);
    });
    this.feed.catchUpNow();
  }

  async listActive(now: number): Promise<RevocationRecord[]> {
    return (this.s.active.all(now) as RevocationRow[]).map(revocationFromRow);
  }

  async byIds(ids: readonly string[]): Promise<RevocationRecord[]> {
    return ids.flatMap((id) => {
      const row = this.s.byId.get(id) as RevocationRow | undefined;
      return row ? [revocationFromRow(row)] : [];
    });
  }
}
