import type Database from 'better-sqlite3';
import type { SessionRecord, UserRecord } from '../records/approvals.js';
import type { SessionStore, UserStore } from '../repositories/users.js';
import type { SqliteScimTables } from './scim-tables.js';
import type { SqliteChangeFeed } from './change-feed.js';
import type { WriteBatcher } from './write-batcher.js';

/** People on SQLite (`users`); `update` shares the SCIM tables' derivation, in one transaction. */
export class SqliteUsers implements UserStore {
  private readonly s;

  constructor(
    db: Database.Database,
    private readonly batcher: WriteBatcher,
    private readonly scim: SqliteScimTables,
    private readonly feed: SqliteChangeFeed,
  ) {
    this.s = {
      upsert: db.prepare('INSERT INTO users (email, record) VALUES (?, ?) ON CONFLICT(email) DO UPDATE SET record = excluded.record'),
      get: db.prepare('SELECT record FROM users WHERE email = ?'),
    };
  }

  async upsert(user: UserRecord): Promise<void> {
    const email = user.email.toLowerCase();
    await this.batcher.write(() => {
      this.s.upsert.run(email, JSON.stringify({ ...user, email }));
      this.feed.record('users', [email]);
    });
    this.feed.catchUpNow();
  }

  async get(email: string): Promise<UserRecord | undefined> {
    const row = this.s.get.get(email.toLowerCase()) as { record: string } | undefined;
    return row && (JSON.parse(row.record) as UserRecord);
  }

  async update(email: string, change: (current: UserRecord | undefined) => UserRecord | undefined): Promise<UserRecord | undefined> {
    const after = await this.batcher.write(() => {
      const updated = this.scim.updatePortUser(email, change);
      this.feed.record('users', [email.toLowerCase()]);
      return updated;
    });
    this.feed.catchUpNow();
    return after;
  }
}

/** Sessions on SQLite (`sessions`). */
export class SqliteSessions implements SessionStore {
  private readonly s;

  constructor(
    db: Database.Database,
    private readonly batcher: WriteBatcher,
  ) {
    this.s = {
      insert: db.prepare('INSERT INTO sessions (id_hash, email, expires_at, record) VALUES (?, ?, ?, ?)'),
      get: db.prepare('SELECT record FROM sessions WHERE id_hash = ? AND expires_at > ?'),
      delete: db.prepare('DELETE FROM sessions WHERE id_hash = ?'),
      deleteAllOf: db.prepare('DELETE FROM sessions WHERE email = ?'),
    };
  }

  create(s: SessionRecord): Promise<void> {
    return this.batcher.write(() => {
      this.s.insert.run(s.idHash, s.email.toLowerCase(), s.expiresAt, JSON.stringify({ ...s, email: s.email.toLowerCase() }));
    });
  }

  async get(idHash: string): Promise<SessionRecord | undefined> {
    const row = this.s.get.get(idHash, Date.now()) as { record: string } | undefined;
    return row && (JSON.parse(row.record) as SessionRecord);
  }

  delete(idHash: string): Promise<void> {
    return this.batcher.write(() => {
      this.s.delete.run(idHash);
    });
  }

  deleteAllOf(email: string): Promise<number> {
    return this.batcher.write(() => this.s.deleteAllOf.run(email.toLowerCase()).changes);
  }
}
