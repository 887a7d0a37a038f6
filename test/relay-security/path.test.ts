/**
 * Path-normalisation differentials (Envoy CVE-2019-9901,
 * CVE-2021-29492, CVE-2021-32779 and the 2026 `..;` advisories; Orange Tsai 2018; double
 * encoding; backslash; overlong UTF-8). The rule under test: Port computes one canonical
 * path, decides on it, and forwards exactly it — or refuses with 400 `invalid_path`.
 *
 * "What the policy saw" is read from the decision log: the `mirror` upstream has no permit,
 * so every request to it is denied and logged with its normalised path. The same target
 * sent to `files` (GET allowed, `/admin*` forbidden) must reach the recording upstream as
 * `/base` + exactly that path.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { RELAY_POLICIES, startRelayHarness, type RelayHarness } from '../helpers/relay-harness.js';
import { buildRequest, expectJsonError, expectParserRefusal, lastDecision, send, sendOne, sleep } from './support.js';

let h: RelayHarness;
let token: string;
beforeAll(async () => {
  h = await startRelayHarness({
    upstreams: (up) => ({
      files: { url: `${up.url}/base`, timeout: 2, inject: { bearer: 'env:PORT_TEST_UPSTREAM_SECRET' } },
      mirror: { url: `${up.url}/mirror`, timeout: 2 },
      npm: { url: `${up.url}/npm`, timeout: 2, encoded_slashes: 'keep' },
    }),
    policies: {
      ...RELAY_POLICIES,
      'npm.cedar': '@id("npm-read")\npermit (principal, action == Port::Action::"proxy", resource == Port::Upstream::"npm") when { context.method == "GET" };\n',
    },
  });
  token = await h.token();
});
afterAll(async () => {
  await h?.close();
});
beforeEach(() => h.upstream.reset());

const get = (target: string) => buildRequest(h, target, { token });

async function upstreamSawNothing(): Promise<void> {
  await sleep(50);
  expect(h.upstream.requests.map((r) => r.url)).toEqual([]);
}

/** The normalised path the policy decided on, via the always-denied `mirror` route. */
async function policyPath(filesTarget: string): Promise<string> {
  const r = await sendOne(h, get(filesTarget.replace(/^\/relay\/files/, '/relay/mirror')));
  expectJsonError(r, 403, 'access_denied', [token]);
  const d = await lastDecision(h);
  expect(d).toMatchObject({ decision: 'deny', context: { upstream: 'mirror', method: 'GET' } });
  return d!.context!.path as string;
}

describe('policy sees X, the upstream receives X', () => {
  it.each([
    ['/relay/files/public/./x/../y', '/public/y', ''],
    ['/relay/files/public//y', '/public/y', ''],
    ['/relay/files/public/../y', '/y', ''],
    ['/relay/files/public/..', '/', ''],
    ['/relay/files', '/', ''],
    ['/relay/files/dir/', '/dir/', ''],
    ['/relay/files/dir/.', '/dir/', ''],
    ['/relay/files/%7Euser/a%2Db%5fc', '/~user/a-b_c', ''],
    ['/relay/files/%70ublic/y', '/public/y', ''],
    ['/relay/files/a%3fb', '/a%3Fb', ''],
    ['/relay/files/a%23b', '/a%23b', ''],
    ['/relay/files/a%40b%3a%21', '/a@b:!', ''],
    ['/relay/files/public;v=1/y', '/public;v=1/y', ''],
    ['/relay/files/a%3Bb', '/a%3Bb', ''],
    ['/relay/files/a%20b', '/a%20b', ''],
    ['/relay/files/caf%c3%a9', '/caf%C3%A9', ''],
    // Fullwidth solidus/full stop stay encoded: no separator, no dot segment, to anyone.
    ['/relay/files/a%ef%bc%8f..%ef%bc%8fadmin', '/a%EF%BC%8F..%EF%BC%8Fadmin', ''],
    // `?` ends the path: what follows is the query, forwarded byte for byte, never decided on.
    ['/relay/files/x?/../admin', '/x', '?/../admin'],
    ['/relay/files/q?a=%2e%2e%2f&b=%00&c=%252e', '/q', '?a=%2e%2e%2f&b=%00&c=%252e'],
  ])('%s: policy and upstream both see %s', async (target, canonical, query) => {
    expect(await policyPath(target)).toBe(canonical);
    h.upstream.reset();
    const r = await sendOne(h, get(target));
    expect(r.status).toBe(200);
    expect(h.upstream.requests.map((x) => x.url)).toEqual([`/base${canonical}${query}`]);
  });
});

describe('dot segments and encodings that resolve into a forbidden path are decided on the resolved path', () => {
  it.each([
    ['/relay/files/public/../admin/users', '/admin/users'],
    ['/relay/files/public/%2e%2e/admin', '/admin'],
    ['/relay/files/public/%2E%2E/admin', '/admin'],
    ['/relay/files/public/.%2e/admin', '/admin'],
    ['/relay/files/public/%2e./admin', '/admin'],
    ['/relay/files/public/./../admin', '/admin'],
    ['/relay/files/%61dmin', '/admin'],
    ['/relay/files/%61%64%6d%69%6e/x', '/admin/x'],
    ['/relay/files//admin', '/admin'],
    ['/relay/files/.//admin', '/admin'],
    ['/relay/files/./admin', '/admin'],
    ['/relay/files/x%3F/../admin', '/admin'],
    ['/relay/files/admin;x=1', '/admin;x=1'],
    ['/relay/files/admin%3Bx=1', '/admin%3Bx=1'],
    ['/relay/files/admin?x=/../public', '/admin'],
  ])('%s: 403 on %s, nothing forwarded', async (target, resolved) => {
    const r = await sendOne(h, get(target));
    const body = expectJsonError(r, 403, 'access_denied', [token]);
    expect(body.error_description).toContain(`GET ${resolved} on files`);
    expect(r.headers['x-port-decision-id']).toMatch(/^[0-9a-f-]{36}$/);
    const d = await lastDecision(h);
    expect(d).toMatchObject({ decision: 'deny', context: { upstream: 'files', method: 'GET', path: resolved }, policies: [{ id: 'no-admin' }] });
    await upstreamSawNothing();
  });

  it('the denial log never records the query string', async () => {
    const r = await sendOne(h, get('/relay/files/admin?secret=hunter2'));
    expect(r.status).toBe(403);
    expect(r.body).not.toContain('hunter2');
    expect(JSON.stringify(await lastDecision(h))).not.toContain('hunter2');
  });
});

describe('path tricks refused with 400 invalid_path, nothing forwarded', () => {
  it.each([
    // `..` climbing above the route.
    ['climb: ..', '/relay/files/../x'],
    ['climb: %2e%2e', '/relay/files/%2e%2e/x'],
    ['climb: two levels', '/relay/files/a/../../x'],
    ['climb: bare ..', '/relay/files/..'],
    ['climb: .%2E', '/relay/files/.%2E/admin'],
    ['climb: into another route', '/relay/files/../mirror/x'],
    // Encoded separators (CVE-2021-29492).
    ['%2f with dots', '/relay/files/a%2f..%2fadmin'],
    ['..%2f', '/relay/files/public/..%2fadmin'],
    ['%2F alone', '/relay/files/a%2Fb'],
    ['leading %2F', '/relay/files/%2Fadmin'],
    ['%2e%2e%2f', '/relay/files/public/%2e%2e%2fadmin'],
    ['%5c', '/relay/files/a%5c..%5cadmin'],
    ['%5C', '/relay/files/public%5C..%5Cadmin'],
    // Raw backslash (IIS/.NET, WHATWG URL).
    ['backslash', '/relay/files/public\\..\\admin'],
    ['backslash alone', '/relay/files/a\\b'],
    // Double encoding.
    ['%252e%252e', '/relay/files/public/%252e%252e/admin'],
    ['%252f', '/relay/files/public%252f..%252fadmin'],
    ['%252E', '/relay/files/%252E'],
    ['assembled %25%32%65', '/relay/files/public/%25%32%65%25%32%65/admin'],
    ['%255c', '/relay/files/a%255cb'],
    // `;` parameters on dot segments (Tomcat `..;/`, Envoy 2026 advisories).
    ['..;/', '/relay/files/public/..;/admin'],
    ['..;x=1/', '/relay/files/public/..;x=1/admin'],
    ['.;/', '/relay/files/public/.;/admin'],
    ['..%3B/', '/relay/files/public/..%3B/admin'],
    ['%2e%2e;/', '/relay/files/public/%2e%2e;/admin'],
    // NUL and other controls, encoded (raw ones are the parser's: see below).
    ['%00', '/relay/files/admin%00.txt'],
    ['%00 alone', '/relay/files/a%00'],
    ['%0d%0a (header injection)', '/relay/files/a%0d%0aX-Injected:%20yes'],
    ['%09', '/relay/files/a%09b'],
    ['%7f', '/relay/files/a%7fb'],
    // Overlong and invalid UTF-8.
    ['overlong . (%c0%ae)', '/relay/files/public/%c0%ae%c0%ae/admin'],
    ['overlong / (%c0%af)', '/relay/files/public%c0%af..%c0%afadmin'],
    ['overlong . (3 bytes)', '/relay/files/public/%e0%80%ae%e0%80%ae/admin'],
    ['overlong \\ (%c1%9c)', '/relay/files/public%c1%9c..%c1%9cadmin'],
    ['overlong / (4 bytes)', '/relay/files/a%f0%80%80%afb'],
    ['UTF-16 surrogate', '/relay/files/a%ed%a0%80b'],
    ['lone continuation byte', '/relay/files/a%80b'],
    ['truncated sequence', '/relay/files/a%c3'],
    ['%ff', '/relay/files/a%ffb'],
    // Malformed percent-encoding.
    ['%zz', '/relay/files/a%zzb'],
    ['% at the end', '/relay/files/a%'],
    ['%2 at the end', '/relay/files/a%2'],
    // Fragments (CVE-2021-32779).
    ['fragment', '/relay/files/x#/../admin'],
    ['fragment after query', '/relay/files/x?a=1#b'],
    // The upstream name itself.
    ['upper-case upstream', '/relay/FILES/x'],
    ['encoded upstream', '/relay/%66iles/x'],
    ['empty upstream', '/relay//files/admin'],
    ['dot upstream', '/relay/./files/admin'],
    ['dotdot upstream', '/relay/../relay/files/admin'],
    ['encoded slash in upstream', '/relay/files%2fadmin'],
    // Sizes.
    ['target longer than 8 KiB', `/relay/files/${'a'.repeat(9000)}`],
    ['more than 256 segments', `/relay/files${'/a'.repeat(300)}`],
  ])('%s', async (_name, target) => {
    const r = await sendOne(h, get(target));
    expectJsonError(r, 400, 'invalid_path', [token]);
    expect(r.result.closedByServer).toBe(true);
    // The refusal names the problem, never echoes the target.
    expect(r.body).not.toContain('admin');
    await upstreamSawNothing();
  });

  it.each([
    ['raw NUL', Buffer.from('/relay/files/admin\x00.txt', 'latin1')],
    ['raw 0xFF', Buffer.from([...Buffer.from('/relay/files/a'), 0xff, ...Buffer.from('b')])],
    ['raw UTF-8', Buffer.from('/relay/files/café', 'utf8')],
    ['raw CR', Buffer.from('/relay/files/a\rb', 'latin1')],
    ['raw tab', Buffer.from('/relay/files/a\tb', 'latin1')],
  ])('%s in the target: 400 from the parser or the relay, closed, nothing forwarded', async (_name, target) => {
    const head = Buffer.concat([Buffer.from('GET '), target, Buffer.from(` HTTP/1.1\r\nHost: port\r\nAuthorization: Bearer ${token}\r\n\r\n`)]);
    const r = await send(h, head, { expectResponses: 1, closeGraceMs: 200 });
    expectParserRefusal(r, 400);
    await upstreamSawNothing();
  });

  it('an unknown upstream is 404 unknown_upstream, nothing forwarded', async () => {
    const r = await sendOne(h, get('/relay/nope/admin'));
    expectJsonError(r, 404, 'unknown_upstream', [token]);
    await upstreamSawNothing();
  });
});

describe('a route with encoded_slashes: keep (npm scoped packages)', () => {
  it('keeps %2F encoded, decided and forwarded as one segment', async () => {
    const r = await sendOne(h, get('/relay/npm/@scope%2fname'));
    expect(r.status).toBe(200);
    expect(h.upstream.requests.map((x) => x.url)).toEqual(['/npm/@scope%2Fname']);
  });

  it.each([
    ['%2F..%2F', '/relay/npm/@scope%2f..%2f..%2fadmin'],
    ['..%2F', '/relay/npm/..%2fadmin'],
    ['.%2F', '/relay/npm/a%2F.%2Fb'],
    ['..;%2F', '/relay/npm/a%2F..;%2Fadmin'],
    ['%5C still refused', '/relay/npm/a%5cb'],
    ['double-encoded slash', '/relay/npm/a%252fb'],
  ])('refuses a dot segment hidden between encoded slashes (%s): 400, nothing forwarded', async (_name, target) => {
    const r = await sendOne(h, get(target));
    expectJsonError(r, 400, 'invalid_path', [token]);
    await upstreamSawNothing();
  });

  // A backend that decodes %2F (the reason for `keep`) and merges slashes reads `/%2Fadmin`
  // as `/admin`, which the policy never saw: the same differential as a hidden `..`.
  it.each([
    ['leading %2F', '/relay/npm/%2Fadmin'],
    ['%2F%2F', '/relay/npm/x/a%2F%2Fadmin'],
    ['segment that is only %2F', '/relay/npm/x/%2F/admin'],
  ])('refuses an empty segment made of encoded slashes (%s): 400, nothing forwarded', async (_name, target) => {
    const r = await sendOne(h, get(target));
    expectJsonError(r, 400, 'invalid_path', [token]);
    await upstreamSawNothing();
  });
});
