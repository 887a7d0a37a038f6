/**
 * The revocation result tells the truth about brokered credentials: a
 * released secret value can't be recalled (rotate it), a port_token is verified offline by
 * downstreams until its exp, relayed access stops at once. Credentials are released for
 * real through POST /v1/credentials, then the job is revoked over HTTP and through the CLI.
 */
import { createRemoteJWKSet, decodeJwt, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildBy, startRevocationHarness, works, type RevocationHarness } from './support.js';

let h: RevocationHarness;
beforeAll(async () => {
  h = await startRevocationHarness();
}, 60_000);
afterAll(async () => {
  await h?.close();
});

/** A job of a deployer's build holding a released secret and port_token, and its Port token. */
async function jobWithCredentials(email: string) {
  await h.port.store.users.upsert({ email, active: true, groups: ['deployers'], updatedAt: Date.now() });
  const { build, a } = buildBy(h, email);
  const token = await h.portToken(a, { scope: 'deploy-token npm-publish' });
  const secret = await h.credential('npm-publish', token);
  expect(secret.status, JSON.stringify(secret.body)).toBe(200);
  const downstream = await h.credential('deploy-token', token);
  expect(downstream.status, JSON.stringify(downstream.body)).toBe(200);
  return { build, job: a, token, secret: secret.body as { value: string }, downstream: downstream.body as { access_token: string; expires_at: string } };
}

describe('revocation results per credential type', () => {
  it('records secrets and port_tokens as not recallable', async () => {
    const { job } = await jobWithCredentials('records@acme.test');
    const issued = await h.port.store.issued.list({ jobId: job.jobId });
    expect(issued.map((c) => [c.type, c.recallable]).sort()).toEqual([
      ['port_token', false],
      ['secret', false],
    ]);
  });

  it('revoking the job says the secret must be rotated and the port_token lives on offline; relayed access stops at once', async () => {
    const { job, token, secret, downstream } = await jobWithCredentials('truth@acme.test');
    expect(secret.value).toBe('harness-npm-secret');
    const res = await h.revoke({ scope: 'job', id: job.jobId, reason: 'compromised' });
    expect(res.status).toBe(200);
    const { credentials, note } = res.body;
    expect(credentials.recallable).toBe(0);
    const byType = Object.fromEntries(credentials.not_recallable.map((c: { type: string }) => [c.type, c]));
    expect(byType.secret).toMatchObject({
      credential: 'npm-publish',
      job_id: job.jobId,
      expires_at: null,
      rotate_with: 'port rotate npm-publish',
      facts: { version: 0 },
    });
    expect(byType.secret.after_revocation).toMatch(/works until the secret is rotated: port rotate npm-publish/);
    expect(byType.port_token).toMatchObject({ credential: 'deploy-token', job_id: job.jobId, expires_at: downstream.expires_at });
    expect(byType.port_token.after_revocation).toMatch(/verify it offline with Port's JWKS accept it until its exp/);
    expect(note).toContain('Relay access stops at once');
    expect(note).toContain("can't be recalled; rotate them: port rotate npm-publish.");
    expect(note).toMatch(/1 port_token\(s\) stay valid at services that verify them offline/);
    expect(note).not.toMatch(/recallable credentials stop at once/);

    // What the result says is what happens: the relay refuses the job at once…
    expect(await works(h, token)).toBe(false);
    // …and the port_token still verifies offline against Port's JWKS, as a downstream does it.
    const jwks = createRemoteJWKSet(new URL(`${h.url}/.well-known/jwks.json`));
    const verified = await jwtVerify(downstream.access_token, jwks, { issuer: 'https://port.acme.test', audience: 'https://deploy.acme.test' });
    expect(verified.payload.job_id).toBe(job.jobId);

    const rec = (await h.port.store.decisions.read(0, 100_000)).filter((e) => e.record.action === 'revoke').at(-1)!.record;
    expect(rec.context).toMatchObject({ credentials_recallable: 0, credentials_not_recallable: 2 });
    expect(JSON.stringify(rec)).not.toContain('harness-npm-secret');
    expect(JSON.stringify(res.body)).not.toContain('harness-npm-secret');
    expect(JSON.stringify(res.body)).not.toContain(downstream.access_token);
  });

  it('the CLI lists what to rotate and what lives on; a secret released to several jobs is listed once per version', async () => {
    const email = 'cli-truth@acme.test';
    const first = await jobWithCredentials(email);
    const second = await jobWithCredentials(email);
    const out = await h.cli(['user', email]);
    expect(out.code, out.stderr).toBe(0);
    expect(out.stdout).toContain('secrets the jobs hold (valid until rotated — rotate them):');
    expect(out.stdout.match(/ - npm-publish, version 0, job [0-9a-f-]{36}: port rotate npm-publish/g)).toHaveLength(1);
    expect(out.stdout).toContain('port_tokens (valid at services that verify them offline until their exp):');
    expect(out.stdout).toContain(`deploy-token, job ${first.job.jobId}`);
    expect(out.stdout).toContain(`deploy-token, job ${second.job.jobId}`);
    expect(out.stdout).toContain('relay access stops at once too');
    expect(out.stdout).not.toContain('harness-npm-secret');
    expect(decodeJwt(first.token).build_creator).toBe(email);
    expect((await h.lift({ scope: 'user', id: email })).status).toBe(200);
  });
});
