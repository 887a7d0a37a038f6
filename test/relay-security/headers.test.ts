/**
 * Header hygiene on the relay: hop-by-hop abuse (Nathan Davison, "Abusing HTTP hop-by-hop request headers",
 * 2019: a caller lists Port's own headers in `Connection` hoping a compliant hop strips
 * them), caller-supplied `X-Forwarded-*` and Host overrides (PortSwigger Host-header labs),
 * duplicate `Host` / `Authorization` (Node keeps the first; Port must refuse), absolute-form
 * targets, and the response direction. Each case asserts the status and exactly what the
 * recording upstream received.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { RELAY_POLICIES, startRelayHarness, UPSTREAM_SECRET, type RelayHarness } from '../helpers/relay-harness.js';
import { rawHeaderValues } from '../helpers/relay/recording-upstream.js';
import {
  buildRequest,
  expectJsonError,
  expectParserRefusal,
  headerNames,
  portHost,
  send,
  sendOne,
  sleep,
  startRawUpstream,
  type RawUpstream,
} from './support.js';

let h: RelayHarness;
let token: string;
let raw: RawUpstream;
const PUBLIC_HOST = 'port.acme.test';
const basicValue = `Basic ${Buffer.from(`svc:${UPSTREAM_SECRET}`).toString('base64')}`;

beforeAll(async () => {
  raw = await startRawUpstream((socket) =>
    socket.end(
      'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: X-Internal, close\r\nX-Internal: secret-internal\r\nKeep-Alive: timeout=99\r\n' +
        'Proxy-Authenticate: Basic realm="inner"\r\nUpgrade: h2c\r\nTrailer: X-T\r\nProxy-Connection: keep-alive\r\nX-Fine: ok\r\n\r\nok',
    ),
  );
  h = await startRelayHarness({
    upstreams: (up) => ({
      files: { url: `${up.url}/base`, timeout: 2, inject: { bearer: 'env:PORT_TEST_UPSTREAM_SECRET' } },
      basic: { url: `${up.url}/basic`, timeout: 2, inject: { basic: { username: 'svc', password: 'env:PORT_TEST_UPSTREAM_SECRET' } } },
      hdr: { url: `${up.url}/hdr`, timeout: 2, inject: { header: { name: 'X-Upstream-Key', value: 'env:PORT_TEST_UPSTREAM_SECRET' } } },
      plain: { url: `${up.url}/plain`, timeout: 2 },
      rawup: { url: raw.url, timeout: 2 },
    }),
    policies: {
      ...RELAY_POLICIES,
      'others.cedar': '@id("others-read")\npermit (principal, action == Port::Action::"proxy", resource) when { resource != Port::Upstream::"files" && context.method == "GET" };\n',
    },
  });
  token = await h.token();
});
afterAll(async () => {
  await h?.close();
  await raw?.close();
});
beforeEach(() => h.upstream.reset());

const get = (target: string, headers: Array<[string, string] | string> = [], o: { host?: string | null; tok?: string | null } = {}) =>
  buildRequest(h, target, { token: o.tok === undefined ? token : o.tok, headers, ...(o.host !== undefined ? { host: o.host } : {}) });

/** The one request the upstream saw for a 200. */
async function forwarded(bytes: Buffer) {
  const r = await sendOne(h, bytes);
  expect(r.status, r.body.slice(0, 200)).toBe(200);
  expect(h.upstream.requests).toHaveLength(1);
  return h.upstream.requests[0]!;
}

async function upstreamSawNothing(): Promise<void> {
  await sleep(50);
  expect(h.upstream.requests.map((r) => r.url)).toEqual([]);
}

/** Port's own forwarding headers, exactly once each. */
function expectPortForwarding(rawHeaders: string[]): void {
  expect(rawHeaderValues(rawHeaders, 'host')).toEqual([h.upstream.host]);
  expect(rawHeaderValues(rawHeaders, 'x-forwarded-for')).toEqual(['127.0.0.1']);
  expect(rawHeaderValues(rawHeaders, 'x-forwarded-proto')).toEqual(['https']);
  expect(rawHeaderValues(rawHeaders, 'x-forwarded-host')).toEqual([PUBLIC_HOST]);
}

describe('hop-by-hop abuse', () => {
  it('strips every hop-by-hop field and whatever Connection lists; the upstream gets exactly the allowed headers', async () => {
    const seen = await forwarded(
      get('/relay/files/hop', [
        ['Connection', 'keep-alive, X-Custom, X-Forwarded-For, Authorization, Host, X-Forwarded-Host, Via'],
        ['Keep-Alive', 'timeout=5'],
        ['TE', 'trailers'],
        ['Trailer', 'X-T'],
        ['Proxy-Authorization', 'Basic Y2FsbGVyOnByb3h5'],
        ['Proxy-Authenticate', 'Basic realm="x"'],
        ['Proxy-Connection', 'keep-alive'],
        ['Upgrade', 'websocket'],
        ['Cookie', 'session=caller-cookie'],
        ['X-Custom', 'listed-in-connection'],
        ['X-Keep', 'yes'],
        ['Accept', '*/*'],
        ['User-Agent', 'security-suite'],
      ]),
    );
    expect(headerNames(seen.rawHeaders).sort()).toEqual(
      ['accept', 'authorization', 'connection', 'host', 'user-agent', 'via', 'x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto', 'x-keep'].sort(),
    );
    expectPortForwarding(seen.rawHeaders);
    expect(rawHeaderValues(seen.rawHeaders, 'authorization')).toEqual([`Bearer ${UPSTREAM_SECRET}`]);
    expect(rawHeaderValues(seen.rawHeaders, 'connection')).toEqual(['keep-alive']);
    expect(rawHeaderValues(seen.rawHeaders, 'via')).toEqual(['1.1 port']);
    expect(JSON.stringify(seen.rawHeaders)).not.toContain(token.slice(-24));
  });

  it('Connection: Authorization — the injected bearer credential still arrives, the caller\'s never does', async () => {
    const seen = await forwarded(get('/relay/files/a', [['Connection', 'Authorization']]));
    expect(rawHeaderValues(seen.rawHeaders, 'authorization')).toEqual([`Bearer ${UPSTREAM_SECRET}`]);
  });

  it('Connection: Authorization on a Basic-injecting route — the Basic credential arrives', async () => {
    const seen = await forwarded(get('/relay/basic/a', [['Connection', 'close, Authorization']]));
    expect(rawHeaderValues(seen.rawHeaders, 'authorization')).toEqual([basicValue]);
  });

  it('Connection naming the injected header (X-Upstream-Key) — the upstream gets Port\'s value, once; the caller\'s never', async () => {
    const seen = await forwarded(get('/relay/hdr/a', [['Connection', 'X-Upstream-Key, X-Forwarded-For'], ['X-Upstream-Key', 'caller-chosen-key'], ['X-Forwarded-For', '6.6.6.6']]));
    expect(rawHeaderValues(seen.rawHeaders, 'x-upstream-key')).toEqual([UPSTREAM_SECRET]);
    expect(rawHeaderValues(seen.rawHeaders, 'authorization')).toEqual([]);
    expectPortForwarding(seen.rawHeaders);
    expect(JSON.stringify(seen.rawHeaders)).not.toContain('caller-chosen-key');
  });

  it('a caller-sent copy of the injected header is replaced, not added to', async () => {
    const seen = await forwarded(get('/relay/hdr/a', [['X-Upstream-Key', 'caller-chosen-key'], ['x-upstream-key', 'second-copy']]));
    expect(rawHeaderValues(seen.rawHeaders, 'x-upstream-key')).toEqual([UPSTREAM_SECRET]);
  });

  it('on a route without injection the caller\'s Authorization, Cookie and Proxy-Authorization still never pass', async () => {
    const seen = await forwarded(get('/relay/plain/a', [['Cookie', 'c=1'], ['Proxy-Authorization', 'Basic eDp5']]));
    expect(rawHeaderValues(seen.rawHeaders, 'authorization')).toEqual([]);
    expect(rawHeaderValues(seen.rawHeaders, 'cookie')).toEqual([]);
    expect(rawHeaderValues(seen.rawHeaders, 'proxy-authorization')).toEqual([]);
  });

  it('Basic auth with the Port token as password: the caller\'s Basic header is replaced by the injected one', async () => {
    const basic = `Basic ${Buffer.from(`agent:${token}`).toString('base64')}`;
    const seen = await forwarded(buildRequest(h, '/relay/basic/b', { headers: [['Authorization', basic], ['Connection', 'Authorization']] }));
    expect(rawHeaderValues(seen.rawHeaders, 'authorization')).toEqual([basicValue]);
  });

  it('Connection: Content-Length does not strip the framing of a forwarded body', async () => {
    const seen = await forwarded(
      buildRequest(h, '/relay/files/uploads/c.txt', { method: 'PUT', token, headers: [['Connection', 'Content-Length']], body: 'hello' }),
    );
    expect(seen).toMatchObject({ method: 'PUT', bodyBytes: 5, bodyComplete: true });
    expect(seen.body!.toString()).toBe('hello');
  });

  it('Upgrade without Connection: upgrade is a plain request: the Upgrade header is stripped', async () => {
    const seen = await forwarded(get('/relay/files/u', [['Upgrade', 'h2c'], ['HTTP2-Settings', 'AAMAAABkAARAAAAAAAIAAAAA']]));
    expect(seen.upgrade).toBe(false);
    expect(rawHeaderValues(seen.rawHeaders, 'upgrade')).toEqual([]);
  });
});

describe('caller-supplied forwarding and override headers', () => {
  const spoofed: Array<[string, string]> = [
    ['X-Forwarded-For', '6.6.6.6'],
    ['X-Forwarded-For', '7.7.7.7, 8.8.8.8'],
    ['X-Forwarded-Proto', 'gopher'],
    ['X-Forwarded-Host', 'evil.example'],
    ['X-Forwarded-Port', '6666'],
    ['X-Forwarded-Server', 'evil.example'],
    ['X-Forwarded-Prefix', '/evil-prefix'],
    ['X-Forwarded-Uri', '/evil-uri'],
    ['X-Forwarded-Scheme', 'gopher'],
    ['X-Forwarded-Ssl', 'evil-on'],
    ['Forwarded', 'for=6.6.6.6;host=evil.example;proto=gopher'],
    ['X-Real-IP', '6.6.6.6'],
    ['X-Client-IP', '6.6.6.6'],
    ['True-Client-IP', '6.6.6.6'],
    ['X-Cluster-Client-IP', '6.6.6.6'],
    ['X-Host', 'evil.example'],
    ['X-HTTP-Host-Override', 'evil.example'],
    ['X-Original-Host', 'evil.example'],
    ['X-Original-URL', '/admin/evil-uri'],
    ['X-Rewrite-URL', '/admin/evil-uri'],
    ['X-HTTP-Method-Override', 'DELETE'],
    ['X-HTTP-Method', 'DELETE'],
    ['X-Method-Override', 'DELETE'],
    ['Front-End-Https', 'evil-on'],
    ['X-Url-Scheme', 'gopher'],
  ];

  it('none reaches the upstream; Port sets X-Forwarded-For/-Proto/-Host from the TCP peer and its config', async () => {
    const seen = await forwarded(get('/relay/files/xff', spoofed));
    expectPortForwarding(seen.rawHeaders);
    const text = JSON.stringify(seen.rawHeaders);
    for (const bad of ['6.6.6.6', '7.7.7.7', '8.8.8.8', 'evil', 'gopher', '6666', 'DELETE']) expect(text).not.toContain(bad);
    for (const [name] of spoofed.filter(([n]) => !/^x-forwarded-(for|proto|host)$/i.test(n))) {
      expect(rawHeaderValues(seen.rawHeaders, name), name).toEqual([]);
    }
  });

  it('Connection: X-Forwarded-For cannot remove Port\'s X-Forwarded-For, nor smuggle the caller\'s', async () => {
    const seen = await forwarded(get('/relay/files/xff2', [['X-Forwarded-For', '6.6.6.6'], ['Connection', 'X-Forwarded-For, X-Forwarded-Proto, X-Forwarded-Host, Host']]));
    expectPortForwarding(seen.rawHeaders);
    expect(JSON.stringify(seen.rawHeaders)).not.toContain('6.6.6.6');
  });

  // CGI, WSGI, Rack and PHP read `X_Forwarded_For` and `X-Forwarded-For` as the same
  // variable (HTTP_X_FORWARDED_FOR); nginx drops underscore names by default for that reason.
  it('underscore spellings of the headers Port drops or sets never reach the upstream', async () => {
    const seen = await forwarded(
      get('/relay/files/underscore', [
        ['X_Forwarded_For', '6.6.6.6'],
        ['X_Forwarded_Host', 'evil.example'],
        ['X_Real_IP', '6.6.6.6'],
        ['X_Original_URL', '/admin/evil-uri'],
        ['Proxy_Authorization', 'Basic eDp5'],
      ]),
    );
    const text = JSON.stringify(seen.rawHeaders);
    for (const bad of ['6.6.6.6', 'evil', 'eDp5']) expect(text).not.toContain(bad);
  });

  // httpoxy (CVE-2016-5385 and siblings): `Proxy:` becomes HTTP_PROXY in a CGI backend such
  // as git http-backend behind a CGI server, and outbound HTTP then goes via the caller's proxy.
  it('the Proxy header (httpoxy) never reaches the upstream', async () => {
    const seen = await forwarded(get('/relay/files/httpoxy', [['Proxy', 'http://evil.example:8080']]));
    expect(rawHeaderValues(seen.rawHeaders, 'proxy')).toEqual([]);
  });
});

describe('Host attacks', () => {
  it.each([
    ['arbitrary', 'evil.example'],
    ['internal address (routing SSRF)', '192.168.0.1'],
    ['metadata address', '169.254.169.254'],
    ['userinfo', `${PUBLIC_HOST}@evil.example`],
    ['non-numeric port', `${PUBLIC_HOST}:evil`],
    ['two ports', `${PUBLIC_HOST}:80:81`],
    ['localhost', 'localhost'],
  ])('Host %s: forwarded with the configured upstream Host and Port\'s X-Forwarded-Host', async (_name, host) => {
    const seen = await forwarded(get('/relay/files/host', [], { host }));
    expectPortForwarding(seen.rawHeaders);
    expect(JSON.stringify(seen.rawHeaders)).not.toContain('evil');
  });

  it('HTTP/1.0 without Host: the upstream still gets the configured Host', async () => {
    const seen = await forwarded(buildRequest(h, '/relay/files/h10', { token, host: null, version: 'HTTP/1.0' }));
    expectPortForwarding(seen.rawHeaders);
  });

  it.each([
    ['same value', [['Host', '__PORT__']]],
    ['different value', [['Host', 'evil.example']]],
    ['different case', [['host', 'evil.example']]],
  ] as Array<[string, Array<[string, string]>]>)('duplicate Host (%s): 400 invalid_request, closed, nothing forwarded', async (_name, extra) => {
    const r = await sendOne(h, get('/relay/files/dup', extra.map(([n, v]) => [n, v === '__PORT__' ? portHost(h) : v])));
    const body = expectJsonError(r, 400, 'invalid_request', [token]);
    expect(body.error_description).toMatch(/more than one Host/);
    expect(r.body).not.toContain('evil');
    expect(r.result.closedByServer).toBe(true);
    await upstreamSawNothing();
  });

  it('line-wrapped (obs-fold) Host: 400 from the parser, nothing forwarded', async () => {
    const r = await send(h, buildRequest(h, '/relay/files/x', { token, host: null, headers: ['Host: port', ' evil.example'] }), { expectResponses: 1 });
    expectParserRefusal(r, 400);
    await upstreamSawNothing();
  });

  it('absolute-form targets never reach the upstream, whatever their authority', async () => {
    for (const authority of ['evil.example', portHost(h), h.upstream.host]) {
      const r = await sendOne(h, get(`http://${authority}/relay/files/abs`));
      expect(r.status).toBeGreaterThanOrEqual(400);
      expect(r.status).toBeLessThan(500);
    }
    await upstreamSawNothing();
  });

  // Absolute-form targets whose authority differs from the configured host must be
  // refused. Today the relay never sees them (handles() wants a leading "/relay"),
  // so Fastify's 404 answers and echoes the attacker's URL in error_description.
  it('an absolute-form target with a foreign authority is 400 invalid_path, and the refusal does not echo it', async () => {
    const r = await sendOne(h, get('http://evil.example/relay/files/abs'));
    expectJsonError(r, 400, 'invalid_path', [token]);
    expect(r.body).not.toContain('evil.example');
  });
});

describe('duplicate Authorization (Node keeps the first; Port must refuse)', () => {
  it.each([
    ['valid token, then garbage', (t: string) => [`Bearer ${t}`, 'Bearer garbage']],
    ['garbage, then valid token', (t: string) => ['Bearer garbage', `Bearer ${t}`]],
    ['the same valid token twice', (t: string) => [`Bearer ${t}`, `Bearer ${t}`]],
    ['Bearer and Basic', (t: string) => [`Bearer ${t}`, `Basic ${Buffer.from(`x:${t}`).toString('base64')}`]],
  ])('%s: 400 invalid_request, closed, nothing forwarded, no token echoed', async (_name, values) => {
    const [a, b] = values(token);
    const r = await sendOne(h, buildRequest(h, '/relay/files/dup-auth', { headers: [['Authorization', a!], ['authorization', b!]] }));
    const body = expectJsonError(r, 400, 'invalid_request', [token]);
    expect(body.error_description).toMatch(/more than one Authorization/);
    expect(r.result.closedByServer).toBe(true);
    await upstreamSawNothing();
  });
});

describe('the response direction', () => {
  it('hop-by-hop response fields and those the upstream\'s Connection lists never reach the caller', async () => {
    const r = await sendOne(h, get('/relay/rawup/x'));
    expect(r.status).toBe(200);
    expect(r.body).toBe('ok');
    expect(r.headers['x-fine']).toBe('ok');
    for (const name of ['x-internal', 'proxy-authenticate', 'upgrade', 'trailer', 'proxy-connection']) expect(r.headers[name], name).toBeUndefined();
    expect(r.headers['keep-alive'] ?? '').not.toContain('99');
    expect(r.result.raw.toString('latin1')).not.toContain('secret-internal');
    // The caller's token went nowhere near the upstream either.
    expect(raw.received.map((b) => b.toString('latin1')).join('')).not.toContain(token.slice(-24));
  });
});
