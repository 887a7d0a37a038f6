import type { NewWebhookWork, WebhookWorkClaim, WebhookWorkRecord, WebhookWorkStatus, WebhookWorkStore } from '../repositories/webhook-work.js';
import { num, type PgDatabase, type Queryable } from './pg-database.js';

interface Row {
  key: string;
  event: string;
  payload: string;
  status: WebhookWorkStatus;
  attempts: number;
  next_attempt_at: string;
  lease_owner: string | null;
  lease_until: string;
  last_error: string | null;
  created_at: string;
  updated_at: string;
  expires_at: string | null;
}

/**
 * The `webhook_work` table on PostgreSQL (src/webhooks): one row per delivery Port acts
 * on, pending until its work is done, leased to one replica at a time.
 *
 * Every lease change is a compare-and-set on the row: `claim` reads the row `FOR UPDATE`
 * (a second replica claiming the same key waits, then sees the first one's lease), the
 * single-row updates carry their condition in the WHERE clause (PostgreSQL re-checks it
 * on the newest row version after waiting for a concurrent writer,
 * https://www.postgresql.org/docs/current/transaction-iso.html#XACT-READ-COMMITTED), and
 * `claimDue` locks its rows with `FOR UPDATE SKIP LOCKED`, so replicas claiming at once
 * take disjoint rows instead of queueing behind each other
 * (https://www.postgresql.org/docs/current/sql-select.html#SQL-FOR-UPDATE-SHARE).
 */
export class PostgresWebhookWork implements WebhookWorkStore {
  constructor(private readonly db: PgDatabase) {}

  claim(work: NewWebhookWork, owner: string, now: number, leaseUntil: number): Promise<WebhookWorkClaim> {
    return this.db.transaction(async (tx) => {
      for (;;) {
        const row = (await tx.query<Row>('SELECT * FROM webhook_work WHERE key = $1 FOR UPDATE', [work.key])).rows[0];
        if (row === undefined) {
          // A replica inserting the same key at once makes this wait, then insert nothing:
          // read its row (committed now) and answer from that.
          const inserted = await tx.query<Row>(
            `INSERT INTO webhook_work (key, event, payload, status, attempts, next_attempt_at, lease_owner, lease_until, last_error, created_at, updated_at, expires_at)
             VALUES ($1, $2, $3, 'pending', 0, $4, $5, $6, NULL, $7, $4, NULL)
             ON CONFLICT (key) DO NOTHING RETURNING *`,
            [work.key, work.event, work.payload, now, owner, leaseUntil, work.createdAt],
          );
          const fresh = inserted.rows[0];
          if (fresh !== undefined) return { outcome: 'claimed', fresh: true, work: toRecord(fresh) };
          continue;
        }
        // A finished row past its dedupe period is as good as gone (purged later): new work.
        if (row.status !== 'pending' && row.expires_at !== null && num(row.expires_at) <= now) {
          const renewed = await tx.query<Row>(
            `UPDATE webhook_work SET event = $2, payload = $3, status = 'pending', attempts = 0, next_attempt_at = $4, lease_owner = $5,
               lease_until = $6, last_error = NULL, created_at = $7, updated_at = $4, expires_at = NULL
             WHERE key = $1 RETURNING *`,
            [work.key, work.event, work.payload, now, owner, leaseUntil, work.createdAt],
          );
          return { outcome: 'claimed', fresh: true, work: toRecord(renewed.rows[0]!) };
        }
        if (row.status !== 'pending') return { outcome: 'finished', status: row.status };
        if (num(row.lease_until) > now) return { outcome: 'busy' };
        const leased = await tx.query<Row>('UPDATE webhook_work SET lease_owner = $2, lease_until = $3, updated_at = $4 WHERE key = $1 RETURNING *', [
          work.key,
          owner,
          leaseUntil,
          now,
        ]);
        return { outcome: 'claimed', fresh: false, work: toRecord(leased.rows[0]!) };
      }
    });
  }

  async claimDue(owner: string, now: number, leaseUntil: number, limit: number): Promise<WebhookWorkRecord[]> {
    // MATERIALIZED: the locking SELECT runs exactly once, so the UPDATE leases exactly
    // the rows it locked. A row another replica leased and committed meanwhile is
    // re-checked on its new version and drops out (its lease is live now).
    const r = await this.db.write<Row>(
      `WITH due AS MATERIALIZED (
         SELECT key FROM webhook_work
         WHERE status = 'pending' AND next_attempt_at <= $2 AND lease_until <= $2
         ORDER BY next_attempt_at, key
         LIMIT $4
         FOR UPDATE SKIP LOCKED
       )
       UPDATE webhook_work w SET lease_owner = $1, lease_until = $3, updated_at = $2
       FROM due WHERE w.key = due.key
       RETURNING w.*`,
      [owner, now, leaseUntil, limit],
    );
    // RETURNING keeps no order: due first, as the SELECT chose them.
    return r.rows.map(toRecord).sort((x, y) => x.nextAttemptAt - y.nextAttemptAt || (x.key < y.key ? -1 : x.key > y.key ? 1 : 0));
  }

  async finish(key: string, outcome: 'done' | 'dropped', now: number, keepUntil: number): Promise<boolean> {
    const r = await this.db.write(
      "UPDATE webhook_work SET status = $2, lease_owner = NULL, lease_until = 0, updated_at = $3, expires_at = $4 WHERE key = $1 AND status = 'pending'",
      [key, outcome, now, keepUntil],
    );
    return r.rowCount === 1;
  }

  async release(key: string, owner: string, retry: { nextAttemptAt: number; lastError: string; now: number }): Promise<boolean> {
    const r = await this.db.write(
      `UPDATE webhook_work SET attempts = attempts + 1, next_attempt_at = $3, last_error = $4, lease_owner = NULL, lease_until = 0, updated_at = $5
       WHERE key = $1 AND status = 'pending' AND lease_owner = $2`,
      [key, owner, retry.nextAttemptAt, retry.lastError, retry.now],
    );
    return r.rowCount === 1;
  }

  async renew(key: string, owner: string, now: number, leaseUntil: number): Promise<boolean> {
    const r = await this.db.write(
      "UPDATE webhook_work SET lease_until = $3, updated_at = $4 WHERE key = $1 AND status = 'pending' AND lease_owner = $2 AND lease_until > $4",
      [key, owner, leaseUntil, now],
    );
    return r.rowCount === 1;
  }

  async delete(key: string): Promise<void> {
    await this.db.write('DELETE FROM webhook_work WHERE key = $1', [key]);
  }

  async get(key: string): Promise<WebhookWorkRecord | undefined> {
    const row = (await this.db.query<Row>('SELECT * FROM webhook_work WHERE key = $1', [key])).rows[0];
    return row && toRecord(row);
  }

  async list(status?: WebhookWorkStatus): Promise<WebhookWorkRecord[]> {
    // `key` breaks ties so every replica lists work received in the same millisecond alike.
    const r =
      status === undefined
        ? await this.db.query<Row>('SELECT * FROM webhook_work ORDER BY created_at, key')
        : await this.db.query<Row>('SELECT * FROM webhook_work WHERE status = $1 ORDER BY created_at, key', [status]);
    return r.rows.map(toRecord);
  }

  /**
   * Deletes finished rows whose dedupe period ended by `now`: on `tx` inside the store's
   * purge transaction, else as one autocommitted write. Pending rows are never purged.
   */
  async purge(now: number, tx?: Queryable): Promise<void> {
    const sql = "DELETE FROM webhook_work WHERE status <> 'pending' AND expires_at <= $1";
    await (tx ? tx.query(sql, [now]) : this.db.write(sql, [now]));
  }
}

function toRecord(r: Row): WebhookWorkRecord {
  return {
    key: r.key,
    event: r.event,
    payload: r.payload,
    status: r.status,
    attempts: r.attempts,
    nextAttemptAt: num(r.next_attempt_at),
    leaseOwner: r.lease_owner,
    leaseUntil: num(r.lease_until),
    lastError: r.last_error,
    createdAt: num(r.created_at),
    updatedAt: num(r.updated_at),
    expiresAt: r.expires_at === null ? null : num(r.expires_at),
  };
}
