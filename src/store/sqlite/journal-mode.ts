import type Database from 'better-sqlite3';

/** How long a switch to WAL is retried while other processes hold the file (as `busy_timeout`). */
export const WAL_SWITCH_WAIT_MS = 5_000;
/** The longest pause between two tries. */
const MAX_PAUSE_MS = 50;

/**
 * Puts the file in WAL mode (https://www.sqlite.org/wal.html#activating_and_configuring_wal_mode),
 * retrying while another process does the same.
 *
 * Switching a new file to WAL takes a shared lock, then an exclusive one. When several
 * processes open the file at once (`server.workers`, replicas started together), two can
 * each hold the shared lock and wait for the exclusive one. SQLite sees the deadlock and
 * answers SQLITE_BUSY at once, without calling the busy handler
 * (https://www.sqlite.org/c3ref/busy_handler.html). The statement leaves no lock behind,
 * so a later try succeeds once the other process has switched the file. Other errors, and
 * SQLITE_BUSY past `waitMs`, are thrown.
 *
 * The pauses block the thread: this runs once, while the store opens, as `busy_timeout`'s
 * own waits do.
 */
export function switchToWal(db: Pick<Database.Database, 'pragma'>, waitMs = WAL_SWITCH_WAIT_MS, now: () => number = Date.now): void {
  const deadline = now() + waitMs;
  for (let pause = 1; ; pause = Math.min(pause * 2, MAX_PAUSE_MS)) {
    try {
      db.pragma('journal_mode = WAL');
      return;
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'SQLITE_BUSY' || now() >= deadline) throw err;
      sleep(pause);
    }
  }
}

function sleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
