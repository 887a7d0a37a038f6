import { createHash, randomUUID } from 'node:crypto';
import { mergeObjects } from '../merge-objects.js';
import type { DecisionRecord } from '../store/records/decisions.js';
import type { PendingAllowRecord, Store } from '../store/store.js';

export interface AllowedRequest {
  principal: string;
  resource: string;
  upstream: string;
  method: string;
  /** The caller's token id (jti or Buildkite replay key): part of the aggregation key, never logged. */
  token: string;
  policies: { id: string; reason?: string }[];
  reason: string;
  revision: string;
  context: Record<string, unknown>;
}

export interface AllowLogOptions {
  store: Pick<Store, 'allowCounts'>;
  /** Seconds per aggregation window (`relay.allow_log_window`). */
  windowSeconds: number;
  /** Milliseconds between durable saves of the running counts: what a crash can lose at most. */
  syncMs?: number;
  onError: (err: unknown, msg: string) => void;
  now?: () => number;
}

interface Bucket {
  /** SHA-256 of the aggregation key: the pending row's key (the token id never reaches the store). */
  key: string;
  /** The entry's id, the same in the pending row and the final entry. */
  id: string;
  first: AllowedRequest;
  count: number;
  since: number;
  /** Counted since the last save. */
  dirty: boolean;
}

/** A process's pending rows not refreshed for this many syncs belong to a process that died. */
const STALE_SYNCS = 5;

/**
 * Allowed relay requests are logged as decisions, not endpoints: one entry
 * per (job, token, upstream, method, determining policies) per window, with a request
 * count, so the relay's hot path never waits on the store. Per token, so the entry's
 * `context.port_token` (or `subject_token`) names the token that made every request it
 * counts. Never a path, a query, a header value or a body. Denials are logged one by
 * one elsewhere.
 *
 * Durability: the running counts are saved to the store every `syncMs` (1 s) under this
 * process's owner id, and the window's entries replace them in one transaction, so a
 * kill -9 loses at most one sync's worth of counts. Rows whose owner stopped refreshing
 * them (a crashed process) are appended to the log by whichever Port notices first.
 */
export class AllowLog {
  private buckets = new Map<string, Bucket>();
  private readonly owner = randomUUID();
  private readonly syncMs: number;
  private readonly now: () => number;
  private readonly timers: NodeJS.Timeout[];
  private syncing: Promise<void> | undefined;
  private closed = false;

  constructor(private readonly opts: AllowLogOptions) {
    this.syncMs = opts.syncMs ?? 1000;
    this.now = opts.now ?? Date.now;
    this.timers = [
      setInterval(() => void this.sync(), this.syncMs),
      setInterval(() => void this.flush(), opts.windowSeconds * 1000),
      setInterval(() => void this.recover(), STALE_SYNCS * this.syncMs),
    ];
    for (const t of this.timers) t.unref();
    void this.recover();
  }

  count(req: AllowedRequest, now = this.now()): void {
    const aggregation = `${req.principal}\n${req.token}\n${req.upstream}\n${req.method}\n${req.policies.map((p) => p.id).join(',')}`;
    const bucket = this.buckets.get(aggregation);
    if (bucket) {
      bucket.count++;
      bucket.dirty = true;
    } else {
      const key = createHash('sha256').update(aggregation).digest('hex');
      this.buckets.set(aggregation, { key, id: randomUUID(), first: req, count: 1, since: now, dirty: true });
    }
  }

  /** Saves the counts that changed since the last save (and keeps this process's rows alive). */
  sync(now = this.now()): Promise<void> {
    this.syncing ??= (async () => {
      const dirty = [...this.buckets.values()].filter((b) => b.dirty);
      if (this.buckets.size === 0) return;
      for (const b of dirty) b.dirty = false;
      const pending: PendingAllowRecord[] = dirty.map((b) => ({ key: b.key, record: recordOf(b, now) }));
      try {
        await this.opts.store.allowCounts.save(this.owner, pending, now);
      } catch (err) {
        for (const b of dirty) b.dirty = true;
        this.opts.onError(err, 'relay allow counts could not be saved');
      }
    })().finally(() => (this.syncing = undefined));
    return this.syncing;
  }

  /** Writes one entry per bucket, replacing its pending row, and starts a new window. */
  async flush(now = this.now()): Promise<void> {
    await this.syncing;
    if (this.buckets.size === 0) return;
    const buckets = this.buckets;
    this.buckets = new Map();
    const list = [...buckets.values()];
    try {
      await this.opts.store.allowCounts.commitWindow(
        this.owner,
        list.map((b) => b.key),
        list.map((b) => recordOf(b, now)),
      );
    } catch (err) {
      // Nothing was written: the counts go back into the next window, none lost.
      for (const [aggregation, b] of buckets) {
        const current = this.buckets.get(aggregation);
        this.buckets.set(aggregation, current ? { ...b, count: b.count + current.count, dirty: true } : { ...b, dirty: true });
      }
      this.opts.onError(err, 'relay allow log flush failed');
    }
  }

  /** Appends what a crashed Port process had counted but not logged. */
  private async recover(now = this.now()): Promise<void> {
    if (this.closed) return;
    try {
      await this.opts.store.allowCounts.recover(this.owner, now - STALE_SYNCS * this.syncMs, (r) => ({
        ...r,
        time: new Date(now).toISOString(),
        context: { ...r.context, recovered: true },
      }));
    } catch (err) {
      this.opts.onError(err, 'relay allow counts of a stopped process could not be recovered');
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    await this.flush();
  }
}

function recordOf({ id, first, count, since }: Bucket, now: number): DecisionRecord {
  return {
    id,
    time: new Date(now).toISOString(),
    principal: first.principal,
    action: 'proxy',
    resource: first.resource,
    decision: 'allow',
    policies: first.policies,
    reason: first.reason,
    policyRevision: first.revision,
    context: mergeObjects(first.context, { upstream: first.upstream, method: first.method, requests: count, window_start: new Date(since).toISOString() }),
  };
}
