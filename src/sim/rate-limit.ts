/**
 * The REST rate-limit window (https://buildkite.com/docs/apis/rest-api/rate-limits): a fixed window of `windowSeconds`
 * allowing `limit` requests, reported in `RateLimit-*` headers on every answer.
 * Enforcement (429 once exhausted) is off unless asked for, so long test runs and the
 * benchmark are not throttled; the headers are sent either way.
 */
export interface RateLimitOptions {
  /** Requests per window; Buildkite's default is 200 per minute per organization. */
  limit?: number;
  windowSeconds?: number;
  /** Answer 429 once the window is exhausted. Default false. */
  enforce?: boolean;
}

export interface RateLimitState {
  limit: number;
  remaining: number;
  /** Seconds until the window resets. */
  reset: number;
  exceeded: boolean;
}

export class RateLimitWindow {
  readonly limit: number;
  readonly windowSeconds: number;
  readonly enforce: boolean;
  private windowStart = 0;
  private used = 0;

  constructor(opts: RateLimitOptions = {}, private readonly now: () => number = Date.now) {
    this.limit = opts.limit ?? 200;
    this.windowSeconds = opts.windowSeconds ?? 60;
    this.enforce = opts.enforce ?? false;
  }

  /** Counts one request. */
  take(): RateLimitState {
    const now = this.now();
    if (now - this.windowStart >= this.windowSeconds * 1000) {
      this.windowStart = now;
      this.used = 0;
    }
    this.used++;
    const reset = Math.max(0, Math.ceil((this.windowStart + this.windowSeconds * 1000 - now) / 1000));
    return { limit: this.limit, remaining: Math.max(0, this.limit - this.used), reset, exceeded: this.used > this.limit };
  }
}

/** The organization-scope headers (`RateLimit-User-*` is not simulated: one token, one user). */
export function rateLimitHeaders(state: Pick<RateLimitState, 'limit' | 'remaining' | 'reset'>): Record<string, string> {
  return {
    'RateLimit-Scope': 'rest',
    'RateLimit-Limit': String(state.limit),
    'RateLimit-Remaining': String(state.remaining),
    'RateLimit-Reset': String(state.reset),
  };
}
