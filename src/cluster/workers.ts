import cluster, { type Worker } from 'node:cluster';
import { hostname } from 'node:os';

/**
 * `server.workers`: the primary process of `port serve` forks N workers, each running the
 * whole server on the listener they share (https://nodejs.org/api/cluster.html: the
 * primary owns the socket and hands connections out round-robin to the workers that
 * listen, so a worker gets none until it is ready). Each worker is a replica on the one
 * store, exactly as replicas on PostgreSQL are (docs/operations/high-availability.md).
 *
 * The primary runs no Port code of its own. It starts one worker first and the others once
 * that one is ready: a first start's migrations and signing key are made once, and a
 * configuration or policy that can't start fails once, with that worker's exit code (2
 * for the operator to fix, as without workers). It replaces a worker that dies (with
 * backoff), gives up when replacements keep failing to start, and passes SIGTERM/SIGINT
 * (drain and stop) and SIGHUP (reload) on to the workers; it exits when they all have.
 */

/** The message a worker sends its primary once it listens. */
const READY = 'port:worker-ready';

/** Consecutive replacements that exit before they are ready before the primary gives up. */
export const MAX_START_FAILURES = 5;

/** Backoff before a replacement: doubling per recent failure, from 100 ms up to 30 s. */
const BACKOFF_BASE_MS = 100;
const BACKOFF_MAX_MS = 30_000;
/** A crash counts towards the backoff for this long. */
const CRASH_MEMORY_MS = 60_000;

/**
 * V8 flags every worker runs with, after the primary's own (a flag the primary was started
 * with, or its `--no-` form, is left as given).
 *
 * `--single-threaded-gc`: the collector's work stays on the worker's own thread. Workers fill
 * the machine's cores (one per CPU by default), so the helper threads V8 otherwise starts
 * for concurrent marking and parallel scavenges find no idle core: they run in time slices
 * taken from an event loop, a worker's own or another's. With one Port process on one core
 * (bench/exchange, open loop at half load) each major collection held the event loop
 * 15–25 ms that way, against ~9–12 ms with the flag, and the exchange's p99 fell in 5 of 6
 * alternating runs; throughput was the same (BENCHMARKS.md). Node accepts the flag on the
 * command line only: not in NODE_OPTIONS (https://nodejs.org/api/cli.html#node_optionsoptions),
 * and set at run time (v8.setFlagsFromString) it crashes V8's collector.
 */
export const WORKER_V8_FLAGS: readonly string[] = ['--single-threaded-gc'];

/** The primary's own V8/Node flags and WORKER_V8_FLAGS, minus those it already names either way. */
export function workerExecArgv(primary: readonly string[]): string[] {
  const named = new Set(primary.map((a) => a.split('=')[0]!.replace(/^--no-/, '--')));
  return [...primary, ...WORKER_V8_FLAGS.filter((f) => !named.has(f.split('=')[0]!))];
}

/** pino's numeric levels, so the primary's lines read like the workers' (https://getpino.io/#/docs/api?id=level-string). */
const LEVELS = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 } as const;
type Level = keyof typeof LEVELS;

export interface PrimaryOptions {
  /** How many workers (≥ 2; with 1 `port serve` does not fork). */
  count: number;
  /** `server.log_level`: the primary's own lines go to standard output as JSON at this level or above. */
  logLevel: string;
  /** Arguments of workers after the first (the first gets the primary's own): without `--create-store`, so a replacement never creates a store that went missing. */
  laterArgs: string[];
}

/** Whether this process is a worker forked by a `port serve` primary. */
export function isWorker(): boolean {
  return cluster.isWorker;
}

/** Tells the primary this worker listens (a no-op outside a cluster). */
export function reportReady(url: string): void {
  if (cluster.isWorker) process.send?.({ type: READY, url });
}

interface Slot {
  worker: Worker;
  ready: boolean;
}

/**
 * Runs the primary until its workers have stopped; resolves to the exit code: 0 after a
 * signal stopped them, else the failing worker's (2 for a configuration or policy problem,
 * 1 otherwise).
 */
export function runPrimary(opts: PrimaryOptions): Promise<number> {
  return new Primary(opts).run();
}

class Primary {
  private readonly slots = new Map<number, Slot>();
  private readonly restarts = new Set<NodeJS.Timeout>();
  private crashes: number[] = [];
  private startFailures = 0;
  private stopping = false;
  private exitCode = 0;
  private firstReady = false;
  private finish: ((code: number) => void) | undefined;
  private readonly threshold: number;

  constructor(private readonly opts: PrimaryOptions) {
    this.threshold = opts.logLevel === 'silent' ? Infinity : (LEVELS[opts.logLevel as Level] ?? LEVELS.info);
  }

  run(): Promise<number> {
    const done = new Promise<number>((resolve) => (this.finish = resolve));
    for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => this.stop(signal));
    // Without a handler SIGHUP would end the primary; the workers reload (policies, relay and webhook secrets).
    process.on('SIGHUP', () => this.forward('SIGHUP'));
    this.log('info', `Port starts ${this.opts.count} workers`, { workers: this.opts.count });
    cluster.setupPrimary({ execArgv: workerExecArgv(process.execArgv) });
    this.fork();
    return done;
  }

  private fork(): void {
    const worker = cluster.fork();
    const slot: Slot = { worker, ready: false };
    this.slots.set(worker.id, slot);
    worker.on('online', () => this.log('info', 'worker started', { worker: { id: worker.id, pid: worker.process.pid } }));
    worker.on('message', (msg: unknown) => {
      if (typeof msg !== 'object' || msg === null || (msg as { type?: unknown }).type !== READY || slot.ready) return;
      slot.ready = true;
      this.startFailures = 0;
      this.log('info', 'worker ready', { worker: { id: worker.id, pid: worker.process.pid } });
      if (!this.firstReady) {
        this.firstReady = true;
        cluster.setupPrimary({ args: this.opts.laterArgs });
        if (!this.stopping) for (let i = 1; i < this.opts.count; i++) this.fork();
      }
    });
    worker.on('exit', (code, signal) => this.exited(slot, code, signal));
  }

  private exited(slot: Slot, code: number | null, signal: string | null): void {
    const { worker } = slot;
    this.slots.delete(worker.id);
    const how = { worker: { id: worker.id, pid: worker.process.pid }, code, signal };
    if (this.stopping) {
      this.log('info', 'worker stopped', how);
    } else if (!this.firstReady) {
      // The first worker could not start: the configuration, policies, store or address
      // (it said why on standard error). As without workers: stop, with its exit code.
      this.exitCode = code ?? 1;
      this.log('error', 'the first worker exited before it was ready; Port stops', how);
      this.stop();
    } else if (!slot.ready) {
      this.startFailures++;
      if (this.startFailures >= MAX_START_FAILURES) {
        this.log('fatal', `workers keep exiting before they are ready (${this.startFailures} in a row); Port stops`, how);
        this.exitCode = code === 2 ? 2 : 1;
        this.stop();
      } else {
        this.log('error', 'worker exited before it was ready; starting another', how);
        this.replace(this.startFailures);
      }
    } else {
      const now = Date.now();
      this.crashes = [...this.crashes.filter((t) => now - t < CRASH_MEMORY_MS), now];
      this.log('error', 'worker exited unexpectedly; starting another', how);
      this.replace(this.crashes.length);
    }
    if (this.stopping && this.slots.size === 0) this.finish?.(this.exitCode);
  }

  private replace(failures: number): void {
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** (failures - 1));
    const timer = setTimeout(() => {
      this.restarts.delete(timer);
      if (!this.stopping) this.fork();
    }, delay);
    this.restarts.add(timer);
  }

  /**
   * Stops every worker with SIGTERM: each drains its connections (at most 10 s) and exits.
   * Once: a worker drains however many stop signals it hears (see serve-command.ts).
   */
  private stop(signal?: NodeJS.Signals): void {
    if (this.stopping) return;
    this.stopping = true;
    for (const timer of this.restarts) clearTimeout(timer);
    this.restarts.clear();
    if (this.slots.size === 0) return this.finish?.(this.exitCode);
    this.log('info', `stopping ${this.slots.size} workers`, signal ? { signal } : {});
    for (const { worker } of this.slots.values()) worker.process.kill('SIGTERM');
  }

  /** To the workers that are ready: one still starting has no handler yet (and reads the current files anyway). */
  private forward(signal: NodeJS.Signals): void {
    for (const { worker, ready } of this.slots.values()) if (ready) worker.process.kill(signal);
  }

  private log(level: Level, msg: string, fields: Record<string, unknown> = {}): void {
    if (LEVELS[level] < this.threshold) return;
    process.stdout.write(`${JSON.stringify({ level: LEVELS[level], time: Date.now(), pid: process.pid, hostname: hostname(), role: 'primary', ...fields, msg })}\n`);
  }
}
