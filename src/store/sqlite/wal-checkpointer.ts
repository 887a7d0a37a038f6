import type Database from 'better-sqlite3';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/** Writes committed since the last checkpoint that start the next one (~800 log frames at 3 per exchange). */
export const CHECKPOINT_WRITES = 256;
/**
 * The event loop's own connection checkpoints only past this many log frames (its
 * `wal_autocheckpoint`) while the checkpoint thread runs: a backstop that bounds the log
 * should the thread fall behind. One process's rounds stay well under it (256 lone writes
 * are ~1,700 frames). Several processes writing steadily to one file (server.workers)
 * reach it: a hold pauses only its own process's writes, and the others' writers and
 * readers (change-feed polls) keep SQLite from starting the log over, so it seldom does;
 * past the backstop every commit checkpoints inline, as every commit past 1,000 frames did
 * before the thread (a tail in RESTART mode, which takes the write lock from every
 * process, kept the log under ~1,000 frames there but cost ~40 % of their writes).
 */
export const BACKSTOP_AUTOCHECKPOINT_FRAMES = 4_000;
/** SQLite's default `wal_autocheckpoint`, given back to the event loop's connection when the thread fails. */
export const DEFAULT_AUTOCHECKPOINT_FRAMES = 1_000;
/** The longest writes are held for a checkpoint's tail; past it they go on and the log starts over another time. */
export const TAIL_HOLD_LIMIT_MS = 100;

/** What the checkpoint thread has done since the store opened. */
export interface WalCheckpointStats {
  /** Checkpoints run. */
  runs: number;
  /** Frames in the log at the last checkpoint: with each checkpoint copying the whole log, the next writer starts it over, so this stays near what CHECKPOINT_WRITES writes make. */
  logFrames: number;
  /** Checkpoints that could not copy the whole log (a reader held an older snapshot, or another process was checkpointing); a tail released by TAIL_HOLD_LIMIT_MS is not counted. */
  partial: number;
  /** Why the thread stopped; checkpoints are then back on the event loop's connection. */
  failure?: string;
}

/** What the thread answers to each `checkpoint` message. */
type ThreadReply = { busy: number; log: number; checkpointed: number } | { error: string; code: string | undefined };

// The thread's code. It is evaluated (`eval: true`), not loaded from a file, so the same
// code runs from the compiled package and from the TypeScript sources under test; it is
// CommonJS and gets better-sqlite3's resolved path from the event loop's thread.
const THREAD_SOURCE = `
const { statSync } = require('node:fs');
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.betterSqlite3);
// Opened by path: it must name the file the store opened (device and inode), or this
// connection would checkpoint another file's log. Checked before opening and again once
// open (no statement has run, so closing leaves another file as it was). The two stats
// narrow the window without closing it (a path swapped away and back between them passes):
// better-sqlite3 exposes neither the descriptor nor SQLITE_FCNTL_HAS_MOVED to compare.
// Throwing fails the thread, and the store's own connection takes the checkpoints back.
const REPLACED = 'its path names another file than the one the store opened';
const sameFile = () => {
  const st = statSync(workerData.path);
  return !workerData.file || (st.dev === workerData.file.dev && st.ino === workerData.file.ino);
};
if (!sameFile()) throw new Error(REPLACED);
const db = new Database(workerData.path, { fileMustExist: true });
if (!sameFile()) {
  db.close();
  throw new Error(REPLACED);
}
parentPort.on('message', (msg) => {
  if (msg === 'close') {
    db.close();
    parentPort.close();
    return;
  }
  try {
    const [row] = db.pragma('wal_checkpoint(PASSIVE)');
    parentPort.postMessage({ busy: row.busy, log: row.log, checkpointed: row.checkpointed });
  } catch (err) {
    parentPort.postMessage({ error: String(err && err.message), code: err && err.code });
  }
});
`;

/**
 * Checkpoints the SQLite write-ahead log from a worker thread with its own connection, so
 * the event loop never waits for one.
 *
 * A checkpoint copies the log's pages into the database file and syncs the log before and
 * the database after (https://www.sqlite.org/wal.html#checkpointing,
 * https://www.sqlite.org/pragma.html#pragma_synchronous). Run automatically, it happens
 * inside the COMMIT that crosses `wal_autocheckpoint` frames, on whichever connection made
 * it: here the event loop's, which then serves nothing for those milliseconds (4–15 ms
 * under load in bench/exchange, several times a second). So the event loop's connection
 * keeps automatic checkpoints only as a backstop (BACKSTOP_AUTOCHECKPOINT_FRAMES), and
 * every CHECKPOINT_WRITES committed writes this thread checkpoints instead, in two steps:
 *
 * 1. A PASSIVE checkpoint, which copies what no reader still needs and never blocks a
 *    writer (https://www.sqlite.org/c3ref/wal_checkpoint_v2.html): the event loop goes on
 *    committing meanwhile.
 * 2. If writes were committed during step 1, the tail they left is checkpointed the same
 *    way while the store holds its next transaction (`hold()`, at most TAIL_HOLD_LIMIT_MS):
 *    the log starts over from its beginning only when a writer begins a transaction with
 *    every frame copied (https://www.sqlite.org/wal.html#avoiding_excessively_large_wal_files), which
 *    never happens while writes keep arriving during every checkpoint, and the log would
 *    grow to the backstop. Requests go on meanwhile; only their writes wait, a page copy
 *    and a sync or two, as they wait for the log's own sync.
 *
 * Durability is untouched: a commit is durable when the log is synced (WalSync), and a
 * checkpoint only moves durable pages.
 *
 * The thread starts with the first checkpoint, so a store that writes little never starts
 * one. If it fails or exits, the event loop's connection gets SQLite's default automatic
 * checkpoint back: the log stays bounded either way.
 */
export class WalCheckpointer {
  private worker: Worker | undefined;
  private pendingWrites = 0;
  /** Which step the thread is running, if any. */
  private step: 'log' | 'tail' | undefined;
  /** While step 2 runs: the store's next transaction waits for this. */
  private tail: { done: Promise<void>; release: () => void } | undefined;
  private closed = false;
  private readonly counts: WalCheckpointStats = { runs: 0, logFrames: 0, partial: 0 };

  /**
   * `file` is the device and inode of the file the store opened at `dbPath` (FileIdentity):
   * the thread refuses to run on anything else the path may name by the time it opens it.
   */
  constructor(
    private readonly db: Database.Database,
    private readonly dbPath: string,
    private readonly file: { dev: number; ino: number } | undefined,
    private readonly everyWrites = CHECKPOINT_WRITES,
  ) {
    db.pragma(`wal_autocheckpoint = ${BACKSTOP_AUTOCHECKPOINT_FRAMES}`);
  }

  get stats(): Readonly<WalCheckpointStats> {
    return { ...this.counts };
  }

  /** Counts `writes` just committed; starts a checkpoint once enough have been since the last. */
  wrote(writes: number): void {
    if (this.closed || this.counts.failure !== undefined) return;
    this.pendingWrites += writes;
    if (this.step === undefined && this.pendingWrites >= this.everyWrites) this.run();
  }

  /** What the store's next transaction must wait for (a checkpoint's tail), or undefined. */
  hold(): Promise<void> | undefined {
    return this.tail?.done;
  }

  /** Stops the thread after its current checkpoint; call before closing the event loop's connection. */
  async close(): Promise<void> {
    this.closed = true;
    this.releaseTail();
    const worker = this.worker;
    this.worker = undefined;
    if (worker === undefined) return;
    await new Promise<void>((resolve) => {
      worker.once('exit', () => resolve());
      // Unreferenced, the thread would not keep the process alive for its answer.
      worker.ref();
      worker.postMessage('close');
    });
  }

  private run(): void {
    this.pendingWrites = 0;
    this.step = 'log';
    const worker = (this.worker ??= this.start());
    // Referenced while a checkpoint runs: a write held for its tail must not find the process
    // gone (exit 13) or kept alive forever by an idle thread.
    worker.ref();
    worker.postMessage('checkpoint');
  }

  private start(): Worker {
    const worker = new Worker(THREAD_SOURCE, {
      eval: true,
      // Not the process's flags: `--input-type=module` among them would make the source ESM.
      execArgv: [],
      workerData: {
        path: this.dbPath,
        file: this.file && { dev: this.file.dev, ino: this.file.ino },
        betterSqlite3: createRequire(import.meta.url).resolve('better-sqlite3'),
      },
    });
    worker.on('message', (reply: ThreadReply) => this.done(reply));
    worker.on('error', (err) => this.fail(`the checkpoint thread failed (${err.message})`));
    worker.on('exit', (code) => {
      if (!this.closed) this.fail(`the checkpoint thread exited (code ${code})`);
    });
    // Idle, the thread keeps no process alive (a listener on it refs it again, so this comes last).
    worker.unref();
    return worker;
  }

  private done(reply: ThreadReply): void {
    // A reply after the thread failed belongs to nothing any more.
    if (this.counts.failure !== undefined) return;
    const tailRan = this.step === 'tail';
    if ('error' in reply) {
      // Busy (SQLITE_BUSY and its extended codes): another process on the file
      // (server.workers) checkpointing at the same moment covers ours.
      if (!reply.code?.startsWith('SQLITE_BUSY')) return this.fail(`a checkpoint failed (${reply.code ?? reply.error})`);
      this.counts.partial++;
    } else if (reply.busy !== 0) {
      // The pragma reports a busy checkpoint as a row (busy 1, log and checkpointed -1): no tail to copy.
      this.counts.partial++;
    } else {
      if (!tailRan) {
        this.counts.runs++;
        this.counts.logFrames = reply.log;
      }
      const whole = reply.checkpointed === reply.log;
      // Writes committed since step 1 began may have landed after it read the log's end: they are the tail too.
      if (!tailRan && !this.closed && (!whole || this.pendingWrites > 0)) return this.checkpointTail();
      if (!whole) this.counts.partial++;
    }
    this.releaseTail();
    this.step = undefined;
    this.worker?.unref();
    if (!this.closed && this.pendingWrites >= this.everyWrites) this.run();
  }

  /** Step 2: writes are held while the frames committed during step 1 are copied. */
  private checkpointTail(): void {
    let release!: () => void;
    const done = new Promise<void>((resolve) => (release = resolve));
    // Never hold writes for long: past the limit they go on, and this round leaves the log to grow.
    const timer = setTimeout(() => this.releaseTail(), TAIL_HOLD_LIMIT_MS);
    this.step = 'tail';
    this.tail = {
      done,
      release: () => {
        clearTimeout(timer);
        release();
      },
    };
    this.worker?.postMessage('checkpoint');
  }

  private releaseTail(): void {
    const tail = this.tail;
    this.tail = undefined;
    tail?.release();
  }

  private fail(reason: string): void {
    if (this.closed || this.counts.failure !== undefined) return;
    this.counts.failure = reason;
    this.step = undefined;
    this.releaseTail();
    const worker = this.worker;
    this.worker = undefined;
    void worker?.terminate();
    if (this.db.open) this.db.pragma(`wal_autocheckpoint = ${DEFAULT_AUTOCHECKPOINT_FRAMES}`);
  }
}
