import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from '../helpers/port-harness.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ config: { issuer: { introspection_token: 'env:PORT_TEST_INTROSPECTION' } } });
});
afterAll(async () => {
  await h?.close();
});
process.env.PORT_TEST_INTROSPECTION = 'resource-server-secret';

async function portToken(init = {}): Promise<{ token: string; jobId: string }> {
  const job = h.sim.createJob({ pipelineSlug: 'deploy', branch: 'main', ...init });
  const res = await h.exchange(await h.sim.mintToken(job, { audience: h.audience }), { scope: 'deploy-token' });
  expect(res.status).toBe(200);
  return { token: res.body.access_token, jobId: job.jobId };
}

const asServer = { authorization: 'Bearer resource-server-secret' };

describe('introspection (RFC 7662) and revocation (RFC 7009)', () => {
  it('introspects an active token for a resource server', async () => {
    const { token, jobId } = await portToken();
    const res = await h.post('/oauth/introspect', { token }, asServer);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ active: true, sub: jobId, scope: 'deploy-token', iss: 'https://port.acme.test', pipeline_slug: 'deploy' });
  });

  it('requires the caller to authenticate', async () => {
    const { token } = await portToken();
    const res = await h.post('/oauth/introspect', { token });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect(res.body.error).toBe('invalid_client');
    expect((await h.post('/oauth/introspect', { token }, { authorization: 'Bearer wrong-secret' })).status).toBe(401);
  });

  it('lets a job introspect its own tokens but not another job\'s', async () => {
    const a = await portToken();
    const b = await portToken();
    expect((await h.post('/oauth/introspect', { token: a.token }, { authorization: `Bearer ${a.token}` })).body.active).toBe(true);
    expect((await h.post('/oauth/introspect', { token: b.token }, { authorization: `Bearer ${a.token}` })).body).toEqual({ active: false });
  });

  it('answers inactive for garbage and for tokens signed by anyone else', async () => {
    expect((await h.post('/oauth/introspect', { token: 'garbage' }, asServer)).body).toEqual({ active: false });
    // A Buildkite token is not a Port token, even though it is a valid JWT.
    const bk = await h.sim.mintToken(h.sim.createJob(), { audience: h.audience });
    expect((await h.post('/oauth/introspect', { token: bk }, asServer)).body).toEqual({ active: false });
  });

  it('revokes a token: it is inactive at once, the revocation is logged, and it survives a restart of the list', async () => {
    const { token } = await portToken();
    const res = await h.post('/oauth/revoke', { token, token_type_hint: 'access_token' });
    expect(res.status).toBe(200);
    expect((await h.post('/oauth/introspect', { token }, asServer)).body).toEqual({ active: false });
    const last = await h.port.store.decisions.last();
    expect(last!.record).toMatchObject({ action: 'revoke', decision: 'allow' });
    expect(JSON.stringify(last)).not.toContain(token);
    // The store is the record: a new list (a restarted Port) still refuses it.
    const { RevocationList } = await import('../../src/revocation/revocation-list.js');
    const fresh = await RevocationList.open(h.port.store);
    const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString());
    expect(fresh.isTokenRevoked({ jti: claims.jti, jobId: claims.sub, issuedAt: claims.iat })).toBe(true);
  });

  it('revoking a whole job refuses every token of that job, and no other job\'s', async () => {
    const job = h.sim.createJob({ pipelineSlug: 'deploy', branch: 'main' });
    const mint = async () => (await h.exchange(await h.sim.mintToken(job, { audience: h.audience }), { scope: 'deploy-token' })).body.access_token as string;
    const [a, b] = [await mint(), await mint()];
    const { RevocationList } = await import('../../src/revocation/revocation-list.js');
    // The running Port's list is internal; revoke through the store and a fresh list, as a restart would see it.
    const list = await RevocationList.open(h.port.store);
    await list.revokeJob(job.jobId, 'job finished', 900, Date.now() + 1000);
    const reopened = await RevocationList.open(h.port.store);
    for (const t of [a, b]) {
      const c = JSON.parse(Buffer.from(t.split('.')[1]!, 'base64url').toString());
      expect(reopened.isTokenRevoked({ jti: c.jti, jobId: c.sub, issuedAt: c.iat })).toBe(true);
      expect(reopened.isTokenRevoked({ jti: 'other', jobId: c.sub, issuedAt: c.iat + 3600 })).toBe(true);
      expect(reopened.isTokenRevoked({ jti: 'other', jobId: 'another-job', issuedAt: c.iat })).toBe(false);
    }
  });

  it('a revoked token can no longer authorize introspection', async () => {
    const { token } = await portToken();
    await h.post('/oauth/revoke', { token });
    expect((await h.post('/oauth/introspect', { token }, { authorization: `Bearer ${token}` })).status).toBe(401);
  });

  it('revocation of an invalid token answers 200 and records nothing', async () => {
    const before = (await h.port.store.decisions.last())?.seq;
    expect((await h.post('/oauth/revoke', { token: 'garbage' })).status).toBe(200);
    expect((await h.port.store.decisions.last())?.seq).toBe(before);
  });

  it('revocation without a token is invalid_request', async () => {
    const res = await h.post('/oauth/revoke', {});
    expect(res).toMatchObject({ status: 400, body: { error: 'invalid_request' } });
  });
});
