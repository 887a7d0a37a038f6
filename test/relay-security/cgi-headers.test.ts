/**
 * An injected header can't be shadowed. CGI (RFC 3875 §4.1.18), WSGI (PEP
 * 3333 `environ`), Rack and PHP turn every request header into a meta-variable: upper-cased,
 * `-` replaced by `_`, prefixed with `HTTP_`. So `X_Upstream_Key` and `X-Upstream-Key` are the
 * same variable there, and repeated fields are merged with `,` (RFC 3875 §4.1.18) or the later
 * one wins. A caller's header that maps to the variable of a header Port injects or strips must
 * never reach such an upstream. The upstream here is a real HTTP server that builds the
 * meta-variables exactly that way; requests go through a running Port relay.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { RELAY_POLICIES, startRelayHarness, UPSTREAM_SECRET, type RelayHarness } from '../helpers/relay-harness.js';

/** Meta-variables as a CGI gateway builds them from the received header lines. */
interface CgiView {
  /** Repeated variables merged with ", " (RFC 3875 §4.1.18). */
  merged: Record<string, string>;
  /** The later field wins (what many WSGI/Rack servers do with a plain dict). */
  lastWins: Record<string, string>;
}

function metaVariables(rawHeaders: string[]): CgiView {
  const merged: Record<string, string> = {};
  const lastWins: Record<string, string> = {};
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = `HTTP_${rawHeaders[i]!.toUpperCase().replaceAll('-', '_')}`;
    const value = rawHeaders[i + 1]!;
    merged[name] = merged[name] === undefined ? value : `${merged[name]}, ${value}`;
    lastWins[name] = value;
  }
  return { merged, lastWins };
}

let cgi: Server;
let cgiUrl: string;
let seen: CgiView[] = [];
let h: RelayHarness;
let token: string;

beforeAll(async () => {
  cgi = createServer((req, res) => {
    seen.push(metaVariables(req.rawHeaders));
    req.resume();
    // The answer never echoes the variables: the upstream's secret stays out of the response.
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '2' });
    res.end('ok');
  });
  await new Promise<void>((resolve) => cgi.listen(0, '127.0.0.1', resolve));
  cgiUrl = `http://127.0.0.1:${(cgi.address() as AddressInfo).port}`;
  h = await startRelayHarness({
    upstreams: () => ({
      hdr: { url: `${cgiUrl}/hdr`, timeout: 2, inject: { header: { name: 'X-Upstream-Key', value: 'env:PORT_TEST_UPSTREAM_SECRET' } } },
      under: { url: `${cgiUrl}/under`, timeout: 2, inject: { header: { name: 'X_Service_Token', value: 'env:PORT_TEST_UPSTREAM_SECRET' } } },
    }),
    policies: {
      ...RELAY_POLICIES,
      'cgi.cedar': '@id("cgi-read")\npermit (principal, action == Port::Action::"proxy", resource) when { context.method == "GET" };\n',
    },
  });
  token = await h.token();
});
afterAll(async () => {
  await h?.close();
  await new Promise<void>((resolve) => (cgi ? cgi.close(() => resolve()) : resolve()));
});
beforeEach(() => {
  seen = [];
});

/** One GET through the relay with extra header lines; returns the meta-variables the upstream built. */
async function through(route: string, headers: Array<[string, string]>): Promise<CgiView> {
  const res = await fetch(h.relayUrl(`/${route}/x`), { headers: [['authorization', `Bearer ${token}`], ...headers] });
  expect(res.status, await res.text()).toBe(200);
  expect(seen).toHaveLength(1);
  return seen[0]!;
}

describe('a caller cannot shadow an injected header through CGI-style name mapping', () => {
  it.each(['X_Upstream_Key', 'x_upstream_key', 'X-Upstream_Key', 'X_UPSTREAM-KEY'])(
    'caller %s never reaches HTTP_X_UPSTREAM_KEY — only the injected value does',
    async (name) => {
      const env = await through('hdr', [[name, 'caller-chosen-key'], ['X_Request_Tag', 'keep-me']]);
      expect(env.merged.HTTP_X_UPSTREAM_KEY).toBe(UPSTREAM_SECRET);
      expect(env.lastWins.HTTP_X_UPSTREAM_KEY).toBe(UPSTREAM_SECRET);
      expect(JSON.stringify(env)).not.toContain('caller-chosen-key');
      // Only the shadowing name goes: an underscore name that maps to nothing Port sets still passes.
      expect(env.merged.HTTP_X_REQUEST_TAG).toBe('keep-me');
    },
  );

  it('an injected name written with underscores is guarded against its dashed spelling', async () => {
    const env = await through('under', [['X-Service-Token', 'caller-chosen-key'], ['x-SERVICE_token', 'caller-chosen-key']]);
    expect(env.merged.HTTP_X_SERVICE_TOKEN).toBe(UPSTREAM_SECRET);
    expect(JSON.stringify(env)).not.toContain('caller-chosen-key');
  });
});
