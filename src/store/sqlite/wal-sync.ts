import { close, fdatasync, fdatasyncSync, openSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { StoreUnavailableError } from '../errors.js';

/**
 * Syncs run on the event loop while a running average of their durations (each new one
 * weighing SYNC_AVERAGE_WEIGHT) is at most this many ms, the cost of a fast local disk.
 */
export const INLINE_SYNC_LIMIT_MS = 2;
/** The weight of the newest sync in the running average: one slow sync among fast ones does not move it far. */
export const SYNC_AVERAGE_WEIGHT = 1 / 8;
/** While the average is over the limit, syncs run on the thread pool and one per this many ms is tried on the event loop. */
export const THREAD_POOL_PERIOD_MS = 1_000;
/**
 * A sync covering at least this many writes runs on the thread pool whatever the disk's
 * speed, and so does every sync while the running average of the groups' sizes (weighted
 * as the durations' is) is at least this: several requests are in flight, and the event
 * loop serves them during the sync.
 */
export const THREAD_POOL_GROUP_WRITES = 2;
/**
 * While the event loop was busy at least this share of its time at the last reading (its
 * event-loop utilization since the reading before, which counts a sync on it as busy, and
 * time the thread was preempted), every sync runs on the thread pool; it comes back to the
 * event loop once a reading's share falls under LOOP_IDLE_BELOW. Two thresholds, so that
 * taking the syncs off the loop, which lowers its share, does not bring them straight
 * back: that holds while the syncs on the loop add less than the 20 points between them
 * (about 0.3× its other work for lone exchanges on bench/exchange's machine). Where a slow
 * disk's syncs add more, the verdict may alternate reading by reading between the two
 * places, each fine at that load (and past INLINE_SYNC_LIMIT_MS they leave the loop anyway).
 */
export const LOOP_BUSY_AT_LEAST = 0.5;
/** See LOOP_BUSY_AT_LEAST. */
export const LOOP_IDLE_BELOW = 0.3;
/**
 * A sync takes a new reading once the last is this old (ms), so a reading covers at least
 * this long (longer when syncs are sparse: a first sync after a quiet minute sees the quiet
 * minute), and its verdict holds until the next. A loop that turns busy keeps syncing on it
 * for up to about two windows.
 */
export const LOOP_WINDOW_MS = 100;

/** The event loop's busy and idle time since it started, in ms (`performance.eventLoopUtilization()`). */
export interface EventLoopTime {
  active: number;
  idle: number;
}

/** How many syncs ran where, since the store opened. */
export interface WalSyncCounts {
  inline: number;
  threadPool: number;
}

/**
 * Makes the SQLite write-ahead log durable with an fsync (fdatasync), on the event loop
 * for a lone write while the disk syncs fast, and on libuv's thread pool for a group of
 * writes or while the disk is slow.
 *
 * Where the sync runs is a trade. On the event loop it blocks every request for as long as
 * the disk takes, but costs no thread hop: the hop's wake-ups (the pool thread, then the
 * event loop again) cost CPU (~30 µs a sync on the machine of bench/exchange, where a fast
 * sync blocks for 0.1–0.3 ms), and they are paid once per group commit, so most at light
 * load, where a group is one write. On the thread pool the event loop keeps serving
 * requests during the sync, and their writes form the next group. Blocking costs nothing
 * while nothing else is waiting, and delays everything that is: so
 * - a group of THREAD_POOL_GROUP_WRITES or more syncs on the thread pool (other requests
 *   are in flight), and so does a lone write among such groups (the running average of
 *   their sizes at least that);
 * - so does every sync while the event loop has been busy LOOP_BUSY_AT_LEAST of its recent
 *   time (a reading per LOOP_WINDOW_MS), until that falls under LOOP_IDLE_BELOW: requests
 *   then arrive one at a time but often while the loop is busy, and a sync on it adds its
 *   whole duration to their wait.
 *   Measured at half of the saturated exchange rate (bench/exchange), syncs on the event loop
 *   kept it busy a fifth of the time, and the queue that a busier loop builds on every
 *   hiccup of the host was what set the p99;
 * - otherwise (light load) a lone write syncs on the event loop while the running average
 *   of those syncs' durations stays within INLINE_SYNC_LIMIT_MS, and on the thread pool
 *   while it is over; then one sync per THREAD_POOL_PERIOD_MS is still tried on the event
 *   loop, so the average follows the disk back down when it recovers. A slow disk thus
 *   blocks the event loop for the few syncs it takes the average to rise, then for one
 *   sync per period.
 *
 * The store runs SQLite with `synchronous=NORMAL` in WAL mode: COMMIT appends the
 * transaction's frames to the `-wal` file without syncing it, and SQLite itself syncs the
 * WAL before every checkpoint copies it into the database, and the database after
 * (https://www.sqlite.org/pragma.html#pragma_synchronous, https://www.sqlite.org/wal.html).
 * What NORMAL gives up — a commit may be lost to a power cut or an OS crash — is given
 * back here: the WriteBatcher acknowledges no write until an fsync of the WAL that started
 * after its COMMIT has returned. One fsync of the file flushes every frame written before
 * it (by any connection or process: the page cache is per file), and recovery keeps a
 * prefix of the log (each frame's checksum chains the ones before it,
 * https://www.sqlite.org/fileformat2.html#walformat), so an acknowledged commit survives
 * with everything committed before it.
 *
 * The difference from `synchronous=FULL` that remains: a commit is visible to readers
 * (here and in other processes on the file) from its COMMIT, up to one sync before it is
 * acknowledged. A reader that refuses on it (single use, revocations) fails closed either
 * way; a writer that follows it is covered, its own sync being later. Only an OS crash or
 * power cut in that window can undo something a reader saw.
 *
 * An fsync error is final for this process: Linux reports a failed writeback once and may
 * drop the pages it could not write, so a later fsync returning success proves nothing
 * about the earlier frames (https://lwn.net/Articles/752063/). Port stops writing until it
 * is restarted and SQLite recovers the file from what is actually on disk.
 */
export class WalSync {
  private fd: number | undefined;
  private failure: string | undefined;
  /** Running average of the syncs timed on the event loop, in ms (0 before the first). */
  private average = 0;
  /** Running average of how many writes a sync covers (1 before the first). */
  private groupAverage = 1;
  /** When (on `now`'s clock) the last sync on the event loop started. */
  private lastInline = -Infinity;
  /** Whether the event loop has been busy (LOOP_BUSY_AT_LEAST) in the last reading. */
  private loopBusy = false;
  /** The event loop's time at the start of the current reading, and when (on `now`'s clock) that was. */
  private loopMark: EventLoopTime | undefined;
  private loopMarkAt = 0;
  private readonly counts: WalSyncCounts = { inline: 0, threadPool: 0 };

  /**
   * `dbPath` is the database file; its log is `${dbPath}-wal`, which exists while a
   * connection in WAL mode is open. `now` is a monotonic clock in ms and `eventLoop` the
   * event loop's busy and idle time (tests pass their own).
   */
  constructor(
    private readonly dbPath: string,
    private readonly now: () => number = () => performance.now(),
    private readonly eventLoop: () => EventLoopTime = () => performance.eventLoopUtilization(),
  ) {}

  /** Why this store may no longer write (a failed fsync), or undefined. */
  get failed(): string | undefined {
    return this.failure;
  }

  /** How many syncs ran on the event loop and how many on the thread pool. */
  get syncs(): Readonly<WalSyncCounts> {
    return { ...this.counts };
  }

  /** Syncs the log for a group commit of `writes` writes. */
  sync(writes = 1): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(new StoreUnavailableError(this.failure));
    let fd: number;
    try {
      // Opened once and kept: SQLite deletes the log only when the last connection closes,
      // and this process's connection stays open as long as the store does.
      fd = this.fd ??= openSync(`${this.dbPath}-wal`, 'r+');
    } catch (err) {
      return Promise.reject(this.fail(err as NodeJS.ErrnoException));
    }
    // fdatasync: the log's data and size (all recovery reads), not its timestamps, as
    // SQLite's own sync does where fdatasync exists (https://www.sqlite.org/compile.html#have_fdatasync).
    const start = this.now();
    this.groupAverage += (writes - this.groupAverage) * SYNC_AVERAGE_WEIGHT;
    const inFlight = writes >= THREAD_POOL_GROUP_WRITES || this.groupAverage >= THREAD_POOL_GROUP_WRITES;
    const slowDisk = this.average > INLINE_SYNC_LIMIT_MS && start - this.lastInline < THREAD_POOL_PERIOD_MS;
    // Read on every sync, not only when it decides: a reading spanning a saturated stretch would outlive it.
    const busyLoop = this.busyLoop(start);
    if (inFlight || slowDisk || busyLoop) {
      this.counts.threadPool++;
      return new Promise((resolve, reject) => fdatasync(fd, (err) => (err ? reject(this.fail(err)) : resolve())));
    }
    this.counts.inline++;
    this.lastInline = start;
    try {
      fdatasyncSync(fd);
    } catch (err) {
      return Promise.reject(this.fail(err as NodeJS.ErrnoException));
    }
    this.average += (this.now() - start - this.average) * SYNC_AVERAGE_WEIGHT;
    return Promise.resolve();
  }

  /** Whether the event loop has been busy of late: the last reading's verdict, re-read once it is LOOP_WINDOW_MS old. */
  private busyLoop(now: number): boolean {
    if (this.loopMark === undefined || now - this.loopMarkAt >= LOOP_WINDOW_MS) {
      const time = this.eventLoop();
      if (this.loopMark !== undefined) {
        const active = time.active - this.loopMark.active;
        const total = active + time.idle - this.loopMark.idle;
        const share = total > 0 ? active / total : 0;
        this.loopBusy = this.loopBusy ? share >= LOOP_IDLE_BELOW : share >= LOOP_BUSY_AT_LEAST;
      }
      this.loopMark = { active: time.active, idle: time.idle };
      this.loopMarkAt = now;
    }
    return this.loopBusy;
  }

  /** Closes the log's descriptor; call after the last sync has settled. */
  close(): void {
    if (this.fd !== undefined) close(this.fd, () => undefined);
    this.fd = undefined;
  }

  /** Records the failure (final for this process) and returns the error the sync rejects with. */
  private fail(err: NodeJS.ErrnoException): StoreUnavailableError {
    this.failure ??= `the store could not make its commits durable (fsync of its log failed: ${err.code ?? 'unknown error'}); restart Port`;
    return new StoreUnavailableError(this.failure, { cause: err });
  }
}
