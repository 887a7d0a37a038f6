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
    const entries = await this.store.appendDecisions(records);
    const last = entries.at(-1);
    if (last) this.checkpointer?.noteAppended(last);
    return entries;
  }
}
