import type { ApprovalRequestRecord } from '../store/records/approvals.js';
import type { DecisionRecord } from '../store/records/decisions.js';
import type { Store } from '../store/store.js';

/**
 * The one way decisions enter the log. Each write is one durable store transaction —
 * with the replay key or approval request it decides about, when there is one — and
 * resolves before the decision may be answered. The store numbers and chains what it
 * commits (at once on SQLite; in batches by the sealer on PostgreSQL), and the
 * checkpointer hears of sealed entries from the store (DecisionLogStore.onSealed).
 */
export class DecisionLog {
  constructor(private readonly store: Pick<Store, 'decisions' | 'replay' | 'approvals'>) {}

  /** Appends `records` in order; durable when it resolves (a decision must not be answered before). */
  async record(records: DecisionRecord[]): Promise<void> {
    if (records.length === 0) return;
    await this.store.decisions.append(records);
  }

  /**
   * For single-use tokens: consumes `key` and logs `ifFirstUse`, or logs what `ifReplayed`
   * makes when the key was already used — one durable write. Resolves to whether it was the first use.
   */
  recordFirstUse(key: string, expiresAt: number, ifFirstUse: DecisionRecord[], ifReplayed: () => DecisionRecord[]): Promise<boolean> {
    return this.store.replay.consumeAndLog(key, expiresAt, ifFirstUse, ifReplayed);
  }

  /**
   * Opens an approval request and logs the decision that opened it, in one durable
   * write; false (nothing written) when the job already has a request.
   */
  recordApprovalRequest(request: ApprovalRequestRecord, records: DecisionRecord[]): Promise<boolean> {
    return this.store.approvals.open(request, records);
  }
}
