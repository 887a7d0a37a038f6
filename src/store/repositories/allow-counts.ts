import type { DecisionRecord } from '../records/decisions.js';

/** One aggregation bucket of allowed relay requests, as it would be logged now. */
export interface PendingAllowRecord {
  key: string;
  record: DecisionRecord;
}

/**
 * Relay allow counts (src/relay/allow-log.ts): each process's running counts per
 * aggregation bucket, saved every second, so a crash loses at most a second of them.
 */
export interface AllowCountStore {
  /** Upserts `owner`'s pending counts and marks all its rows as alive at `now`. */
  save(owner: string, pending: PendingAllowRecord[], now: number): Promise<void>;
  /** In one transaction: logs `records` and deletes `owner`'s pending rows for `keys`. */
  commitWindow(owner: string, keys: string[], records: DecisionRecord[]): Promise<void>;
  /**
   * In one transaction: logs the pending records of owners other than `recoverer` not
   * seen since `staleBefore` (a process that died), each passed through `mark`, and
   * deletes them; resolves to how many. Never the recoverer's own rows: a live process
   * whose saves failed for a while (a full disk) still holds those counts and logs them itself.
   */
  recover(recoverer: string, staleBefore: number, mark: (record: DecisionRecord) => DecisionRecord): Promise<number>;
}
