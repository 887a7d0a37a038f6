/**
 * The store fault guarantees on PostgreSQL: Port fails closed and
 * loses nothing when the database becomes unreachable under it. Between Port and the
 * (shared) server sits a TCP proxy (test/helpers/tcp-proxy.ts); cutting it drops this
 * Port's connections and holds every new one unanswered — a dead network path for this
 * Port only. While it is cut, exchanges, credential releases, admin revocations and
 * relay requests answer 503 with the reason and /readyz says not ready (the store failing,
 * then the change feed behind past `store.feed_max_lag`); nothing they asked for is
 * recorded. Restoring the path, Port is ready again within a bounded wait, catches up on
 * what other replicas did meanwhile, and every decision it acknowledged is in the sealed,
 * verifiable log. A write cut off after the database committed it but before Port heard
 * so (in doubt) is pinned down on its own, with a tap that picks that moment. Throughout,
 * no error may go unhandled: in `port serve` one ends the process.
 */
import { createHash, randomUUID } from 'node:crypto';
import net from 'node:net';
import { decodeJwt } from 'jose';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { verifyAuditLog } from '../../src/audit/verify.js';
import { RevocationList } from '../../src/revocation/revocation-list.js';
import { PostgresStore } from '../../src/store/postgres/postgres-store.js';
import { startHarness, type Harness } from '../helpers/port-harness.js';
import { createTestDatabase, postgresUnavailable, type TestDatabase } from '../helpers/postgres.js';
import { RELAY_POLICIES } from '../helpers/relay-harness.js';
import { startRecordingUpstream, type RecordingUpstream } from '../helpers/relay/recording-upstream.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';

const unavailable = await postgresUnavailable();

const ADMIN = 'admin-token-for-postgres-faults';
/** How long recovery and outage detection may take at most (polled, never slept). */
const BOUND_MS = 15_000;

interface Answer {
  status: number;
  body: any;
  requestId: string;
}

/** One Port on a fresh database, reached only through `proxy`; `sql` goes to the database directly. */
interface Setup {
  db: TestDatabase;
  proxy: TcpProxy;
  upstream: RecordingUpstream;
  h: Harness;
  sql: pg.Pool;
  /** With `commitTap`: whether it cut the path after an exchange's write committed. */
  tap?: CommitTap;
}

const closers: (() => Promise<unknown>)[] = [];
/** Errors nobody handled: in `port serve` each one ends the process. */
const uncaught: unknown[] = [];
const onUncaught = (err: unknown) => void uncaught.push(err);

beforeAll(() => {
  process.on('uncaughtException', onUncaught);
});
beforeEach(() => {
  uncaught.length = 0;
});
afterAll(() => {
  process.off('uncaughtException', onUncaught);
});
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close().catch(() => undefined);
});

async function portBehindProxy(opts: { commitTap?: boolean } = {}): Promise<Setup> {
  const db = await createTestDatabase();
  closers.push(() => db.drop());
  const target = new URL(db.url);
  const proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 5432) });
  closers.push(() => proxy.close());
  const tap = opts.commitTap ? await startCommitTap(proxy) : undefined;
  if (tap) closers.push(() => tap.close());
  const viaProxy = new URL(db.url);
  viaProxy.hostname = (tap ?? proxy).address.host;
  viaProxy.port = String((tap ?? proxy).address.port);
  process.env.PORT_TEST_PG_FAULTS_URL = viaProxy.toString();
  process.env.PORT_TEST_PG_FAULTS_ADMIN = ADMIN;
  process.env.PORT_TEST_UPSTREAM_SECRET = 'upstream-secret';
  const upstream = await startRecordingUpstream();
  closers.push(() => upstream.close());
  const h = await startHarness({
    policies: RELAY_POLICIES,
    config: {
      store: { postgres: 'env:PORT_TEST_PG_FAULTS_URL', feed_max_lag: '2s', lease_ttl: '3s' },
      upstreams: { files: { url: `${upstream.url}/base`, inject: { bearer: 'env:PORT_TEST_UPSTREAM_SECRET' } } },
      server: { listen: '127.0.0.1:0', public_url: 'https://port.acme.test', log_level: 'silent', admin_token: 'env:PORT_TEST_PG_FAULTS_ADMIN' },
    },
  });
  // Restored first, so Port closes against a reachable database.
  closers.push(async () => {
    proxy.restore();
    await h.close();
  });
  const sql = new pg.Pool({ connectionString: db.url, max: 2 });
  closers.push(() => sql.end());
  return { db, proxy, upstream, h, sql, ...(tap ? { tap } : {}) };
}

interface CommitTap {
  readonly address: { host: string; port: number };
  /** The tap cut the path: an exchange's write committed in the database, and its answer never reached Port. */
  readonly fired: boolean;
  close(): Promise<void>;
}

/**
 * Between Port and `proxy`: waits for the write that consumes a Buildkite token (one
 * autocommitted statement, INSERT INTO replay_cache with its decisions: committed when the
 * database answers its Sync, https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-EXT-QUERY),
 * lets it reach the database, swallows the database's answer and cuts `proxy` — the path
 * dies at the one moment where a write is in doubt: committed, but not acknowledged.
 */
async function startCommitTap(proxy: TcpProxy): Promise<CommitTap> {
  const sockets = new Set<net.Socket>();
  let fired = false;
  const server = net.createServer((client) => {
    const upstream = net.connect(proxy.address);
    let committing = false;
    const drop = () => {
      client.destroy();
      upstream.destroy();
    };
    for (const end of [client, upstream]) {
      sockets.add(end);
      end.on('error', drop);
      end.on('close', () => {
        sockets.delete(end);
        drop();
      });
    }
    client.on('data', (chunk: Buffer) => {
      if (!fired && chunk.includes('INSERT INTO replay_cache')) committing = true;
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (committing && !fired) {
        // The database's answer to the committed statement. Port never hears it.
        fired = true;
        proxy.cut();
        return;
      }
      client.write(chunk);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    address: { host: '127.0.0.1', port: (server.address() as net.AddressInfo).port },
    get fired() {
      return fired;
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `probe` until it returns a value (not undefined), or fails naming `what` and the last value seen. */
async function eventually<T>(what: string, probe: () => Promise<T | undefined>, opts: { timeoutMs?: number; last?: () => unknown } = {}): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? BOUND_MS);
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${opts.timeoutMs ?? BOUND_MS} ms (last: ${JSON.stringify(opts.last?.())})`);
    await sleep(50);
  }
}

async function answer(res: Response): Promise<Answer> {
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined, requestId: res.headers.get('x-request-id') ?? '' };
}

function mint(h: Harness, init: Record<string, unknown> = {}): Promise<string> {
  return h.sim.mintToken(h.sim.createJob({ pipelineSlug: 'deploy', branch: 'main', ...init }), { audience: h.audience });
}

async function exchange(h: Harness, subjectToken: string, extra: Record<string, string> = {}): Promise<Answer> {
  const r = await h.exchange(subjectToken, extra);
  return { status: r.status, body: r.body, requestId: r.headers.get('x-request-id') ?? '' };
}

const release = async (h: Harness, token: string) => answer(await fetch(`${h.url}/v1/credentials/deploy-token`, { method: 'POST', headers: { authorization: `Bearer ${token}` } }));
const relay = async (h: Harness, token: string, path: string) => answer(await fetch(`${h.url}/relay/files/${path}`, { headers: { authorization: `Bearer ${token}` } }));
const revoke = async (h: Harness, jobId: string) =>
  answer(
    await fetch(`${h.url}/v1/revocations`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ scope: 'job', id: jobId, reason: 'postgres-faults test' }),
    }),
  );

async function readyz(h: Harness): Promise<{ status: number; checks: Record<string, string> }> {
  const r = await answer(await fetch(`${h.url}/readyz`));
  return { status: r.status, checks: r.body.checks };
}

/** Port's own words for the two ways it refuses while the database is unreachable. */
const REASONS = {
  store_unavailable: /^Port cannot record this request in its store right now \(the database is unreachable\), so it changed nothing; retry shortly\.$/,
  /** The committing statement went out and its answer never came back: Port can't say nothing changed. */
  in_doubt: /^Port lost its database \(the database is unreachable\) while recording this request, so it may or may not have been recorded; retry shortly, with a fresh token if this one is refused as already used\.$/,
  temporarily_unavailable: /^Port can't confirm its revocation list is current \(the change feed (cannot reach the database|lost its database connection); last confirmed [\d.]+s ago\), so it refuses for now; retry shortly\.$/,
};

function expectRefused(what: string, a: Answer, code: keyof typeof REASONS): void {
  expect(a.status, `${what}: ${JSON.stringify(a.body)}`).toBe(503);
  expect(a.body.error, `${what}: ${JSON.stringify(a.body)}`).toBe(code === 'in_doubt' ? 'store_unavailable' : code);
  // One sentence naming the reason; no stack trace, no connection string.
  expect(a.body.error_description, what).toMatch(REASONS[code]);
  expect(a.body.error_description, what).not.toMatch(/\bat .*\.[jt]s:\d+|\n|postgres:\/\/|127\.0\.0\.1/);
}

function expectStoreRefused(what: string, a: Answer): void {
  const inDoubt = typeof a.body.error_description === 'string' && REASONS.in_doubt.test(a.body.error_description);
  expectRefused(what, a, inDoubt ? 'in_doubt' : 'store_unavailable');
}

/** Every decision record (sealed or still in the outbox) whose context names this request. */
async function recordsOf(sql: pg.Pool, requestId: string): Promise<{ action: string; decision: string; sealed: boolean; record: any }[]> {
  const r = await sql.query<{ record: string; sealed: boolean }>(
    `SELECT record, true AS sealed FROM decisions WHERE record::jsonb -> 'context' ->> 'request_id' = $1
     UNION ALL SELECT record, false FROM decision_outbox WHERE record::jsonb -> 'context' ->> 'request_id' = $1`,
    [requestId],
  );
  return r.rows.map((row) => {
    const record = JSON.parse(row.record);
    return { action: record.action, decision: record.decision, sealed: row.sealed, record };
  });
}

/** Waits until the leader has sealed everything committed so far into the chain. */
async function sealed(sql: pg.Pool): Promise<void> {
  let n = -1;
  await eventually(
    'the decision outbox sealed',
    async () => {
      n = Number((await sql.query<{ n: string }>('SELECT count(*) AS n FROM decision_outbox')).rows[0]!.n);
      return n === 0 ? true : undefined;
    },
    { last: () => `${n} unsealed` },
  );
}

/** Until /readyz is 200 again with every check ok. */
async function readyAgain(h: Harness): Promise<Record<string, string>> {
  let last: unknown;
  return eventually(
    '/readyz 200 after the database came back',
    async () => {
      const r = await readyz(h).catch((err: Error) => ({ status: 0, checks: { error: err.message } }));
      last = r;
      return r.status === 200 ? r.checks : undefined;
    },
    { last: () => last },
  );
}

async function verifyLog(s: Setup) {
  const store = s.h.port.store;
  return verifyAuditLog(store, new Map((await store.keys.list()).map((k) => [k.kid, k.publicJwk])));
}

function expectNoUncaughtErrors(): void {
  const seen = uncaught.splice(0).map((e) => `${(e as Error).message} (${(e as { code?: string }).code ?? 'no code'})`);
  expect(seen, 'errors nobody handled: each one would have ended `port serve`').toEqual([]);
}

describe.skipIf(unavailable !== undefined)('PostgreSQL becomes unreachable under a running Port', () => {
  it('exchange, credential release, admin revocation and relay answer 503 with the reason, /readyz says not ready, and nothing they asked for is recorded', async () => {
    const s = await portBehindProxy();
    const { h, proxy, sql, upstream } = s;
    const held = await exchange(h, await mint(h), { scope: 'deploy-token' });
    expect(held.status, JSON.stringify(held.body)).toBe(200);
    const token = held.body.access_token as string;
    expect((await relay(h, token, 'before.txt')).status).toBe(200);
    expect((await readyz(h)).status).toBe(200);
    const forwarded = upstream.requests.length;

    // Fired as the path goes dead, while the change feed was confirmed moments ago: each
    // gets past the revocation check and then waits on its write until the connect timeout.
    const refusedSubject = await mint(h);
    const revokedJob = randomUUID();
    proxy.cut();
    const firstWave = Promise.all([exchange(h, refusedSubject), release(h, token), revoke(h, revokedJob)]);

    // Past feed_max_lag (2 s) /readyz says the change feed is behind, besides the store failing.
    let last: unknown;
    const ready = await eventually(
      '/readyz 503 with the store failing and the change feed behind',
      async () => {
        const r = await readyz(h);
        last = r;
        return r.checks.store !== 'ok' && r.checks.change_feed?.startsWith('behind:') ? r : undefined;
      },
      { last: () => last },
    );
    expect(ready.status).toBe(503);
    expect(ready.checks.store).toBe('failing: the database is unreachable');
    expect(ready.checks.change_feed).toMatch(/^behind: the change feed (cannot reach the database|lost its database connection); last confirmed [\d.]+s ago$/);
    expect(ready.checks.role).toMatch(/^ok \((leader|follower), postgres\)$/);

    // Now whatever a revocation could cover is refused at once, before Port tries the store.
    const lateSubject = await mint(h);
    const [ex2, cred2, rel2] = await Promise.all([exchange(h, lateSubject), release(h, token), relay(h, token, 'during.txt')]);
    expectRefused('exchange (feed behind)', ex2, 'temporarily_unavailable');
    expectRefused('credential release (feed behind)', cred2, 'temporarily_unavailable');
    expectRefused('relay (feed behind)', rel2, 'temporarily_unavailable');

    // The first wave failed on its writes.
    const [ex, cred, rev] = await firstWave;
    // Each is refused with one of the two store answers: "changed nothing" when its write
    // waited for a new connection, or "may or may not have been recorded" when the pool
    // handed it a connection the cut had already killed before the pool noticed (the
    // statement went out, no answer came back). Which one depends on how fast the request
    // reaches its write; both are 503 store_unavailable and, below, nothing was recorded.
    expectStoreRefused('exchange', ex);
    expectStoreRefused('credential release', cred);
    expectStoreRefused('admin revocation', rev);
    // Nothing went out to the upstream (with injected credentials) unrecorded.
    expect(upstream.requests.length).toBe(forwarded);

    proxy.restore();
    await readyAgain(h);
    await sealed(sql);
    // Nothing changed: no record of any refused request, allow or deny (the store was
    // down: not even the refusal could be logged). The relay answers outside Fastify,
    // without X-Request-Id: that nothing was forwarded is its proof.
    for (const a of [ex, cred, rev, ex2, cred2]) {
      expect(a.requestId, 'X-Request-Id').not.toBe('');
      expect((await recordsOf(sql, a.requestId)).map((r) => `${r.action}: ${r.decision}`), `records of ${a.requestId}`).toEqual([]);
    }
    // ...the refused revocation is not in force, in Port or in the database...
    const list = await answer(await fetch(`${h.url}/v1/revocations`, { headers: { authorization: `Bearer ${ADMIN}` } }));
    expect(list.body.revocations.map((r: { id: string }) => r.id)).not.toContain(revokedJob);
    expect((await sql.query('SELECT id FROM revocations WHERE target = $1', [revokedJob])).rows).toEqual([]);
    // ...and the refused exchanges' Buildkite tokens were not consumed: they exchange now.
    for (const subject of [refusedSubject, lateSubject]) {
      const again = await exchange(h, subject);
      expect(again.status, JSON.stringify(again.body)).toBe(200);
    }
    expect((await relay(h, token, 'after.txt')).status).toBe(200);
    expectNoUncaughtErrors();
  });

  it('recovery: once the database is reachable, /readyz is 200 within a bounded wait, exchanges work, the change feed caught up, and the log from before is sealed and verifies', async () => {
    const s = await portBehindProxy();
    const { h, proxy, sql, db } = s;
    // Decisions before the outage: exchanges, a credential release, an admin revocation.
    const before: Answer[] = [];
    for (let i = 0; i < 3; i++) before.push(await exchange(h, await mint(h), { scope: 'deploy-token' }));
    const victimJob = h.sim.createJob({ pipelineSlug: 'deploy', branch: 'main' });
    const victim = await exchange(h, await h.sim.mintToken(victimJob, { audience: h.audience }));
    before.push(victim, await release(h, before[0]!.body.access_token), await revoke(h, randomUUID()));
    for (const a of before) expect(a.status, JSON.stringify(a.body)).toBeLessThan(300);
    expect((await relay(h, victim.body.access_token, 'before.txt')).status).toBe(200);
    await sealed(sql);
    const sealedBefore = Number((await sql.query<{ n: string }>('SELECT count(*) AS n FROM decisions')).rows[0]!.n);

    // Another replica, on the database directly, keeps working through this Port's outage.
    const other = await PostgresStore.open({ url: db.url });
    closers.push(() => other.close());
    const otherList = await RevocationList.open(other);
    closers.push(async () => otherList.close());

    proxy.cut();
    await eventually('/readyz 503 with the store failing and the change feed behind', async () => {
      const r = await readyz(h);
      return r.status === 503 && r.checks.store?.startsWith('failing') && r.checks.change_feed?.startsWith('behind') ? r : undefined;
    });
    const now = Date.now();
    await otherList.add({ scope: 'job', id: victimJob.jobId, revokedAt: now, expiresAt: now + 3_600_000, reason: 'revoked by another replica during the outage', origin: 'admin' });

    proxy.restore();
    const checks = await readyAgain(h);
    expect(checks.store).toBe('ok');
    expect(checks.change_feed).toBe('ok');
    expect(checks.role).toMatch(/^ok \((leader|follower), postgres\)$/);

    // Exchanges work again.
    const after = await exchange(h, await mint(h), { scope: 'deploy-token' });
    expect(after.status, JSON.stringify(after.body)).toBe(200);
    expect((await relay(h, after.body.access_token, 'after.txt')).status).toBe(200);
    // The change feed caught up on what it missed: the other replica's revocation applies here.
    const refused = await relay(h, victim.body.access_token, 'victim.txt');
    expect(refused.status, JSON.stringify(refused.body)).toBe(401);
    expect(JSON.stringify(refused.body)).toMatch(/revoked/);

    // Every decision from before the outage is in the sealed log, which verifies.
    await sealed(sql);
    for (const a of before) {
      const records = await recordsOf(sql, a.requestId);
      expect(records.length, `records of ${a.requestId}`).toBeGreaterThan(0);
      expect(records.every((r) => r.sealed && r.decision === 'allow')).toBe(true);
    }
    expect(Number((await sql.query<{ n: string }>('SELECT count(*) AS n FROM decisions')).rows[0]!.n)).toBeGreaterThan(sealedBefore);
    const report = await verifyLog(s);
    expect(report.problems).toEqual([]);
    expect(report).toMatchObject({ ok: true, complete: true, unsealed: 0 });
    expectNoUncaughtErrors();
  });

  it('acknowledged means durable: of exchanges running as the outage starts, every 200 is in the sealed log; a refused one left nothing and its token still exchanges, unless its commit was in doubt', async () => {
    const s = await portBehindProxy();
    const { h, proxy, sql } = s;
    const subjects = await Promise.all(Array.from({ length: 40 }, () => mint(h)));
    const results: (Answer & { subject: string })[] = [];
    let okCount = 0;
    let launchedAfterCut = 0;
    let isCut = false;
    const cut = () => {
      if (isCut) return;
      isCut = true;
      proxy.cut();
    };
    const running: Promise<void>[] = [];
    // A stream of exchanges; the path goes dead once 8 were acknowledged, and a few more start after.
    for (const subject of subjects) {
      if (isCut && launchedAfterCut++ >= 6) break;
      running.push(
        exchange(h, subject, { scope: 'deploy-token' }).then((a) => {
          results.push({ ...a, subject });
          if (a.status === 200 && ++okCount >= 8) cut();
        }),
      );
      await sleep(3);
    }
    cut();
    await Promise.all(running);

    const ok = results.filter((r) => r.status === 200);
    const refused = results.filter((r) => r.status !== 200);
    expect(ok.length).toBeGreaterThanOrEqual(8);
    expect(refused.length).toBeGreaterThanOrEqual(1);
    const inDoubtSaid = (r: Answer) => REASONS.in_doubt.test(String(r.body.error_description));
    for (const r of refused) {
      expect(r.status, JSON.stringify(r.body)).toBe(503);
      expectRefused('exchange', r, r.body.error === 'temporarily_unavailable' ? 'temporarily_unavailable' : inDoubtSaid(r) ? 'in_doubt' : 'store_unavailable');
    }

    proxy.restore();
    await readyAgain(h);
    await sealed(sql);
    for (const r of ok) {
      const records = await recordsOf(sql, r.requestId);
      const allow = records.filter((x) => x.action === 'exchange' && x.decision === 'allow');
      expect(allow, `the exchange ${r.requestId} answered 200`).toHaveLength(1);
      expect(allow[0]!.sealed).toBe(true);
      // The record is of the token the caller holds.
      const jti = decodeJwt(r.body.access_token as string).jti!;
      expect(allow[0]!.record.context.port_token.jti_sha256).toBe(createHash('sha256').update(jti).digest('hex'));
      expect(records.some((x) => x.action === 'assume' && x.decision === 'allow')).toBe(true);
    }
    // A refused one that said "changed nothing" left nothing and its Buildkite token is
    // unused (the retry succeeds). Only one that said its commit was in doubt may have
    // landed — whole — and there is at most one such per pooled connection (10).
    let inDoubt = 0;
    for (const r of refused) {
      const allows = (await recordsOf(sql, r.requestId)).filter((x) => x.decision === 'allow');
      if (inDoubtSaid(r)) {
        inDoubt++;
        if (allows.length > 0) expect(allows.map((x) => x.action).sort()).toEqual(['assume', 'exchange']);
        continue;
      }
      expect(allows, `the exchange ${r.requestId} answered "changed nothing"`).toEqual([]);
      const again = await exchange(h, r.subject, { scope: 'deploy-token' });
      expect(again.status, `retry of the refused exchange ${r.requestId}: ${JSON.stringify(again.body)}`).toBe(200);
    }
    expect(inDoubt).toBeLessThanOrEqual(10);
    await sealed(sql);
    const report = await verifyLog(s);
    expect(report.problems).toEqual([]);
    expect(report).toMatchObject({ ok: true, unsealed: 0 });
    expectNoUncaughtErrors();
  });

  it('an exchange whose write reached the database (committed) but whose answer was lost (in doubt): the 503 says it may have been recorded, and a fresh token works after recovery', async () => {
    const s = await portBehindProxy({ commitTap: true });
    const { h, proxy, sql, tap } = s;
    const subject = await mint(h);
    const r = await exchange(h, subject, { scope: 'deploy-token' });
    expect(tap!.fired, 'the tap cut the path after the write committed').toBe(true);
    // Port can't know whether the database committed: it says so instead of "changed nothing".
    expectRefused('exchange cut after its write committed', r, 'in_doubt');

    proxy.restore();
    await readyAgain(h);
    await sealed(sql);
    // It did commit here: the decision is in the log (the token itself never left Port),
    // and the Buildkite token counts as used — as the answer warned.
    const allows = (await recordsOf(sql, r.requestId)).filter((x) => x.decision === 'allow');
    expect(allows.map((x) => x.action).sort()).toEqual(['assume', 'exchange']);
    const again = await exchange(h, subject, { scope: 'deploy-token' });
    expect(again.status).toBe(400);
    expect(again.body.error).toBe('invalid_grant');
    const fresh = await exchange(h, await mint(h), { scope: 'deploy-token' });
    expect(fresh.status, JSON.stringify(fresh.body)).toBe(200);
    await sealed(sql);
    expect((await verifyLog(s)).ok).toBe(true);
    expectNoUncaughtErrors();
  });
});
