import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RELAY_POLICIES, startRelayHarness, UPSTREAM_SECRET, type RelayHarness } from '../helpers/relay-harness.js';

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
      'live.cedar': '@id("live")\npermit (principal, action == Port::Action::"proxy", resource == Port::Upstream::"live") when { context.path == "/ws" };\n',
    },
  });
  token = await h.token();
});
afterAll(async () => {
  await h?.close();
});

/** Sends an upgrade request, then `payload` once switched; resolves with everything read. */
function upgrade(path: string, auth: string | undefined, payload: string): Promise<string> {
  const { port } = new URL(h.url);
  return new Promise((resolve, reject) => {
    const s = connect(Number(port), '127.0.0.1');
    let got = '';
    s.on('data', (d) => {
      got += d.toString('latin1');
      if (got.startsWith('HTTP/1.1 101') && got.includes('\r\n\r\n') && !got.includes(payload)) s.write(payload);
      if (got.includes(payload)) s.end();
    });
    s.on('end', () => resolve(got));
    s.on('error', reject);
    s.setTimeout(5000, () => {
      s.destroy();
      resolve(got);
    });
    s.write(
      `GET /relay${path} HTTP/1.1\r\nHost: port\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n${auth ? `Authorization: ${auth}\r\n` : ''}\r\n`,
    );
  });
}

describe('relay upgrades', () => {
  it('joins an allowed upgrade to the upstream, with the upstream credential injected', async () => {
    const got = await upgrade('/live/ws', `Bearer ${token}`, 'ping-through-port');
    expect(got).toMatch(/^HTTP\/1\.1 101/);
    expect(got).toContain('ping-through-port');
    const seen = h.upstream.requests.at(-1)!;
    expect(seen).toMatchObject({ url: '/ws', upgrade: true });
    expect(seen.headers.authorization).toBe(`Bearer ${UPSTREAM_SECRET}`);
  });

  it('refuses an upgrade on a route that does not allow it, and one without a token', async () => {
    const before = h.upstream.requests.length;
    expect(await upgrade('/files/ws', `Bearer ${token}`, 'x')).toMatch(/^HTTP\/1\.1 403 .*\r\n[\s\S]*upgrade_not_allowed/);
    expect(await upgrade('/live/ws', undefined, 'x')).toMatch(/^HTTP\/1\.1 401 /);
    expect(await upgrade('/live/other', `Bearer ${token}`, 'x')).toMatch(/^HTTP\/1\.1 403 [\s\S]*access_denied/);
    expect(h.upstream.requests.length).toBe(before);
  });
});
