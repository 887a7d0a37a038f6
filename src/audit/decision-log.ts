import type { Store } from '../store/store.js';
import type { Checkpointer } from './checkpointer.js';
import type { DecisionEntry, DecisionRecord } from './decision-record.js';

/**
 * The one way decisions enter the log. The store chains and commits them (group
 * commit, so concurrent callers share an fsync); the checkpointer hears about each
 * durable batch so it can sign the head every `checkpoint_every` entries.
 */
export class DecisionLog {
  constructor(
    private readonly store: Store,
    private readonly checkpointer?: Checkpointer,
  ) {}

  /** Appends `records` in order; durable when it resolves (a decision must not be answered before). */
  async record(records: DecisionRecord[]): Promise<DecisionEntry[]> {
    if (records.length === 0) return [];
    return this.noted(await this.store.appendDecisions(records));
  }

  /**
   * For single-use tokens: consumes `key` and logs `ifFirstUse`, or logs `ifReplayed`
   * when the key was already used — one durable write. Resolves to whether it was the first use.
   */
  async recordFirstUse(key: string, expiresAt: number, ifFirstUse: DecisionRecord[], ifReplayed: DecisionRecord[]): Promise<boolean> {
    const { firstUse, entries } = await this.store.consumeOnceAndAppend(key, expiresAt, ifFirstUse, ifReplayed);
    this.noted(entries);
    return firstUse;
  }

  /**
   * Opens an approval request and logs the decision that opened it, in one durable
   * write; false (nothing written) when the job already has a request.
   */
  async recordApprovalRequest(request: Parameters<Store['openApprovalRequest']>[0], records: DecisionRecord[]): Promise<boolean> {
    const entries = await this.store.openApprovalRequest(request, records);
    if (entries === undefined) return false;
    this.noted(entries);
    return true;
  }

  private noted(entries: DecisionEntry[]): DecisionEntry[] {
    const last = entries.at(-1);
    if (last) this.checkpointer?.noteAppended(last);
    return entries;
  }
}
