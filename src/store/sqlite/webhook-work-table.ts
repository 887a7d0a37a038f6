import type Database from 'better-sqlite3';
import type { NewWebhookWork, WebhookWorkClaim, WebhookWorkRecord, WebhookWorkStatus, WebhookWorkStore } from '../repositories/webhook-work.js';
import type { WriteBatcher } from './write-batcher.js';

interface Row {
  key: string;
  event: string;
  payload: string;
  status: WebhookWorkStatus;
  attempts: number;
  next_attempt_at: number;
  lease_owner: string | null;
  lease_until: number;
  last_error: string | null;
  created_at: number;
  updated_at: number;
  expires_at: number | null;
}

/**
 * The `webhook_work` table of the SQLite store (src/webhooks): one row per delivery Port
 * acts on, pending until its work is done. Every write method runs synchronously inside
 * the store's write transaction (the caller wraps it in the WriteBatcher, an IMMEDIATE
 * transaction), so a claim's read and its update can't interleave with another
 * process's: that is the compare-and-set that keeps two Ports from working one item.
 */
export class SqliteWebhookWorkTable {
  private readonly s;

  constructor(db: Database.Database) {
    this.s = {
      get: db.prepare('SELECT * FROM webhook_work WHERE key = ?'),
      insert: db.prepare(
        `INSERT INTO webhook_work (key, event, payload, status, attempts, next_attempt_at, lease_owner, lease_until, last_error, created_at, updated_at, expires_at)
         VALUES (?, ?, ?, 'pending', 0, ?, ?, ?, NULL, ?, ?, NULL)
         ON CONFLICT(key) DO UPDATE SET event = excluded.event, payload = excluded.payload, status = 'pending', attempts = 0,
           next_attempt_at = excluded.next_attempt_at, lease_owner = excluded.lease_owner, lease_until = excluded.lease_until,
           last_error = NULL, created_at = excluded.created_at, updated_at = excluded.updated_at, expires_at = NULL`,
      ),
      lease: db.prepare(
        "UPDATE webhook_work SET lease_owner = ?, lease_until = ?, updated_at = ? WHERE key = ? AND status = 'pending' AND lease_until <= ?",
      ),
      anyDue: db.prepare("SELECT 1 FROM webhook_work WHERE status = 'pending' AND next_attempt_at <= ? AND lease_until <= ? LIMIT 1"),
      due: db.prepare(
        "SELECT * FROM webhook_work WHERE status = 'pending' AND next_attempt_at <= ? AND lease_until <= ? ORDER BY next_attempt_at LIMIT ?",
      ),
      finish: db.prepare(
        "UPDATE webhook_work SET status = ?, lease_owner = NULL, lease_until = 0, updated_at = ?, expires_at = ? WHERE key = ? AND status = 'pending'",
      ),
      release: db.prepare(
        `UPDATE webhook_work SET attempts = attempts + 1, next_attempt_at = ?, last_error = ?, lease_owner = NULL, lease_until = 0, updated_at = ?
         WHERE key = ? AND status = 'pending' AND lease_owner = ?`,
      ),
      renew: db.prepare(
        "UPDATE webhook_work SET lease_until = ?, updated_at = ? WHERE key = ? AND status = 'pending' AND lease_owner = ? AND lease_until > ?",
      ),
      delete: db.prepare('DELETE FROM webhook_work WHERE key = ?'),
      all: db.prepare('SELECT * FROM webhook_work ORDER BY created_at'),
      byStatus: db.prepare('SELECT * FROM webhook_work WHERE status = ? ORDER BY created_at'),
      purge: db.prepare("DELETE FROM webhook_work WHERE status != 'pending' AND expires_at <= ?"),
    };
  }

  claim(work: NewWebhookWork, owner: string, now: number, leaseUntil: number): WebhookWorkClaim {
    const row = this.s.get.get(work.key) as Row | undefined;
    // A finished row past its dedupe period is as good as gone (purged later).
    if (row === undefined || (row.status !== 'pending' && row.expires_at !== null && row.expires_at <= now)) {
      this.s.insert.run(work.key, work.event, work.payload, now, owner, leaseUntil, work.createdAt, now);
      return { outcome: 'claimed', fresh: true, work: toRecord(this.s.get.get(work.key) as Row) };
    }
    if (row.status !== 'pending') return { outcome: 'finished', status: row.status };
    if (this.s.lease.run(owner, leaseUntil, now, work.key, now).changes === 0) return { outcome: 'busy' };
    return { outcome: 'claimed', fresh: false, work: toRecord(this.s.get.get(work.key) as Row) };
  }

  /** Whether any pending row is due and free at `now` (a read: most reconciler passes find none). */
  anyDue(now: number): boolean {
    return this.s.anyDue.get(now, now) !== undefined;
  }

  claimDue(owner: string, now: number, leaseUntil: number, limit: number): WebhookWorkRecord[] {
    const claimed: WebhookWorkRecord[] = [];
    for (const row of this.s.due.all(now, now, limit) as Row[]) {
      if (this.s.lease.run(owner, leaseUntil, now, row.key, now).changes === 1) {
        claimed.push(toRecord({ ...row, lease_owner: owner, lease_until: leaseUntil, updated_at: now }));
      }
    }
    return claimed;
  }

  finish(key: string, outcome: 'done' | 'dropped', now: number, keepUntil: number): boolean {
    return this.s.finish.run(outcome, now, keepUntil, key).changes === 1;
  }

  release(key: string, owner: string, retry: { nextAttemptAt: number; lastError: string; now: number }): boolean {
    return this.s.release.run(retry.nextAttemptAt, retry.lastError, retry.now, key, owner).changes === 1;
  }

  renew(key: string, owner: string, now: number, leaseUntil: number): boolean {
    return this.s.renew.run(leaseUntil, now, key, owner, now).changes === 1;
  }

  delete(key: string): void {
    this.s.delete.run(key);
  }

  get(key: string): WebhookWorkRecord | undefined {
    const row = this.s.get.get(key) as Row | undefined;
    return row && toRecord(row);
  }

  list(status?: WebhookWorkStatus): WebhookWorkRecord[] {
    const rows = (status === undefined ? this.s.all.all() : this.s.byStatus.all(status)) as Row[];
    return rows.map(toRecord);
  }

  purge(now: number): void {
    this.s.purge.run(now);
  }
}

function toRecord(r: Row): WebhookWorkRecord {
  return {
    key: r.key,
    event: r.event,
    payload: r.payload,
    status: r.status,
    attempts: r.attempts,
    nextAttemptAt: r.next_attempt_at,
    leaseOwner: r.lease_owner,
    leaseUntil: r.lease_until,
    lastError: r.last_error,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    expiresAt: r.expires_at,
  };
}

/** The WebhookWorkStore on SQLite: writes run in the batch transaction, reads directly. */
export class SqliteWebhookWork implements WebhookWorkStore {
  constructor(
    private readonly table: SqliteWebhookWorkTable,
    private readonly batcher: WriteBatcher,
  ) {}

  claim(work: NewWebhookWork, owner: string, now: number, leaseUntil: number): Promise<WebhookWorkClaim> {
    return this.batcher.write(() => this.table.claim(work, owner, now, leaseUntil));
  }

  claimDue(owner: string, now: number, leaseUntil: number, limit: number): Promise<WebhookWorkRecord[]> {
    // Most passes find nothing due: answer those from a read, with no write transaction.
    if (!this.table.anyDue(now)) return Promise.resolve([]);
    return this.batcher.write(() => this.table.claimDue(owner, now, leaseUntil, limit));
  }

  finish(key: string, outcome: 'done' | 'dropped', now: number, keepUntil: number): Promise<boolean> {
    return this.batcher.write(() => this.table.finish(key, outcome, now, keepUntil));
  }

  release(key: string, owner: string, retry: { nextAttemptAt: number; lastError: string; now: number }): Promise<boolean> {
    return this.batcher.write(() => this.table.release(key, owner, retry));
  }

  renew(key: string, owner: string, now: number, leaseUntil: number): Promise<boolean> {
    return this.batcher.write(() => this.table.renew(key, owner, now, leaseUntil));
  }

  delete(key: string): Promise<void> {
    return this.batcher.write(() => this.table.delete(key));
  }

  async get(key: string): Promise<WebhookWorkRecord | undefined> {
    return this.table.get(key);
  }

  async list(status?: WebhookWorkStatus): Promise<WebhookWorkRecord[]> {
    return this.table.list(status);
  }
}
