import { importJWK, type JWK, type JWSHeaderParameters, type CryptoKey } from 'jose';
import { request } from 'undici';
import { TokenRejectedError } from './errors.js';

export interface JwksCacheOptions {
  url: string;
  /** Allowed `alg` values; keys for other algorithms are not loaded. */
  algorithms: string[];
  /** Seconds between routine refreshes. */
  refreshInterval: number;
  /** Minimum seconds between refreshes triggered by an unknown `kid`. */
  minRefreshInterval: number;
  /** Seconds a cached set stays usable while the endpoint fails; then fail closed. */
  maxAge: number;
  /** Milliseconds to wait for the JWKS endpoint. */
  timeout?: number;
  now?: () => number;
}

interface CachedKey {
  alg: string;
  key: CryptoKey;
}

/**
 * Buildkite's JWKS, cached (buildkite.md §1.5): keys by `kid`; refreshed on a
 * schedule and on an unknown `kid` (rate-limited so forged kids can't make Port hammer
 * the endpoint); served from cache while the endpoint is down, until `maxAge` after the
 * last successful fetch, then every token is refused (fail closed).
 */
export class JwksCache {
  private keys = new Map<string, CachedKey>();
  private lastSuccess = 0;
  private lastAttempt = 0;
  private inflight: Promise<void> | undefined;
  private readonly now: () => number;

  constructor(private readonly options: JwksCacheOptions) {
    this.now = options.now ?? Date.now;
  }

  /** Resolves the verification key for a token header, as jose's `jwtVerify` expects. */
  getKey = async (header: JWSHeaderParameters): Promise<CryptoKey> => {
    const kid = header.kid;
    if (typeof kid !== 'string' || kid.length === 0 || kid.length > 256) {
      throw new TokenRejectedError('missing_kid', 'The subject token header has no usable kid; Buildkite tokens always name their key.');
    }
    const now = this.now();
    if (this.lastSuccess === 0 || now - this.lastSuccess >= this.options.refreshInterval * 1000) {
      await this.tryRefresh();
    } else if (!this.keys.has(kid) && now - this.lastAttempt >= this.options.minRefreshInterval * 1000) {
      await this.tryRefresh();
    }
    if (this.lastSuccess === 0 || this.now() - this.lastSuccess > this.options.maxAge * 1000) {
      throw new TokenRejectedError(
        'jwks_unavailable',
        `Buildkite's signing keys could not be fetched from ${this.options.url} and no cached copy is fresh enough; try again later.`,
      );
    }
    const entry = this.keys.get(kid);
    if (!entry) {
      throw new TokenRejectedError('unknown_kid', "The subject token's kid is not one of Buildkite's current signing keys.");
    }
    if (entry.alg !== header.alg) {
      throw new TokenRejectedError('alg_not_allowed', `The subject token's alg does not match its key's algorithm (${entry.alg}).`);
    }
    return entry.key;
  };

  /** Refreshes once at a time; failures keep the last good set. */
  private tryRefresh(): Promise<void> {
    this.inflight ??= this.refresh()
      .catch(() => undefined)
      .finally(() => (this.inflight = undefined));
    return this.inflight;
  }

  private async refresh(): Promise<void> {
    this.lastAttempt = this.now();
    const res = await request(this.options.url, {
      method: 'GET',
      headers: { accept: 'application/json' },
      headersTimeout: this.options.timeout ?? 5000,
      bodyTimeout: this.options.timeout ?? 5000,
      maxRedirections: 0,
    } as Parameters<typeof request>[1]);
    if (res.statusCode !== 200) {
      await res.body.dump();
      throw new Error(`JWKS answered ${res.statusCode}`);
    }
    const text = await res.body.text();
    if (text.length > 256 * 1024) throw new Error('JWKS too large');
    const body = JSON.parse(text) as { keys?: unknown };
    if (!Array.isArray(body.keys)) throw new Error('JWKS has no keys array');
    const next = new Map<string, CachedKey>();
    for (const jwk of body.keys as JWK[]) {
      if (typeof jwk?.kid !== 'string' || (jwk.use !== undefined && jwk.use !== 'sig')) continue;
      // A key without `alg` is pinned to the first allowed algorithm for its type.
      const alg = jwk.alg ?? (jwk.kty === 'RSA' ? 'RS256' : undefined);
      if (!alg || !this.options.algorithms.includes(alg)) continue;
      try {
        next.set(jwk.kid, { alg, key: (await importJWK(jwk, alg)) as CryptoKey });
      } catch {
        // A key Port cannot import is skipped; tokens naming it fail as unknown_kid.
      }
    }
    this.keys = next;
    this.lastSuccess = this.now();
  }
}
