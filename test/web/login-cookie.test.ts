/**
 * Sign-ins in progress live in the browser's sealed `port_login` cookie, not in Port's
 * memory (src/web/login-cookie.ts). The attacks, over HTTP through the real IdP
 * (oidc-provider, test/web/idp.ts) with a cookie-keeping client:
 *
 * - a flood of `GET /login` (more than the 10,000 sign-ins the old in-memory table
 *   held) while a real person is at the IdP: their sign-in still completes;
 * - a tampered cookie, another Port's cookie, an expired one, a callback forced on a
 *   browser that started its own sign-in, a replayed callback with a real code;
 * - restarts: with `issuer.key_encryption_key` a sign-in survives one, without it it
 *   doesn't (documented).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, startWeb, type WebEnv } from './support.js';

/** More sign-ins than the old in-memory table held (10,000), so it would have evicted the real one. */
const FLOOD = 12_000;
const FLOOD_CONCURRENCY = 64;

/** `count` GET /login from cookie-less clients; returns how many Port answered with a sign-in redirect and cookie. */
async function flood(base: string, count: number): Promise<number> {
  let next = 0;
  let ok = 0;
  const worker = async () => {
    while (next < count) {
      next++;
      const res = await fetch(`${base}/login?return_to=%2Fapprovals`, { redirect: 'manual' });
      await res.arrayBuffer();
      if (res.status === 302 && res.headers.getSetCookie().some((c) => c.startsWith('port_login='))) ok++;
    }
  };
  await Promise.all(Array.from({ length: FLOOD_CONCURRENCY }, worker));
  return ok;
}

function flipOneChar(value: string, at: number): string {
  const c = value[at]!;
  return `${value.slice(0, at)}${c === 'A' ? 'B' : 'A'}${value.slice(at + 1)}`;
}

describe('one Port', () => {
  let env: WebEnv;
  let other: WebEnv;
  beforeAll(async () => {
    [env, other] = await Promise.all([startWeb(), startWeb()]);
  });
  afterAll(async () => {
    await Promise.all([env?.close(), other?.close()]);
  });

  it(`a flood of ${FLOOD} GET /login does not break a sign-in in progress`, { timeout: 120_000 }, async () => {
    const pat = new Agent(env.url);
    let flooded = 0;
    const r = await pat.signIn('pat@acme.test', '/approvals?tab=mine', {
      // pat@ is at the IdP's sign-in form, their port_login cookie set, while the flood runs.
      atIdp: async () => {
        expect(pat.cookies.get('port_login')).toBeTruthy();
        flooded = await flood(env.url, FLOOD);
      },
    });
    expect(flooded).toBe(FLOOD);
    expect(r).toEqual({ status: 303, location: '/approvals?tab=mine' });
    expect(pat.cookies.get('port_session')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect((await pat.request('/approvals')).status).toBe(200);
  });

  it('the cookie reveals nothing of the sign-in (state, nonce, return path)', async () => {
    const agent = new Agent(env.url);
    const res = await agent.request('/login?return_to=%2Fapprovals%2Fsecret-place');
    const authorize = new URL(res.headers.get('location')!);
    const cookie = agent.cookies.get('port_login')!;
    const decoded = Buffer.from(cookie, 'base64url').toString('latin1');
    for (const secret of [authorize.searchParams.get('state')!, authorize.searchParams.get('nonce')!, 'secret-place']) {
      expect(cookie).not.toContain(secret);
      expect(decoded).not.toContain(secret);
    }
  });

  it('a tampered cookie, or one sealed by another Port, is refused before the IdP is asked', async () => {
    // Each at the point where the IdP sends the browser back with a genuine code and state.
    const tampered = new Agent(env.url);
    const callback = await tampered.authorizeOnly('pat@acme.test');
    const cookie = tampered.cookies.get('port_login')!;
    // (Not the last character: some of its bits may be base64 padding.)
    for (const at of [0, 20, Math.floor(cookie.length / 2), cookie.length - 3]) {
      tampered.cookies.set('port_login', flipOneChar(cookie, at));
      const res = await tampered.request(callback);
      expect(res.status, `flipped at ${at}`).toBe(400);
      expect(res.headers.get('x-port-error')).toBe('login_expired');
    }
    for (const value of [cookie.slice(0, -10), `${cookie}AAAA`, 'A'.repeat(5000), 'not*base64']) {
      tampered.cookies.set('port_login', value);
      expect((await tampered.request(callback)).headers.get('x-port-error')).toBe('login_expired');
    }
    expect(tampered.cookies.has('port_session')).toBe(false);

    // A well-formed sealed cookie from another Port (another key, another callback URL).
    const elsewhere = new Agent(other.url);
    await elsewhere.request('/login');
    const stranger = new Agent(env.url);
    const strangerCallback = await stranger.authorizeOnly('pat@acme.test');
    stranger.cookies.set('port_login', elsewhere.cookies.get('port_login')!);
    const res = await stranger.request(strangerCallback);
    expect(res.status).toBe(400);
    expect(res.headers.get('x-port-error')).toBe('login_expired');
    expect(stranger.cookies.has('port_session')).toBe(false);
  });

  it('a callback forced on a browser that started its own sign-in opens no session (login CSRF)', async () => {
    // The attacker signs in as themselves at the IdP and stops before the callback…
    const attacker = new Agent(env.url);
    const forced = await attacker.authorizeOnly('out@acme.test');
    // …and makes the victim's browser, mid-way through its own sign-in, visit it.
    const victim = new Agent(env.url);
    await victim.request('/login');
    const res = await victim.request(forced);
    expect(res.status).toBe(400);
    expect(res.headers.get('x-port-error')).toBe('sso_failed');
    expect(victim.cookies.has('port_session')).toBe(false);
    // A browser with no sign-in in progress at all.
    const bare = await new Agent(env.url).request(forced);
    expect(bare.headers.get('x-port-error')).toBe('login_expired');
  });

  it('a replayed callback with a real code and its cookie is refused, and the cookie is cleared', async () => {
    const agent = new Agent(env.url);
    const callback = await agent.authorizeOnly('sam@acme.test');
    const cookie = agent.cookies.get('port_login')!;
    const first = await agent.request(callback);
    expect(first.status).toBe(303);
    expect(first.headers.getSetCookie()).toContain('port_login=; Max-Age=0; Path=/auth/callback; HttpOnly; Secure; SameSite=Lax');
    const session = agent.cookies.get('port_session');

    const thief = new Agent(env.url);
    thief.cookies.set('port_login', cookie);
    const replay = await thief.request(callback);
    expect(replay.status).toBe(400);
    expect(replay.headers.get('x-port-error')).toBe('login_expired');
    expect(thief.cookies.has('port_session')).toBe(false);
    expect(agent.cookies.get('port_session')).toBe(session);
  });
});

describe('expiry', () => {
  let env: WebEnv;
  const clock = { t: Date.now() };
  beforeAll(async () => {
    env = await startWeb({ now: () => clock.t });
  });
  afterAll(async () => {
    await env?.close();
  });

  it('a sign-in older than 10 minutes is refused, whatever the browser keeps', async () => {
    clock.t = Date.now();
    const late = new Agent(env.url);
    const lateCallback = await late.authorizeOnly('pat@acme.test');
    clock.t += 601_000;
    const res = await late.request(lateCallback);
    expect(res.status).toBe(400);
    expect(res.headers.get('x-port-error')).toBe('login_expired');

    clock.t = Date.now();
    const inTime = new Agent(env.url);
    const callback = await inTime.authorizeOnly('pat@acme.test');
    clock.t += 590_000;
    const ok = await inTime.request(callback);
    expect(ok.status).toBe(303);
    expect(ok.headers.get('location')).toBe('/approvals');
  });
});

describe('restarts', () => {
  let keyed: WebEnv;
  let unkeyed: WebEnv;
  beforeAll(async () => {
    process.env.PORT_TEST_LOGIN_KEK = 'a-key-encryption-key-for-the-login-cookie-tests';
    [keyed, unkeyed] = await Promise.all([startWeb({ issuer: { key_encryption_key: 'env:PORT_TEST_LOGIN_KEK' } }), startWeb()]);
  });
  afterAll(async () => {
    await Promise.all([keyed?.close(), unkeyed?.close()]);
    delete process.env.PORT_TEST_LOGIN_KEK;
  });

  it('with issuer.key_encryption_key a sign-in in progress survives a restart of Port', async () => {
    const r = await new Agent(keyed.url).signIn('pat@acme.test', '/approvals', { atIdp: () => keyed.restart() });
    expect(r).toEqual({ status: 303, location: '/approvals' });
  });

  it('a restarted Port still knows finished sign-ins (they are in the store): a replayed callback is refused before the IdP is asked', async () => {
    const agent = new Agent(keyed.url);
    const callback = await agent.authorizeOnly('sam@acme.test');
    const cookie = agent.cookies.get('port_login')!;
    expect((await agent.request(callback)).status).toBe(303);
    await keyed.restart();
    const thief = new Agent(keyed.url);
    thief.cookies.set('port_login', cookie);
    const replay = await thief.request(callback);
    expect(replay.status).toBe(400);
    // Refused by Port itself; the IdP's one-use code (RFC 6749 §4.1.2) would refuse it too.
    expect(replay.headers.get('x-port-error')).toBe('login_expired');
    expect(thief.cookies.has('port_session')).toBe(false);
  });

  it('without it (a key per process) a sign-in in progress does not survive a restart', async () => {
    const agent = new Agent(unkeyed.url);
    const callback = await agent.authorizeOnly('pat@acme.test');
    await unkeyed.restart();
    const res = await agent.request(callback);
    expect(res.status).toBe(400);
    expect(res.headers.get('x-port-error')).toBe('login_expired');
  });
});
