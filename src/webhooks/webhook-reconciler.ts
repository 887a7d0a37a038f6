import { PortError } from '../errors.js';
import type { WebhookWork } from './webhook-work.js';

export interface WebhookReconcilerOptions {
  /** How often to look for work that is due (ms, default 1 000): one indexed query when there is none. */
  intervalMs?: number;
  /** Items run per pass, at most (default 20). */
  batch?: number;
  /**
   * A pass failed as a whole (the store could not be read or written). Told once per
   * distinct failure, not every pass: a store that is down must not flood the log.
   */
  onError(err: unknown): void;
  /** Passes work again after failing. */
  onRecovered?(): void;
}

/**
 * Port reconciling on its own: every `intervalMs` it leases the webhook work that is due
 * (failed before and past its backoff, or left by a process that died holding it) and
 * runs it, so a blocked build Port could not process is retried without waiting for
 * Buildkite to re-send anything. The state is the store's, so this survives restarts
 * and any number of Ports may run one (the lease decides who works an item). Passes
 * never overlap; `stop()` waits for the one running.
 */
export class WebhookReconciler {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  /** The message of the failure last reported, while passes keep failing. */
  private failing: string | undefined;
  private readonly intervalMs: number;
  private readonly batch: number;

  constructor(
    private readonly work: WebhookWork,
    private readonly opts: WebhookReconcilerOptions,
  ) {
    this.intervalMs = opts.intervalMs ?? 1_000;
    this.batch = opts.batch ?? 20;
    if (!(Number.isFinite(this.intervalMs) && this.intervalMs > 0)) throw new PortError('config_invalid', 'WebhookReconciler: intervalMs must be a positive number.');
    if (!(Number.isInteger(this.batch) && this.batch > 0)) throw new PortError('config_invalid', 'WebhookReconciler: batch must be a positive integer.');
  }

  start(): void {
    if (this.timer !== undefined || this.stopped) return;
    this.timer = setInterval(() => void this.pass(), this.intervalMs);
    this.timer.unref();
  }

  /** One pass now (unless one is running: then that one); resolves when it ends. Never rejects. */
  pass(): Promise<void> {
    if (this.running !== undefined) return this.running;
    if (this.stopped) return Promise.resolve();
    this.running = (async () => {
      try {
        // A full batch means more may be due: keep going until a short one.
        while (!this.stopped && (await this.work.runDue(this.batch)) === this.batch);
        if (this.failing !== undefined) {
          this.failing = undefined;
          this.tell(() => this.opts.onRecovered?.());
        }
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        if (message !== this.failing) this.tell(() => this.opts.onError(err));
        this.failing = message;
      } finally {
        this.running = undefined;
      }
    })();
    return this.running;
  }

  private tell(report: () => void): void {
    try {
      report();
    } catch {
      // The error sink failing must not become an unhandled rejection.
    }
  }

  /** Stops the timer and waits for a pass still running. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }
}
