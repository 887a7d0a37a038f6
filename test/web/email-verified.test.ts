/**
 * `sso.require_email_verified` (OIDC Core §5.1 `email_verified`): the e-mail address is a person's
 * identity in Port, so by default a sign-in needs the IdP to say `email_verified: true`;
 * an IdP that never sends the claim (Microsoft Entra ID) needs the key set to false,
 * and an explicit `false` is refused either way. Sign-ins go through the real IdP
 * (oidc-provider, test/web/idp.ts), whose directory says each of these differently.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configFromObject } from '../../src/config/config.js';
import { ConfigError } from '../../src/errors.js';
import type { IdpPerson } from './idp.js';
import { Agent, startWeb, type WebEnv } from './support.js';

const USERS: Record<string, IdpPerson> = {
  'verified@acme.test': { name: 'Vera Verified', groups: ['platform'] },
  'silent@acme.test': { name: 'Sid Silent', groups: ['platform'], emailVerified: 'absent' },
  'unverified@acme.test': { name: 'Una Unverified', groups: ['platform'], emailVerified: false },
};

/** Signs in through Port and the IdP; Port's answer to the callback, and its page. */
async function signIn(env: WebEnv, email: string): Promise<{ status: number; code: string | null; body: string; agent: Agent }> {
  const agent = new Agent(env.url);
  const callback = await agent.authorizeOnly(email, '/approvals');
  const res = await agent.request(callback);
  return { status: res.status, code: res.headers.get('x-port-error'), body: await res.text(), agent };
}

describe('sso.require_email_verified: true (the default)', () => {
  let env: WebEnv;
  beforeAll(async () => {
    env = await startWeb({ users: USERS });
  });
  afterAll(async () => {
    await env?.close();
  });

  it('is the default', () => {
    expect(env.config.sso!.requireEmailVerified).toBe(true);
  });

  it('signs in a person whose e-mail the IdP says is verified', async () => {
    const r = await signIn(env, 'verified@acme.test');
    expect(r.status).toBe(303);
    expect(r.agent.cookies.has('port_session')).toBe(true);
  });

  it('refuses an IdP that says nothing about it, with the hint for administrators, and records nobody', async () => {
    const r = await signIn(env, 'silent@acme.test');
    expect(r.status).toBe(403);
    expect(r.code).toBe('sso_email_unverified');
    expect(r.body).toContain('no email_verified claim');
    expect(r.body).toContain('sso.require_email_verified: false');
    expect(r.agent.cookies.has('port_session')).toBe(false);
    expect(await env.store.users.get('silent@acme.test')).toBeUndefined();
  });

  it('refuses an IdP that says it is not verified', async () => {
    const r = await signIn(env, 'unverified@acme.test');
    expect(r.status).toBe(403);
    expect(r.code).toBe('sso_email_unverified');
    expect(r.body).toContain('says your e-mail address is not verified');
    expect(await env.store.users.get('unverified@acme.test')).toBeUndefined();
  });
});

describe('sso.require_email_verified: false (an IdP such as Entra ID)', () => {
  let env: WebEnv;
  beforeAll(async () => {
    env = await startWeb({ users: USERS, sso: { require_email_verified: false } });
  });
  afterAll(async () => {
    await env?.close();
  });

  it('signs in a person the IdP says nothing about', async () => {
    const r = await signIn(env, 'silent@acme.test');
    expect(r.status).toBe(303);
    expect(r.agent.cookies.has('port_session')).toBe(true);
    expect(await env.store.users.get('silent@acme.test')).toMatchObject({ active: true, groups: ['platform'] });
  });

  it('still refuses an explicit email_verified: false', async () => {
    const r = await signIn(env, 'unverified@acme.test');
    expect(r.status).toBe(403);
    expect(r.code).toBe('sso_email_unverified');
    expect(r.agent.cookies.has('port_session')).toBe(false);
    expect(await env.store.users.get('unverified@acme.test')).toBeUndefined();
  });
});

describe('configuration', () => {
  const raw = (sso: Record<string, unknown>) => ({
    server: { public_url: 'https://port.test' },
    buildkite: { organization: 'acme' },
    policies: '.',
    sso: { issuer: 'https://idp.test', client_id: 'port', client_secret: 'env:PORT_TEST_UNUSED_SSO_SECRET', ...sso },
  });
  beforeAll(() => {
    process.env.PORT_TEST_UNUSED_SSO_SECRET = 'x';
  });
  afterAll(() => {
    delete process.env.PORT_TEST_UNUSED_SSO_SECRET;
  });

  it('takes a boolean and names the key and the trade-off otherwise', () => {
    expect(configFromObject(raw({ require_email_verified: false }), join(__dirname, 'port.yaml')).sso!.requireEmailVerified).toBe(false);
    expect(configFromObject(raw({}), join(__dirname, 'port.yaml')).sso!.requireEmailVerified).toBe(true);
    let error: unknown;
    try {
      configFromObject(raw({ require_email_verified: 'no' }), join(__dirname, 'port.yaml'));
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toContain('sso.require_email_verified: found "no"; expected true or false (false only for an identity provider that never sends email_verified, e.g. Microsoft Entra ID).');
  });
});
