import type { ApprovalRequestRecord, ApprovalStatus } from '../records/approvals.js';
import type { DecisionRecord } from '../records/decisions.js';
import type { ApprovalStore } from '../repositories/approvals.js';
import { addToOutbox } from './decision-outbox.js';
import type { PgDatabase, Queryable } from './pg-database.js';

/**
 * The `approval_requests` table on PostgreSQL: the record as JSON, with the columns the
 * store looks up by (`job_id`, unique: one request per blocked job) or orders by beside it.
 *
 * Changes are read-modify-write under a row lock: `SELECT … FOR UPDATE` makes a second
 * replica changing the same request wait for the first to commit, and then hands it the
 * row as that commit left it (READ COMMITTED re-reads a locked row once its locker is
 * done, https://www.postgresql.org/docs/current/transaction-iso.html#XACT-READ-COMMITTED).
 * So concurrent approvals apply one after the other, none is lost, and only one of them
 * finds the request still pending for the change that closes it.
 */
export class PostgresApprovals implements ApprovalStore {
  constructor(private readonly db: PgDatabase) {}

  open(request: ApprovalRequestRecord, records: DecisionRecord[]): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      // A concurrent insert of the same job waits on the unique index until the first
      // commits, then does nothing: exactly one replica opens the request
      // (https://www.postgresql.org/docs/current/sql-insert.html#SQL-ON-CONFLICT).
      const inserted = await tx.query(
        `INSERT INTO approval_requests (id, job_id, status, expires_at, record) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (job_id) DO NOTHING`,
        [request.id, request.jobId, request.status, request.expiresAt, JSON.stringify(request)],
      );
      if (inserted.rowCount !== 1) return false;
      await addToOutbox(tx, records);
      return true;
    });
  }

  async get(id: string): Promise<ApprovalRequestRecord | undefined> {
    return parse((await this.db.query<{ record: string }>('SELECT record FROM approval_requests WHERE id = $1', [id])).rows[0]);
  }

  async getByJob(jobId: string): Promise<ApprovalRequestRecord | undefined> {
    return parse((await this.db.query<{ record: string }>('SELECT record FROM approval_requests WHERE job_id = $1', [jobId])).rows[0]);
  }

  async list(filter: { status?: ApprovalStatus; expiresBefore?: number }): Promise<ApprovalRequestRecord[]> {
    const where: string[] = [];
    const values: unknown[] = [];
    if (filter.status !== undefined) {
      values.push(filter.status);
      where.push(`status = $${values.length}`);
    }
    if (filter.expiresBefore !== undefined) {
      values.push(filter.expiresBefore);
      where.push(`expires_at < $${values.length}`);
    }
    // `id` breaks ties so every replica lists requests expiring in the same millisecond alike.
    const r = await this.db.query<{ record: string }>(
      `SELECT record FROM approval_requests${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY expires_at, id`,
      values,
    );
    return r.rows.map((row) => JSON.parse(row.record) as ApprovalRequestRecord);
  }

  updatePending(id: string, change: (r: ApprovalRequestRecord) => ApprovalRequestRecord): Promise<ApprovalRequestRecord | undefined> {
    return this.db.transaction(async (tx) => {
      const current = await locked(tx, id);
      if (current === undefined || current.status !== 'pending') return undefined;
      const next = change(current);
      await save(tx, id, next);
      return next;
    });
  }

  async setStatus(id: string, status: ApprovalStatus, at: number): Promise<void> {
    await this.db.transaction(async (tx) => {
      const current = await locked(tx, id);
      if (current !== undefined) await save(tx, id, { ...current, status, closedAt: at });
    });
  }
}

/** The request, locked against other writers until this transaction ends. */
async function locked(tx: Queryable, id: string): Promise<ApprovalRequestRecord | undefined> {
  return parse((await tx.query<{ record: string }>('SELECT record FROM approval_requests WHERE id = $1 FOR UPDATE', [id])).rows[0]);
}

async function save(tx: Queryable, id: string, r: ApprovalRequestRecord): Promise<void> {
  await tx.query('UPDATE approval_requests SET status = $1, expires_at = $2, record = $3 WHERE id = $4', [r.status, r.expiresAt, JSON.stringify(r), id]);
}

function parse(row: { record: string } | undefined): ApprovalRequestRecord | undefined {
  return row && (JSON.parse(row.record) as ApprovalRequestRecord);
}
