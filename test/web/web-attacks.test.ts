/**
 * Attack tests for the people side, over plain HTTP (no browser): CSRF on the
 * approve form, a session cookie of a deactivated user, forged session cookies,
 * open redirects through `return_to`, sign-in callbacks not started here, and HTML
 * injection through build data. Sign-ins go through the real IdP (test/web/support.ts).
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApprovalRequestRecord } from '../../src/store/records/approvals.js';
import { Agent, csrfIn, startWeb, type WebEnv } from './support.js';

let env: WebEnv;
const idHash = (cookie: string) => createHash('sha256').update(cookie).digest('hex');

beforeAll(async () => {
  env = await startWeb();
});
afterAll(async () => {
  await env?.close();
});

async function signedIn(email: string): Promise<Agent> {
  const agent = new Agent(env.url);
  const r = await agent.signIn(email);
  expect(r).toEqual({ status: 303, location: '/approvals' });
  expect(agent.cookies.get('port_session')).toMatch(/^[A-Za-z0-9_-]{43}$/);
  return agent;
}

async function csrfOf(agent: Agent): Promise<string> {
  const res = await agent.request('/approvals');
  expect(res.status).toBe(200);
  return csrfIn(await res.text());
}

async function approveActions(): Promise<number> {
  return (await env.actions()).filter((a) => a.startsWith('approve:')).length;
}

describe('CSRF on the approve form', () => {
  let request: ApprovalRequestRecord;
  let pat: Agent;
  let token: string;
  beforeAll(async () => {
    request = await env.openFeatureRequest(10);
    pat = await signedIn('pat@acme.test');
    token = await csrfOf(pat);
  });

  const decision = () => `/approvals/${request.id}/decision`;

  async function refused(form: Record<string, string>, headers: Record<string, string> = {}) {
    const before = await approveActions();
    const res = await pat.request(decision(), { form, headers });
    expect(res.status).toBe(403);
    expect(res.headers.get('x-port-error')).toBe('csrf_failed');
    expect(await res.text()).toContain('csrf_failed');
    expect((await env.store.approvals.get(request.id))!.approvals).toEqual([]);
    expect(await approveActions()).toBe(before); // not even a refused decision reached the service
  }

  it('refuses a POST without the token', async () => {
    await refused({ verdict: 'approve', comment: 'no token' });
  });

  it('refuses a wrong token, an empty one, and another session\'s token', async () => {
    await refused({ verdict: 'approve', csrf: `${token.slice(0, -1)}${token.endsWith('A') ? 'B' : 'A'}` });
    await refused({ verdict: 'approve', csrf: '' });
    const sam = await signedIn('sam@acme.test');
    await refused({ verdict: 'approve', csrf: await csrfOf(sam) });
  });

  it('refuses a cross-site Origin or Sec-Fetch-Site even with the right token', async () => {
    await refused({ verdict: 'approve', csrf: token }, { origin: 'https://evil.example' });
    await refused({ verdict: 'approve', csrf: token }, { origin: env.idpUrl }); // same host, other port: another origin
    await refused({ verdict: 'approve', csrf: token }, { 'sec-fetch-site': 'cross-site' });
    await refused({ verdict: 'approve', csrf: token }, { 'sec-fetch-site': 'same-site' });
  });

  it('accepts the right token from Port\'s own origin', async () => {
    const res = await pat.request(decision(), { form: { verdict: 'approve', comment: 'ok', csrf: token }, headers: { origin: env.url, 'sec-fetch-site': 'same-origin' } });
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe(`/approvals/${request.id}?done=approved`);
    expect((await env.store.approvals.get(request.id))!.approvals.map((a) => a.email)).toEqual(['pat@acme.test']);
  });

  it('refuses sign-out without the token', async () => {
    const res = await pat.request('/logout', { form: {} });
    expect(res.status).toBe(403);
    expect((await pat.request('/approvals')).status).toBe(200);
  });
});

describe('an approver outside the groups', () => {
  it('is refused by the service even with a valid session and token', async () => {
    const request = await env.openFeatureRequest(11);
    const out = await signedIn('out@acme.test');
    const list = await (await out.request('/approvals')).text();
    expect(list).not.toContain(request.id);
    expect((await out.request(`/approvals/${request.id}`)).status).toBe(403);
    const res = await out.request(`/approvals/${request.id}/decision`, { form: { verdict: 'approve', csrf: csrfIn(list) } });
    expect(res.status).toBe(403);
    expect(res.headers.get('x-port-error')).toBe('not_eligible');
    expect((await env.store.approvals.get(request.id))!.approvals).toEqual([]);
  });
});

describe('sessions', () => {
  it('a deactivated user\'s cookie stops working at once and their sessions are deleted', async () => {
    const request = await env.openFeatureRequest(12);
    const sam = await signedIn('sam@acme.test');
    const samElsewhere = await signedIn('sam@acme.test'); // a second browser
    const token = await csrfOf(sam);
    const cookie = sam.cookies.get('port_session')!;
    expect(await env.store.sessions.get(idHash(cookie))).toBeDefined();

    const user = (await env.store.users.get('sam@acme.test'))!;
    await env.store.users.upsert({ ...user, active: false, updatedAt: Date.now() });

    // The approve form with a still-valid token: refused before the service is asked.
    const before = await approveActions();
    const post = await sam.request(`/approvals/${request.id}/decision`, { form: { verdict: 'approve', csrf: token } });
    expect(post.status).toBe(401);
    expect(post.headers.get('x-port-error')).toBe('not_signed_in');
    expect(post.headers.getSetCookie().join()).toMatch(/port_session=; Max-Age=0/);
    expect(await approveActions()).toBe(before);
    expect((await env.store.approvals.get(request.id))!.approvals).toEqual([]);
    expect(await env.store.sessions.get(idHash(cookie))).toBeUndefined();
    expect(await env.store.sessions.get(idHash(samElsewhere.cookies.get('port_session')!))).toBeUndefined();

    // A page: back to sign-in.
    const page = await samElsewhere.request(`/approvals/${request.id}`);
    expect(page.status).toBe(302);
    expect(page.headers.get('location')).toBe(`/login?return_to=${encodeURIComponent(`/approvals/${request.id}`)}`);

    // Signing in again at the IdP does not re-activate them: deactivation in Port wins.
    const again = new Agent(env.url);
    const res = await again.signIn('sam@acme.test', '/approvals');
    expect(res.status).toBe(403);
    expect((await env.store.users.get('sam@acme.test'))!.active).toBe(false);
    await env.store.users.upsert({ ...user, active: true, updatedAt: Date.now() }); // for the tests after this one
  });

  it('a forged or unknown session cookie is treated as signed out', async () => {
    for (const value of ['A'.repeat(43), 'not-a-session', '../../etc/passwd', '']) {
      const agent = new Agent(env.url);
      agent.cookies.set('port_session', value);
      const res = await agent.request('/approvals');
      expect(res.status).toBe(302);
      expect(res.headers.get('location')).toBe('/login?return_to=%2Fapprovals');
      const post = await agent.request('/logout', { form: { csrf: 'x' } });
      expect(post.status).toBe(200); // signing out without a session is harmless
    }
    const res = await new Agent(env.url).request('/approvals/anything/decision', { form: { verdict: 'approve', csrf: 'x' } });
    expect(res.status).toBe(401);
  });

  it('the session id is stored only as its SHA-256; sign-out deletes it', async () => {
    const pat = await signedIn('pat@acme.test');
    const cookie = pat.cookies.get('port_session')!;
    expect(await env.store.sessions.get(cookie)).toBeUndefined();
    const session = (await env.store.sessions.get(idHash(cookie)))!;
    expect(session).toMatchObject({ email: 'pat@acme.test', groups: ['platform'] });
    expect(session.expiresAt - session.createdAt).toBe(8 * 3600 * 1000);
    const res = await pat.request('/logout', { form: { csrf: session.csrfToken } });
    expect(res.status).toBe(200);
    expect(await env.store.sessions.get(idHash(cookie))).toBeUndefined();
    expect((await pat.request('/approvals')).status).toBe(302);
  });

  it('sets the cookies HttpOnly, Secure and SameSite=Lax', async () => {
    const agent = new Agent(env.url);
    const login = await agent.request('/login');
    expect(login.status).toBe(302);
    expect(login.headers.getSetCookie()[0]).toMatch(/^port_login=[A-Za-z0-9_-]{100,}; Max-Age=600; Path=\/auth\/callback; HttpOnly; Secure; SameSite=Lax$/);
    const authorize = new URL(login.headers.get('location')!);
    expect(authorize.origin).toBe(env.idpUrl);
    expect(Object.fromEntries(authorize.searchParams)).toMatchObject({
      client_id: 'port',
      response_type: 'code',
      redirect_uri: `${env.url}/auth/callback`,
      code_challenge_method: 'S256',
      scope: 'openid email profile groups',
    });
    expect(authorize.searchParams.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(authorize.searchParams.get('nonce')).toBeTruthy();
    expect(authorize.searchParams.get('state')).toBeTruthy();

    const pat = new Agent(env.url);
    const setCookies: string[] = [];
    const original = pat.request.bind(pat);
    pat.request = async (...args) => {
      const res = await original(...args);
      setCookies.push(...res.headers.getSetCookie());
      return res;
    };
    await pat.signIn('pat@acme.test');
    expect(setCookies.find((c) => c.startsWith('port_session=') && !c.startsWith('port_session=;'))).toMatch(
      /^port_session=[A-Za-z0-9_-]{43}; Max-Age=28800; Path=\/; HttpOnly; Secure; SameSite=Lax$/,
    );
  });
});

describe('sign-in', () => {
  it('ignores return_to values that leave Port', async () => {
    for (const evil of ['//evil.example', '//evil.example/approvals', 'https://evil.example', 'https://evil.example/approvals', '/\\evil.example', '\\\\evil.example', 'javascript:alert(1)', '/\t/evil.example', 'evil.example', '/auth/callback?code=x', '/login']) {
      const r = await new Agent(env.url).signIn('pat@acme.test', evil);
      expect(r, evil).toEqual({ status: 303, location: '/approvals' });
    }
    const ok = await new Agent(env.url).signIn('pat@acme.test', '/approvals/some-id?tab=1');
    expect(ok).toEqual({ status: 303, location: '/approvals/some-id?tab=1' });
  });

  it('refuses a callback it did not start, a tampered one, and a replayed one', async () => {
    // No port_login cookie: a callback forced on the browser by someone else (login CSRF).
    const stray = await new Agent(env.url).request('/auth/callback?code=abc&state=xyz');
    expect(stray.status).toBe(400);
    expect(stray.headers.get('x-port-error')).toBe('login_expired');

    const agent = new Agent(env.url);
    await agent.request('/login');
    const loginCookie = agent.cookies.get('port_login')!;
    const tampered = await agent.request(`/auth/callback?code=abc&state=not-the-state&iss=${encodeURIComponent(env.idpUrl)}`);
    expect(tampered.status).toBe(400);
    expect(tampered.headers.get('x-port-error')).toBe('sso_failed');
    expect(agent.cookies.has('port_session')).toBe(false);
    // The sign-in it belonged to is used up.
    agent.cookies.set('port_login', loginCookie);
    const replay = await agent.request('/auth/callback?code=abc&state=not-the-state');
    expect(replay.status).toBe(400);
    expect(replay.headers.get('x-port-error')).toBe('login_expired');
  });

  it('an unauthenticated page visit goes to sign-in and comes back', async () => {
    const request = await env.openFeatureRequest(13);
    const agent = new Agent(env.url);
    const res = await agent.request(`/approvals/${request.id}`);
    expect(res.status).toBe(302);
    expect(res.headers.get('location')).toBe(`/login?return_to=${encodeURIComponent(`/approvals/${request.id}`)}`);
    expect(await agent.signIn('sam@acme.test', `/approvals/${request.id}`)).toEqual({ status: 303, location: `/approvals/${request.id}` });
    expect((await agent.request(`/approvals/${request.id}`)).status).toBe(200);
  });
});

describe('HTML', () => {
  it('escapes build data and comments, and sends a strict CSP', async () => {
    const request = await env.openFeatureRequest(14, {
      branch: '<script>alert(1)</script>',
      jobs: [{ id: 'block-14', type: 'manual', state: 'blocked', label: '"><img src=x onerror=alert(2)>', step_key: 'deploy', unblockable: true }],
    });
    const pat = await signedIn('pat@acme.test');
    const token = await csrfOf(pat);
    const post = await pat.request(`/approvals/${request.id}/decision`, { form: { verdict: 'approve', comment: '</td><script>alert(3)</script>', csrf: token } });
    expect(post.status).toBe(303);

    for (const path of ['/approvals', `/approvals/${request.id}`]) {
      const agent = path === '/approvals' ? await signedIn('sam@acme.test') : pat;
      const res = await agent.request(path);
      expect(res.status).toBe(200);
      const body = await res.text();
      expect(body).not.toContain('<script>');
      expect(body).not.toContain('<img src=x');
      expect(body).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
      expect(body).toContain('&quot;&gt;&lt;img src=x onerror=alert(2)&gt;');
      if (path !== '/approvals') expect(body).toContain('&lt;/td&gt;&lt;script&gt;alert(3)&lt;/script&gt;');
      expect(res.headers.get('content-security-policy')).toContain("default-src 'none'; style-src 'self' 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'");
      expect(res.headers.get('x-frame-options')).toBe('DENY');
      expect(res.headers.get('referrer-policy')).toBe('no-referrer');
      expect(res.headers.get('cache-control')).toBe('no-store');
      expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    }
  });

  it('ApprovalErrors are pages with their status and code', async () => {
    const pat = await signedIn('pat@acme.test');
    const token = await csrfOf(pat);
    const missing = await pat.request('/approvals/00000000-0000-4000-8000-000000000000/decision', { form: { verdict: 'approve', csrf: token } });
    expect(missing.status).toBe(404);
    expect(missing.headers.get('x-port-error')).toBe('not_found');
    const request = await env.openFeatureRequest(15);
    const bad = await pat.request(`/approvals/${request.id}/decision`, { form: { verdict: 'maybe', csrf: token } });
    expect(bad.status).toBe(400);
    await pat.request(`/approvals/${request.id}/decision`, { form: { verdict: 'approve', csrf: token } });
    const again = await pat.request(`/approvals/${request.id}/decision`, { form: { verdict: 'approve', csrf: token } });
    expect(again.status).toBe(409);
    expect(again.headers.get('x-port-error')).toBe('already_decided');
    expect(await again.text()).toContain('You have already decided on this request.');
  });
});
