import type Database from 'better-sqlite3';
import type { ApprovalRequestRecord, ApprovalStatus } from '../records/approvals.js';
import type { DecisionRecord } from '../records/decisions.js';
import type { ApprovalStore } from '../repositories/approvals.js';
import type { SqliteDecisionLog } from './decision-log-tables.js';
import type { WriteBatcher } from './write-batcher.js';

/** Approval requests on SQLite (`approval_requests`). */
export class SqliteApprovals implements ApprovalStore {
  private readonly s;

  constructor(
    db: Database.Database,
    private readonly batcher: WriteBatcher,
    private readonly log: SqliteDecisionLog,
  ) {
    this.s = {
      insert: db.prepare('INSERT INTO approval_requests (id, job_id, status, expires_at, record) VALUES (?, ?, ?, ?, ?) ON CONFLICT(job_id) DO NOTHING'),
      byId: db.prepare('SELECT record FROM approval_requests WHERE id = ?'),
      byJob: db.prepare('SELECT record FROM approval_requests WHERE job_id = ?'),
      all: db.prepare('SELECT record FROM approval_requests ORDER BY expires_at'),
      byStatus: db.prepare('SELECT record FROM approval_requests WHERE status = ? AND expires_at < ? ORDER BY expires_at'),
      update: db.prepare('UPDATE approval_requests SET status = ?, expires_at = ?, record = ? WHERE id = ?'),
    };
  }

  async open(r: ApprovalRequestRecord, records: DecisionRecord[]): Promise<boolean> {
    const entries = await this.log.logged(
      () => (this.s.insert.run(r.id, r.jobId, r.status, r.expiresAt, JSON.stringify(r)).changes === 1 ? this.log.appendInTransaction(records) : undefined),
      (e) => e ?? [],
    );
    return entries !== undefined;
  }

  async get(id: string): Promise<ApprovalRequestRecord | undefined> {
    return parse(this.s.byId.get(id));
  }

  async getByJob(jobId: string): Promise<ApprovalRequestRecord | undefined> {
    return parse(this.s.byJob.get(jobId));
  }

  async list(filter: { status?: ApprovalStatus; expiresBefore?: number }): Promise<ApprovalRequestRecord[]> {
    const rows = filter.status === undefined ? this.s.all.all() : this.s.byStatus.all(filter.status, filter.expiresBefore ?? Number.MAX_SAFE_INTEGER);
    return rows.map((r) => parse(r)!).filter((r) => filter.expiresBefore === undefined || r.expiresAt < filter.expiresBefore);
  }

  updatePending(id: string, change: (r: ApprovalRequestRecord) => ApprovalRequestRecord): Promise<ApprovalRequestRecord | undefined> {
    return this.batcher.write(() => {
      const current = parse(this.s.byId.get(id));
      if (!current || current.status !== 'pending') return undefined;
      const next = change(current);
      this.s.update.run(next.status, next.expiresAt, JSON.stringify(next), id);
      return next;
    });
  }

  setStatus(id: string, status: ApprovalStatus, at: number): Promise<void> {
    return this.batcher.write(() => {
      const current = parse(this.s.byId.get(id));
      if (!current) return;
      const next = { ...current, status, closedAt: at };
      this.s.update.run(status, next.expiresAt, JSON.stringify(next), id);
    });
  }
}

function parse(row: unknown): ApprovalRequestRecord | undefined {
  return row === undefined ? undefined : (JSON.parse((row as { record: string }).record) as ApprovalRequestRecord);
}
