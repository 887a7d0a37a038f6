/**
 * Through a running Port: Buildkite's keys are fetched at start (not on
 * the first request), `/readyz` says not ready until they were, and token exchanges that cached
 * keys can serve are answered while the JWKS hangs or drips. The JWKS is a real HTTP server that
 * misbehaves (test/identity/faulty-jwks.ts); refresh intervals are 1 s so a refresh is always due.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from '../helpers/port-harness.js';
import { waitUntil } from '../helpers/relay/util.js';
import type { BuildkiteSimulator } from '../../src/sim/index.js';
import { startFaultyJwks, type FaultyJwks } from './faulty-jwks.js';

let h: Harness;
let jwks: FaultyJwks;
let simRef: BuildkiteSimulator | undefined;

beforeAll(async () => {
  jwks = await startFaultyJwks(() => simRef?.jwks() ?? { keys: [] });
  // Hanging from the very start: Port must come up anyway, and say it is not ready.
  jwks.mode = 'hang';
  h = await startHarness({
    config: (sim) => {
      simRef = sim;
      return {
        buildkite: {
          organization: 'acme',
          issuer: sim.issuer,
          jwks_url: jwks.url,
          audience: 'https://port.acme.test',
          jwks_refresh_interval: '1s',
          jwks_min_refresh_interval: '1s',
          jwks_fetch_timeout: '2s',
          jwks_request_wait: '1s',
        },
        // A Buildkite token as a relay credential meets the same outage (never reached: auth comes first).
        relay: { accept_buildkite_tokens: true },
        upstreams: { files: { url: 'http://127.0.0.1:9/' } },
      };
    },
  });
}, 60_000);
afterAll(async () => {
  await h?.close();
  await jwks?.close();
});

async function readyz(): Promise<{ status: number; body: { status: string; checks: Record<string, string> } }> {
  const res = await fetch(`${h.url}/readyz`);
  return { status: res.status, body: (await res.json()) as { status: string; checks: Record<string, string> } };
}

/** Repeats `attempt` until `done` says so or 20 s pass (only a "did not stay broken" bound); returns the last result. */
async function eventually<T>(attempt: () => Promise<T>, done: (r: T) => boolean): Promise<T> {
  const deadline = Date.now() + 20_000;
  let r = await attempt();
  while (!done(r) && Date.now() < deadline) {
    await new Promise((res) => setTimeout(res, 100));
    r = await attempt();
  }
  return r;
}

const exchangeFresh = async () => h.exchange(await h.sim.mintToken(h.sim.createJob({ pipelineSlug: 'deploy', branch: 'main' }), { audience: h.audience }));

describe("Port and a misbehaving Buildkite JWKS", () => {
  it('/readyz is not ready while the keys were never fetched; an exchange gets a clear 503, not a hang', async () => {
    // Port asked at start, before any request did.
    expect(jwks.requests).toBeGreaterThanOrEqual(1);
    const r = await readyz();
    expect(r.status).toBe(503);
    expect(r.body.status).toBe('not_ready');
    expect(r.body.checks.buildkite_keys).toMatch(/not been fetched/);
    expect((await fetch(`${h.url}/healthz`)).status).toBe(200);
    const res = await exchangeFresh();
    expect(res.status).toBe(503);
    expect(res.body.error).toBe('temporarily_unavailable');
    expect(res.body.error_description).toMatch(/Buildkite's signing keys/);
    // The relay says the same, and does not count Port's outage against the caller as a bad token.
    const bk = await h.sim.mintToken(h.sim.createJob({ pipelineSlug: 'deploy', branch: 'main' }), { audience: h.audience });
    const relayed = await fetch(`${h.url}/relay/files/x`, { headers: { authorization: `Bearer ${bk}` } });
    expect(relayed.status).toBe(503);
    expect(relayed.headers.get('retry-after')).toBe('5');
    expect(((await relayed.json()) as { error: string }).error).toBe('temporarily_unavailable');
  });

  it('becomes ready on its own once the JWKS answers (background retry, no request needed)', async () => {
    jwks.mode = 'ok';
    const r = await eventually(readyz, (x) => x.status === 200);
    expect(r.status).toBe(200);
    expect(r.body.checks.buildkite_keys).toMatch(/^ok/);
    expect((await exchangeFresh()).status).toBe(200);
  });

  it('answers exchanges from cached keys while the refresh drips one byte at a time', async () => {
    jwks.mode = 'drip';
    // A refresh is due (refresh_interval is 1 s); the exchange must not wait for it.
    await new Promise((r) => setTimeout(r, 1_100));
    const res = await exchangeFresh();
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    // The refresh did run, and is held by the drip.
    await waitUntil(() => jwks.pending() >= 1, 10_000, 'a refresh to reach the dripping JWKS');
    expect((await readyz()).status).toBe(200);
  });

  it('answers exchanges from cached keys while the refresh hangs', async () => {
    jwks.mode = 'hang';
    await waitUntil(() => jwks.pending() >= 1, 10_000, 'a refresh to reach the hanging JWKS');
    const res = await exchangeFresh();
    expect(res.status, JSON.stringify(res.body)).toBe(200);
  });

  it('refuses a token with an unseen kid with 503 after the short wait while the JWKS hangs, then accepts it once it answers', async () => {
    jwks.mode = 'ok';
    expect((await eventually(exchangeFresh, (x) => x.status === 200)).status).toBe(200);
    jwks.mode = 'hang';
    await h.sim.rotateKey();
    const res = await exchangeFresh();
    expect(res.status).toBe(503);
    expect(res.body.error).toBe('temporarily_unavailable');
    expect(res.body.error_description).toMatch(/key/);
    jwks.mode = 'ok';
    const again = await eventually(exchangeFresh, (x) => x.status === 200);
    expect(again.status, JSON.stringify(again.body)).toBe(200);
  });
});
