import { randomUUID } from 'node:crypto';
import { backoffDelayMs } from '../buildkite/backoff.js';
import { PortError } from '../errors.js';
import type { Store, WebhookWorkClaim, WebhookWorkRecord } from '../store/store.js';
import { dispatchFor, type WebhookHandlers } from './dispatch.js';

export interface WebhookWorkOptions {
  store: Store;
  handlers: WebhookHandlers;
  /** This process's name on the leases it takes (default: a random id per process). */
  owner?: string;
  /** Clock in ms (tests). */
  now?: () => number;
  /** Uniform in [0, 1): the retry jitter (tests). */
  random?: () => number;
  /** The first retry waits about this long (ms, default 2 000); each further one doubles it. */
  retryBaseMs?: number;
  /** No wait between retries is longer (ms, default 5 min). */
  retryMaxMs?: number;
  /**
   * How long an item's lease lasts before another process may take it over (ms, default
   * 60 s). The attempt renews it every third of that while its handler runs (Buildkite
   * calls with their retries may take minutes), so a live attempt keeps it and the work
   * of a process that died mid-attempt is picked up within this bound.
   */
  leaseMs?: number;
  /** How long a finished delivery is remembered, so a re-send of it is a duplicate (ms, default 24 h). */
  dedupeMs?: number;
  /** Work still failing this long after it arrived is given up, with a log line (ms, default 24 h). */
  giveUpAfterMs?: number;
  /** A handler failed (or a store write around it); never given the payload. */
  onError(err: unknown, info: WebhookWorkInfo): void;
  /** What became of an attempt: for the log. */
  onOutcome?(outcome: WebhookWorkOutcome): void;
}

export interface WebhookWorkInfo {
  event: string;
  /** The delivery's dedupe key (a body hash: no payload, no secret). */
  key: string;
  /** 1 for the first attempt. */
  attempt: number;
  requestId?: string;
}

export interface WebhookWorkOutcome extends WebhookWorkInfo {
  /**
   * `done`; `skipped`: the handler found the work moot (dropped); `retry_scheduled`: it
   * failed and runs again at `nextAttemptAt`; `abandoned`: it failed past `giveUpAfterMs`
   * (forgotten, so a later re-send is new work); `unreadable`: the stored payload no longer
   * fits its event (dropped).
   */
  kind: 'done' | 'skipped' | 'retry_scheduled' | 'abandoned' | 'unreadable';
  reason?: string;
  nextAttemptAt?: number;
}

export type RunResult = 'done' | 'skipped' | 'failed';

const DEFAULTS = {
  retryBaseMs: 2_000,
  retryMaxMs: 5 * 60_000,
  leaseMs: 60_000,
  dedupeMs: 24 * 60 * 60_000,
  giveUpAfterMs: 24 * 60 * 60_000,
};

/** Longest `lastError` kept in the store (a sentence, not a dump). */
const MAX_ERROR_CHARS = 300;

/**
 * The work a webhook delivery asks for, kept in the store from receipt until it is done
 * (issue: "webhook work is never lost"). A delivery is *claimed* (recorded pending and
 * leased to this process) before it is answered; the handler runs; only success marks it
 * done — the delivery's dedupe key is spent then and not before. A failure hands the
 * lease back with the next attempt due after exponential backoff with equal jitter
 * (src/buildkite/backoff.ts), so a re-sent delivery is processed at once and the
 * reconciler (webhook-reconciler.ts) retries it on its own. Leases are compare-and-set
 * in the store, so two Ports on one store never run one item at the same time — unless
 * an attempt outlives its lease, which is why handlers are idempotent.
 */
export class WebhookWork {
  readonly owner: string;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly o: typeof DEFAULTS;

  constructor(private readonly opts: WebhookWorkOptions) {
    this.owner = opts.owner ?? `port-${process.pid}-${randomUUID()}`;
    this.now = opts.now ?? Date.now;
    this.random = opts.random ?? Math.random;
    this.o = {
      retryBaseMs: opts.retryBaseMs ?? DEFAULTS.retryBaseMs,
      retryMaxMs: opts.retryMaxMs ?? DEFAULTS.retryMaxMs,
      leaseMs: opts.leaseMs ?? DEFAULTS.leaseMs,
      dedupeMs: opts.dedupeMs ?? DEFAULTS.dedupeMs,
      giveUpAfterMs: opts.giveUpAfterMs ?? DEFAULTS.giveUpAfterMs,
    };
    for (const [name, value] of Object.entries(this.o)) {
      if (!(Number.isFinite(value) && value > 0)) throw new PortError('config_invalid', `WebhookWork: ${name} must be a positive number of milliseconds.`);
    }
    if (this.o.retryMaxMs < this.o.retryBaseMs) throw new PortError('config_invalid', 'WebhookWork: retryMaxMs must be at least retryBaseMs.');
  }

  /** Records a verified delivery's work as pending and leased to this process, unless it is known (see Store.webhookWork.claim). */
  claim(key: string, event: string, payload: unknown): Promise<WebhookWorkClaim> {
    const now = this.now();
    return this.opts.store.webhookWork.claim({ key, event, payload: JSON.stringify(payload), createdAt: now }, this.owner, now, now + this.o.leaseMs);
  }

  /**
   * Runs the items due now one by one (at most `limit`); resolves with how many ran. Each
   * is leased just before it runs: items leased together and left waiting their turn
   * behind a slow one would see their leases lapse, and another Port would run them too.
   */
  async runDue(limit = 20): Promise<number> {
    let ran = 0;
    while (ran < limit) {
      const now = this.now();
      const [work] = await this.opts.store.webhookWork.claimDue(this.owner, now, now + this.o.leaseMs, 1);
      if (work === undefined) break;
      await this.run(work);
      ran++;
    }
    return ran;
  }

  /**
   * Runs one item this process holds the lease of, and records the outcome. Never
   * throws: failures go to `onError` and leave the item pending for a retry.
   */
  async run(work: WebhookWorkRecord, requestId?: string): Promise<RunResult> {
    const info: WebhookWorkInfo = { event: work.event, key: work.key, attempt: work.attempts + 1, ...(requestId !== undefined ? { requestId } : {}) };
    let dispatch;
    try {
      dispatch = dispatchFor(work.event, JSON.parse(work.payload), this.opts.handlers);
    } catch {
      dispatch = undefined;
    }
    if (dispatch === undefined || 'problems' in dispatch) {
      // Only a store written by another version of Port (or by hand) gets here.
      await this.finish(work, 'dropped', info);
      this.outcome({ ...info, kind: 'unreadable', reason: `no handler takes the stored ${work.event} payload any more` });
      return 'skipped';
    }
    let result;
    try {
      result = await this.renewingLease(work, info, () => dispatch.run());
    } catch (err) {
      this.report(err, info);
      await this.retryLater(work, info, err);
      return 'failed';
    }
    if (result !== undefined && typeof result.skipped === 'string') {
      await this.finish(work, 'dropped', info);
      this.outcome({ ...info, kind: 'skipped', reason: result.skipped });
      return 'skipped';
    }
    await this.finish(work, 'done', info);
    this.outcome({ ...info, kind: 'done' });
    return 'done';
  }

  /** Runs `handler`, keeping the item's lease alive meanwhile; a failed or lost renewal is reported, the attempt carries on (handlers are idempotent). */
  private async renewingLease<T>(work: WebhookWorkRecord, info: WebhookWorkInfo, handler: () => Promise<T>): Promise<T> {
    const timer = setInterval(() => {
      const now = this.now();
      this.opts.store.webhookWork.renew(work.key, this.owner, now, now + this.o.leaseMs).then(
        (held) => {
          if (!held) this.report(new WebhookWorkStoreError('lost the lease of running work', new Error('it lapsed and another Port process may be running the work too')), info);
        },
        (err: unknown) => this.report(new WebhookWorkStoreError('could not renew its lease', err), info),
      );
    }, this.o.leaseMs / 3);
    timer.unref();
    try {
      return await handler();
    } finally {
      clearInterval(timer);
    }
  }

  private async finish(work: WebhookWorkRecord, outcome: 'done' | 'dropped', info: WebhookWorkInfo): Promise<void> {
    const now = this.now();
    try {
      await this.opts.store.webhookWork.finish(work.key, outcome, now, now + this.o.dedupeMs);
    } catch (err) {
      // The work itself is done; unrecorded, it stays pending and runs again (idempotently)
      // once its lease lapses. Reported, never thrown: the caller's work succeeded.
      this.report(new WebhookWorkStoreError('could not record that its work is done; it will run again', err), info);
    }
  }

  private async retryLater(work: WebhookWorkRecord, info: WebhookWorkInfo, err: unknown): Promise<void> {
    const now = this.now();
    const reason = errorSentence(err);
    if (now - work.createdAt >= this.o.giveUpAfterMs) {
      try {
        await this.opts.store.webhookWork.delete(work.key);
      } catch (e) {
        this.report(new WebhookWorkStoreError('could not give up on it; it stays pending', e), info);
        return;
      }
      this.outcome({ ...info, kind: 'abandoned', reason });
      return;
    }
    const nextAttemptAt = now + backoffDelayMs(work.attempts, { baseDelayMs: this.o.retryBaseMs, maxDelayMs: this.o.retryMaxMs, random: this.random });
    try {
      // False: the lease lapsed and another process holds the item now; its outcome is its own.
      if (!(await this.opts.store.webhookWork.release(work.key, this.owner, { nextAttemptAt, lastError: reason, now }))) return;
    } catch (e) {
      // Still pending and leased: it is retried once the lease lapses.
      this.report(new WebhookWorkStoreError('could not schedule its retry; it is retried when its lease lapses', e), info);
      return;
    }
    this.outcome({ ...info, kind: 'retry_scheduled', reason, nextAttemptAt });
  }

  private report(err: unknown, info: WebhookWorkInfo): void {
    try {
      this.opts.onError(err, info);
    } catch {
      // The error sink failing must not become an unhandled rejection.
    }
  }

  private outcome(o: WebhookWorkOutcome): void {
    try {
      this.opts.onOutcome?.(o);
    } catch {
      // As above.
    }
  }
}

/** The store failed around a delivery's work (recording, retrying or giving up). */
export class WebhookWorkStoreError extends PortError {
  constructor(what: string, cause: unknown) {
    super('webhook_work_store_failed', `Port ${what}: ${errorSentence(cause)}`, 503, { cause });
  }
}

function errorSentence(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.length > MAX_ERROR_CHARS ? `${message.slice(0, MAX_ERROR_CHARS - 1)}…` : message;
}

/**
 * The log line for an outcome, or undefined for a first attempt that simply worked
 * (the request log has it). Fields never include the payload.
 */
export function describeOutcome(o: WebhookWorkOutcome): { level: 'info' | 'warn' | 'error'; message: string; fields: Record<string, unknown> } | undefined {
  const fields: Record<string, unknown> = {
    event: o.event,
    // The body hash's first 16 digits: enough to follow one delivery through the log.
    delivery: o.key.replace(/^webhook-body:/, '').slice(0, 16),
    attempt: o.attempt,
    ...(o.requestId !== undefined ? { request_id: o.requestId } : {}),
    ...(o.reason !== undefined ? { reason: o.reason } : {}),
    ...(o.nextAttemptAt !== undefined ? { next_attempt_at: new Date(o.nextAttemptAt).toISOString() } : {}),
  };
  switch (o.kind) {
    case 'done':
      return o.attempt > 1 ? { level: 'info', message: 'webhook work done on a retry', fields } : undefined;
    case 'skipped':
      return { level: 'info', message: 'webhook work dropped: it is moot now', fields };
    case 'retry_scheduled':
      return { level: 'warn', message: 'webhook work failed; Port retries it (a re-sent delivery is processed too)', fields };
    case 'abandoned':
      return { level: 'error', message: 'webhook work given up: it kept failing past its retry period', fields };
    case 'unreadable':
      return { level: 'error', message: 'webhook work dropped: its stored payload no longer fits its event', fields };
  }
}
