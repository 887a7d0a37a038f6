/**
 * Protocol upgrades through the relay (upgrade requests are refused unless the
 * route allows them): h2c and WebSocket smuggling (Bishop Fox 2020; 0ang3el's websocket
 * smuggling, where a proxy joins sockets the backend never upgraded). A refused upgrade
 * forwards nothing; an allowed one is authenticated and decided like any request.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { RELAY_POLICIES, startRelayHarness, UPSTREAM_SECRET, type RelayHarness } from '../helpers/relay-harness.js';
import { rawHeaderValues } from '../helpers/relay/recording-upstream.js';
import { buildRequest, expectJsonError, send, sleep } from './support.js';

let h: RelayHarness;
let token: string;
beforeAll(async () => {
  h = await startRelayHarness({
    upstream: { routes: { '/ws': { kind: 'upgrade' } } },
    upstreams: (up) => ({
      files: { url: up.url, timeout: 2, inject: { bearer: 'env:PORT_TEST_UPSTREAM_SECRET' } },
      live: { url: up.url, timeout: 2, allow_upgrade: true, inject: { bearer: 'env:PORT_TEST_UPSTREAM_SECRET' } },
    }),
    policies: {
      ...RELAY_POLICIES,
      'live.cedar': '@id("live")\npermit (principal, action == Port::Action::"proxy", resource == Port::Upstream::"live") when { context.path like "/ws*" || context.path like "/plain*" };\n',
    },
  });
  token = await h.token();
});
afterAll(async () => {
  await h?.close();
});
beforeEach(() => h.upstream.reset());

const WS: Array<[string, string]> = [
  ['Connection', 'Upgrade'],
  ['Upgrade', 'websocket'],
  ['Sec-WebSocket-Version', '13'],
  ['Sec-WebSocket-Key', 'dGhlIHNhbXBsZSBub25jZQ=='],
];
const H2C: Array<[string, string]> = [
  ['Connection', 'Upgrade, HTTP2-Settings'],
  ['Upgrade', 'h2c'],
  ['HTTP2-Settings', 'AAMAAABkAARAAAAAAAIAAAAA'],
];
/** A request an attacker would like to reach the upstream over a "tunnel". */
const tunnelled = 'GET /admin/through-the-tunnel HTTP/1.1\r\nHost: internal\r\n\r\n';

async function upstreamSawNothing(): Promise<void> {
  await sleep(100);
  expect(h.upstream.requests.map((r) => r.url)).toEqual([]);
}

describe('upgrades on a route that does not allow them', () => {
  it.each([
    ['WebSocket', WS],
    ['h2c', H2C],
  ])('%s: 403 upgrade_not_allowed, closed; neither the request nor the bytes after it reach the upstream', async (_name, headers) => {
    const bytes = Buffer.concat([buildRequest(h, '/relay/files/ws', { token, headers }), Buffer.from(tunnelled)]);
    const r = await send(h, bytes, { expectResponses: 1, closeGraceMs: 300 });
    expect(r.responses).toHaveLength(1);
    expectJsonError(r.responses[0]!, 403, 'upgrade_not_allowed', [token]);
    expect(r.closedByServer).toBe(true);
    await upstreamSawNothing();
  });

  it('on an unknown upstream: refused (4xx JSON), nothing forwarded', async () => {
    const r = await send(h, buildRequest(h, '/relay/nope/ws', { token, headers: WS }), { expectResponses: 1 });
    expect(r.responses[0]!.status).toBeGreaterThanOrEqual(400);
    expect(r.responses[0]!.status).toBeLessThan(500);
    expectJsonError(r.responses[0]!, r.responses[0]!.status);
    await upstreamSawNothing();
  });
});

describe('upgrades on a route that allows them (allow_upgrade: true)', () => {
  it('without a token: 401 with WWW-Authenticate, nothing forwarded', async () => {
    const r = await send(h, Buffer.concat([buildRequest(h, '/relay/live/ws', { headers: WS }), Buffer.from(tunnelled)]), { expectResponses: 1 });
    expectJsonError(r.responses[0]!, 401, undefined, [token]);
    expect(r.responses[0]!.headers['www-authenticate']).toMatch(/Bearer realm="port"/);
    expect(r.closedByServer).toBe(true);
    await upstreamSawNothing();
  });

  it('to a path the policy denies (also via dot segments): 403 access_denied, nothing forwarded', async () => {
    for (const target of ['/relay/live/admin', '/relay/live/ws/../admin']) {
      const r = await send(h, buildRequest(h, target, { token, headers: WS }), { expectResponses: 1 });
      expectJsonError(r.responses[0]!, 403, 'access_denied', [token]);
    }
    await upstreamSawNothing();
  });

  it('with a path trick: 400 invalid_path, nothing forwarded', async () => {
    const r = await send(h, buildRequest(h, '/relay/live/ws%2f..%2fadmin', { token, headers: WS }), { expectResponses: 1 });
    expectJsonError(r.responses[0]!, 400, 'invalid_path', [token]);
    await upstreamSawNothing();
  });

  it('with duplicate Authorization: 400 invalid_request, nothing forwarded', async () => {
    const r = await send(h, buildRequest(h, '/relay/live/ws', { token, headers: [...WS, ['Authorization', 'Bearer other']] }), { expectResponses: 1 });
    expectJsonError(r.responses[0]!, 400, 'invalid_request', [token]);
    await upstreamSawNothing();
  });

  it('allowed: 101; the upstream gets the injected credential, Port\'s forwarding headers, and none of the caller\'s', async () => {
    const headers: Array<[string, string]> = [...WS, ['Cookie', 'c=caller'], ['X-Forwarded-For', '6.6.6.6'], ['X-Forwarded-Host', 'evil.example'], ['Proxy-Authorization', 'Basic eDp5']];
    const r = await send(h, buildRequest(h, '/relay/live/ws', { token, headers }), { expectResponses: 1, timeoutMs: 1_500 });
    expect(r.responses[0]!.status).toBe(101);
    expect(h.upstream.requests).toHaveLength(1);
    const seen = h.upstream.requests[0]!;
    expect(seen).toMatchObject({ url: '/ws', upgrade: true });
    expect(rawHeaderValues(seen.rawHeaders, 'authorization')).toEqual([`Bearer ${UPSTREAM_SECRET}`]);
    expect(rawHeaderValues(seen.rawHeaders, 'host')).toEqual([h.upstream.host]);
    expect(rawHeaderValues(seen.rawHeaders, 'x-forwarded-for')).toEqual(['127.0.0.1']);
    expect(rawHeaderValues(seen.rawHeaders, 'cookie')).toEqual([]);
    expect(rawHeaderValues(seen.rawHeaders, 'proxy-authorization')).toEqual([]);
    const text = JSON.stringify(seen.rawHeaders);
    for (const bad of ['6.6.6.6', 'evil.example', token.slice(-24)]) expect(text).not.toContain(bad);
    // Port's answer carries nothing of the upstream's secret.
    expect(r.raw.toString('latin1')).not.toContain(UPSTREAM_SECRET);
  });

  it('the upstream declines the upgrade (answers 200, not 101): no tunnel; the bytes after the request never reach the upstream as a request', async () => {
    const bytes = Buffer.concat([buildRequest(h, '/relay/live/plain', { token, headers: WS }), Buffer.from(tunnelled)]);
    const r = await send(h, bytes, { expectResponses: 1, closeGraceMs: 300 });
    expect(r.responses).toHaveLength(1);
    expect(r.responses[0]!.status).not.toBe(101);
    expectJsonError(r.responses[0]!, 502, 'upstream_unavailable', [token]);
    expect(r.closedByServer).toBe(true);
    await sleep(150);
    expect(h.upstream.requests.map((x) => x.url)).toEqual(['/plain']);
    expect(h.upstream.requests[0]!.bodyBytes).toBe(0);
  });
});
