/**
 * Cookie prefixes (draft-ietf-httpbis-rfc6265bis §4.1.3.2). Behind an https public URL Port names its cookies
 * `__Host-port_session` and `__Host-port_login` (Secure, Path=/, no Domain), sets and
 * reads only those, and treats a name sent twice as absent. So a sibling host under the
 * same registrable domain (a preview app at preview.example.com beside Port at
 * port.example.com) can't toss a cookie Port would read: the browser refuses a `__Host-`
 * cookie with a Domain, and Port ignores the plain names it could toss.
 *
 * Port is served over real TLS (a throwaway certificate made with openssl) at
 * https://port.example.com:<port>; the HTTP agents trust that certificate and resolve
 * *.example.com to 127.0.0.1, and headless Chromium does the same with host-resolver
 * rules. Over plain http (the local demo) the names stay `port_session` / `port_login`
 * (web-attacks.test.ts checks those attributes).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { LookupFunction } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { Agent as UndiciAgent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listening } from './idp.js';
import { Agent, startWeb, type WebEnv } from './support.js';

const HOST = 'port.example.com';
const SIBLING = 'preview.example.com';

let certDir: string;
let tls: { key: string; cert: string };
let env: WebEnv;
let plain: WebEnv;
let dispatcher: UndiciAgent;
let browser: Browser;
let sibling: HttpsServer;
let siblingUrl: string;
/** What the sibling's page plants, as Set-Cookie values. */
let planted: string[] = [];

/** Every name resolves to 127.0.0.1 (both call shapes: one address, or `all`). */
const toLoopback = ((_host: string, opts: { all?: boolean }, cb: (...a: unknown[]) => void) => {
  if (opts.all) cb(null, [{ address: '127.0.0.1', family: 4 }]);
  else cb(null, '127.0.0.1', 4);
}) as unknown as LookupFunction;

beforeAll(async () => {
  certDir = mkdtempSync(join(tmpdir(), 'port-tls-'));
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', join(certDir, 'key.pem'), '-out', join(certDir, 'cert.pem'), '-days', '1',
    '-subj', `/CN=${HOST}`, '-addext', `subjectAltName=DNS:${HOST},DNS:${SIBLING}`,
  ], { stdio: 'ignore' });
  tls = { key: readFileSync(join(certDir, 'key.pem'), 'utf8'), cert: readFileSync(join(certDir, 'cert.pem'), 'utf8') };
  dispatcher = new UndiciAgent({ connect: { ca: tls.cert, lookup: toLoopback } });
  env = await startWeb({ tls: { ...tls, host: HOST } });
  plain = await startWeb();

  // The sibling app: its page plants whatever `planted` says.
  sibling = createHttpsServer(tls, (_req, res) => {
    res.setHeader('set-cookie', planted);
    res.writeHead(200, { 'content-type': 'text/html' }).end('<p>preview</p>');
  });
  siblingUrl = `https://${SIBLING}:${new URL(await listening(sibling as never)).port}`;
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', `--host-resolver-rules=MAP *.example.com 127.0.0.1`],
  });
}, 60_000);
afterAll(async () => {
  await browser?.close();
  await new Promise<void>((resolve) => (sibling ? sibling.close(() => resolve()) : resolve()));
  await env?.close();
  await plain?.close();
  await dispatcher?.close();
  rmSync(certDir, { recursive: true, force: true });
});

const agent = () => new Agent(env.url, dispatcher);

describe('https public URL: __Host- cookies', () => {
  it('sign-in sets __Host-port_login and __Host-port_session (Secure, Path=/, no Domain), and nothing under the plain names', async () => {
    const a = agent();
    const login = await a.request('/login?return_to=%2Fapprovals');
    expect(login.status).toBe(302);
    const [loginCookie] = login.headers.getSetCookie();
    expect(loginCookie).toMatch(/^__Host-port_login=[A-Za-z0-9_-]{100,}; Max-Age=600; Path=\/; HttpOnly; Secure; SameSite=Lax$/);

    const b = agent();
    const setCookies: string[] = [];
    const callback = await b.authorizeOnly('pat@acme.test', '/approvals');
    const res = await b.request(callback);
    setCookies.push(...res.headers.getSetCookie());
    expect(res.status).toBe(303);
    expect(setCookies).toContain('__Host-port_login=; Max-Age=0; Path=/; HttpOnly; Secure; SameSite=Lax');
    expect(setCookies.find((c) => c.startsWith('__Host-port_session=') && !c.startsWith('__Host-port_session=;'))).toMatch(
      /^__Host-port_session=[A-Za-z0-9_-]{43}; Max-Age=28800; Path=\/; HttpOnly; Secure; SameSite=Lax$/,
    );
    expect(setCookies.every((c) => c.startsWith('__Host-') && !/domain=/i.test(c))).toBe(true);
    expect((await b.request('/approvals')).status).toBe(200);
  });

  it('reads only the prefixed names: a valid session or sign-in under a plain name counts for nothing', async () => {
    const a = agent();
    await a.signIn('pat@acme.test', '/approvals');
    const session = a.cookies.get('__Host-port_session')!;
    expect(session).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const moved = new Agent(env.url, dispatcher);
    moved.cookies.set('port_session', session);
    const res = await moved.request('/approvals');
    expect(res.status).toBe(302);
    expect(res.headers.get('location')).toMatch(/^\/login\?/);

    const b = agent();
    const callback = await b.authorizeOnly('pat@acme.test', '/approvals');
    const sealed = b.cookies.get('__Host-port_login')!;
    b.cookies.delete('__Host-port_login');
    b.cookies.set('port_login', sealed);
    const refused = await b.request(callback);
    expect(refused.status).toBe(400);
    expect(await refused.text()).toContain('login_expired');
  });

  it('a cookie name sent twice (one planted beside the real one) is treated as absent', async () => {
    const a = agent();
    await a.signIn('pat@acme.test', '/approvals');
    const session = a.cookies.get('__Host-port_session')!;
    const attacker = agent();
    await attacker.signIn('out@acme.test', '/approvals');
    const tossed = attacker.cookies.get('__Host-port_session')!;
    for (const cookie of [`__Host-port_session=${tossed}; __Host-port_session=${session}`, `__Host-port_session=${session}; __Host-port_session=${tossed}`]) {
      const res = await fetchWith(cookie, '/approvals');
      expect(res.status).toBe(302);
    }
    // Each on its own still works: nothing was deleted by the refusal.
    expect((await fetchWith(`__Host-port_session=${session}`, '/approvals')).status).toBe(200);

    const b = agent();
    const callback = await b.authorizeOnly('pat@acme.test', '/approvals');
    const c = agent();
    await c.authorizeOnly('out@acme.test', '/approvals');
    const res = await fetchWith(`__Host-port_login=${c.cookies.get('__Host-port_login')}; __Host-port_login=${b.cookies.get('__Host-port_login')}`, callback);
    expect(res.status).toBe(400);
  });

  it('in Chromium, a sibling host can plant neither a session nor a sign-in: login CSRF by cookie tossing fails', async () => {
    // The attacker signs in as themselves and keeps their session and a sign-in halfway (callback not visited).
    // (Under whichever name Port gave them: what matters is that the attacker holds the values.)
    const attacker = agent();
    await attacker.signIn('out@acme.test', '/approvals');
    const attackerSession = valueOf(attacker, 'port_session');
    const half = agent();
    const attackerCallback = await half.authorizeOnly('out@acme.test', '/approvals');
    const attackerLogin = valueOf(half, 'port_login');
    planted = [
      // What a sibling host can set for the whole domain…
      `port_session=${attackerSession}; Domain=example.com; Path=/; Secure; SameSite=Lax`,
      `port_login=${attackerLogin}; Domain=example.com; Path=/auth/callback; Secure; SameSite=Lax`,
      // …and the prefixed names, which the browser must refuse (a Domain is not allowed).
      `__Host-port_session=${attackerSession}; Domain=example.com; Path=/; Secure; SameSite=Lax`,
      `__Host-port_login=${attackerLogin}; Domain=example.com; Path=/; Secure; SameSite=Lax`,
    ];
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    try {
      const page = await context.newPage();
      // The victim visits the sibling, which plants cookies for the whole domain.
      expect((await page.goto(`${siblingUrl}/preview`))!.status()).toBe(200);
      // The plain names landed (tossing works in this browser); the prefixed ones were refused.
      const jar = await context.cookies(`${env.url}/auth/callback`);
      expect(jar.map((c) => `${c.name}@${c.domain}`).sort()).toEqual(['port_login@.example.com', 'port_session@.example.com']);

      // The attacker's callback, forced on the victim, with the attacker's sign-in planted: refused.
      const res = await page.goto(attackerCallback);
      expect(res!.status()).toBe(400);
      expect(await page.content()).toContain('login_expired');
      // The attacker's session, planted: Port doesn't take the victim for the attacker and sends them to sign in.
      await page.goto(`${env.url}/approvals`);
      expect(new URL(page.url()).origin).toBe(env.idpUrl);
      expect((await context.cookies(env.url)).some((c) => c.name === '__Host-port_session')).toBe(false);
    } finally {
      await context.close();
    }
  });
});

describe('http public URL (the local demo): plain names', () => {
  it('keeps port_session, and a name sent twice is treated as absent there too', async () => {
    const a = new Agent(plain.url);
    await a.signIn('pat@acme.test', '/approvals');
    const session = a.cookies.get('port_session')!;
    expect(session).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(a.cookies.has('__Host-port_session')).toBe(false);
    for (const cookie of [`port_session=${session}; port_session=${'x'.repeat(43)}`, `port_session=${'x'.repeat(43)}; port_session=${session}`]) {
      const twice = await fetch(`${plain.url}/approvals`, { headers: { cookie }, redirect: 'manual' });
      expect(twice.status).toBe(302);
    }
    const once = await fetch(`${plain.url}/approvals`, { headers: { cookie: `port_session=${session}` }, redirect: 'manual' });
    expect(once.status).toBe(200);
  });
});

function valueOf(a: Agent, name: string): string {
  const value = a.cookies.get(`__Host-${name}`) ?? a.cookies.get(name);
  if (!value) throw new Error(`no ${name} cookie`);
  return value;
}

async function fetchWith(cookie: string, pathOrUrl: string): Promise<Response> {
  const a = new Agent(env.url, dispatcher);
  return a.request(pathOrUrl, { headers: { cookie } });
}
