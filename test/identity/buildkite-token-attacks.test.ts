/**
 * Attacks on three checks of the Buildkite token verifier, driven as an attacker would:
 * RFC 8693 exchanges (`POST /oauth/token`) against a running Port, with tokens signed by
 * the key the simulator's JWKS publishes, so that only the property under test is wrong.
 * - JOSE header members that point key lookup elsewhere or change how the token is
 *   processed (RFC 8725 §2.9, §3.10; RFC 7515 §4.1.2–4.1.6, §4.1.11; RFC 7797 §3).
 * - `iat` in the future beyond the clock skew (RFC 7519 §4.1.6; jose does not check it
 *   without maxTokenAge, so Port's own check is the only guard).
 * - `organization_id` when configured: the UUID survives a slug being renamed and reused
 *   (https://buildkite.com/docs/agent/v3/cli-oidc, optional claims).
 */
import { randomUUID, webcrypto } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodePart } from '../helpers/forge.js';
import { startHarness, type Harness } from '../helpers/port-harness.js';

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);

/**
 * Signs any header and claims with the simulator's current (published) key. Done by hand
 * rather than with jose's SignJWT, which refuses to sign headers such as `crit` itself.
 */
async function signWithPublishedKey(h: Harness, header: Record<string, unknown>, claims: Record<string, unknown>): Promise<string> {
  const key = h.sim.signingKey;
  const input = `${b64({ kid: key.kid, alg: 'RS256', ...header })}.${b64(claims)}`;
  const sig = await webcrypto.subtle.sign('RSASSA-PKCS1-v1_5', key.privateKey, Buffer.from(input));
  return `${input}.${Buffer.from(sig).toString('base64url')}`;
}

/** Genuine claims of a fresh job of the harness's organization. */
async function genuineClaims(h: Harness, opts: { claims?: string[] } = {}): Promise<Record<string, unknown>> {
  const token = await h.sim.mintToken(h.sim.createJob(), { audience: h.audience, ...opts });
  return decodePart(token, 1);
}

async function headSeq(h: Harness): Promise<number> {
  return (await h.port.store.decisions.last())?.seq ?? 0;
}

/**
 * Exchanges `token` and expects a 400 invalid_grant naming the check. The decision log
 * gains no allow, and holds a deny with that check: Port logs the first refusal of each
 * kind per `audit.refusal_window` in full and only counts the rest (src/audit/refusal-log.ts),
 * so a repeat of the same check adds no entry of its own.
 */
async function expectRefused(h: Harness, token: string, description: RegExp, check: string): Promise<void> {
  const before = await headSeq(h);
  const res = await h.exchange(token);
  expect(res.status).toBe(400);
  expect(res.body.error).toBe('invalid_grant');
  expect(res.body.error_description).toMatch(description);
  expect(res.body).not.toHaveProperty('access_token');
  const payload = token.split('.')[1]!.slice(0, 40);
  expect(res.body.error_description).not.toContain(payload);
  const added = await h.port.store.decisions.read(before, 100);
  for (const entry of added) expect(entry.record).toMatchObject({ action: 'exchange', decision: 'deny', principal: null });
  const all = await h.port.store.decisions.read(0, 10_000);
  expect(all.some((e) => e.record.decision === 'deny' && e.record.context.check === check)).toBe(true);
  expect(JSON.stringify(all)).not.toContain(payload);
}

async function expectExchanged(h: Harness, token: string): Promise<void> {
  const res = await h.exchange(token);
  expect(res.body.error_description).toBeUndefined();
  expect(res.status).toBe(200);
  expect(typeof res.body.access_token).toBe('string');
}

describe('Buildkite token attacks (default organization config)', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h?.close();
  });

  // What an attacker would put in each member: their own key, or a place to fetch one.
  const headerAttacks: [string, unknown][] = [
    ['jwk', { kty: 'RSA', n: 'sXch', e: 'AQAB' }],
    ['jku', 'https://attacker.example/jwks.json'],
    ['x5u', 'https://attacker.example/cert.pem'],
    ['x5c', ['MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA']],
    ['crit', ['exp']],
    ['b64', true],
  ];

  for (const [member, value] of headerAttacks) {
    it(`refuses a correctly signed token whose header carries "${member}", and consumes nothing`, async () => {
      const claims = await genuineClaims(h);
      await expectRefused(h, await signWithPublishedKey(h, { [member]: value }, claims), new RegExp(`header carries "${member}"`), 'header_not_allowed');
      // The same claims (same jti) under Buildkite's plain header still exchange: the
      // refusal did not burn the job's token in the replay cache.
      await expectExchanged(h, await signWithPublishedKey(h, {}, claims));
    });
  }

  it('refuses an iat beyond the clock skew in the future, and consumes nothing', async () => {
    const skew = h.config.buildkite.clockSkew;
    const t = now();
    // nbf and exp are valid; only iat lies. The margin keeps the test clear of the boundary.
    const claims = { ...(await genuineClaims(h)), iat: t + skew + 20, nbf: t, exp: t + skew + 320 };
    await expectRefused(h, await signWithPublishedKey(h, {}, claims), new RegExp(`iat is more than ${skew} s in the future`), 'issued_in_future');
    await expectExchanged(h, await signWithPublishedKey(h, {}, { ...claims, iat: t }));
  });

  it('accepts an iat in the future but inside the clock skew', async () => {
    const skew = h.config.buildkite.clockSkew;
    const t = now();
    const claims = { ...(await genuineClaims(h)), iat: t + skew - 10, nbf: t, exp: t + 300 };
    await expectExchanged(h, await signWithPublishedKey(h, {}, claims));
  });
});

describe('Buildkite token attacks (buildkite.organization_id configured)', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({
      config: (sim) => ({
        buildkite: { organization: 'acme', organization_id: sim.organizationId, issuer: sim.issuer, jwks_url: sim.jwksUrl, audience: 'https://port.acme.test' },
      }),
    });
  });
  afterAll(async () => {
    await h?.close();
  });

  it('accepts a token of the configured organization_id', async () => {
    const token = await h.sim.mintToken(h.sim.createJob(), { audience: h.audience, claims: ['organization_id'] });
    expect(decodePart(token, 1).organization_id).toBe(h.sim.organizationId);
    await expectExchanged(h, token);
  });

  it('refuses a correctly signed token with the right slug but another organization_id, and consumes nothing', async () => {
    const claims = await genuineClaims(h, { claims: ['organization_id'] });
    await expectRefused(
      h,
      await signWithPublishedKey(h, {}, { ...claims, organization_id: randomUUID() }),
      /organization_id is not the configured organization's/,
      'wrong_organization',
    );
    await expectExchanged(h, await signWithPublishedKey(h, {}, claims));
  });

  it('refuses a token without the organization_id claim, saying how to request it', async () => {
    const token = await h.sim.mintToken(h.sim.createJob(), { audience: h.audience });
    expect(decodePart(token, 1)).not.toHaveProperty('organization_id');
    await expectRefused(h, token, /no organization_id claim; request it with --claim organization_id/, 'wrong_organization');
  });
});
