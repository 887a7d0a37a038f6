import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { identityFromClaims } from '../../src/identity/claims.js';
import { PortTokenIssuer } from '../../src/issuer/port-token.js';
import { decodePart, tamperPayload } from '../helpers/forge.js';
import type { Harness } from '../helpers/port-harness.js';
import { decisionsSince, deployJob, headSeq, portToken, release, startCredsHarness } from './support.js';

let h: Harness;
let secretsDir: string;
const FILE_SECRET = join(mkdtempSync(join(tmpdir(), 'port-cred-secrets-')), 'file-secret.txt');

beforeAll(async () => {
  secretsDir = join(FILE_SECRET, '..');
  process.env.PORT_TEST_ENV_SECRET = 'env-secret-value-7f3a';
  writeFileSync(FILE_SECRET, 'file-secret-value-1\n');
  h = await startCredsHarness({
    issuer: { token_ttl: '10m' },
    credentials: {
      'env-secret': { type: 'secret', value: 'env:PORT_TEST_ENV_SECRET' },
      'file-secret': { type: 'secret', value: `file:${FILE_SECRET}` },
      'cmd-secret': { type: 'secret', value: 'command:printf "%s\\n" cmd-secret-value-9c1e' },
      'cmd-fails': { type: 'secret', value: 'command:echo leaked-stdout-4411; echo leaked-stderr-4411 >&2; exit 3' },
      'cmd-slow': { type: 'secret', value: 'command:sleep 5; echo too-late', command_timeout: '1s' },
      'cmd-empty': { type: 'secret', value: 'command:true' },
      'deploy-token': { type: 'port_token', audience: 'https://deploy.acme.test', ttl: '2m' },
      'long-token': { type: 'port_token', audience: 'https://long.acme.test', ttl: '1h' },
    },
  });
});
afterAll(async () => {
  await h?.close();
  rmSync(secretsDir, { recursive: true, force: true });
});

describe('secret release', () => {
  it('releases env:, file: and command: secrets to an allowed job, logged without the value', async () => {
    const job = deployJob(h);
    const bearer = await portToken(h, job, 'env-secret file-secret cmd-secret');
    const exp = decodePart(bearer, 1).exp as number;
    const before = await headSeq(h);
    const expected: Record<string, string> = {
      'env-secret': 'env-secret-value-7f3a',
      'file-secret': 'file-secret-value-1',
      'cmd-secret': 'cmd-secret-value-9c1e',
    };
    for (const [name, value] of Object.entries(expected)) {
      const res = await release(h, name, bearer);
      expect(res.status).toBe(200);
      expect(res.headers.get('cache-control')).toBe('no-store');
      expect(res.body).toEqual({ name, value, expires_at: new Date(exp * 1000).toISOString() });
    }
    const records = await decisionsSince(h, before);
    expect(records).toHaveLength(3);
    for (const r of records) {
      expect(r).toMatchObject({
        action: 'assume',
        decision: 'allow',
        principal: `Port::Job::${JSON.stringify(job.jobId)}`,
        policies: [{ id: 'deploy-main-credentials', reason: 'deploys from main of acme/deploy get deploy credentials' }],
        context: { job: { job_id: job.jobId, pipeline_slug: 'deploy' }, port_token: { jti_sha256: expect.stringMatching(/^[0-9a-f]{64}$/) }, credential: { type: 'secret', expires_at: new Date(exp * 1000).toISOString(), version: 0 } },
      });
    }
    expect(records.map((r) => r.resource)).toEqual(['Port::Credential::"env-secret"', 'Port::Credential::"file-secret"', 'Port::Credential::"cmd-secret"']);
    const logged = JSON.stringify(records);
    for (const value of Object.values(expected)) expect(logged).not.toContain(value);
    expect(logged).not.toContain(bearer);

    const issued = await h.port.store.issued.list({ jobId: job.jobId });
    expect(issued.map((i) => i.credential)).toEqual(['env-secret', 'file-secret', 'cmd-secret']);
    expect(issued[0]).toMatchObject({ type: 'secret', build: `acme/deploy/${job.buildNumber}`, agentId: job.agentId, recallable: false, expiresAt: exp * 1000 });
    expect(JSON.stringify(issued)).not.toContain('secret-value');
  });

  it('re-reads a file: secret on each release', async () => {
    const bearer = await portToken(h, deployJob(h), 'file-secret');
    expect((await release(h, 'file-secret', bearer)).body.value).toBe('file-secret-value-1');
    writeFileSync(FILE_SECRET, 'file-secret-value-2\n');
    expect((await release(h, 'file-secret', bearer)).body.value).toBe('file-secret-value-2');
  });

  it('accepts an empty body or {}, and refuses any other body', async () => {
    const bearer = await portToken(h, deployJob(h), 'env-secret');
    const json = { 'content-type': 'application/json' };
    expect((await release(h, 'env-secret', bearer, { body: '{}', headers: json })).status).toBe(200);
    const extra = await release(h, 'env-secret', bearer, { body: '{"version":1}', headers: json });
    expect(extra.status).toBe(400);
    expect(extra.body.error).toBe('invalid_request');
    const form = await release(h, 'env-secret', bearer, { body: 'a=b', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(form).toMatchObject({ status: 400, body: { error: 'invalid_request', error_description: 'The request body must be empty or the JSON object {}.' } });
    expect((await release(h, 'env-secret', bearer, { body: '[]', headers: json })).status).toBe(400);
  });
});

describe('secret commands that fail', () => {
  it('answers 503 naming the credential and the exit status, never the output', async () => {
    const bearer = await portToken(h, deployJob(h), 'cmd-fails cmd-empty');
    const before = await headSeq(h);
    const res = await release(h, 'cmd-fails', bearer);
    expect(res.status).toBe(503);
    expect(res.body).toEqual({ error: 'credential_unavailable', error_description: 'The secret "cmd-fails" is not available: its command exited with status 3.' });
    const empty = await release(h, 'cmd-empty', bearer);
    expect(empty).toMatchObject({ status: 503, body: { error_description: 'The secret "cmd-empty" is not available: its command printed nothing.' } });
    const records = await decisionsSince(h, before);
    expect(records.map((r) => [r.resource, r.decision, r.context.failure])).toEqual([
      ['Port::Credential::"cmd-fails"', 'deny', 'credential_unavailable'],
      ['Port::Credential::"cmd-empty"', 'deny', 'credential_unavailable'],
    ]);
    expect(JSON.stringify(records)).not.toContain('leaked');
  });

  it('kills a command that outlives command_timeout and answers 503', async () => {
    const bearer = await portToken(h, deployJob(h), 'cmd-slow');
    const res = await release(h, 'cmd-slow', bearer);
    expect(res.status).toBe(503);
    expect(res.body.error_description).toBe('The secret "cmd-slow" is not available: its command did not finish within 1 s.');
  });
});

describe('refusals', () => {
  it('refuses a credential the Port token does not hold in its scope', async () => {
    const job = deployJob(h);
    const bearer = await portToken(h, job, 'env-secret');
    const before = await headSeq(h);
    const res = await release(h, 'cmd-secret', bearer);
    expect(res.status).toBe(403);
    expect(res.body.error).toBe('access_denied');
    expect(res.body.error_description).toContain('"cmd-secret"');
    const [r] = await decisionsSince(h, before);
    expect(r).toMatchObject({ action: 'assume', decision: 'deny', principal: `Port::Job::${JSON.stringify(job.jobId)}`, resource: 'Port::Credential::"cmd-secret"', context: { check: 'scope' } });
  });

  it('decides assume again at release: a policy added since the exchange denies', async () => {
    const bearer = await portToken(h, deployJob(h), 'env-secret');
    const forbid = join(h.dir, 'policies', 'freeze.cedar');
    writeFileSync(forbid, '@id("release-freeze")\n@reason("releases are frozen")\nforbid (principal, action == Port::Action::"assume", resource == Port::Credential::"env-secret");\n');
    await h.port.policy.reload();
    try {
      const before = await headSeq(h);
      const res = await release(h, 'env-secret', bearer);
      expect(res.status).toBe(403);
      expect(res.body).toMatchObject({ error: 'access_denied' });
      expect(res.body.error_description).toContain('Policy denied the credential "env-secret"');
      expect(res.body.error_description).toContain('releases are frozen');
      expect(JSON.stringify(res.body)).not.toContain('env-secret-value');
      const [r] = await decisionsSince(h, before);
      expect(r).toMatchObject({ action: 'assume', decision: 'deny', policies: [{ id: 'release-freeze', reason: 'releases are frozen' }] });
    } finally {
      rmSync(forbid);
      // Lifting a forbid takes effect once the folder has been quiet for the reload's quiet
      // period (a removed file may be a save in progress): reload until it applies.
      for (let i = 0; ; i++) {
        const reloaded = await h.port.policy.reload();
        if (reloaded.ok && reloaded.deferred === undefined) break;
        if (i > 50) throw new Error('the lifted forbid was never applied');
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    expect((await release(h, 'env-secret', bearer)).status).toBe(200);
  });

  it('answers 404 for an unknown credential, without echoing junk names', async () => {
    const bearer = await portToken(h, deployJob(h), 'env-secret');
    const res = await release(h, 'no-such-thing', bearer);
    expect(res).toMatchObject({ status: 404, body: { error: 'unknown_credential', error_description: 'No credential is named "no-such-thing".' } });
    const junk = await release(h, 'AB%3Cscript%3E', bearer);
    expect(junk).toMatchObject({ status: 404, body: { error: 'unknown_credential', error_description: 'No credential has that name.' } });
  });

  it('refuses a missing, forged, expired, revoked or foreign-audience bearer with 401', async () => {
    const job = deployJob(h);
    const bearer = await portToken(h, job, 'env-secret');
    const identity = identityFromClaims(decodePart(bearer, 1));
    const issuer = new PortTokenIssuer(h.port.keys, 'https://port.acme.test');
    const expired = (await issuer.mint(identity, { audience: h.audience, scopes: ['env-secret'], ttl: 60, now: Date.now() - 3_600_000 })).token;
    const foreign = (await issuer.mint(identity, { audience: 'https://elsewhere.acme.test', scopes: ['env-secret'], ttl: 600 })).token;
    const forged = tamperPayload(bearer, { scope: 'env-secret cmd-secret' });

    const before = await headSeq(h);
    for (const token of [undefined, forged, expired, foreign, 'not-a-jwt']) {
      const res = await release(h, 'env-secret', token);
      expect(res.status).toBe(401);
      expect(res.body.error).toBe('invalid_token');
      expect(res.headers.get('www-authenticate')).toContain('Bearer');
    }
    const basic = await release(h, 'env-secret', undefined, { headers: { authorization: `Basic ${Buffer.from(`x:${bearer}`).toString('base64')}` } });
    expect(basic.status).toBe(401);
    // Unauthenticated refusals: the first of each kind per window in full,
    // the rest counted per window — every one of the six (two without a bearer, four invalid) is
    // accounted for once the counts are written.
    await h.port.log.flush();
    const records = await decisionsSince(h, before);
    expect(records.every((r) => r.decision === 'deny' && r.principal === null && r.action === 'assume')).toBe(true);
    const counted = (check: string) =>
      records.filter((r) => r.context.check === check).reduce((n, r) => n + (r.context.aggregated === true ? Number(r.context.refusals) : 1), 0);
    expect(counted('bearer_missing')).toBeGreaterThanOrEqual(2);
    expect(counted('bearer_invalid')).toBeGreaterThanOrEqual(4);

    // Revoked by its holder (RFC 7009): refused on the next use.
    expect((await release(h, 'env-secret', bearer)).status).toBe(200);
    expect((await h.post('/oauth/revoke', { token: bearer })).status).toBe(200);
    const revoked = await release(h, 'env-secret', bearer);
    expect(revoked).toMatchObject({ status: 401, body: { error: 'invalid_token', error_description: 'The Port token has been revoked.' } });
    expect(JSON.stringify(revoked.body)).not.toContain('env-secret-value');
  });

  it("refuses a port_token credential's JWT presented as the bearer", async () => {
    const bearer = await portToken(h, deployJob(h), 'deploy-token env-secret');
    const minted = await release(h, 'deploy-token', bearer);
    expect(minted.status).toBe(200);
    const res = await release(h, 'env-secret', minted.body.access_token);
    expect(res).toMatchObject({ status: 401, body: { error: 'invalid_token' } });
  });

  it('refuses a job whose Port token was exchanged without the credential in its scope', async () => {
    const job = h.sim.createJob({ pipelineSlug: 'deploy', branch: 'feature' });
    const bk = await h.sim.mintToken(job, { audience: h.audience });
    expect((await h.exchange(bk, { scope: 'env-secret' })).status).toBe(403);
    const plain = await h.exchange(await h.sim.mintToken(job, { audience: h.audience }));
    expect(plain.status).toBe(200);
    expect((await release(h, 'env-secret', plain.body.access_token)).status).toBe(403);
  });
});

describe('port_token credentials', () => {
  it('mints a Port-signed JWT for the audience that verifies against the JWKS', async () => {
    const job = deployJob(h);
    const bearer = await portToken(h, job, 'deploy-token');
    const res = await release(h, 'deploy-token', bearer);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ name: 'deploy-token', token_type: 'Bearer', audience: 'https://deploy.acme.test' });
    const jwks = createRemoteJWKSet(new URL(`${h.url}/.well-known/jwks.json`));
    const { payload, protectedHeader } = await jwtVerify(res.body.access_token, jwks, { issuer: 'https://port.acme.test', audience: 'https://deploy.acme.test', typ: 'at+jwt' });
    expect(protectedHeader.alg).toBe('ES256');
    expect(payload).toMatchObject({ sub: job.jobId, job_id: job.jobId, pipeline_slug: 'deploy', build_branch: 'main', organization_slug: 'acme' });
    expect(payload.exp! - payload.iat!).toBe(120);
    expect(res.body.expires_at).toBe(new Date(payload.exp! * 1000).toISOString());
    expect(payload.jti).not.toBe(decodePart(bearer, 1).jti);
    expect(payload).not.toHaveProperty('scope');
    // Not a token for Port's own audience.
    await expect(jwtVerify(res.body.access_token, jwks, { audience: h.audience })).rejects.toThrow();
  });

  it("never outlives the bearer's Port token", async () => {
    const bearer = await portToken(h, deployJob(h), 'long-token');
    const res = await release(h, 'long-token', bearer);
    const payload = decodePart(res.body.access_token, 1);
    expect(payload.exp).toBe(decodePart(bearer, 1).exp);
  });
});

