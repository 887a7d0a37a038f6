/**
 * Explore: what Port says when PostgreSQL is unreachable (scratch, replaced by the real test).
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from '../helpers/port-harness.js';
import { createTestDatabase, postgresUnavailable, type TestDatabase } from '../helpers/postgres.js';
import { RELAY_POLICIES } from '../helpers/relay-harness.js';
import { startRecordingUpstream, type RecordingUpstream } from '../helpers/relay/recording-upstream.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';

const unavailable = await postgresUnavailable();
const ADMIN = 'admin-token-for-postgres-faults';

describe.skipIf(unavailable !== undefined)('explore', () => {
  let db: TestDatabase;
  let proxy: TcpProxy;
  let upstream: RecordingUpstream;
  let h: Harness;
  let direct: pg.Client;
  beforeAll(async () => {
    db = await createTestDatabase();
    const url = new URL(db.url);
    proxy = await startTcpProxy({ host: url.hostname, port: Number(url.port || 5432) });
    const viaProxy = new URL(db.url);
    viaProxy.hostname = proxy.address.host;
    viaProxy.port = String(proxy.address.port);
    process.env.PORT_TEST_PG_FAULTS_URL = viaProxy.toString();
    process.env.PORT_TEST_ADMIN = ADMIN;
    process.env.PORT_TEST_UPSTREAM_SECRET = 'upstream-secret';
    upstream = await startRecordingUpstream();
    h = await startHarness({
      policies: RELAY_POLICIES,
      config: {
        store: { postgres: 'env:PORT_TEST_PG_FAULTS_URL', feed_max_lag: '2s', lease_ttl: '3s' },
        upstreams: { files: { url: `${upstream.url}/base`, inject: { bearer: 'env:PORT_TEST_UPSTREAM_SECRET' } } },
        server: { listen: '127.0.0.1:0', public_url: 'https://port.acme.test', log_level: 'silent', admin_token: 'env:PORT_TEST_ADMIN' },
      },
    });
    direct = new pg.Client({ connectionString: db.url });
    await direct.connect();
  });
  afterAll(async () => {
    await h?.close().catch(() => undefined);
    await upstream?.close();
    await proxy?.close();
    await direct?.end().catch(() => undefined);
    await db?.drop();
  });

  it('explore', async () => {
    const t0 = Date.now();
    const log = (...a: unknown[]) => console.log(`[${Date.now() - t0}ms]`, ...a);
    const job = h.sim.createJob({ pipelineSlug: 'deploy', branch: 'main' });
    const ex = await h.exchange(await h.sim.mintToken(job, { audience: h.audience }), { scope: 'deploy-token' });
    log('exchange', ex.status);
    const token = ex.body.access_token as string;
    log('relay', (await fetch(`${h.url}/relay/files/ok.txt`, { headers: { authorization: `Bearer ${token}` } })).status);
    log('ready', (await fetch(`${h.url}/readyz`)).status);
    const forwarded = upstream.requests.length;
    proxy.cut();
    log('cut');
    const timed = async (name: string, p: Promise<{ status: number; body: any }>) => {
      const s = Date.now();
      const r = await p;
      log(name, r.status, Date.now() - s, 'ms', JSON.stringify(r.body));
      return r;
    };
    const asJson = async (res: Promise<Response>) => {
      const r = await res;
      return { status: r.status, body: await r.json() };
    };
    await timed('relay-first', asJson(fetch(`${h.url}/relay/files/first.txt`, { headers: { authorization: `Bearer ${token}` } })));
    log('upstream forwarded since cut', upstream.requests.length - forwarded);
    const job2 = h.sim.createJob({ pipelineSlug: 'deploy', branch: 'main' });
    await Promise.all([
      timed('exchange', h.exchange(await h.sim.mintToken(job2, { audience: h.audience }))),
      timed('credential', asJson(fetch(`${h.url}/v1/credentials/deploy-token`, { method: 'POST', headers: { authorization: `Bearer ${token}` } }))),
      timed(
        'revoke',
        asJson(
          fetch(`${h.url}/v1/revocations`, {
            method: 'POST',
            headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
            body: JSON.stringify({ scope: 'job', id: randomUUID(), reason: 'test' }),
          }),
        ),
      ),
      timed('relay', asJson(fetch(`${h.url}/relay/files/x.txt`, { headers: { authorization: `Bearer ${token}` } }))),
      timed('readyz', asJson(fetch(`${h.url}/readyz`))),
    ]);
    await new Promise((r) => setTimeout(r, 2500));
    const job3 = h.sim.createJob({ pipelineSlug: 'deploy', branch: 'main' });
    await Promise.all([
      timed('exchange2', h.exchange(await h.sim.mintToken(job3, { audience: h.audience }))),
      timed('credential2', asJson(fetch(`${h.url}/v1/credentials/deploy-token`, { method: 'POST', headers: { authorization: `Bearer ${token}` } }))),
      timed(
        'revoke2',
        asJson(
          fetch(`${h.url}/v1/revocations`, {
            method: 'POST',
            headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
            body: JSON.stringify({ scope: 'job', id: randomUUID(), reason: 'test' }),
          }),
        ),
      ),
      timed('relay2', asJson(fetch(`${h.url}/relay/files/x.txt`, { headers: { authorization: `Bearer ${token}` } }))),
      timed('readyz2', asJson(fetch(`${h.url}/readyz`))),
    ]);
    log('held', proxy.held);
    proxy.restore();
    log('restore');
    for (;;) {
      const r = await fetch(`${h.url}/readyz`);
      const b = await r.json();
      if (r.status === 200) {
        log('ready again', JSON.stringify(b));
        break;
      }
      await new Promise((res) => setTimeout(res, 100));
    }
    expect(true).toBe(true);
  });
});
