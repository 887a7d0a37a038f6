import { entryHash, GENESIS_HASH } from '../hash-chain.js';
import type { Checkpoint, DecisionEntry, DecisionRecord } from '../records/decisions.js';
import type { DecisionLogStore } from '../repositories/decision-log.js';
import { addToOutbox } from './decision-outbox.js';
import { num, type PgDatabase, type Queryable } from './pg-database.js';

/**
 * Transaction-level advisory lock key every sealing pass takes
 * (https://www.postgresql.org/docs/current/explicit-locking.html#ADVISORY-LOCKS): the
 * first 8 bytes of SHA-256("buildkite-port decision sealer") as a signed bigint. The
 * sealer lease makes one replica seal at a time; this lock makes it certain, so two
 * passes (a lease that lapsed under a paused process) can never fork the chain.
 */
export const SEALER_LOCK_KEY = '-4744373139276069607';

/** Outbox rows one sealing pass numbers and chains, at most. */
const SEAL_BATCH = 1000;

interface DecisionRow {
  seq: string;
  record: string;
  prev_hash: string;
  hash: string;
}

interface CheckpointRow {
  num: string;
  seq: string;
  hash: string;
  time: string;
  kid: string;
  jws: string;
  prev: string | null;
}

/**
 * The decision log on PostgreSQL, built so replicas never queue behind one another to
 * log: a decision commits into `decision_outbox` (with the replay key or approval request
 * it is about, in that one transaction) and takes nothing but the next outbox id. The
 * sealer — one replica at a time, under a lease (src/cluster) — moves outbox rows into
 * `decisions` in id order, numbering and chaining them in batches: the hash chain is
 * still one sequence, but it costs one lock per batch, not one per decision.
 *
 * A resolved `append` is durable; it is readable (and verifiable) once sealed, normally
 * within the sealer's interval.
 */
export class PostgresDecisionLog implements DecisionLogStore {
  private readonly listeners = new Set<(head: DecisionEntry) => void>();
  private sealing: Promise<number> | undefined;

  constructor(private readonly db: PgDatabase) {}

  async append(records: DecisionRecord[]): Promise<void> {
    if (records.length === 0) return;
    // One statement (atomic on its own): no transaction round trips.
    await addToOutbox({ query: (text, values) => this.db.write(text, values) }, records);
  }

  async read(afterSeq: number, limit: number): Promise<DecisionEntry[]> {
    const r = await this.db.query<DecisionRow>('SELECT seq, record, prev_hash, hash FROM decisions WHERE seq > $1 ORDER BY seq LIMIT $2', [afterSeq, limit]);
    return r.rows.map(toEntry);
  }

  async last(): Promise<DecisionEntry | undefined> {
    const r = await this.db.query<DecisionRow>('SELECT seq, record, prev_hash, hash FROM decisions ORDER BY seq DESC LIMIT 1');
    return r.rows[0] && toEntry(r.rows[0]);
  }

  async unsealed(): Promise<number> {
    const r = await this.db.query<{ n: string }>('SELECT count(*) AS n FROM decision_outbox');
    return Number(r.rows[0]!.n);
  }

  /** Seals until the outbox is empty (as of each pass); concurrent callers in this process share one run. */
  seal(): Promise<number> {
    this.sealing ??= this.sealAll().finally(() => {
      this.sealing = undefined;
    });
    return this.sealing;
  }

  private async sealAll(): Promise<number> {
    // Most passes find nothing: one indexed read, no transaction, no lock.
    if ((await this.db.query('SELECT 1 FROM decision_outbox LIMIT 1')).rows.length === 0) return 0;
    let total = 0;
    for (;;) {
      const sealed = await this.sealBatch();
      total += sealed.length;
      const head = sealed.at(-1);
      if (head) for (const listener of this.listeners) listener(head);
      if (sealed.length < SEAL_BATCH) return total;
    }
  }

  /** One pass: the oldest outbox rows, chained onto the head, in one transaction. */
  private sealBatch(): Promise<DecisionEntry[]> {
    return this.db.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1::bigint)', [SEALER_LOCK_KEY]);
      const rows = (await tx.query<{ id: string; record: string }>('SELECT id, record FROM decision_outbox ORDER BY id LIMIT $1', [SEAL_BATCH])).rows;
      if (rows.length === 0) return [];
      const head = (await tx.query<{ seq: string; hash: string }>('SELECT seq, hash FROM decisions ORDER BY seq DESC LIMIT 1')).rows[0];
      let [seq, hash] = head ? [Number(head.seq), head.hash] : [0, GENESIS_HASH];
      const entries: DecisionEntry[] = [];
      for (const row of rows) {
        const record = JSON.parse(row.record) as DecisionRecord;
        const next = seq + 1;
        const h = entryHash(next, hash, record);
        entries.push({ seq: next, prevHash: hash, hash: h, record });
        [seq, hash] = [next, h];
      }
      await insertEntries(tx, entries, rows.map((r) => r.record));
      await tx.query('DELETE FROM decision_outbox WHERE id = ANY($1::bigint[])', [rows.map((r) => r.id)]);
      return entries;
    });
  }

  onSealed(listener: (head: DecisionEntry) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async appendCheckpoint(c: Checkpoint): Promise<boolean> {
    // Compare-and-set in one statement: inserted only while the newest is c.num - 1; a
    // concurrent writer of the same number conflicts on the key and this one is dropped.
    const r = await this.db.write(
      `INSERT INTO checkpoints (num, seq, hash, time, kid, jws, prev)
       SELECT $1::bigint, $2::bigint, $3, $4, $5, $6, $7 WHERE (SELECT coalesce(max(num), 0) FROM checkpoints) = $1::bigint - 1
       ON CONFLICT (num) DO NOTHING`,
      [c.num, c.seq, c.hash, c.time, c.kid, c.jws, c.prev ?? null],
    );
    return r.rowCount === 1;
  }

  async listCheckpoints(): Promise<Checkpoint[]> {
    return (await this.db.query<CheckpointRow>('SELECT num, seq, hash, time, kid, jws, prev FROM checkpoints ORDER BY num')).rows.map(toCheckpoint);
  }

  async lastCheckpoint(): Promise<Checkpoint | undefined> {
    const row = (await this.db.query<CheckpointRow>('SELECT num, seq, hash, time, kid, jws, prev FROM checkpoints ORDER BY num DESC LIMIT 1')).rows[0];
    return row && toCheckpoint(row);
  }
}

async function insertEntries(tx: Queryable, entries: DecisionEntry[], texts: string[]): Promise<void> {
  const now = Date.now();
  await tx.query(
    `INSERT INTO decisions (seq, time, action, decision, principal, record, prev_hash, hash, sealed_at)
     SELECT * , $9::bigint FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])`,
    [
      entries.map((e) => e.seq),
      entries.map((e) => e.record.time),
      entries.map((e) => e.record.action),
      entries.map((e) => e.record.decision),
      entries.map((e) => e.record.principal),
      texts,
      entries.map((e) => e.prevHash),
      entries.map((e) => e.hash),
      now,
    ],
  );
}

function toEntry(row: DecisionRow): DecisionEntry {
  return { seq: Number(row.seq), prevHash: row.prev_hash, hash: row.hash, record: JSON.parse(row.record) as DecisionRecord };
}

/** A legacy checkpoint (written before checkpoints were chained) has no `prev`. */
function toCheckpoint(r: CheckpointRow): Checkpoint {
  const base = { num: num(r.num), seq: num(r.seq), hash: r.hash, time: r.time, kid: r.kid, jws: r.jws };
  return r.prev === null ? base : { ...base, prev: r.prev };
}
