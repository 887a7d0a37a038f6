/**
 * Port as several replicas on one PostgreSQL database. Three real `port serve`
 * processes behind a round-robin TCP balancer (test/helpers/replica-cluster.ts):
 *
 * - exchanges, relay traffic and webhook deliveries through the balancer land on every replica;
 * - a Buildkite token is single-use across replicas; a webhook delivered to two replicas is
 *   processed once;
 * - a revocation through one replica is refused on the others (the time it takes is measured
 *   and printed, not asserted);
 * - `kill -9` of the leader under load: no acknowledged exchange is missing from the log, the
 *   log verifies, the lease moves, and clients retrying once through the balancer lose at most
 *   what was in flight on the dead replica.
 *
 * Timings are printed for the record (console.log), never asserted: this runs on small CI boxes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SimJob } from '../../src/sim/index.js';
import { postgresUnavailable } from '../helpers/postgres.js';
import {
  CLUSTER_ADMIN_TOKEN,
  CLUSTER_AUDIENCE,
  CLUSTER_UPSTREAM_SECRET,
  CLUSTER_WEBHOOK_TOKEN,
  send,
  startReplicaCluster,
  type HttpAnswer,
  type Replica,
  type ReplicaCluster,
} from '../helpers/replica-cluster.js';
import { sleep } from '../helpers/relay/util.js';

const unavailable = await postgresUnavailable();

const FORM = 'application/x-www-form-urlencoded';
const LEASE_TTL_MS = 3000;

describe.skipIf(unavailable !== undefined)('three Port replicas on one PostgreSQL database, behind a load balancer', () => {
  let c: ReplicaCluster;
  let A: Replica;
  let B: Replica;
  let C: Replica;
  const suiteStart = Date.now();

  beforeAll(async () => {
    c = await startReplicaCluster({ replicas: 3, leaseTtl: '3s', feedMaxLag: '5s' });
    [A, B, C] = c.replicas as [Replica, Replica, Replica];
    console.log(`[replicas] started 3 replicas concurrently; ready after ${c.startupMs.join(' / ')} ms`);
  }, 90_000);

  afterAll(async () => {
    await c?.close();
    console.log(`[replicas] whole file: ${Date.now() - suiteStart} ms`);
  }, 30_000);

  const bkToken = (job: SimJob = c.sim.createJob({ pipelineSlug: 'deploy', branch: 'main' })) => c.sim.mintToken(job, { audience: CLUSTER_AUDIENCE });

  const exchange = async (base: string, subjectToken: string): Promise<HttpAnswer> =>
    send(`${base}/oauth/token`, {
      method: 'POST',
      headers: { 'content-type': FORM },
      body: new URLSearchParams({
        grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
        subject_token: subjectToken,
        subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
      }).toString(),
    });

  const portToken = async (base: string, job?: SimJob): Promise<string> => {
    const res = await exchange(base, await bkToken(job));
    expect(res.status, res.text).toBe(200);
    return res.body.access_token as string;
  };

  const relay = (base: string, token: string, path: string) => send(`${base}/relay/files/${path}`, { headers: { authorization: `Bearer ${token}` } });

  const deliverJobFinished = (base: string, rawBody: string) =>
    send(`${base}/webhooks/buildkite`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-buildkite-event': 'job.finished', 'x-buildkite-token': CLUSTER_WEBHOOK_TOKEN },
      body: rawBody,
    });

  /** A build of acme/deploy on main with one running command job (its OIDC side and its REST side). */
  const runningJob = () => {
    const build = c.sim.createBuild({ pipelineSlug: 'deploy', branch: 'main', creator: null, steps: [{ type: 'command', key: 'run' }] });
    return { build, job: build.jobs[0]!, oidc: build.jobs[0]!.oidcJob! };
  };

  /** The body Buildkite sends when the job of `runningJob()` finishes. */
  const finishedBody = (r: ReturnType<typeof runningJob>) => {
    c.sim.finishBuildJob(r.job);
    const after = c.sim.build(r.build.id)!;
    return JSON.stringify(c.sim.jobFinishedPayload(after.jobs.find((j) => j.id === r.job.id)!, after));
  };

  /** Which replica's request log names the request (pino writes asynchronously: wait a little). */
  const servedBy = async (requestId: string): Promise<Replica[]> => {
    const deadline = Date.now() + 3000;
    for (;;) {
      const found = c.replicas.filter((r) => r.served(requestId));
      if (found.length > 0 || Date.now() > deadline) return found;
      await sleep(20);
    }
  };

  const requestId = (res: HttpAnswer) => String(res.headers['x-request-id']);

  /** Sealed decision records (after waiting for the outbox to drain). */
  const sealedRecords = async (where: string, params: unknown[] = []) => {
    await c.sealed();
    return (await c.query<{ record: string }>(`SELECT record FROM decisions WHERE ${where} ORDER BY seq`, params)).map((r) => JSON.parse(r.record));
  };

  it('exchanges, relay requests and webhook deliveries through the balancer are spread over all three replicas and succeed', async () => {
    for (const r of c.replicas) expect((await c.readyz(r)).checks.change_feed).toBe('ok');

    // Exchanges: each on a new connection, so the balancer picks the next replica each time.
    const tokens: string[] = [];
    const exchangeIds: string[] = [];
    for (let i = 0; i < 9; i++) {
      const res = await exchange(c.balancer.url, await bkToken());
      expect(res.status, res.text).toBe(200);
      tokens.push(res.body.access_token);
      exchangeIds.push(requestId(res));
    }
    const exchangeServers = await Promise.all(exchangeIds.map(servedBy));
    // Each exchange was served by exactly one replica, and every replica served some.
    for (const s of exchangeServers) expect(s).toHaveLength(1);
    const exchangesPer = c.replicas.map((r) => exchangeServers.filter((s) => s[0] === r).length);
    expect(exchangesPer.every((n) => n > 0), `exchanges per replica: ${exchangesPer}`).toBe(true);

    // Relay requests: the balancer's record says which replica each connection reached.
    const before = c.balancer.perReplica();
    const forwardedBefore = c.upstream.requests.length;
    for (let i = 0; i < 9; i++) {
      const res = await relay(c.balancer.url, tokens[i]!, `spread-${i}.txt`);
      expect(res.status, res.text).toBe(200);
      expect(res.body.url).toBe(`/base/spread-${i}.txt`);
    }
    const relayPer = c.balancer.perReplica().map((n, i) => n - before[i]!);
    expect(relayPer.every((n) => n > 0), `relay requests per replica: ${relayPer}`).toBe(true);
    const forwarded = c.upstream.requests.slice(forwardedBefore);
    expect(forwarded.map((r) => r.url).sort()).toEqual(Array.from({ length: 9 }, (_, i) => `/base/spread-${i}.txt`).sort());
    for (const r of forwarded) expect(r.headers.authorization).toBe(`Bearer ${CLUSTER_UPSTREAM_SECRET}`);

    // Webhook deliveries: job.finished for six different jobs, each answered after its revocation.
    const hookIds: string[] = [];
    const hookJobs: string[] = [];
    for (let i = 0; i < 6; i++) {
      const run = runningJob();
      const res = await deliverJobFinished(c.balancer.url, finishedBody(run));
      expect(res.status, res.text).toBe(202);
      expect(res.body).toEqual({ accepted: true, event: 'job.finished' });
      hookIds.push(requestId(res));
      hookJobs.push(run.job.id);
    }
    const hookServers = await Promise.all(hookIds.map(servedBy));
    for (const s of hookServers) expect(s).toHaveLength(1);
    const hooksPer = c.replicas.map((r) => hookServers.filter((s) => s[0] === r).length);
    expect(hooksPer.every((n) => n > 0), `webhooks per replica: ${hooksPer}`).toBe(true);
    const revokes = await sealedRecords(`action = 'revoke'`);
    for (const job of hookJobs) expect(revokes.filter((r) => r.principal === `Port::Job::${JSON.stringify(job)}`)).toHaveLength(1);

    console.log(`[replicas] spread over A/B/C — exchanges ${exchangesPer.join('/')}, relay ${relayPer.join('/')}, webhooks ${hooksPer.join('/')}`);
  });

  it('a Buildkite token exchanged on replica A is refused on B and C; exchanged on all three at once, exactly one succeeds', async () => {
    const token = await bkToken();
    const first = await exchange(A.url, token);
    expect(first.status, first.text).toBe(200);
    for (const other of [B, C]) {
      const again = await exchange(other.url, token);
      expect(again.status, again.text).toBe(400);
      expect(again.body).toMatchObject({ error: 'invalid_grant', error_description: expect.stringMatching(/already exchanged/) });
    }

    // Racing: the single-use check is the database's, not any replica's memory.
    for (let round = 0; round < 3; round++) {
      const raced = await bkToken();
      const answers = await Promise.all(c.replicas.map((r) => exchange(r.url, raced)));
      const statuses = answers.map((a) => a.status).sort();
      expect(statuses, answers.map((a) => a.text).join('\n')).toEqual([200, 400, 400]);
    }
  });

  it('a token revoked through A is refused on B and C once the change feed delivers it (time measured, not asserted)', async () => {
    const oidc = c.sim.createJob({ pipelineSlug: 'deploy', branch: 'main' });
    const token = await portToken(B.url, oidc);
    for (const r of [A, B, C]) expect((await relay(r.url, token, 'before-revocation.txt')).status).toBe(200);

    const sentAt = performance.now();
    const revoked = await send(`${A.url}/v1/revocations`, {
      method: 'POST',
      headers: { authorization: `Bearer ${CLUSTER_ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ scope: 'job', id: oidc.jobId, reason: 'replica propagation test' }),
    });
    const ackAt = performance.now();
    expect(revoked.status, revoked.text).toBe(200);
    // The replica that took the revocation refuses at once.
    expect((await relay(A.url, token, 'after-revocation.txt')).status).toBe(401);

    const refusedAfter = async (r: Replica): Promise<number> => {
      const deadline = ackAt + 10_000;
      for (;;) {
        const res = await relay(r.url, token, 'after-revocation.txt');
        if (res.status === 401) {
          expect(res.body).toMatchObject({ error: 'invalid_token', error_description: expect.stringMatching(/revoked/) });
          return performance.now();
        }
        expect(res.status, res.text).toBe(200);
        if (performance.now() > deadline) throw new Error(`replica ${r.name} still accepts the revoked token 10 s after the revocation`);
        await sleep(2);
      }
    };
    const [onB, onC] = await Promise.all([refusedAfter(B), refusedAfter(C)]);
    const ms = (t: number) => Math.max(0, Math.round(t - ackAt));
    console.log(
      `[replicas] revocation through A (answered in ${Math.round(ackAt - sentAt)} ms) refused on B after ${ms(onB)} ms, on C after ${ms(onC)} ms (from A's answer; feed_max_lag 5s)`,
    );
    // And stays refused everywhere, exchange included.
    for (const r of [A, B, C]) expect((await relay(r.url, token, 'later.txt')).status).toBe(401);
    const exchanged = await exchange(C.url, await bkToken(oidc));
    expect(exchanged.status, exchanged.text).toBe(400);
    expect(exchanged.body).toMatchObject({ error: 'invalid_grant', error_description: expect.stringMatching(/revoked/) });
  });

  it('the same job.finished delivery POSTed to B and C at once is processed once: one revocation in the log, the job refused everywhere', async () => {
    const run = runningJob();
    const token = await portToken(A.url, run.oidc);
    const body = finishedBody(run);
    const answers = await Promise.all([deliverJobFinished(B.url, body), deliverJobFinished(C.url, body)]);
    const texts = answers.map((a) => `${a.status} ${a.text}`).join(' | ');
    // One processed it; the other found the work claimed or done: a replay (token mode) or a duplicate.
    const processed = answers.filter((a) => a.status === 202 && a.body?.duplicate === undefined);
    const turnedAway = answers.filter((a) => (a.status === 409 && a.body?.error === 'replayed_delivery') || (a.status === 202 && a.body?.duplicate === true));
    expect(processed, texts).toHaveLength(1);
    expect(turnedAway, texts).toHaveLength(1);
    // Sent again later, to A: still not processed again.
    const later = await deliverJobFinished(A.url, body);
    expect([409, 202], `${later.status} ${later.text}`).toContain(later.status);
    if (later.status === 202) expect(later.body.duplicate).toBe(true);

    const revokes = await sealedRecords(`action = 'revoke' AND principal = $1`, [`Port::Job::${JSON.stringify(run.job.id)}`]);
    expect(revokes, JSON.stringify(revokes)).toHaveLength(1);
    expect(revokes[0].reason).toMatch(/job finished/);
    const work = await c.query<{ n: string }>('SELECT count(*) AS n FROM webhook_work');
    expect(Number(work[0]!.n)).toBeGreaterThan(0);
    for (const r of [A, B, C]) {
      const deadline = Date.now() + 5000;
      let status = 0;
      while ((status = (await relay(r.url, token, 'after-finish.txt')).status) === 200 && Date.now() < deadline) await sleep(10);
      expect(status, `replica ${r.name}`).toBe(401);
    }
    console.log(`[replicas] one job.finished to B and C at once: ${texts}; a third to A: ${later.status}`);
  });

  it('kill -9 of the leader under load: no acknowledged exchange lost, the log verifies, the lease moves, retrying clients lose at most the in-flight', async () => {
    const leaders = await c.leaders();
    expect(leaders.map((r) => r.name), 'exactly one leader').toHaveLength(1);
    const dead = leaders[0]!;
    const survivors = c.replicas.filter((r) => r !== dead);
    for (const r of survivors) expect((await c.readyz(r)).checks.role).toBe('ok (follower, postgres)');
    expect((await c.readyz(dead)).checks.role).toBe('ok (leader, postgres)');
    const [leaseBefore] = await c.query<{ owner: string }>(`SELECT owner FROM leases WHERE name = 'port-leader'`);
    expect(leaseBefore!.owner.split(':')[1]).toBe(String(dead.pid));

    // Clients: each request on a new connection, retried once (same request) on a connection error or a 5xx.
    const CONCURRENCY = 4;
    type Outcome = { ok: true; requestId: string; retried: boolean } | { ok: false; reason: string };
    const outcomes: Outcome[] = [];
    let stop = false;
    const attempt = async (subject: string): Promise<{ res?: HttpAnswer; err?: string }> => {
      try {
        return { res: await exchange(c.balancer.url, subject) };
      } catch (err) {
        return { err: (err as NodeJS.ErrnoException).code ?? (err as Error).message };
      }
    };
    const client = async () => {
      while (!stop) {
        const subject = await bkToken();
        let a = await attempt(subject);
        let retried = false;
        if (a.err !== undefined || a.res!.status >= 500) {
          retried = true;
          a = await attempt(subject);
        }
        if (a.res?.status === 200) outcomes.push({ ok: true, requestId: requestId(a.res), retried });
        else outcomes.push({ ok: false, reason: a.err ?? `${a.res!.status} ${a.res!.text}` });
      }
    };
    const clients = Array.from({ length: CONCURRENCY }, client);
    let beforeKill = 0;
    let killAt = 0;
    let exitAt = 0;
    let newLeader: Replica | undefined;
    let takeoverMs = 0;
    let backlog = 0;
    try {
      await sleep(1500);
      beforeKill = outcomes.length;

      killAt = Date.now();
      dead.proc.child.kill('SIGKILL');
      await dead.proc.exited;
      exitAt = Date.now();

      // A survivor takes the lease (within about lease_ttl plus a renewal period); load goes on meanwhile.
      while (!newLeader && Date.now() - killAt < 4 * LEASE_TTL_MS) {
        newLeader = (await c.leaders())[0];
        if (!newLeader) await sleep(50);
      }
      takeoverMs = Date.now() - killAt;
      // What piled up unsealed while nobody led (replicas kept logging into the outbox).
      backlog = Number((await c.query<{ n: string }>('SELECT count(*) AS n FROM decision_outbox'))[0]!.n);
      if (newLeader) await sleep(1000);
    } finally {
      stop = true;
      await Promise.all(clients);
    }
    if (!newLeader) throw new Error(`no survivor took the lease within ${4 * LEASE_TTL_MS} ms of the kill`);

    const ok = outcomes.filter((o): o is Extract<Outcome, { ok: true }> => o.ok);
    const failed = outcomes.filter((o): o is Extract<Outcome, { ok: false }> => !o.ok);
    const inFlight = c.balancer.openDuring(dead.index, killAt, exitAt);
    console.log(
      `[replicas] kill -9 of leader ${dead.name} (pid ${dead.pid}) under ${CONCURRENCY} clients: ${outcomes.length} exchanges (${beforeKill} before the kill), ` +
        `${ok.filter((o) => o.retried).length} succeeded on retry, ${failed.length} failed after retry${failed.length ? ` (${failed.map((f) => f.reason.slice(0, 120)).join('; ')})` : ''}; ` +
        `${inFlight.length} connections open on ${dead.name} at the kill; ${newLeader.name} leader ${takeoverMs} ms after the kill (lease_ttl 3s), ` +
        `${backlog} decisions in the outbox at the takeover`,
    );
    expect(beforeKill).toBeGreaterThan(0);
    expect(ok.length).toBeGreaterThan(beforeKill);
    expect(failed.length, JSON.stringify(failed)).toBeLessThanOrEqual(inFlight.length);
    expect(failed.length).toBeLessThanOrEqual(CONCURRENCY);

    // The lease moved to a survivor, and only one replica leads.
    expect(survivors).toContain(newLeader);
    expect((await c.leaders()).map((r) => r.name)).toEqual([newLeader.name]);
    const [leaseAfter] = await c.query<{ owner: string }>(`SELECT owner FROM leases WHERE name = 'port-leader'`);
    expect(leaseAfter!.owner.split(':')[1]).toBe(String(newLeader.pid));
    // The survivors are ready (change feed current, store writable).
    for (const r of survivors) {
      const ready = await c.readyz(r);
      expect(ready.status, JSON.stringify(ready.checks)).toBe(200);
      expect(ready.checks.change_feed).toBe('ok');
    }

    // Every acknowledged exchange is in the sealed log (its decision carries the request id Port answered with).
    const exchanges = await sealedRecords(`action = 'exchange' AND decision = 'allow'`);
    const logged = new Map<string, number>();
    for (const r of exchanges) logged.set(r.context?.request_id, (logged.get(r.context?.request_id) ?? 0) + 1);
    const missing = ok.filter((o) => !logged.has(o.requestId));
    expect(missing, `acknowledged exchanges missing from the log: ${missing.map((m) => m.requestId).join(', ')}`).toEqual([]);
    // And each exactly once (sealing twice, or by two leaders, would duplicate entries).
    expect(ok.filter((o) => logged.get(o.requestId) !== 1)).toEqual([]);
    const unsealed = await c.query<{ n: string }>('SELECT count(*) AS n FROM decision_outbox');
    expect(Number(unsealed[0]!.n)).toBe(0);

    const verify = await c.runPort(['audit', 'verify', '-c', c.configFile]);
    expect(verify.code, `${verify.stdout}\n${verify.stderr}`).toBe(0);
    expect(verify.stdout).toMatch(/^OK: every entry matches its hash and its predecessor/m);
    console.log(`[replicas] port audit verify: ${verify.stdout.split('\n')[0]}`);
    // The survivors took the death in their stride: nothing logged at level error or above.
    for (const r of survivors) {
      const errors = r.proc.stdout().split('\n').filter((l) => /"level":(5\d|60)/.test(l));
      expect(errors, `replica ${r.name} logged errors`).toEqual([]);
    }
  }, 45_000);
});
