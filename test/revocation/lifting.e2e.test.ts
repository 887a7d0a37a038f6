/**
 * A revocation's lifetime and its early end: `expires_in` / `port revoke
 * --for`, `DELETE /v1/revocations` / `port revoke --lift` — who may, what they refuse,
 * and that each revocation keeps its own lifetime.
 */
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, buildBy, startRevocationHarness, works, type RevocationHarness } from './support.js';

let h: RevocationHarness;
beforeAll(async () => {
  h = await startRevocationHarness();
}, 60_000);
afterAll(async () => {
  await h?.close();
});

const lifetime = (body: { revoked_at: string; expires_at: string }) => Date.parse(body.expires_at) - Date.parse(body.revoked_at);

describe('lifetimes', () => {
  it('defaults: token, job and build as long as their tokens can live; user, agent and pool 24 h; expires_in in seconds or as a duration', async () => {
    // 2 h (Buildkite) + issuer.token_ttl (900 s) + 60 s skew.
    const tokenLife = (7200 + 900 + 60) * 1000;
    expect(lifetime((await h.revoke({ scope: 'job', id: crypto.randomUUID() })).body)).toBe(tokenLife);
    expect(lifetime((await h.revoke({ scope: 'build', id: 'acme/deploy/9999' })).body)).toBe(tokenLife);
    expect(lifetime((await h.revoke({ scope: 'agent', id: crypto.randomUUID() })).body)).toBe(86_400_000);
    expect(lifetime((await h.revoke({ scope: 'agent', id: crypto.randomUUID(), expires_in: 90 })).body)).toBe(90_000);
    expect(lifetime((await h.revoke({ scope: 'agent', id: crypto.randomUUID(), expires_in: '7d' })).body)).toBe(7 * 86_400_000);
    expect(lifetime((await h.revoke({ scope: 'job', id: crypto.randomUUID(), expires_in: '12h' })).body)).toBe(12 * 3_600_000);
    // A token's revocation never outlives the token.
    const { a } = buildBy(h, 'life@acme.test');
    const t = await h.portToken(a);
    const res = await h.revoke({ scope: 'token', id: String(decodeJwt(t).jti), expires_in: '30d' });
    expect(Date.parse(res.body.expires_at)).toBeLessThanOrEqual(Date.parse(res.body.revoked_at) + tokenLife);
  });

  it.each([
    ['zero', 0],
    ['negative', -5],
    ['fractional', 1.5],
    ['longer than 90 days', '91d'],
    ['not a duration', 'soon'],
    ['a boolean', true],
  ])('expires_in %s → 400 naming the rule, nothing revoked', async (_name, expiresIn) => {
    const id = crypto.randomUUID();
    const res = await h.revoke({ scope: 'agent', id, expires_in: expiresIn });
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_request');
    expect(res.body.error_description).toMatch(/^expires_in must be seconds \(1 to 7776000\) or a duration such as 30m, 24h or 7d/);
    expect(h.port.revocations.revocations.get('agent', id)).toBeUndefined();
  });

  it('a job revoking itself may not choose a shorter lifetime', async () => {
    const { a } = buildBy(h, 'short@acme.test');
    const t = await h.portToken(a);
    const res = await h.revoke({ scope: 'job', id: a.jobId, expires_in: 1 }, t);
    expect(res.status).toBe(400);
    expect(res.body.error_description).toMatch(/leave out expires_in/);
    expect(await works(h, t)).toBe(true);
  });

  it('each revocation keeps its own lifetime: revoked for a day, lifted, revoked again for 2 s → in force 2 s', async () => {
    const agentId = crypto.randomUUID();
    const job = h.sim.createJob({ agentId });
    const t = await h.portToken(job);
    expect((await h.revoke({ scope: 'agent', id: agentId })).status).toBe(200);
    expect((await h.lift({ scope: 'agent', id: agentId })).status).toBe(200);
    const again = await h.revoke({ scope: 'agent', id: agentId, expires_in: 2 });
    expect(again.status).toBe(200);
    expect(await works(h, t)).toBe(false);
    const listed = (await (await fetch(`${h.url}/v1/revocations`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).json()) as { revocations: { id: string; expires_at: string }[] };
    expect(listed.revocations.find((r) => r.id === agentId)!.expires_at).toBe(again.body.expires_at);
    await new Promise((r) => setTimeout(r, Date.parse(again.body.expires_at) - Date.now() + 100));
    expect(await works(h, t)).toBe(true);
  });

  it('a repeated revocation extends: the longest in force wins', async () => {
    const agentId = crypto.randomUUID();
    const first = await h.revoke({ scope: 'agent', id: agentId, expires_in: '1h' });
    await h.revoke({ scope: 'agent', id: agentId, expires_in: 60 });
    expect(h.port.revocations.revocations.get('agent', agentId)!.expiresAt).toBe(Date.parse(first.body.expires_at));
  });
});

describe('lifting', () => {
  it('only the admin may lift: a Port token gets 403, no token 401; malformed requests 400/415; nothing in force 404', async () => {
    const { a } = buildBy(h, 'lifter@acme.test');
    const t = await h.portToken(a);
    expect((await h.revoke({ scope: 'job', id: a.jobId }, t)).status).toBe(200);
    const byJob = await h.lift({ scope: 'job', id: a.jobId }, t);
    expect(byJob.status).toBe(403);
    expect(byJob.body).toMatchObject({ error: 'access_denied', error_description: 'Only the admin token may lift a revocation.' });
    expect((await h.lift({ scope: 'job', id: a.jobId }, 'not-the-admin-token')).status).toBe(401);
    expect(await works(h, t)).toBe(false);

    expect((await h.lift({ scope: 'job', id: a.jobId, expires_in: 5 })).body.error_description).toMatch(/Unknown field\(s\) expires_in/);
    expect((await h.lift({ scope: 'job', id: 'nope' })).status).toBe(400);
    const form = await fetch(`${h.url}/v1/revocations`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: `scope=job&id=${a.jobId}`,
    });
    expect(form.status).toBe(415);
    expect(await works(h, t)).toBe(false);

    const missing = await h.lift({ scope: 'user', id: 'never-revoked@acme.test' });
    expect(missing.status).toBe(404);
    expect(missing.body).toEqual({ error: 'not_revoked', error_description: 'No user revocation of that id is in force; nothing was lifted.' });
  });

  it('lifting a token revocation through the CLI (by the token itself) restores the token; the decision log names the lift', async () => {
    const { a } = buildBy(h, 'tokenlift@acme.test');
    const t = await h.portToken(a);
    expect((await h.cli(['token', '-'], t)).code).toBe(0);
    expect(await works(h, t)).toBe(false);
    const out = await h.cli(['token', '-', '--lift', '--reason', 'false alarm'], t);
    expect(out.code, out.stderr).toBe(0);
    expect(out.stdout).toContain('lifted the token revocation');
    expect(await works(h, t)).toBe(true);
    const rec = (await h.port.store.decisions.read(0, 100_000)).filter((e) => e.record.action === 'unrevoke').at(-1)!.record;
    expect(rec).toMatchObject({ principal: 'admin', resource: null, decision: 'allow', context: { scope: 'token', reason: 'false alarm', lifted: 1, origins: ['admin', 'scim'] } });
    expect(JSON.stringify(rec)).not.toContain(String(decodeJwt(t).jti));
  });

  it('the CLI refuses --for with --lift and a bad --for before calling Port; a lift of nothing exits 1 (404)', async () => {
    const both = await h.cli(['agent', crypto.randomUUID(), '--lift', '--for', '1h']);
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/a lift takes none/);
    const bad = await h.cli(['agent', crypto.randomUUID(), '--for', 'forever']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--for must be seconds/);
    const missing = await h.cli(['agent', crypto.randomUUID(), '--lift']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/refused \(404 not_revoked\)/);
  });
});
