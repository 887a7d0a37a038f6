/**
 * A slow or hanging JWKS never stalls requests that cached keys can serve.
 * Real HTTP servers that accept and never answer, or drip one byte at a time (each byte
 * resets an idle timeout, so only a total deadline ends the fetch). Freshness runs on an
 * injected clock; the only time bounds are "answered before the hang would have ended"
 * (the hangs here outlast the test timeout unless Port's own deadline ends them).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { JwksCache, type JwksCacheOptions } from '../../src/identity/jwks-cache.js';
import { JwksFetchError, TokenRejectedError } from '../../src/identity/errors.js';
import { BuildkiteSimulator } from '../../src/sim/index.js';
import { startFaultyJwks, type FaultyJwks } from './faulty-jwks.js';
import { waitUntil } from '../helpers/relay/util.js';

let sim: BuildkiteSimulator;
let jwks: FaultyJwks;
const caches: JwksCache[] = [];

beforeAll(async () => {
  sim = await BuildkiteSimulator.start({ organization: 'acme' });
  jwks = await startFaultyJwks(() => sim.jwks());
});
afterEach(async () => {
  jwks.mode = 'ok';
  for (const c of caches.splice(0)) c.stop();
  // Stopping ends any fetch still held, so the next test counts only its own.
  await waitUntil(() => jwks.pending() === 0, 10_000, 'held JWKS requests to end');
});
afterAll(async () => {
  await jwks?.close();
  await sim?.close();
});

/** Long enough that only Port's own deadline, never the server, ends a hang within a test. */
const HANG_OUTLASTS_TEST = 120_000;

function cache(clock: { t: number }, o: Partial<JwksCacheOptions> = {}): JwksCache {
  const c = new JwksCache({
    url: jwks.url,
    algorithms: ['RS256'],
    refreshInterval: 600,
    minRefreshInterval: 30,
    maxAge: 3600,
    timeout: HANG_OUTLASTS_TEST,
    requestWait: 300,
    now: () => clock.t,
    ...o,
  });
  caches.push(c);
  return c;
}

async function refusal(p: Promise<unknown>): Promise<TokenRejectedError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof TokenRejectedError) return err;
    throw err;
  }
  throw new Error('expected a refusal, the key was returned');
}

/** A cache that has fetched the keys once (mode ok), with its clock. */
async function primed(o: Partial<JwksCacheOptions> = {}) {
  const clock = { t: 1_000_000_000_000 };
  const c = cache(clock, o);
  await c.getKey({ alg: 'RS256', kid: sim.signingKey.kid });
  return { c, clock, kid: sim.signingKey.kid };
}

describe('JWKS: cached keys answer while the endpoint misbehaves', () => {
  it('a cached kid is answered while the routine refresh hangs (accepts, never answers)', { timeout: 15_000 }, async () => {
    // A long request wait too: a cached kid must not wait for a routine refresh at all.
    const { c, clock, kid } = await primed({ requestWait: HANG_OUTLASTS_TEST });
    jwks.mode = 'hang';
    clock.t += 700_000; // past refresh_interval: a refresh is due
    await expect(c.getKey({ alg: 'RS256', kid })).resolves.toBeDefined();
    // The refresh did start, and it is still hanging: the answer did not wait for it.
    await waitUntil(() => jwks.pending() === 1, 10_000, 'the refresh to reach the hanging JWKS');
    await expect(c.getKey({ alg: 'RS256', kid })).resolves.toBeDefined();
    expect(c.readiness().ready).toBe(true);
  });

  it('a cached kid is answered while the routine refresh drips one byte at a time', { timeout: 15_000 }, async () => {
    const { c, clock, kid } = await primed({ requestWait: HANG_OUTLASTS_TEST });
    jwks.mode = 'drip';
    clock.t += 700_000;
    await expect(c.getKey({ alg: 'RS256', kid })).resolves.toBeDefined();
    await waitUntil(() => jwks.pending() === 1, 10_000, 'the refresh to reach the dripping JWKS');
    await expect(c.getKey({ alg: 'RS256', kid })).resolves.toBeDefined();
  });

  it('one fetch has a total deadline: a dripping server cannot hold it, and the next fetch works', { timeout: 15_000 }, async () => {
    const { c, clock } = await primed({ timeout: 1_500 });
    const abandonedBefore = jwks.abandonedCount;
    jwks.mode = 'drip';
    clock.t += 31_000; // past min_refresh_interval: an unknown kid may fetch
    const refused = await refusal(c.getKey({ alg: 'RS256', kid: 'rotated-not-yet-seen' }));
    expect(refused.check).toBe('jwks_unavailable');
    // Each byte resets undici's idle timeouts; only the total deadline ends this fetch.
    await jwks.abandoned(abandonedBefore + 1);
    jwks.mode = 'ok';
    const rotated = await sim.rotateKey();
    clock.t += 31_000;
    await expect(c.getKey({ alg: 'RS256', kid: rotated.kid })).resolves.toBeDefined();
  });
});

describe('JWKS: unknown kids and max age', () => {
  it('an unknown kid is refused clearly after the short wait while the JWKS hangs; cached kids still answer', { timeout: 15_000 }, async () => {
    const { c, clock, kid } = await primed();
    jwks.mode = 'hang';
    const before = jwks.requests;
    clock.t += 31_000;
    const refused = await refusal(c.getKey({ alg: 'RS256', kid: 'new-kid-1' }));
    expect(refused.check).toBe('jwks_unavailable');
    expect(refused.code).toBe('temporarily_unavailable');
    expect(refused.status).toBe(503);
    expect(refused.message).toMatch(/kid|key/i);
    expect(refused.message).not.toMatch(/\n\s+at /);
    // A second unknown kid joins the fetch still in flight: no second request, same refusal.
    expect((await refusal(c.getKey({ alg: 'RS256', kid: 'new-kid-2' }))).check).toBe('jwks_unavailable');
    await waitUntil(() => jwks.pending() === 1, 10_000, 'the fetch to reach the hanging JWKS');
    expect(jwks.requests - before).toBe(1);
    await expect(c.getKey({ alg: 'RS256', kid })).resolves.toBeDefined();
  });

  it('past jwks_max_age a cached kid fails closed with 503 — the wait is short even while the JWKS hangs', { timeout: 15_000 }, async () => {
    const { c, clock, kid } = await primed();
    jwks.mode = 'hang';
    clock.t += 3_601_000; // more than max_age since the last good fetch
    const refused = await refusal(c.getKey({ alg: 'RS256', kid }));
    expect(refused.check).toBe('jwks_unavailable');
    expect(refused.code).toBe('temporarily_unavailable');
    expect(refused.status).toBe(503);
    const r = c.readiness();
    expect(r.ready).toBe(false);
    expect(r.detail).toMatch(/jwks_max_age/);
  });
});

describe('JWKS: background refresh and readiness', () => {
  it('is not ready until the keys were first fetched; start() fetches without waiting for a request', { timeout: 20_000 }, async () => {
    jwks.mode = 'hang';
    const clock = { t: Date.now() };
    const c = cache(clock, { timeout: 1_000 });
    expect(c.readiness()).toMatchObject({ ready: false });
    const before = jwks.requests;
    await c.start();
    expect(jwks.requests - before).toBeGreaterThanOrEqual(1);
    const r = c.readiness();
    expect(r.ready).toBe(false);
    expect(r.detail).toMatch(/not been fetched/);
    expect((await refusal(c.getKey({ alg: 'RS256', kid: sim.signingKey.kid }))).check).toBe('jwks_unavailable');
    jwks.mode = 'ok';
    // The hung fetch ends at its deadline; the background retry then succeeds on its own.
    await waitUntil(() => c.readiness().ready, 15_000, 'the background retry to fetch the keys');
    expect(c.readiness().detail).toMatch(/1 key|\d+ keys/);
    await expect(c.getKey({ alg: 'RS256', kid: sim.signingKey.kid })).resolves.toBeDefined();
  });

  it('a failing endpoint is named with one clear reason, never its body, and the failure is reported', async () => {
    jwks.mode = 'error';
    const reported: JwksFetchError[] = [];
    const c = cache({ t: Date.now() }, { onRefreshError: (err) => reported.push(err) });
    await c.start();
    const r = c.readiness();
    expect(r.ready).toBe(false);
    expect(r.detail).toMatch(/not been fetched yet .* The last attempt failed: the JWKS answered HTTP 503/);
    expect(r.detail).not.toContain('Service Unavailable');
    expect(reported.map((e) => [e.code, e.reason])).toEqual([['jwks_fetch_failed', 'http_status']]);
  });

  it('stop() ends a fetch in flight, so shutting down never waits on a hanging JWKS', { timeout: 15_000 }, async () => {
    const abandonedBefore = jwks.abandonedCount;
    jwks.mode = 'hang';
    const c = cache({ t: Date.now() });
    await c.start();
    await waitUntil(() => jwks.pending() === 1, 10_000, 'the first fetch to reach the hanging JWKS');
    c.stop();
    await jwks.abandoned(abandonedBefore + 1);
    expect(jwks.pending()).toBe(0);
  });
});
