import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JwksCache } from '../../src/identity/jwks-cache.js';
import { TokenRejectedError } from '../../src/identity/errors.js';
import { BuildkiteSimulator } from '../../src/sim/index.js';

let sim: BuildkiteSimulator;
beforeAll(async () => {
  sim = await BuildkiteSimulator.start({ organization: 'acme' });
});
afterAll(async () => {
  await sim?.close();
});

function cache(clock: { t: number }) {
  return new JwksCache({ url: sim.jwksUrl, algorithms: ['RS256'], refreshInterval: 600, minRefreshInterval: 30, maxAge: 3600, now: () => clock.t });
}

const check = async (p: Promise<unknown>) => {
  try {
    await p;
    return 'ok';
  } catch (err) {
    return err instanceof TokenRejectedError ? err.check : String(err);
  }
};

describe('Buildkite JWKS cache', () => {
  it('serves keys from cache while the endpoint is down, until max age, then fails closed', async () => {
    const clock = { t: Date.now() };
    const c = cache(clock);
    const kid = sim.signingKey.kid;
    expect(await check(c.getKey({ alg: 'RS256', kid }))).toBe('ok');
    sim.setJwksAvailable(false);
    try {
      clock.t += 700_000; // past the refresh interval: a refresh is tried and fails
      expect(await check(c.getKey({ alg: 'RS256', kid }))).toBe('ok');
      clock.t += 3_000_000; // now more than max age since the last good fetch
      expect(await check(c.getKey({ alg: 'RS256', kid }))).toBe('jwks_unavailable');
    } finally {
      sim.setJwksAvailable(true);
    }
    clock.t += 60_000;
    expect(await check(c.getKey({ alg: 'RS256', kid }))).toBe('ok');
  });

  it('refreshes on an unknown kid, but at most once per min interval', async () => {
    const clock = { t: Date.now() };
    const c = cache(clock);
    await c.getKey({ alg: 'RS256', kid: sim.signingKey.kid });
    const before = sim.jwksRequestCount;
    for (let i = 0; i < 20; i++) expect(await check(c.getKey({ alg: 'RS256', kid: `forged-${i}` }))).toBe('unknown_kid');
    expect(sim.jwksRequestCount - before).toBeLessThanOrEqual(1);
    // A real rotation is picked up once the interval has passed.
    const rotated = await sim.rotateKey();
    clock.t += 31_000;
    expect(await check(c.getKey({ alg: 'RS256', kid: rotated.kid }))).toBe('ok');
  });

  it('refuses a token whose alg differs from its key\'s', async () => {
    const c = cache({ t: Date.now() });
    expect(await check(c.getKey({ alg: 'RS512', kid: sim.signingKey.kid }))).toBe('alg_not_allowed');
  });
});
