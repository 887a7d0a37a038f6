/**
 * When to retry a Buildkite call and how long to wait: exponential backoff with jitter
 * for 5xx and network failures; for 429, the wait Buildkite names (`Retry-After`, else
 * `RateLimit-Reset` / `RateLimit-User-Reset` of the exhausted scope — seconds until the
 * window resets, https://buildkite.com/docs/apis/rest-api/rate-limits).
 */
import type { BuildkiteRateLimit } from './types.js';

export type Headers = Record<string, string | string[] | undefined>;

export interface BackoffPolicy {
  /** First retry waits about this long (ms); each further retry doubles it. */
  baseDelayMs: number;
  /** No backoff wait exceeds this (ms). */
  maxDelayMs: number;
  /** Uniform in [0, 1). */
  random: () => number;
}

/**
 * The wait before retry number `retry` (0 for the first): half of `base·2^retry`
 * (capped) fixed, half random ("equal jitter"), so concurrent callers spread out but
 * never retry at once.
 */
export function backoffDelayMs(retry: number, policy: BackoffPolicy): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** retry);
  return Math.round(ceiling / 2 + (ceiling / 2) * policy.random());
}

function header(headers: Headers, name: string): string | undefined {
  const value = headers[name.toLowerCase()];
  return Array.isArray(value) ? value[0] : value;
}

function nonNegativeInt(value: string | undefined): number | null {
  if (value === undefined || !/^\s*\d+\s*$/.test(value)) return null;
  return Number.parseInt(value, 10);
}

/** The `RateLimit-*` and `RateLimit-User-*` headers (https://buildkite.com/docs/apis/rest-api/rate-limits); null where absent or malformed. */
export function parseRateLimit(headers: Headers): BuildkiteRateLimit {
  return {
    limit: nonNegativeInt(header(headers, 'ratelimit-limit')),
    remaining: nonNegativeInt(header(headers, 'ratelimit-remaining')),
    resetSeconds: nonNegativeInt(header(headers, 'ratelimit-reset')),
    userLimit: nonNegativeInt(header(headers, 'ratelimit-user-limit')),
    userRemaining: nonNegativeInt(header(headers, 'ratelimit-user-remaining')),
    userResetSeconds: nonNegativeInt(header(headers, 'ratelimit-user-reset')),
  };
}

/** `Retry-After` as delay-seconds or an HTTP date (RFC 9110 §10.2.3), in ms. */
function retryAfterMs(headers: Headers, nowMs: number): number | undefined {
  const value = header(headers, 'retry-after');
  if (value === undefined) return undefined;
  const seconds = nonNegativeInt(value);
  if (seconds !== null) return seconds * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - nowMs);
}

/**
 * How long a 429 asks Port to wait (ms), or undefined when it doesn't say. Buildkite
 * rejects when either the organization or the per-user window is exhausted; the reset of
 * the exhausted one(s) counts. The 429 body's `reset` (seconds) is the last resort.
 */
export function rateLimitWaitMs(headers: Headers, body: unknown, nowMs: number): number | undefined {
  const explicit = retryAfterMs(headers, nowMs);
  if (explicit !== undefined) return explicit;
  const rl = parseRateLimit(headers);
  const exhausted: number[] = [];
  if (rl.remaining === 0 && rl.resetSeconds !== null) exhausted.push(rl.resetSeconds);
  if (rl.userRemaining === 0 && rl.userResetSeconds !== null) exhausted.push(rl.userResetSeconds);
  const candidates = exhausted.length > 0 ? exhausted : [rl.resetSeconds, rl.userResetSeconds].filter((s): s is number => s !== null);
  if (candidates.length > 0) return Math.max(...candidates) * 1000;
  if (typeof body === 'object' && body !== null && 'reset' in body) {
    const reset = (body as { reset: unknown }).reset;
    if (typeof reset === 'number' && Number.isFinite(reset) && reset >= 0) return reset * 1000;
  }
  return undefined;
}
