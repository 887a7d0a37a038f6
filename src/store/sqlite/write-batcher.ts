import type Database from 'better-sqlite3';
import { storageFailure, StoreCommitUnknownError, StoreUnavailableError } from '../errors.js';

interface PendingWrite {
  run: () => unknown;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

/** What one write returned, or the error it threw. */
interface Outcome {
  ok: boolean;
  value: unknown;
}

/** A committed transaction's writes and their outcomes, waiting to be acknowledged. */
interface Committed {
  batch: PendingWrite[];
  outcomes: Outcome[];
  failure: string | undefined;
}

/** What the batcher reports to its store around each commit. */
export interface WriteBatcherHooks {
  /**
   * Called before each commit and after each commit is durable; a returned reason fails
   * the whole batch. After the commit this means the commit may not be durable (its
   * file is gone), so no write of the batch is acknowledged.
   */
  check?(phase: 'before' | 'after'): string | undefined;
  /** Each batch's outcome for the store's health: a storage failure's reason, or undefined when it committed cleanly. */
  outcome?(failure: string | undefined): void;
  /**
   * Makes everything committed so far durable (the store's fsync of its write-ahead log,
   * which may return at once, having synced on the event loop, or later, from a thread);
   * `writes` is how many writes the commits since the last sync hold. Without it a commit
   * is acknowledged as soon as it returns, which is right when COMMIT itself syncs (or for
   * `:memory:`). A rejection means the commits it covered may or may not survive a crash:
   * none of them is acknowledged.
   */
  sync?(writes: number): Promise<void>;
  /**
   * What the next transaction must wait for, or undefined to go on: the writes queue
   * meanwhile and the event loop keeps serving requests (the store holds them while a
   * checkpoint copies the log's tail, src/store/sqlite/wal-checkpointer.ts).
   */
  hold?(): Promise<void> | undefined;
}

/**
 * Group commit: writes queued while the previous group is being made durable run in
 * one transaction, each inside its own savepoint so one failing write does not undo
 * the others. Every promise settles only after its commit is durable, so a caller that
 * awaits its write knows it is on disk before it answers.
 *
 * With a `sync` hook that runs off the event loop (the store's, for a group of writes or
 * while the disk is slow), the event loop keeps serving requests during the sync, and
 * their writes queue for the next group; the next transaction starts when the sync
 * returns. The wait is never longer than with an fsync inside COMMIT (a write arriving
 * mid-fsync waited for it there too, the event loop being blocked), and each fsync covers
 * every request that arrived during the previous one. A sync that ran on the event loop
 * has returned already: its writes are acknowledged in the same turn.
 */
export class WriteBatcher {
  private queue: PendingWrite[] = [];
  private scheduled = false;
  private syncing = false;
  private held = false;
  /** One IMMEDIATE transaction over a batch, made once (better-sqlite3 builds four wrappers per `transaction()` call). */
  private readonly runBatch: (batch: PendingWrite[], outcomes: Outcome[]) => string | undefined;

  constructor(
    private readonly db: Database.Database,
    private readonly maxBatch = 512,
    private readonly hooks: WriteBatcherHooks = {},
  ) {
    // Each write runs inside its own savepoint (https://www.sqlite.org/lang_savepoint.html):
    // a write that throws is rolled back alone and the batch goes on.
    const savepoint = db.prepare('SAVEPOINT port_write');
    const release = db.prepare('RELEASE port_write');
    const rollbackTo = db.prepare('ROLLBACK TO port_write');
    this.runBatch = db.transaction((batch: PendingWrite[], outcomes: Outcome[]) => {
      let failure: string | undefined;
      for (const w of batch) {
        savepoint.run();
        try {
          const value = w.run();
          if (typeof (value as { then?: unknown } | null | undefined)?.then === 'function') throw new TypeError('a batched write must be synchronous');
          release.run();
          outcomes.push({ ok: true, value });
        } catch (err) {
          // After SQLITE_FULL, IOERR, NOMEM or BUSY, SQLite may have rolled back the whole
          // transaction (https://www.sqlite.org/lang_transaction.html, "Response To Errors
          // Within A Transaction"): the writes before this one are undone and the rest would
          // each autocommit on their own. Abort the batch; nothing of it is acknowledged.
          if (!db.inTransaction) throw err;
          rollbackTo.run();
          release.run();
          failure ??= storageFailure(err);
          outcomes.push({ ok: false, value: asUnavailable(err) });
        }
      }
      return failure;
    }).immediate;
  }

  write<T>(run: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ run, resolve: resolve as (v: unknown) => void, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.syncing || this.held || this.queue.length === 0) return;
    this.scheduled = true;
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.scheduled = false;
    const hold = this.hooks.hold?.();
    if (hold !== undefined) {
      this.held = true;
      void hold.finally(() => {
        this.held = false;
        this.schedule();
      });
      return;
    }
    const committed: Committed[] = [];
    while (this.queue.length > 0) {
      const c = this.commit(this.queue.splice(0, this.maxBatch));
      if (c) committed.push(c);
      // Without a sync step each transaction is acknowledged on its own, one per turn.
      if (!this.hooks.sync) break;
    }
    if (committed.length === 0) return this.schedule();
    if (!this.hooks.sync) {
      this.acknowledge(committed);
      return this.schedule();
    }
    this.syncing = true;
    this.hooks.sync(committed.reduce((n, c) => n + c.batch.length, 0)).then(
      () => this.acknowledge(committed),
      (err: unknown) => {
        // fsync failed: the kernel may already have dropped the pages it could not write, so
        // these commits may or may not survive a crash — and they are visible to readers now.
        const reason = storageFailure(err) ?? 'the store could not make its commits durable';
        this.hooks.outcome?.(reason);
        for (const c of committed) for (const w of c.batch) w.reject(new StoreCommitUnknownError(reason, { cause: err }));
      },
    ).finally(() => {
      this.syncing = false;
      this.schedule();
    });
  }

  /** Runs one transaction; undefined when the whole batch failed (and was rejected). */
  private commit(batch: PendingWrite[]): Committed | undefined {
    const failAll = (err: unknown, commitFailed = true) => {
      // A moved file is the check's own finding, re-made on every call; only a failed commit is remembered.
      if (commitFailed) this.hooks.outcome?.(storageFailure(err) ?? 'the store failed to commit');
      for (const w of batch) w.reject(err);
      return undefined;
    };
    const before = this.hooks.check?.('before');
    if (before !== undefined) return failAll(new StoreUnavailableError(before), false);
    const outcomes: Outcome[] = [];
    let failure: string | undefined;
    try {
      failure = this.runBatch(batch, outcomes);
    } catch (err) {
      return failAll(asUnavailable(err));
    }
    return { batch, outcomes, failure };
  }

  /** Settles the writes of durable commits, once the file is confirmed to be the one written. */
  private acknowledge(committed: Committed[]): void {
    // The commit went to a file descriptor; make sure the path still names that file.
    const after = this.hooks.check?.('after');
    for (const { batch, outcomes, failure } of committed) {
      if (after !== undefined) {
        for (const w of batch) w.reject(new StoreUnavailableError(after));
        continue;
      }
      this.hooks.outcome?.(failure);
      batch.forEach((w, i) => (outcomes[i]!.ok ? w.resolve(outcomes[i]!.value) : w.reject(outcomes[i]!.value)));
    }
  }
}

/** A storage failure (disk full, I/O error…) as a 503 StoreUnavailableError; any other error as it is. */
function asUnavailable(err: unknown): unknown {
  const storage = storageFailure(err);
  return storage !== undefined ? new StoreUnavailableError(storage, { cause: err }) : err;
}
