import { randomUUID } from 'node:crypto';
import { PortError } from '../errors.js';
import { DecisionLog } from './decision-log.js';
import type { DecisionEntry, DecisionRecord } from '../store/records/decisions.js';
import type { SourceRateLimiter } from './source-rate-limit.js';

/**
 * Checks that fail for Port's reasons, not the caller's (Buildkite's keys or API out of
 * reach): the caller may have done nothing wrong, so they are never throttled — but they
 * are still aggregated, since anyone can send a token with an unknown `kid` while the
 * keys are out of reach, and such an outage must not become a way to fill the disk.
 */
const PORTS_OWN_FAILURES = new Set(['jwks_unavailable', 'creator_unknown']);

/** Aggregate entries are per (kind, action, source); past this many in one window, the rest share the source "*". */
const DEFAULT_MAX_AGGREGATES = 1000;

/** The source of a refusal whose remote address is unknown. */
const UNKNOWN_SOURCE = 'unknown';

/** The source that aggregates fold into once a window holds `maxAggregates` of them. */
const OTHER_SOURCES = '*';

/**
 * A source refused too often: answered 429 (RFC 6585 §4) with `Retry-After` (RFC 9110
 * §10.2.3), and not written to the decision log one by one.
 */
export class RefusalThrottledError extends PortError {
  declare readonly code: 'too_many_requests';
  constructor(readonly retryAfterSeconds: number) {
    super('too_many_requests', `Too many invalid tokens came from this address; retry after ${retryAfterSeconds} s with a valid token.`, 429);
  }
}

/** Throttles the sources of bad tokens: `charge` throws RefusalThrottledError when one is over its limit. */
export interface RefusalThrottle {
  charge(source: string | undefined): void;
}

export interface RefusalLogOptions {
  /** Length of an aggregation window (`audit.refusal_window`, seconds). */
  windowSeconds: number;
  /** Per-source throttle (`server.refusal_rate_limit`); without it, refusals are only aggregated. */
  limiter?: SourceRateLimiter;
  /** Most aggregate entries one window may hold (bounds memory and the log); default 1000. */
  maxAggregates?: number;
  /** The clock (tests inject one). */
  now?: () => number;
  /** A flush of aggregates failed (the counts are lost; the next window starts clean). */
  onError: (err: unknown) => void;
}

/** One unauthenticated refusal, as `record()` recognises it. */
export interface Refusal {
  /** The failed check (`bad_signature`, `malformed`, `bearer_invalid`, …). */
  kind: string;
  record: DecisionRecord;
  /** The remote address it came from. */
  source: string | undefined;
  /** A failure of Port's (PORTS_OWN_FAILURES): counted, never throttled. */
  ours: boolean;
}

interface Aggregate {
  kind: string;
  source: string;
  first: DecisionRecord;
  /** Refused (401/400) but not logged in full. */
  refusals: number;
  /** Answered 429 instead. */
  throttled: number;
  /** The refusals' resource while they all share one; null once they differ. */
  resource: string | null;
}

/**
 * The decision log with unauthenticated refusals kept from filling the disk. A refusal
 * about nobody — a deny whose principal is null because the token
 * did not verify (DecisionRecord: "null when the caller could not be identified"),
 * naming the failed `context.check` — is:
 * - charged to its source's rate limit (unless the failure is Port's own: Buildkite's
 *   keys or API out of reach); over it, RefusalThrottledError (429) and only a count;
 * - logged in full when it is the first of its kind (check + action) in the window;
 * - otherwise counted, one entry per (kind, action, source) per window with
 *   `context.refusals` and `context.throttled`, written when the window closes and on close().
 * Every other record — allowed and denied decisions about verified identities — is
 * logged one by one and durably, exactly as by DecisionLog. Counted refusals are
 * buffered for at most one window: a crash loses those counts, never a decision about
 * an identified caller.
 */
export class RefusalLog extends DecisionLog implements RefusalThrottle {
  private readonly windowMs: number;
  private readonly now: () => number;
  private readonly maxAggregates: number;
  private windowStart = 0;
  private firstOfKind = new Set<string>();
  private aggregates = new Map<string, Aggregate>();
  private timer: NodeJS.Timeout | undefined;
  private readonly writing = new Set<Promise<void>>();
  private closed = false;

  constructor(
    private readonly options: RefusalLogOptions,
    ...log: ConstructorParameters<typeof DecisionLog>
  ) {
    super(...log);
    if (!(options.windowSeconds > 0)) throw new RangeError('The refusal window must be longer than 0 s.');
    this.windowMs = options.windowSeconds * 1000;
    this.now = options.now ?? Date.now;
    this.maxAggregates = options.maxAggregates ?? DEFAULT_MAX_AGGREGATES;
  }

  /** As DecisionLog.record; a batch of one unauthenticated refusal goes through `refuse`. */
  override async record(records: DecisionRecord[]): Promise<void> {
    const refusal = records.length === 1 ? unauthenticatedRefusal(records[0]!) : undefined;
    if (refusal === undefined) return super.record(records);
    return this.refuse(refusal);
  }

  /**
   * Logs (or counts) one unauthenticated refusal; throws RefusalThrottledError when its
   * source is over the limit. Resolves once it is logged in full or counted.
   */
  async refuse({ kind, record, source, ours }: Refusal): Promise<void> {
    const now = this.now();
    this.roll(now);
    const from = source === undefined || source === '' ? UNKNOWN_SOURCE : source;
    const verdict = ours ? undefined : this.options.limiter?.take(from, now);
    if (verdict !== undefined && !verdict.allowed) {
      this.count(kind, record, from, 'throttled', now);
      throw new RefusalThrottledError(verdict.retryAfterSeconds);
    }
    const kindKey = `${kind}\n${record.action}`;
    if (!this.firstOfKind.has(kindKey) && !this.closed) {
      this.firstOfKind.add(kindKey);
      return super.record([record]);
    }
    this.count(kind, record, from, 'refusals', now);
  }

  /**
   * Only the rate limit, for a refusal the decision log does not record (the relay's and
   * the admin API's callers with a bad token): throws RefusalThrottledError when over.
   */
  charge(source: string | undefined): void {
    const verdict = this.options.limiter?.take(source === undefined || source === '' ? UNKNOWN_SOURCE : source, this.now());
    if (verdict !== undefined && !verdict.allowed) throw new RefusalThrottledError(verdict.retryAfterSeconds);
  }

  /** Writes the current window's counts now and starts a new window. */
  async flush(): Promise<void> {
    this.startWindow(this.now());
    await Promise.all([...this.writing]);
  }

  /** Writes what was counted; later refusals are counted in a window nothing flushes, so call it last. */
  async close(): Promise<void> {
    this.closed = true;
    await this.flush();
  }

  private roll(now: number): void {
    if (this.windowStart === 0) this.windowStart = alignedStart(now, this.windowMs);
    else if (now >= this.windowStart + this.windowMs || now < this.windowStart) this.startWindow(now);
  }

  /** Ends the window: its counts are written in the background (awaited by flush/close). */
  private startWindow(now: number): void {
    const ended = this.aggregates;
    const start = this.windowStart;
    this.windowStart = alignedStart(now, this.windowMs);
    this.aggregates = new Map();
    this.firstOfKind = new Set();
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    if (ended.size === 0) return;
    const end = Math.min(now, start + this.windowMs);
    const records = [...ended.values()].map((a) => aggregateRecord(a, start, end));
    const write = super
      .record(records)
      .then(() => undefined)
      .catch((err: unknown) => this.options.onError(err))
      .finally(() => this.writing.delete(write));
    this.writing.add(write);
  }

  private count(kind: string, record: DecisionRecord, source: string, what: 'refusals' | 'throttled', now: number): void {
    let key = `${kind}\n${record.action}\n${source}`;
    let aggregate = this.aggregates.get(key);
    if (aggregate === undefined && this.aggregates.size >= this.maxAggregates) {
      // Bounded whatever the number of sources: the rest of the window shares one entry per kind.
      key = `${kind}\n${record.action}\n${OTHER_SOURCES}`;
      aggregate = this.aggregates.get(key);
      source = OTHER_SOURCES;
    }
    if (aggregate === undefined) {
      aggregate = { kind, source, first: record, refusals: 0, throttled: 0, resource: record.resource };
      this.aggregates.set(key, aggregate);
    }
    aggregate[what]++;
    if (aggregate.resource !== record.resource) aggregate.resource = null;
    // The window closes on time even when no further refusal comes to roll it.
    if (this.timer === undefined && !this.closed) {
      this.timer = setTimeout(() => this.startWindow(this.now()), Math.max(1, this.windowStart + this.windowMs - now));
      this.timer.unref();
    }
  }
}

/** The refusal `record` describes, when it is one that `RefusalLog` counts. */
export function unauthenticatedRefusal(record: DecisionRecord): Refusal | undefined {
  if (record.decision !== 'deny' || record.principal !== null) return undefined;
  const check = record.context.check;
  if (typeof check !== 'string') return undefined;
  const source = record.context.remote_address;
  return { kind: check, record, source: typeof source === 'string' ? source : undefined, ours: PORTS_OWN_FAILURES.has(check) };
}

function alignedStart(now: number, windowMs: number): number {
  return now - (now % windowMs);
}

/** One entry for a window's refusals of one kind from one source (never a token: only codes and counts). */
function aggregateRecord(a: Aggregate, start: number, end: number): DecisionRecord {
  const total = a.refusals + a.throttled;
  return {
    id: randomUUID(),
    time: new Date(end).toISOString(),
    principal: null,
    action: a.first.action,
    resource: a.resource,
    decision: 'deny',
    policies: [],
    reason: `${total} more refusal${total === 1 ? '' : 's'} of this kind from one source in the window (${a.throttled} answered 429): ${a.first.reason}`,
    context: {
      check: a.kind,
      aggregated: true,
      refusals: a.refusals,
      throttled: a.throttled,
      window_start: new Date(start).toISOString(),
      window_end: new Date(end).toISOString(),
      ...(a.source === UNKNOWN_SOURCE ? {} : { remote_address: a.source }),
    },
  };
}
