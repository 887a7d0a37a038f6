import { randomUUID } from 'node:crypto';
import type { DecisionLog } from '../audit/decision-log.js';
import type { DecisionRecord } from '../audit/decision-record.js';

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

interface Bucket {
  first: AllowedRequest;
  count: number;
  since: number;
}

/**
 * Allowed relay requests are logged as decisions, not endpoints (issue #3): one entry
 * per (job, token, upstream, method, determining policies) per window, with a request
 * count, so the relay's hot path never writes to the store. Per token, so the entry's
 * `context.port_token` (or `subject_token`) names the token that made every request it
 * counts. Never a path, a query, a header value or a body. Denials are logged one by
 * one elsewhere.
 */
export class AllowLog {
  private buckets = new Map<string, Bucket>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly log: DecisionLog,
    windowSeconds: number,
    private readonly onError: (err: unknown) => void,
  ) {
    this.timer = setInterval(() => void this.flush(), windowSeconds * 1000);
    this.timer.unref();
  }

  count(req: AllowedRequest, now = Date.now()): void {
    const key = `${req.principal}\n${req.token}\n${req.upstream}\n${req.method}\n${req.policies.map((p) => p.id).join(',')}`;
    const bucket = this.buckets.get(key);
    if (bucket) bucket.count++;
    else this.buckets.set(key, { first: req, count: 1, since: now });
  }

  /** Writes one entry per bucket and starts a new window. */
  async flush(now = Date.now()): Promise<void> {
    if (this.buckets.size === 0) return;
    const buckets = this.buckets;
    this.buckets = new Map();
    const records: DecisionRecord[] = [...buckets.values()].map(({ first, count, since }) => ({
      id: randomUUID(),
      time: new Date(now).toISOString(),
      principal: first.principal,
      action: 'proxy',
      resource: first.resource,
      decision: 'allow',
      policies: first.policies,
      reason: first.reason,
      policyRevision: first.revision,
      context: { ...first.context, upstream: first.upstream, method: first.method, requests: count, window_start: new Date(since).toISOString() },
    }));
    try {
      await this.log.record(records);
    } catch (err) {
      this.onError(err);
    }
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
  }
}
