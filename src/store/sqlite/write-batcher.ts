import type Database from 'better-sqlite3';

interface PendingWrite {
  run: () => unknown;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
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
    const outcomes: { ok: boolean; value: unknown }[] = [];
    try {
      this.db.transaction(() => {
        for (const w of batch) {
          try {
            // A nested better-sqlite3 transaction is a SAVEPOINT.
            outcomes.push({ ok: true, value: this.db.transaction(w.run)() });
          } catch (err) {
            outcomes.push({ ok: false, value: err });
          }
        }
      }).immediate();
    } catch (err) {
      for (const w of batch) w.reject(err);
      return;
    }
    batch.forEach((w, i) => (outcomes[i]!.ok ? w.resolve(outcomes[i]!.value) : w.reject(outcomes[i]!.value)));
  }
}
