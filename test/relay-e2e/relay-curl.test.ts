import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startRelayHarness, UPSTREAM_SECRET, type RelayHarness } from '../helpers/relay-harness.js';

const exec = promisify(execFile);
let h: RelayHarness;
let token: string;
beforeAll(async () => {
  h = await startRelayHarness();
  token = await h.token();
});
afterAll(async () => {
  await h?.close();
});
beforeEach(() => h.upstream.reset());

/** curl, as a job would run it; returns status, headers and body. */
async function curl(args: string[]) {
  const { stdout } = await exec('curl', ['-s', '-S', '-i', '--max-time', '20', ...args]);
  const [head, ...rest] = stdout.split('\r\n\r\n');
  const status = Number(/^HTTP\/[\d.]+ (\d+)/.exec(head!)![1]);
  return { status, head: head!, body: rest.join('\r\n\r\n') };
}

describe('relay with curl', () => {
  it('forwards an allowed GET with the query intact, injecting the upstream credential and never the caller\'s', async () => {
    const r = await curl(['-H', `Authorization: Bearer ${token}`, '-H', 'Cookie: session=agent-cookie', h.relayUrl('/files/reports/a%20b.txt?x=1&y=%2F')]);
    expect(r.status).toBe(200);
    const [seen] = h.upstream.requests;
    expect(seen!.url).toBe('/base/reports/a%20b.txt?x=1&y=%2F');
    expect(seen!.headers.authorization).toBe(`Bearer ${UPSTREAM_SECRET}`);
    expect(seen!.headers.cookie).toBeUndefined();
    expect(seen!.headers.host).toBe(h.upstream.host);
    expect(JSON.stringify(seen!.rawHeaders)).not.toContain(token.slice(-20));
    expect(seen!.headers['x-forwarded-for']).toBe('127.0.0.1');
  });

  it('never shows the upstream credential to the agent, in answers or refusals', async () => {
    h.upstream.route('/base/plain', { kind: 'status', status: 200, body: 'ok', headers: { 'x-upstream': 'yes' } });
    const ok = await curl(['-H', `Authorization: Bearer ${token}`, h.relayUrl('/files/plain')]);
    expect(ok).toMatchObject({ status: 200, body: 'ok' });
    expect(ok.head).toMatch(/x-upstream: yes/);
    const denied = await curl(['-X', 'DELETE', '-H', `Authorization: Bearer ${token}`, h.relayUrl('/files/plain')]);
    expect(denied.status).toBe(403);
    for (const r of [ok, denied]) expect(r.head + r.body).not.toContain(UPSTREAM_SECRET);
  });

  it('accepts the Port token as the Basic-auth password (any username)', async () => {
    const r = await curl(['-u', `buildkite:${token}`, h.relayUrl('/files/x')]);
    expect(r.status).toBe(200);
    expect(h.upstream.requests[0]!.headers.authorization).toBe(`Bearer ${UPSTREAM_SECRET}`);
  });

  it('streams an allowed upload', async () => {
    const r = await curl(['-X', 'PUT', '-H', `Authorization: Bearer ${token}`, '--data-binary', 'hello relay', h.relayUrl('/files/uploads/a.txt')]);
    expect(r.status).toBe(200);
    expect(h.upstream.requests[0]).toMatchObject({ method: 'PUT', url: '/base/uploads/a.txt', bodyBytes: 11 });
  });

  it('denies by policy with 403 and a JSON reason; nothing reaches the upstream', async () => {
    const put = await curl(['-X', 'PUT', '-H', `Authorization: Bearer ${token}`, '--data-binary', 'x', h.relayUrl('/files/elsewhere/a.txt')]);
    expect(put.status).toBe(403);
    expect(JSON.parse(put.body)).toMatchObject({ error: 'access_denied' });
    expect(JSON.parse(put.body).error_description).toMatch(/PUT \/elsewhere\/a\.txt on files: denied by default/);
    const admin = await curl(['-H', `Authorization: Bearer ${token}`, h.relayUrl('/files/admin/users')]);
    expect(admin.status).toBe(403);
    expect(JSON.parse(admin.body).error_description).toContain('nobody reaches the admin area');
    // A path trick that resolves into /admin is decided on the resolved path.
    const trick = await curl(['--path-as-is', '-H', `Authorization: Bearer ${token}`, h.relayUrl('/files/public/../admin/users')]);
    expect(trick.status).toBe(403);
    expect(h.upstream.requests).toHaveLength(0);
    const last = await h.port.store.decisions.last();
    expect(last!.record).toMatchObject({ action: 'proxy', decision: 'deny', policies: [{ id: 'no-admin' }], context: { path: '/admin/users', method: 'GET', upstream: 'files' } });
  });

  it('refuses missing, foreign, expired and revoked tokens with 401 and WWW-Authenticate', async () => {
    const none = await curl([h.relayUrl('/files/x')]);
    expect(none.status).toBe(401);
    expect(none.head).toMatch(/www-authenticate: Bearer realm="port"/i);
    expect(none.head).toMatch(/www-authenticate: Basic realm="port"/i);
    const bk = await h.sim.mintToken(h.sim.createJob(), { audience: h.audience });
    expect((await curl(['-H', `Authorization: Bearer ${bk}`, h.relayUrl('/files/x')])).status).toBe(401);
    const fresh = await h.token();
    expect((await curl(['-H', `Authorization: Bearer ${fresh}`, h.relayUrl('/files/x')])).status).toBe(200);
    await h.post('/oauth/revoke', { token: fresh });
    const revoked = await curl(['-H', `Authorization: Bearer ${fresh}`, h.relayUrl('/files/x')]);
    expect(revoked.status).toBe(401);
    expect(JSON.parse(revoked.body).error_description).toMatch(/revoked/);
    expect(h.upstream.requests).toHaveLength(1);
  });

  it('answers 404 for an unknown upstream and 400 for a path trick', async () => {
    expect((await curl(['-H', `Authorization: Bearer ${token}`, h.relayUrl('/nope/x')])).status).toBe(404);
    const enc = await curl(['--path-as-is', '-H', `Authorization: Bearer ${token}`, h.relayUrl('/files/a%2f..%2fadmin')]);
    expect(enc.status).toBe(400);
    expect(JSON.parse(enc.body).error).toBe('invalid_path');
    expect(h.upstream.requests).toHaveLength(0);
  });
});
