import type { ApprovalRequestRecord, ApprovalStatus } from '../records/approvals.js';
import type { DecisionRecord } from '../records/decisions.js';

/** Approval requests for block steps (src/approvals). */
export interface ApprovalStore {
  /**
   * In one transaction: creates the request and logs `records` (the decision that opened
   * it); false, writing nothing, when its job already has one (webhooks repeat). One
   * transaction, so a retried webhook never finds a request whose log entries (and
   * notification) were lost to a failed second write.
   */
  open(request: ApprovalRequestRecord, records: DecisionRecord[]): Promise<boolean>;
  get(id: string): Promise<ApprovalRequestRecord | undefined>;
  getByJob(jobId: string): Promise<ApprovalRequestRecord | undefined>;
  /** Requests (by expiry) with this status, expiring before `expiresBefore` when given. */
  list(filter: { status?: ApprovalStatus; expiresBefore?: number }): Promise<ApprovalRequestRecord[]>;
  /**
   * Compare-and-set: applies `change` only while the request's status is `pending`, in
   * one transaction, and returns the updated request (undefined when it was no longer
   * pending — a concurrent approval or expiry, maybe on another replica, won).
   */
  updatePending(id: string, change: (r: ApprovalRequestRecord) => ApprovalRequestRecord): Promise<ApprovalRequestRecord | undefined>;
  /** Sets the status of a request whatever it was (after the unblock call). */
  setStatus(id: string, status: ApprovalStatus, at: number): Promise<void>;
}
