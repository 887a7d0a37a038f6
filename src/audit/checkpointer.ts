import type { SigningKeys } from '../issuer/signing-keys.js';
import type { Store } from '../store/store.js';
import { signCheckpoint } from './checkpoint-jws.js';
import type { Checkpoint, DecisionEntry } from './decision-record.js';
import { AuditError } from './errors.js';

export interface CheckpointerOptions {
  /** Sign after this many entries since the last checkpoint (config `audit.checkpoint_every`). */
  every: number;
  /** …or this many seconds, when anything was appended (config `audit.checkpoint_interval`); 0 disables the timer. */
  intervalSeconds: number;
  /** Where background checkpoint failures go; the default emits a process warning. */
  onError?: (err: AuditError) => void;
  /** Clock, for tests (ms since the epoch). */
  now?: () => number;
}

/**
 * Signs the head of the decision chain now and then, so that rewriting the chain —
 * even re-hashing it consistently — is detectable up to the last checkpoint.
 * Checkpoints are written one at a time; a checkpoint never covers an entry that is
 * not yet durable, because it signs what `store.lastDecision()` reads back.
 */
export class Checkpointer {
  /** Highest seq a checkpoint covers; undefined until read from the store. */
  private checkpointedSeq: number | undefined;
  private loading: Promise<void> | undefined;
  /** Highest seq we were told about. */
  private appendedSeq = 0;
  /** Serialises checkpoint writes. */
  private queue: Promise<unknown> = Promise.resolve();
  private triggered = false;
  /** After a failed write, count-triggered retries wait until this seq. */
  private retryAtSeq = 0;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly onError: (err: AuditError) => void;
  private readonly now: () => number;

  constructor(
    private readonly store: Store,
    private readonly keys: SigningKeys,
    private readonly opts: CheckpointerOptions,
  ) {
    if (!Number.isInteger(opts.every) || opts.every < 1) throw new AuditError('audit_invalid_option', 'checkpoint every must be a positive integer');
    if (!(opts.intervalSeconds >= 0)) throw new AuditError('audit_invalid_option', 'checkpoint interval must be 0 or more seconds');
    this.onError = opts.onError ?? ((err) => process.emitWarning(err.message, { code: err.code }));
    this.now = opts.now ?? Date.now;
  }

  /** Tells the checkpointer `last` is durable; signs once `every` entries are unsigned. */
  noteAppended(last: DecisionEntry): void {
    // Concurrent appends may report out of order; only the highest seq matters.
    this.appendedSeq = Math.max(this.appendedSeq, last.seq);
    this.maybeCheckpoint();
  }

  /** Starts the interval timer (unref'd) and signs whatever an earlier run left unsigned. */
  start(): void {
    if (this.timer || this.stopped) return;
    if (this.opts.intervalSeconds > 0) {
      this.timer = setInterval(() => this.background(), this.opts.intervalSeconds * 1000);
      this.timer.unref();
    }
    this.background();
  }

  /** Signs the current head unless a checkpoint already covers it; resolves to the new checkpoint. */
  checkpointNow(): Promise<Checkpoint | undefined> {
    const run = this.queue.then(() => this.write());
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Stops the timer and writes a final checkpoint; rejects if that fails. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.checkpointNow();
  }

  private maybeCheckpoint(): void {
    if (this.stopped || this.triggered) return;
    if (this.checkpointedSeq === undefined) {
      // Counting starts from the store's last checkpoint, not from this process's start.
      void this.load().then(() => this.maybeCheckpoint(), (err: unknown) => this.onError(asAuditError(err)));
      return;
    }
    if (this.appendedSeq < Math.max(this.checkpointedSeq + this.opts.every, this.retryAtSeq)) return;
    this.triggered = true;
    this.checkpointNow()
      .catch((err: unknown) => {
        // Retry after another `every` entries (or on the timer), not on every append.
        this.retryAtSeq = this.appendedSeq + this.opts.every;
        this.onError(asAuditError(err));
      })
      .finally(() => {
        this.triggered = false;
        // Entries appended while signing may already call for the next checkpoint.
        this.maybeCheckpoint();
      });
  }

  private background(): void {
    this.checkpointNow().catch((err: unknown) => this.onError(asAuditError(err)));
  }

  private load(): Promise<void> {
    this.loading ??= this.store.listCheckpoints().then(
      (cps) => {
        this.checkpointedSeq = Math.max(this.checkpointedSeq ?? 0, cps.at(-1)?.seq ?? 0);
      },
      (err: unknown) => {
        this.loading = undefined;
        throw err;
      },
    );
    return this.loading;
  }

  private async write(): Promise<Checkpoint | undefined> {
    try {
      await this.load();
      const head = await this.store.lastDecision();
      if (!head || head.seq <= (this.checkpointedSeq ?? 0)) return undefined;
      const checkpoint = await signCheckpoint(head, this.keys.signer(), new Date(this.now()).toISOString());
      await this.store.appendCheckpoint(checkpoint);
      this.checkpointedSeq = head.seq;
      this.appendedSeq = Math.max(this.appendedSeq, head.seq);
      return checkpoint;
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
