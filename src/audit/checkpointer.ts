import type { SigningKeys } from '../issuer/signing-keys.js';
import type { Store } from '../store/store.js';
import { checkpointDigest, GENESIS_CHECKPOINT, signCheckpoint } from './checkpoint-jws.js';
import type { Checkpoint, DecisionEntry } from '../store/records/decisions.js';
import { AuditError } from './errors.js';
import { GENESIS_HASH } from '../store/hash-chain.js';

/** Where each checkpoint this process writes is shipped (src/audit/checkpoint-sinks.ts). */
export interface CheckpointShipper {
  /** Hands a checkpoint over; never throws and never waits for delivery. */
  ship(checkpoint: Checkpoint): void;
  /** Delivers what is queued (bounded in time), then stops. */
  close(): Promise<void>;
}

export interface CheckpointerOptions {
  /** Sign after this many entries since the last checkpoint (config `audit.checkpoint_every`). */
  every: number;
  /**
   * Config `audit.checkpoint_interval`, in seconds: a checkpoint (covering the head, or a
   * heartbeat when nothing is new) is written whenever the newest one — whoever wrote it —
   * is about this old, so every entry is signed within one interval and a verifier can
   * demand a recent checkpoint (`--max-age`). 0 disables the timer.
   */
  intervalSeconds: number;
  /** Where background checkpoint failures go (once per failing stretch); the default emits a process warning. */
  onError?: (err: AuditError) => void;
  /** Checkpoint sinks (config `audit.checkpoint_sinks`). */
  sinks?: CheckpointShipper;
  /** Clock, for tests (ms since the epoch). */
  now?: () => number;
  /**
   * Whether this process signs in the background now (src/cluster/leadership.ts: only the
   * leader of several Port processes does); checkpointNow and stop sign regardless.
   */
  active?: () => boolean;
}

/**
 * A tick signs the head when the newest checkpoint is at least this fraction of the
 * interval old: with ticks every tenth of the interval (TICK_FRACTION), the gap between
 * checkpoints stays within one interval, and with several Port processes on one store
 * only one of them writes per interval.
 */
const HEARTBEAT_AGE = 0.9;

/**
 * The timer fires this often, as a fraction of the interval. It must be well under the
 * interval: the newest checkpoint may have been written at any phase (a count trigger,
 * another process, a restart), so a timer that fired once per interval could leave up to
 * 1.9 intervals between checkpoints. Ticking every tenth keeps the gap at one interval,
 * and a tick that finds nothing due costs two indexed reads.
 */
const TICK_FRACTION = 0.1;

/** Compare-and-set losses in a row before giving up until the next trigger (another writer keeps winning). */
const MAX_CAS_ATTEMPTS = 3;

type Mode =
  /** `every` entries since the newest checkpoint. */
  | 'count'
  /** Anything unsigned (checkpointNow, stop). */
  | 'cover'
  /** Anything unsigned, or a heartbeat when the newest checkpoint is old (start). */
  | 'start'
  /** The head, signed or not, when the newest checkpoint is about an interval old (timer). */
  | 'tick';

/**
 * Signs the head of the decision chain now and then, so that rewriting the chain —
 * even re-hashing it consistently — is detectable up to the last checkpoint, and so
 * that `audit.checkpoint_interval` holds: every entry is signed within one interval.
 *
 * Everything is read from the store, never remembered: several Port processes may share
 * one SQLite file, and each write is a compare-and-set on the newest checkpoint's
 * number (Store.decisions.appendCheckpoint), so a process that loses re-reads and moves on.
 * A checkpoint never covers an entry that is not yet durable, because it signs what
 * `store.decisions.last()` reads back.
 */
export class Checkpointer {
  /** Highest seq the newest stored checkpoint covered when last read; a hint for the count trigger only. */
  private coveredSeq: number | undefined;
  private loading: Promise<void> | undefined;
  /** Highest seq we were told about. */
  private appendedSeq = 0;
  /** Serialises checkpoint writes of this process. */
  private queue: Promise<unknown> = Promise.resolve();
  private triggered = false;
  /** True from a failed background write until one succeeds; count triggers then wait for the timer. */
  private failing = false;
  private lastReported: string | undefined;
  /** Without a timer, a failed count-triggered write is retried after another `every` entries. */
  private retryAtSeq = 0;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly onError: (err: AuditError) => void;
  private readonly now: () => number;
  private readonly unsubscribe: () => void;

  constructor(
    private readonly store: Store,
    private readonly keys: SigningKeys,
    private readonly opts: CheckpointerOptions,
  ) {
    if (!Number.isInteger(opts.every) || opts.every < 1) throw new AuditError('audit_invalid_option', 'checkpoint every must be a positive integer');
    if (!(opts.intervalSeconds >= 0)) throw new AuditError('audit_invalid_option', 'checkpoint interval must be 0 or more seconds');
    this.onError = opts.onError ?? ((err) => process.emitWarning(err.message, { code: err.code }));
    this.now = opts.now ?? Date.now;
    // Every batch this process seals counts towards `every` (on PostgreSQL only the sealer's replica hears them).
    this.unsubscribe = store.decisions.onSealed((head) => this.noteAppended(head));
  }

  /** Tells the checkpointer `last` is sealed; signs once `every` entries are unsigned. */
  noteAppended(last: DecisionEntry): void {
    // Concurrent appends may report out of order; only the highest seq matters.
    this.appendedSeq = Math.max(this.appendedSeq, last.seq);
    this.maybeCheckpoint();
  }

  /** Starts the timer (unref'd) and at once signs whatever an earlier run left unsigned. */
  start(): void {
    if (this.timer || this.stopped) return;
    if (this.opts.intervalSeconds > 0) {
      const everyMs = Math.max(10, this.opts.intervalSeconds * 1000 * TICK_FRACTION);
      this.timer = setInterval(() => this.background('tick'), everyMs);
      this.timer.unref();
    }
    this.background('start');
  }

  /** Signs the current head unless a checkpoint already covers it; resolves to the new checkpoint. */
  checkpointNow(): Promise<Checkpoint | undefined> {
    return this.enqueue('cover');
  }

  /**
   * What the timer does (every tenth of the interval): once the newest checkpoint, whoever
   * wrote it, is about an interval old, signs the head — new entries, or a heartbeat.
   */
  tick(): Promise<Checkpoint | undefined> {
    return this.enqueue('tick');
  }

  /** Resolves when the checkpoint writes queued so far (by triggers, the timer or calls) are done. */
  async settled(): Promise<void> {
    await this.queue;
  }

  /** Stops the timer, writes a final checkpoint and flushes the sinks; rejects if the checkpoint fails. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe();
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    try {
      await this.checkpointNow();
    } finally {
      await this.opts.sinks?.close();
    }
  }

  private enqueue(mode: Mode): Promise<Checkpoint | undefined> {
    const run = this.queue.then(() => this.write(mode));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private maybeCheckpoint(): void {
    if (this.stopped || this.triggered) return;
    // While writes fail, the timer retries (once per tick) — not every append; without a
    // timer, the next try waits for another `every` entries.
    if (this.failing && (this.timer !== undefined || this.appendedSeq < this.retryAtSeq)) return;
    if (this.coveredSeq === undefined) {
      // Counting starts from the store's newest checkpoint, not from this process's start.
      void this.load().then(
        () => this.maybeCheckpoint(),
        (err: unknown) => {
          this.retryAtSeq = this.appendedSeq + this.opts.every;
          this.report(asAuditError(err));
        },
      );
      return;
    }
    if (this.appendedSeq < this.coveredSeq + this.opts.every) return;
    this.triggered = true;
    void this.attempt('count').finally(() => {
      this.triggered = false;
      // Entries appended while signing may already call for the next checkpoint.
      if (!this.failing) this.maybeCheckpoint();
    });
  }

  private background(mode: Mode): void {
    if (this.opts.active && !this.opts.active()) return;
    void this.attempt(mode);
  }

  /** A background write: failures are reported once per failing stretch, then retried on the next trigger. */
  private async attempt(mode: Mode): Promise<void> {
    try {
      await this.enqueue(mode);
      this.failing = false;
      this.lastReported = undefined;
    } catch (err) {
      this.retryAtSeq = this.appendedSeq + this.opts.every;
      this.report(asAuditError(err));
    }
  }

  private report(err: AuditError): void {
    // The same failure again (the store still down) is not news; a different one is.
    const repeat = this.failing && err.message === this.lastReported;
    this.failing = true;
    this.lastReported = err.message;
    if (!repeat) this.onError(err);
  }

  private load(): Promise<void> {
    this.loading ??= this.store.decisions.lastCheckpoint().then(
      (last) => {
        this.coveredSeq = Math.max(this.coveredSeq ?? 0, last?.seq ?? 0);
      },
      (err: unknown) => {
        this.loading = undefined;
        throw err;
      },
    );
    return this.loading;
  }

  private async write(mode: Mode): Promise<Checkpoint | undefined> {
    try {
      for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
        // The newest checkpoint first, then the head: the head is then at or past what it covers.
        const last = await this.store.decisions.lastCheckpoint();
        const head = await this.store.decisions.last();
        const lastTime = last ? Date.parse(last.time) : Number.NEGATIVE_INFINITY;
        this.coveredSeq = last?.seq ?? 0;
        const headSeq = head?.seq ?? 0;
        const unsigned = headSeq - this.coveredSeq;
        // Checkpoint times never go backwards, even if this clock is behind another writer's.
        const now = Math.max(this.now(), Number.isFinite(lastTime) ? lastTime : 0);
        const old = this.opts.intervalSeconds > 0 && now - lastTime >= HEARTBEAT_AGE * this.opts.intervalSeconds * 1000;
        const due =
          mode === 'count' ? unsigned >= this.opts.every : mode === 'cover' ? unsigned > 0 : mode === 'start' ? unsigned > 0 || old : old;
        if (!due) return undefined;
        const checkpoint = await signCheckpoint(
          { seq: headSeq, hash: head?.hash ?? GENESIS_HASH },
          this.keys.signer(),
          new Date(now).toISOString(),
          { num: (last?.num ?? 0) + 1, prev: last ? checkpointDigest(last.jws) : GENESIS_CHECKPOINT },
        );
        if (await this.store.decisions.appendCheckpoint(checkpoint)) {
          this.coveredSeq = headSeq;
          this.appendedSeq = Math.max(this.appendedSeq, headSeq);
          this.opts.sinks?.ship(checkpoint);
          return checkpoint;
        }
        // Another process wrote checkpoint `num` first: read what it wrote and decide again.
      }
      return undefined;
    } catch (err) {
      throw asAuditError(err);
    }
  }
}

function asAuditError(err: unknown): AuditError {
  if (err instanceof AuditError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new AuditError('audit_checkpoint_failed', `cannot write an audit checkpoint: ${message}`, { cause: err });
}
