/** How many refusals a source may earn before it is answered 429 instead (`server.refusal_rate_limit`). */
export interface SourceRateLimitOptions {
  /** Refusals a source may have in a burst (the bucket's size). */
  burst: number;
  /** Refusals per minute a source earns back (the bucket's refill rate). */
  perMinute: number;
  /**
   * Most sources tracked at once; past it the least recently refused one is forgotten,
   * so an attacker with many addresses can't grow the table without bound.
   */
  maxSources: number;
}

export type RateLimitVerdict = { allowed: true } | { allowed: false; retryAfterSeconds: number };

interface Bucket {
  tokens: number;
  /** When `tokens` was last brought up to date (ms). */
  at: number;
}

/**
 * A token bucket per source (remote address), in a bounded LRU table. Only refusals
 * take from it: a verified caller never asks it anything, so it is never throttled.
 * Forgetting a source gives it a full bucket again, which costs at most `burst` more
 * refusals; the decision log aggregates those anyway (src/audit/refusal-log.ts).
 */
export class SourceRateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly msPerToken: number;

  constructor(private readonly options: SourceRateLimitOptions) {
    if (!(options.burst >= 1) || !(options.perMinute > 0) || !(options.maxSources >= 1)) {
      throw new RangeError('A refusal rate limit needs burst >= 1, perMinute > 0 and maxSources >= 1.');
    }
    this.msPerToken = 60_000 / options.perMinute;
  }

  /** Takes one refusal from `source`'s bucket, or says how long until one is back. */
  take(source: string, now: number): RateLimitVerdict {
    const bucket = this.bucket(source, now);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return { allowed: true };
    }
    return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil(((1 - bucket.tokens) * this.msPerToken) / 1000)) };
  }

  /** Sources tracked now (bounded by `maxSources`). */
  get size(): number {
    return this.buckets.size;
  }

  private bucket(source: string, now: number): Bucket {
    const { burst, maxSources } = this.options;
    let bucket = this.buckets.get(source);
    if (bucket === undefined) {
      bucket = { tokens: burst, at: now };
    } else {
      // A clock that went back refills nothing rather than draining the bucket.
      bucket.tokens = Math.min(burst, bucket.tokens + Math.max(0, now - bucket.at) / this.msPerToken);
      bucket.at = Math.max(bucket.at, now);
      // Map iteration order is insertion order: re-inserting makes this the most recent.
      this.buckets.delete(source);
    }
    this.buckets.set(source, bucket);
    while (this.buckets.size > maxSources) this.buckets.delete(this.buckets.keys().next().value!);
    return bucket;
  }
}
