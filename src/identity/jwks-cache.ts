import { KeyObject, webcrypto } from 'node:crypto';
import { importJWK, type JWK } from 'jose';
import { JwksFetchError, TokenRejectedError } from './errors.js';
import { fetchJwksDocument } from './jwks-fetch.js';
import { isJwsAlgorithm, type JwsAlgorithm } from './jws-signature.js';

export interface JwksCacheOptions {
  url: string;
  /** Allowed `alg` values; keys for other algorithms are not loaded. */
  algorithms: string[];
  /** Seconds between routine (background) refreshes. */
  refreshInterval: number;
  /** Minimum seconds between refreshes triggered by an unknown `kid`. */
  minRefreshInterval: number;
  /** Seconds a cached set stays usable after the last successful fetch; then fail closed. */
  maxAge: number;
  /** Total deadline for one fetch, in milliseconds: connect, headers and the whole body. */
  timeout?: number;
  /** How long a request whose `kid` is not cached waits for a fetch, in milliseconds. */
  requestWait?: number;
  now?: () => number;
  /** Told about each failed fetch (the last good set stays in use). */
  onRefreshError?: (err: JwksFetchError) => void;
}

/** What `/readyz` shows for Buildkite's keys. */
export interface JwksReadiness {
  ready: boolean;
  detail: string;
}

/** A key of the set, pinned to one algorithm. */
export interface JwksKey {
  alg: JwsAlgorithm;
  /** For node:crypto (src/identity/jws-signature.ts); jose's `jwtVerify` takes a KeyObject too. */
  key: KeyObject;
}

const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_REQUEST_WAIT_MS = 2_000;
/** First retry after a failed fetch; doubles up to the min refresh interval. */
const FIRST_RETRY_MS = 1_000;

/**
 * Buildkite's JWKS (https://agent.buildkite.com/.well-known/jwks, "OIDC URLs" in
 * https://buildkite.com/docs/agent/v3/cli-oidc), cached. Keys by `kid`.
 *
 * - Refreshed in the background on a schedule (`start()`), each fetch under a total deadline,
 *   so a JWKS that hangs or drips holds nothing but that one fetch.
 * - A request whose `kid` is cached never waits for a fetch. Only an unknown `kid` (or no
 *   usable set at all) waits, and only up to `requestWait`; such fetches are rate-limited
 *   so forged kids can't make Port hammer the endpoint, and join a fetch already running.
 * - The cached set is used until `maxAge` after the last successful fetch, then every token
 *   is refused (fail closed, 503 `temporarily_unavailable`).
 */
export class JwksCache {
  private keys = new Map<string, JwksKey>();
  private lastSuccess = 0;
  private lastAttempt = 0;
  private lastError: JwksFetchError | undefined;
  private failures = 0;
  private inflight: Promise<boolean> | undefined;
  private aborter: AbortController | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private readonly now: () => number;
  private readonly timeoutMs: number;
  private readonly requestWaitMs: number;

  constructor(private readonly options: JwksCacheOptions) {
    this.now = options.now ?? Date.now;
    this.timeoutMs = options.timeout ?? DEFAULT_TIMEOUT_MS;
    this.requestWaitMs = options.requestWait ?? DEFAULT_REQUEST_WAIT_MS;
  }

  /**
   * Starts the background refresh: fetches now, then every `refreshInterval` (sooner, with
   * backoff, after a failure). Resolves once the first fetch has settled or `requestWait`
   * has passed, whichever is first; it never throws — `readiness()` tells how it went.
   */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    const first = this.refreshInBackground();
    await this.waitAtMost(first, this.requestWaitMs);
  }

  /** Stops the schedule and abandons a fetch in flight (shutdown never waits on the JWKS). */
  stop(): void {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.aborter?.abort();
  }

  /** Ready once a usable set was fetched and while it is younger than `maxAge`. */
  readiness(): JwksReadiness {
    const last = this.lastError ? ` The last attempt failed: ${this.lastError.message}` : '';
    if (this.lastSuccess === 0) {
      return { ready: false, detail: `Buildkite's signing keys have not been fetched yet from ${this.displayUrl}.${last}` };
    }
    const age = Math.max(0, Math.round((this.now() - this.lastSuccess) / 1000));
    if (this.isStale()) {
      return {
        ready: false,
        detail: `Buildkite's signing keys were last fetched ${age} s ago, more than jwks_max_age (${this.options.maxAge} s); every token is refused until a fetch succeeds.${last}`,
      };
    }
    if (this.keys.size === 0) {
      return { ready: false, detail: `Buildkite's JWKS has no key Port can use (allowed algorithms: ${this.options.algorithms.join(', ')}).` };
    }
    return { ready: true, detail: `${this.keys.size} ${this.keys.size === 1 ? 'key' : 'keys'}, fetched ${age} s ago` };
  }

  /**
   * Resolves the verification key for a token header by its `kid`, refusing a header whose
   * `alg` is not the key's (RFC 8725 §3.1). Usable as jose's `jwtVerify` key resolver.
   */
  getKey = async (header: { kid?: unknown; alg?: unknown }): Promise<KeyObject> => {
    return (await this.keyFor(header)).key;
  };

  /** The key for a token header and the algorithm it is pinned to; refusals are TokenRejectedErrors. */
  async keyFor(header: { kid?: unknown; alg?: unknown }): Promise<JwksKey> {
    const kid = header.kid;
    if (typeof kid !== 'string' || kid.length === 0 || kid.length > 256) {
      throw new TokenRejectedError('missing_kid', 'The subject token header has no usable kid; Buildkite tokens always name their key.');
    }
    // How the fetch this request waited for ended: undefined when it waited for none.
    let waited: 'fetched' | 'failed' | 'timed_out' | undefined;
    if (this.isStale() || !this.keys.has(kid)) {
      // Only here does a request wait: for a kid Port hasn't seen, or for any usable set.
      const fetch = this.inflight ?? (this.now() - this.lastAttempt >= this.options.minRefreshInterval * 1000 ? this.refreshInBackground() : undefined);
      if (fetch) {
        const result = await this.waitAtMost(fetch, this.requestWaitMs);
        waited = result === undefined ? 'timed_out' : result ? 'fetched' : 'failed';
      }
    } else if (this.now() - this.lastSuccess >= this.options.refreshInterval * 1000) {
      // Due for a routine refresh and nothing runs it (start() was not called): run it, don't wait.
      this.kickRoutineRefresh();
    }
    if (this.lastSuccess === 0 || this.isStale()) {
      throw new TokenRejectedError(
        'jwks_unavailable',
        this.lastSuccess === 0
          ? `Buildkite's signing keys have not been fetched yet from ${this.displayUrl}; try again shortly.`
          : `Buildkite's signing keys could not be fetched from ${this.displayUrl} for longer than jwks_max_age; try again later.`,
      );
    }
    const entry = this.keys.get(kid);
    if (!entry) {
      if (waited === 'failed' || waited === 'timed_out') {
        // Can't tell a rotation Port missed from a forged kid while the JWKS doesn't answer: retryable.
        throw new TokenRejectedError(
          'jwks_unavailable',
          `The subject token's kid is not among Buildkite's cached signing keys, and ${
            waited === 'timed_out' ? `${this.displayUrl} did not answer within ${this.requestWaitMs} ms` : `fetching ${this.displayUrl} failed`
          }; try again shortly.`,
        );
      }
      throw new TokenRejectedError('unknown_kid', "The subject token's kid is not one of Buildkite's current signing keys.");
    }
    if (entry.alg !== header.alg) {
      throw new TokenRejectedError('alg_not_allowed', `The subject token's alg does not match its key's algorithm (${entry.alg}).`);
    }
    return entry;
  }

  /** The JWKS URL for messages, without any userinfo it might carry. */
  private get displayUrl(): string {
    try {
      const u = new URL(this.options.url);
      return `${u.origin}${u.pathname}`;
    } catch {
      return 'the configured jwks_url';
    }
  }

  private isStale(): boolean {
    return this.lastSuccess === 0 || this.now() - this.lastSuccess > this.options.maxAge * 1000;
  }

  private kickRoutineRefresh(): void {
    if (this.inflight || this.now() - this.lastAttempt < this.options.minRefreshInterval * 1000) return;
    void this.refreshInBackground();
  }

  /** One fetch at a time; resolves true when it replaced the set. Never rejects. */
  private refreshInBackground(): Promise<boolean> {
    if (this.inflight) return this.inflight;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const aborter = new AbortController();
    this.aborter = aborter;
    this.lastAttempt = this.now();
    this.inflight = this.fetchKeys(aborter.signal)
      .then((keys) => {
        this.keys = keys;
        this.lastSuccess = this.now();
        this.lastError = undefined;
        this.failures = 0;
        return true;
      })
      .catch((err: unknown) => {
        const failure = err instanceof JwksFetchError ? err : new JwksFetchError('network', 'the JWKS request failed', { cause: err });
        // Stopped for shutdown: nothing failed, nothing to report.
        if (failure.reason === 'aborted') return false;
        this.lastError = failure;
        this.failures++;
        this.options.onRefreshError?.(failure);
        return false;
      })
      .finally(() => {
        this.inflight = undefined;
        if (this.aborter === aborter) this.aborter = undefined;
        this.schedule();
      });
    return this.inflight;
  }

  /** The next background fetch: the routine interval after a success, backoff after a failure. */
  private schedule(): void {
    if (!this.running) return;
    const routine = this.options.refreshInterval * 1000;
    const delay =
      this.failures === 0
        ? routine
        : Math.min(FIRST_RETRY_MS * 2 ** (this.failures - 1), Math.max(FIRST_RETRY_MS, this.options.minRefreshInterval * 1000), routine);
    this.timer = setTimeout(() => void this.refreshInBackground(), Math.max(delay, 1));
    this.timer.unref();
  }

  private async fetchKeys(signal: AbortSignal): Promise<Map<string, JwksKey>> {
    const body = await fetchJwksDocument(this.options.url, { timeoutMs: this.timeoutMs, signal });
    const next = new Map<string, JwksKey>();
    for (const jwk of body.keys as JWK[]) {
      if (typeof jwk?.kid !== 'string' || (jwk.use !== undefined && jwk.use !== 'sig')) continue;
      // A key without `alg` is pinned to the first allowed algorithm for its type.
      const alg = jwk.alg ?? (jwk.kty === 'RSA' ? 'RS256' : undefined);
      if (!isJwsAlgorithm(alg) || !this.options.algorithms.includes(alg)) continue;
      try {
        // jose imports (and so validates) the JWK for its algorithm, once per fetch; node:crypto
        // verifies with the very same key, so no token's check waits on WebCrypto.
        const imported = (await importJWK(jwk, alg)) as webcrypto.CryptoKey;
        next.set(jwk.kid, { alg, key: KeyObject.from(imported) });
      } catch {
        // A key Port cannot import is skipped; tokens naming it fail as unknown_kid.
      }
    }
    return next;
  }

  /** Resolves with the fetch's result, or `undefined` when `ms` pass first. */
  private async waitAtMost(fetch: Promise<boolean>, ms: number): Promise<boolean | undefined> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), ms);
    });
    try {
      return await Promise.race([fetch, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}
