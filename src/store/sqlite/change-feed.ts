import type Database from 'better-sqlite3';
import type { Change, ChangeFeed, ChangeTopic, FeedHealth } from '../repositories/changes.js';

/** Changes are kept this long (as on PostgreSQL): far longer than any process goes without reading. */
export const SQLITE_CHANGES_KEPT_MS = 3_600_000;

/** How often every connection reads what other processes on the file committed. */
const POLL_MS = 25;

interface ChangeRow {
  version: number;
  topic: ChangeTopic;
  key: string;
}

export interface SqliteChangeFeedOptions {
  /** How often to read what other processes committed (ms; default 25). */
  pollMs?: number;
  now?: () => number;
  onError?: (err: unknown) => void;
}

/**
 * The change feed of a SQLite file that several Port processes may share (`server.workers`,
 * or two `port serve` on one file). A write that changes a cached thing records its change
 * in the `changes` table inside its own transaction (`record`), numbered by an AUTOINCREMENT
 * key: SQLite has one writer at a time, so numbers are taken in commit order and a reader
 * that has read version v has seen every change before it. Each process reads what is new
 * right after its own commits (so its listeners hear its writes at once, as before) and
 * every POLL_MS for other processes' commits; health() says it is current while such a read
 * succeeded within the caller's bound, and reads at once when the last is older, since a
 * read here is a synchronous local query.
 */
export class SqliteChangeFeed implements ChangeFeed {
  private readonly listeners = new Set<(changes: Change[]) => void>();
  private readonly s;
  private lastVersion: number;
  private confirmedAt: number;
  private timer: NodeJS.Timeout | undefined;
  private failing = false;
  private problem: string | undefined;
  /** Set for good when changes this process never read were purged. */
  private missed: string | undefined;
  private readonly now: () => number;
  private readonly onError: (err: unknown) => void;

  constructor(
    db: Database.Database,
    private readonly opts: SqliteChangeFeedOptions = {},
  ) {
    this.now = opts.now ?? Date.now;
    this.onError = opts.onError ?? ((err) => process.emitWarning(`store change feed: ${(err as Error)?.message ?? String(err)}`));
    this.s = {
      insert: db.prepare('INSERT INTO changes (topic, key, at) VALUES (?, ?, ?)'),
      after: db.prepare('SELECT version, topic, key FROM changes WHERE version > ? ORDER BY version LIMIT 1000'),
      // The newest version ever taken (AUTOINCREMENT keeps it in sqlite_sequence, purged rows or not).
      newest: db.prepare("SELECT seq AS v FROM sqlite_sequence WHERE name = 'changes'"),
      oldest: db.prepare('SELECT min(version) AS v FROM changes'),
      purge: db.prepare('DELETE FROM changes WHERE at <= ?'),
    };
    // Changes from now on are delivered; what came before is in the store already (subscribers load after subscribing).
    this.lastVersion = (this.s.newest.get() as { v: number } | undefined)?.v ?? 0;
    this.confirmedAt = this.now();
  }

  /** Starts reading other processes' changes every pollMs (unref'd). */
  start(): void {
    this.timer ??= setInterval(() => this.catchUpNow(), this.opts.pollMs ?? POLL_MS);
    this.timer.unref();
  }

  /** Records changes; call inside the writer's (batch) transaction, so they commit or roll back with it. */
  record(topic: ChangeTopic, keys: readonly string[]): void {
    const at = this.now();
    for (const key of new Set(keys)) this.s.insert.run(topic, key, at);
  }

  subscribe(listener: (changes: Change[]) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  health(maxLagMs: number): FeedHealth {
    // A read is a local synchronous query: rather than report a busy event loop as a stale feed, read now.
    if (this.missed === undefined && this.now() - this.confirmedAt > maxLagMs) this.catchUpNow();
    if (this.missed !== undefined) return { current: false, reason: this.missed };
    const lag = this.now() - this.confirmedAt;
    if (lag <= maxLagMs) return { current: true };
    return { current: false, reason: `the change feed cannot read the store (${this.problem ?? 'no read yet'}); last confirmed ${Math.round(lag / 100) / 10}s ago` };
  }

  /** Reads and delivers what is new now (tests; the contract's catch-up). */
  async catchUp(): Promise<void> {
    this.catchUpNow();
  }

  /** Deletes changes older than they are kept; runs inside the purge's transaction. */
  purge(now: number): void {
    this.s.purge.run(now - SQLITE_CHANGES_KEPT_MS);
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /**
   * Reads every change after the last version delivered, in version order, and delivers it;
   * synchronous, so a writer calling it after its commit has its listeners run before its
   * promise resolves. A failed read is reported once per failing stretch.
   */
  catchUpNow(): void {
    if (this.missed !== undefined) return;
    const startedAt = this.now();
    try {
      if (startedAt - this.confirmedAt >= SQLITE_CHANGES_KEPT_MS) {
        // Not read for longer than changes are kept: if some it never read are gone, its
        // caches can never be vouched for again — fail closed until a restart loads afresh.
        const newest = (this.s.newest.get() as { v: number } | undefined)?.v ?? 0;
        const oldest = (this.s.oldest.get() as { v: number | null }).v;
        if (newest > this.lastVersion && (oldest === null || oldest > this.lastVersion + 1)) {
          this.missed = `the change feed missed changes older than ${SQLITE_CHANGES_KEPT_MS / 3_600_000} h; restart this process`;
          return;
        }
      }
      for (;;) {
        const rows = this.s.after.all(this.lastVersion) as ChangeRow[];
        if (rows.length > 0) {
          this.lastVersion = rows.at(-1)!.version;
          this.deliver(rows.map((r) => ({ topic: r.topic, key: r.key })));
        }
        if (rows.length < 1000) break;
      }
      this.confirmedAt = startedAt;
      this.failing = false;
    } catch (err) {
      this.problem = (err as Error).message;
      if (!this.failing) this.onError(err);
      this.failing = true;
    }
  }

  /** Each listener on its own: one that throws must not keep the changes from the others. */
  private deliver(changes: Change[]): void {
    for (const listener of this.listeners) {
      try {
        listener(changes);
      } catch (err) {
        this.onError(err);
      }
    }
  }
}
