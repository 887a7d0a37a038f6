import type Database from 'better-sqlite3';
import { canonicalJson } from '../canonical-json.js';
import { entryHashOfCanonical, GENESIS_HASH } from '../hash-chain.js';
import type { Checkpoint, DecisionEntry, DecisionRecord } from '../records/decisions.js';
import type { DecisionLogStore } from '../repositories/decision-log.js';
import type { WriteBatcher } from './write-batcher.js';

interface DecisionRow {
  seq: number;
  record: string;
  prev_hash: string;
  hash: string;
}

interface CheckpointRow {
  num: number;
  seq: number;
  hash: string;
  time: string;
  kid: string;
  jws: string;
  prev: string | null;
}

/**
 * The decision log on SQLite: `decisions` and `checkpoints`. SQLite has one writer at a
 * time, so records are numbered and chained in the very transaction that commits them
 * (sealed at once); other repositories that log with their own write (replay, approvals,
 * allow counts) call `appendInTransaction` inside the same batch transaction.
 */
export class SqliteDecisionLog implements DecisionLogStore {
  private readonly s;
  private readonly listeners = new Set<(head: DecisionEntry) => void>();

  constructor(
    db: Database.Database,
    private readonly batcher: WriteBatcher,
  ) {
    this.s = {
      insert: db.prepare('INSERT INTO decisions (seq, time, action, decision, principal, record, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)'),
      read: db.prepare('SELECT seq, record, prev_hash, hash FROM decisions WHERE seq > ? ORDER BY seq LIMIT ?'),
      last: db.prepare('SELECT seq, record, prev_hash, hash FROM decisions ORDER BY seq DESC LIMIT 1'),
      head: db.prepare('SELECT seq, hash FROM decisions ORDER BY seq DESC LIMIT 1'),
      insertCheckpoint: db.prepare('INSERT INTO checkpoints (num, seq, hash, time, kid, jws, prev) VALUES (?, ?, ?, ?, ?, ?, ?)'),
      listCheckpoints: db.prepare('SELECT num, seq, hash, time, kid, jws, prev FROM checkpoints ORDER BY num'),
      lastCheckpoint: db.prepare('SELECT num, seq, hash, time, kid, jws, prev FROM checkpoints ORDER BY num DESC LIMIT 1'),
      lastCheckpointNum: db.prepare('SELECT max(num) AS num FROM checkpoints'),
    };
  }

  async append(records: DecisionRecord[]): Promise<void> {
    if (records.length === 0) return;
    await this.logged(() => this.appendInTransaction(records));
  }

  /**
   * Runs `write` (which appends with appendInTransaction) as one batched write and tells
   * the onSealed listeners about the newest entry once it is durable.
   */
  async logged<T>(write: () => T, entriesOf: (result: T) => DecisionEntry[] = (r) => r as DecisionEntry[]): Promise<T> {
    const result = await this.batcher.write(write);
    const last = entriesOf(result).at(-1);
    if (last) for (const listener of this.listeners) listener(last);
    return result;
  }

  /** Chains and inserts records; runs inside a batch transaction. */
  appendInTransaction(records: DecisionRecord[]): DecisionEntry[] {
    // Read the head inside the (IMMEDIATE) transaction: another connection to the same
    // file may have appended since, and a stale cached head would collide on seq forever.
    let { seq, hash } = (this.s.head.get() as { seq: number; hash: string } | undefined) ?? { seq: 0, hash: GENESIS_HASH };
    const entries: DecisionEntry[] = [];
    for (const record of records) {
      const next = seq + 1;
      // The canonical text is both what is hashed and what is kept: JSON of the same value
      // (keys sorted), so reading it back re-hashes to the same entry.
      const text = canonicalJson(record);
      const h = entryHashOfCanonical(next, hash, text);
      this.s.insert.run(next, record.time, record.action, record.decision, record.principal, text, hash, h);
      entries.push({ seq: next, prevHash: hash, hash: h, record });
      [seq, hash] = [next, h];
    }
    return entries;
  }

  async read(afterSeq: number, limit: number): Promise<DecisionEntry[]> {
    return (this.s.read.all(afterSeq, limit) as DecisionRow[]).map(toEntry);
  }

  async last(): Promise<DecisionEntry | undefined> {
    const row = this.s.last.get() as DecisionRow | undefined;
    return row && toEntry(row);
  }

  async unsealed(): Promise<number> {
    return 0;
  }

  async seal(): Promise<number> {
    return 0;
  }

  onSealed(listener: (head: DecisionEntry) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  appendCheckpoint(c: Checkpoint): Promise<boolean> {
    return this.batcher.write(() => {
      // Compare-and-set inside the (IMMEDIATE) transaction: another Port on this file may
      // have written checkpoint c.num first; then this one is dropped, not an error.
      const newest = (this.s.lastCheckpointNum.get() as { num: number | null }).num ?? 0;
      if (newest !== c.num - 1) return false;
      this.s.insertCheckpoint.run(c.num, c.seq, c.hash, c.time, c.kid, c.jws, c.prev ?? null);
      return true;
    });
  }

  async listCheckpoints(): Promise<Checkpoint[]> {
    return (this.s.listCheckpoints.all() as CheckpointRow[]).map(toCheckpoint);
  }

  async lastCheckpoint(): Promise<Checkpoint | undefined> {
    const row = this.s.lastCheckpoint.get() as CheckpointRow | undefined;
    return row && toCheckpoint(row);
  }
}

function toEntry(row: DecisionRow): DecisionEntry {
  return { seq: row.seq, prevHash: row.prev_hash, hash: row.hash, record: JSON.parse(row.record) as DecisionRecord };
}

/** A legacy checkpoint (written before checkpoints were chained) has no `prev`. */
function toCheckpoint(r: CheckpointRow): Checkpoint {
  const { prev, ...rest } = r;
  return prev === null ? rest : { ...rest, prev };
}
