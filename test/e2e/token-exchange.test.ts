import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from '../helpers/port-harness.js';
import { algNone, decodePart, hs256WithPublicKey, signWithForeignKey, tamperPayload } from '../helpers/forge.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h?.close();
});

const now = () => Math.floor(Date.now() / 1000);

async function lastDecisions(n: number) {
  const last = await h.port.store.decisions.last();
  return h.port.store.decisions.read(Math.max(0, (last?.seq ?? 0) - n), n);
}

describe('token exchange: the allowed path', () => {
  it('exchanges a Buildkite job token for a Port token bound to the job', async () => {
    const job = h.sim.createJob({ pipelineSlug: 'deploy', branch: 'main' });
    const bk = await h.sim.mintToken(job, { audience: h.audience });
    const res = await h.exchange(bk, { scope: 'deploy-token' });
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.body).toMatchObject({
      issued_token_type: 'urn:ietf:params:oauth:token-type:access_token',
      token_type: 'Bearer',
      expires_in: 900,
      scope: 'deploy-token',
    });
    // The Port token verifies against Port's published JWKS, as a downstream service would.
    const jwks = createRemoteJWKSet(new URL(`${h.url}/.well-known/jwks.json`));
    const { payload, protectedHeader } = await jwtVerify(res.body.access_token, jwks, {
      issuer: 'https://port.acme.test',
      audience: 'https://port.acme.test',
      typ: 'at+jwt',
    });
    expect(protectedHeader.alg).toBe('ES256');
    expect(payload).toMatchObject({
      sub: job.jobId,
      job_id: job.jobId,
      pipeline_slug: 'deploy',
      build_branch: 'main',
      organization_slug: 'acme',
      scope: 'deploy-token',
    });
    expect(payload.exp! - payload.iat!).toBe(900);
    expect(typeof payload.jti).toBe('string');

    const [exchange, assume] = await lastDecisions(2);
    expect(exchange!.record).toMatchObject({ action: 'exchange', decision: 'allow', policies: [{ id: 'acme-jobs-exchange', reason: 'jobs of acme may hold a Port token' }] });
    expect(assume!.record).toMatchObject({ action: 'assume', decision: 'allow', resource: 'Port::Credential::"deploy-token"', policies: [{ id: 'deploy-from-main' }] });
    // Never the token: only the hash of its jti.
    const logged = JSON.stringify([exchange, assume]);
    expect(logged).not.toContain(bk);
    expect(logged).not.toContain(res.body.access_token);
    expect(logged).not.toContain(String(decodePart(bk, 1).jti));
  });

  it('publishes OIDC discovery metadata pointing at the JWKS', async () => {
    const res = await fetch(`${h.url}/.well-known/openid-configuration`);
    const body = await res.json();
    expect(body).toMatchObject({ issuer: 'https://port.acme.test', jwks_uri: 'https://port.acme.test/.well-known/jwks.json', token_endpoint: 'https://port.acme.test/oauth/token' });
    const jwks = await (await fetch(`${h.url}/.well-known/jwks.json`)).json();
    expect(jwks.keys.length).toBeGreaterThan(0);
    for (const k of jwks.keys) expect(k).not.toHaveProperty('d');
  });

  it('reports health and readiness', async () => {
    expect((await fetch(`${h.url}/healthz`)).status).toBe(200);
    const ready = await fetch(`${h.url}/readyz`);
    expect(ready.status).toBe(200);
    expect((await ready.json()).checks).toMatchObject({ store: 'ok', signing_key: 'ok' });
  });
});

describe('token exchange: policy denials', () => {
  it('denies a grant the policy does not allow, naming the grant and reason, and issues nothing', async () => {
    const job = h.sim.createJob({ pipelineSlug: 'deploy', branch: 'feature/x' });
    const res = await h.exchange(await h.sim.mintToken(job, { audience: h.audience }), { scope: 'deploy-token' });
    expect(res.status).toBe(403);
    expect(res.body.error).toBe('access_denied');
    expect(res.body.error_description).toContain('"deploy-token"');
    expect(res.body.error_description).toMatch(/no policy permits/i);
    // The permit for that grant that did not match, with its @reason.
    expect(res.body.error_description).toMatch(/; not matched: deploy-from-main \("deploys come from main of acme\/deploy"\)$/);
    const [, assume] = await lastDecisions(2);
    expect(assume!.record).toMatchObject({
      action: 'assume',
      decision: 'deny',
      policies: [],
      context: { unmatched_permits: [{ id: 'deploy-from-main', reason: 'deploys come from main of acme/deploy' }] },
    });
  });

  it('is all or nothing: one denied scope refuses the whole exchange', async () => {
    const job = h.sim.createJob({ pipelineSlug: 'deploy', branch: 'main', tag: null });
    const res = await h.exchange(await h.sim.mintToken(job, { audience: h.audience }), { scope: 'deploy-token npm-publish' });
    expect(res.status).toBe(403);
    expect(res.body.error_description).toContain('"npm-publish"');
    expect(res.body).not.toHaveProperty('access_token');
  });

  it('a forbid wins and names the forbidding policy', async () => {
    const job = h.sim.createJob({ pipelineSlug: 'untrusted' });
    const res = await h.exchange(await h.sim.mintToken(job, { audience: h.audience }));
    expect(res.status).toBe(403);
    expect(res.body.error_description).toContain('no-untrusted-pipeline');
    const [entry] = await lastDecisions(1);
    expect(entry!.record).toMatchObject({ action: 'exchange', decision: 'deny', policies: [{ id: 'no-untrusted-pipeline', reason: 'the untrusted pipeline never gets a Port token' }] });
  });

  it('refuses an unknown scope before looking at the token', async () => {
    const job = h.sim.createJob();
    const res = await h.exchange(await h.sim.mintToken(job, { audience: h.audience }), { scope: 'root' });
    expect(res).toMatchObject({ status: 400, body: { error: 'invalid_scope' } });
  });
});

describe('token exchange: refused subject tokens (400 invalid_grant, naming the check)', () => {
  const refused = async (token: string, check: RegExp, logged: string) => {
    const res = await h.exchange(token);
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_grant');
    expect(res.body.error_description).toMatch(check);
    expect(res.body.error_description).not.toContain(token.slice(0, 40));
    const [entry] = await lastDecisions(1);
    expect(entry!.record).toMatchObject({ action: 'exchange', decision: 'deny', context: { check: logged } });
    expect(JSON.stringify(entry)).not.toContain((token.split('.')[1] ?? token).slice(0, 40));
  };
  const good = async (opts = {}) => h.sim.mintToken(h.sim.createJob(), { audience: h.audience, ...opts });

  it('alg: none (and case variants)', async () => {
    const t = await good();
    await refused(algNone(t), /alg is not allowed/, 'alg_not_allowed');
    await refused(algNone(t, 'NoNe'), /alg is not allowed/, 'alg_not_allowed');
  });
  it('HS256 keyed with the RSA public key', async () => {
    const t = await good();
    const kid = decodeProtectedHeader(t).kid;
    const jwk = h.sim.jwks().keys.find((k) => k.kid === kid)!;
    await refused(hs256WithPublicKey(t, jwk as any), /alg is not allowed/, 'alg_not_allowed');
  });
  it('expired', async () => {
    await refused(await good({ now: now() - 3600, lifetime: 300 }), /expired/, 'expired');
  });
  it('not yet valid', async () => {
    await refused(await good({ now: now() + 600 }), /not valid yet|future/, 'not_yet_valid');
  });
  it('wrong aud', async () => {
    await refused(await good({ audience: 'https://buildkite.com/acme' }), /aud is not/, 'wrong_audience');
  });
  it('wrong iss', async () => {
    const t = await good({ overrides: { iss: 'https://agent.buildkite.evil' } });
    await refused(t, /not issued by/, 'wrong_issuer');
  });
  it('unknown kid', async () => {
    const t = await good();
    const claims = decodePart(t, 1);
    await refused(signWithForeignKey({ alg: 'RS256', kid: 'f'.repeat(64) }, claims), /kid is not one of/, 'unknown_kid');
  });
  it('a valid kid with a foreign key', async () => {
    const t = await good();
    await refused(signWithForeignKey(decodePart(t, 0), decodePart(t, 1)), /signature does not verify/, 'bad_signature');
  });
  it('tampered payload', async () => {
    const t = await good();
    await refused(tamperPayload(t, { pipeline_slug: 'deploy', build_branch: 'main' }), /signature does not verify/, 'bad_signature');
  });
  it('another organization', async () => {
    const job = h.sim.createJob({ organizationSlug: 'evilcorp' });
    await refused(await h.sim.mintToken(job, { audience: h.audience }), /another organization/, 'wrong_organization');
  });
  it('garbage', async () => {
    await refused('not-a-jwt', /not a signed JWT/, 'malformed');
    await refused('eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.c2ln', /not base64url-encoded JSON/, 'malformed');
  });
  it('an oversized token', async () => {
    const t = await good({ overrides: { padding: 'x'.repeat(20_000) } });
    await refused(t, /larger than 8192 bytes/, 'too_large');
  });
  it('a header naming a member twice', async () => {
    const t = await good();
    const [, p, s] = t.split('.');
    const header = Buffer.from(`{"alg":"none","alg":"RS256","kid":"${decodeProtectedHeader(t).kid}"}`).toString('base64url');
    await refused(`${header}.${p}.${s}`, /names a member twice/, 'duplicate_member');
  });
  it('a missing required claim', async () => {
    await refused(await good({ overrides: { job_id: undefined } }), /job_id/, 'missing_claim');
  });
  it('replay: the same token twice', async () => {
    const t = await good();
    expect((await h.exchange(t)).status).toBe(200);
    await refused(t, /already exchanged/, 'replayed');
  });
  it('replay without jti is keyed on job id + iat', async () => {
    const t = await good({ overrides: { jti: undefined } });
    expect((await h.exchange(t)).status).toBe(200);
    await refused(t, /already exchanged/, 'replayed');
  });
  it('a lifetime beyond Buildkite\'s 2 h cap', async () => {
    await refused(await good({ overrides: { exp: now() + 3 * 3600 } }), /lifetime/, 'lifetime_too_long');
  });
});

describe('token exchange: malformed requests (400 invalid_request)', () => {
  it('missing subject_token, wrong token type, wrong grant, duplicate parameters, JSON body', async () => {
    const base = { grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token_type: 'urn:ietf:params:oauth:token-type:jwt' };
    expect((await h.post('/oauth/token', base)).body).toMatchObject({ error: 'invalid_request', error_description: 'The subject_token parameter is missing.' });
    expect((await h.post('/oauth/token', { ...base, subject_token: 'x', subject_token_type: 'urn:ietf:params:oauth:token-type:saml2' })).body.error).toBe('invalid_request');
    expect((await h.post('/oauth/token', { ...base, grant_type: 'client_credentials', subject_token: 'x' })).body.error).toBe('unsupported_grant_type');
    const dup = await fetch(`${h.url}/oauth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `${new URLSearchParams({ ...base, subject_token: 'a' })}&subject_token=b`,
    });
    expect(dup.status).toBe(400);
    expect((await dup.json()).error_description).toMatch(/must appear once/);
    const json = await fetch(`${h.url}/oauth/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...base, subject_token: 'x' }) });
    expect(json.status).toBe(415);
    expect((await json.json()).error).toBe('invalid_request');
  });
  it('an unknown audience is invalid_target', async () => {
    const t = await h.sim.mintToken(h.sim.createJob(), { audience: h.audience });
    expect((await h.exchange(t, { audience: 'https://elsewhere' })).body.error).toBe('invalid_target');
  });
  it('an oversized body is refused with 413', async () => {
    const res = await h.post('/oauth/token', { subject_token: 'x'.repeat(100_000) });
    expect(res.status).toBe(413);
  });
});
