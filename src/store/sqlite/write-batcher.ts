import type Database from 'better-sqlite3';
import { storageFailure, StoreUnavailableError } from '../errors.js';

interface PendingWrite {
  run: () => unknown;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

/** What the batcher reports to its store around each commit. */
export interface WriteBatcherHooks {
  /**
   * Called before and after each commit; a returned reason fails the whole batch. After
   * the commit this means the commit may not be durable (its file is gone), so no
   * write of the batch is acknowledged.
   */
  check?(phase: 'before' | 'after'): string | undefined;
  /** Each batch's outcome for the store's health: a storage failure's reason, or undefined when it committed cleanly. */
  outcome?(failure: string | undefined): void;
}

/**
 * Group commit: writes queued in the same turn of the event loop run in one
 * transaction (one fsync), each inside its own savepoint so one failing write does
 * not undo the others. Every promise settles only after the commit, so a caller
 * that awaits its write knows it is durable before it answers.
 */
export class WriteBatcher {
  private queue: PendingWrite[] = [];
  private scheduled = false;

  constructor(
    private readonly db: Database.Database,
    private readonly maxBatch = 512,
    private readonly hooks: WriteBatcherHooks = {},
  ) {}

  write<T>(run: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ run, resolve: resolve as (v: unknown) => void, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    const batch = this.queue.splice(0, this.maxBatch);
    this.scheduled = false;
    if (this.queue.length > 0) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
    const failAll = (err: unknown, commitFailed = true) => {
      // A moved file is the check's own finding, re-made on every call; only a failed commit is remembered.
      if (commitFailed) this.hooks.outcome?.(storageFailure(err) ?? 'the store failed to commit');
      for (const w of batch) w.reject(err);
    };
    const before = this.hooks.check?.('before');
    if (before !== undefined) return failAll(new StoreUnavailableError(before), false);
    const outcomes: { ok: boolean; value: unknown }[] = [];
    let failure: string | undefined;
    try {
      this.db.transaction(() => {
        for (const w of batch) {
          try {
            // A nested better-sqlite3 transaction is a SAVEPOINT.
            outcomes.push({ ok: true, value: this.db.transaction(w.run)() });
          } catch (err) {
            // After SQLITE_FULL, IOERR, NOMEM or BUSY, SQLite may have rolled back the whole
            // transaction (https://www.sqlite.org/lang_transaction.html, "Response To Errors
            // Within A Transaction"): the writes before this one are undone and the rest would
            // each autocommit on their own. Abort the batch; nothing of it is acknowledged.
            if (!this.db.inTransaction) throw err;
            const storage = storageFailure(err);
            failure ??= storage;
            outcomes.push({ ok: false, value: asUnavailable(err) });
          }
        }
      }).immediate();
    } catch (err) {
      return failAll(asUnavailable(err));
    }
    // The commit went to a file descriptor; make sure the path still names that file.
    const after = this.hooks.check?.('after');
    if (after !== undefined) return failAll(new StoreUnavailableError(after), false);
    this.hooks.outcome?.(failure);
    batch.forEach((w, i) => (outcomes[i]!.ok ? w.resolve(outcomes[i]!.value) : w.reject(outcomes[i]!.value)));
  }
}

/** A storage failure (disk full, I/O error…) as a 503 StoreUnavailableError; any other error as it is. */
function asUnavailable(err: unknown): unknown {
  const storage = storageFailure(err);
  return storage !== undefined ? new StoreUnavailableError(storage, { cause: err }) : err;
}
