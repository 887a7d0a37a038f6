import type { Checkpoint, DecisionEntry, DecisionRecord } from '../records/decisions.js';

/**
 * The decision log (src/audit): hash-chained, append-only. A write resolves once its
 * records are durable; they are *sealed* — numbered and chained — either in the same
 * transaction (SQLite: one writer) or shortly after by the one replica holding the sealer
 * lease (PostgreSQL: replicas commit decisions to an outbox without sharing a lock, and
 * the sealer chains them in batches). Readers see sealed entries only.
 */
export interface DecisionLogStore {
  /** Appends records in order; durable (not necessarily sealed) when it resolves. */
  append(records: DecisionRecord[]): Promise<void>;
  /** Sealed entries with seq > afterSeq, in order, at most `limit`. */
  read(afterSeq: number, limit: number): Promise<DecisionEntry[]>;
  /** The newest sealed entry. */
  last(): Promise<DecisionEntry | undefined>;
  /** Durable records not sealed yet (always 0 where appends seal in their transaction). */
  unsealed(): Promise<number>;
  /**
   * Seals what is durable now, in batches, and resolves to how many it sealed. Safe to
   * call from several processes at once (one seals, the others find nothing to do).
   */
  seal(): Promise<number>;
  /** Calls `listener` with the newest entry after each batch this process sealed; returns an unsubscribe. */
  onSealed(listener: (head: DecisionEntry) => void): () => void;
  /**
   * Compare-and-set: stores `checkpoint` only while the newest stored checkpoint is
   * number `checkpoint.num - 1` (none, for number 1), in one transaction. False when
   * another writer got there first: re-read and move on.
   */
  appendCheckpoint(checkpoint: Checkpoint): Promise<boolean>;
  /** Every checkpoint, by number. */
  listCheckpoints(): Promise<Checkpoint[]>;
  /** The newest checkpoint (highest number). */
  lastCheckpoint(): Promise<Checkpoint | undefined>;
}
