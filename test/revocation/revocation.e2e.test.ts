import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jtiHash } from '../../src/audit/token-hash.js';
import { decodeJwt } from 'jose';
import { ADMIN_TOKEN, buildBy, nextSecond, pendingRequest, startRevocationHarness, works, type RevocationHarness } from './support.js';

let h: RevocationHarness;
beforeAll(async () => {
  h = await startRevocationHarness();
}, 60_000);
afterAll(async () => {
  await h?.close();
});


const nowSeconds = () => Math.floor(Date.now() / 1000);

async function lastRevokeRecord() {
  const log = await h.port.store.decisions.read(0, 100_000);
  return log.filter((e) => e.record.action === 'revoke').at(-1)!.record;
}

describe('who started the build (build_creator)', () => {
  it('puts the creator in the Port token and in policy, and records that it was known', async () => {
    await h.port.store.users.upsert({ email: 'dee@acme.test', active: true, groups: ['deployers'], updatedAt: Date.now() });
    const { a } = buildBy(h, 'Dee@Acme.test');
    const token = await h.portToken(a, { scope: 'npm-publish' });
    expect(decodeJwt(token).build_creator).toBe('dee@acme.test');
    const log = await h.port.store.decisions.read(0, 100_000);
    const assume = log.filter((e) => e.record.action === 'assume').at(-1)!.record;
    expect(assume).toMatchObject({ decision: 'allow', context: { build_creator: { known: true, in_directory: true }, job: { build_creator: 'dee@acme.test' } } });
  });

  it('a creator outside the group, or none, does not satisfy the policy', async () => {
    const { a } = buildBy(h, 'outsider@acme.test');
    const res = await h.exchange(await h.bkToken(a), { scope: 'npm-publish' });
    expect(res.status).toBe(403);
    const none = buildBy(h, null);
    expect((await h.exchange(await h.bkToken(none.a), { scope: 'npm-publish' })).status).toBe(403);
  });

  it('with the Buildkite API down the creator is unknown: no creator grant, but the exchange itself still works', async () => {
    await h.port.store.users.upsert({ email: 'down@acme.test', active: true, groups: ['deployers'], updatedAt: Date.now() });
    const { a, b } = buildBy(h, 'down@acme.test');
    h.sim.failApiRequests(20, 503);
    try {
      expect((await h.exchange(await h.bkToken(a), { scope: 'npm-publish' })).status).toBe(403);
      const plain = await h.exchange(await h.bkToken(b));
      expect(plain.status).toBe(200);
      expect(decodeJwt(plain.body.access_token).build_creator).toBeUndefined();
    } finally {
      h.sim.failApiRequests(0);
    }
    const log = await h.port.store.decisions.read(0, 100_000);
    expect(log.filter((e) => e.record.action === 'exchange').at(-1)!.record.context).toMatchObject({ build_creator: { known: false, status: 'unavailable' } });
  });
});

describe('revocation by scope, over HTTP and through the CLI', () => {
  it('token: `port revoke token -` refuses that token only', async () => {
    const { a } = buildBy(h, 'tok@acme.test');
    const t1 = await h.portToken(a);
    const t2 = await h.portToken(a);
    expect(await works(h, t1)).toBe(true);
    const out = await h.cli(['token', '-', '--reason', 'leaked in a log'], t1);
    expect(out.code, out.stderr).toBe(0);
    expect(out.stdout).toContain(`revoked token ${String(decodeJwt(t1).jti)}`);
    expect(out.stdout).toContain('reason: leaked in a log');
    expect(await works(h, t1)).toBe(false);
    expect(await works(h, t2)).toBe(true);
    const rec = await lastRevokeRecord();
    expect(rec).toMatchObject({ principal: 'admin', context: { scope: 'token', jti_sha256: jtiHash(String(decodeJwt(t1).jti)) } });
    expect(JSON.stringify(rec)).not.toContain(String(decodeJwt(t1).jti));
  });

  it('job: every token of the job, not its sibling; its Buildkite tokens buy nothing after', async () => {
    const { a, b } = buildBy(h, 'job@acme.test');
    const ta = await h.portToken(a);
    const tb = await h.portToken(b);
    const res = await h.revoke({ scope: 'job', id: a.jobId, reason: 'compromised' });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ scope: 'job', id: a.jobId, reason: 'compromised', approvals_closed: 0, sessions_ended: 0 });
    expect(await works(h, ta)).toBe(false);
    expect(await works(h, tb)).toBe(true);
    const fresh = await h.exchange(await h.bkToken(a, nowSeconds() + 2));
    expect(fresh.status).toBe(400);
    expect(fresh.body.error_description).toMatch(/job .*revoked/);
  });

  it('build: every job of the build, whenever issued; other builds untouched; its pending approval closed', async () => {
    const { build, a, b } = buildBy(h, 'bld@acme.test');
    const other = buildBy(h, 'bld@acme.test');
    const ta = await h.portToken(a);
    const tb = await h.portToken(b);
    const to = await h.portToken(other.a);
    const buildId = `acme/deploy/${build.number}`;
    await h.port.store.approvals.open(pendingRequest({ build: { pipeline: 'deploy', number: build.number }, jobId: crypto.randomUUID() }), []);
    const out = await h.cli(['build', buildId, '--json']);
    expect(out.code, out.stderr).toBe(0);
    expect(JSON.parse(out.stdout)).toMatchObject({ scope: 'build', id: buildId, approvals_closed: 1 });
    expect(await works(h, ta)).toBe(false);
    expect(await works(h, tb)).toBe(false);
    expect(await works(h, to)).toBe(true);
    expect((await h.exchange(await h.bkToken(b, nowSeconds() + 2))).status).toBe(400);
    expect((await h.port.store.approvals.list({ status: 'revoked' })).some((r) => r.build.number === build.number)).toBe(true);
  });

  it('user: every token of their builds, old and new, until lifted; their requests closed, approvals withdrawn, sessions ended; AWS sessions listed', async () => {
    // Its own Port: a user revocation in force changes how unknown creators are treated for everyone.
    const u = await startRevocationHarness();
    try {
      const email = 'mallory@acme.test';
      await u.port.store.users.upsert({ email, active: true, groups: ['deployers'], updatedAt: Date.now() });
      const theirs = buildBy(u, email);
      const others = buildBy(u, 'someone-else@acme.test');
      const t = await u.portToken(theirs.a);
      const tOther = await u.portToken(others.a);
      const oldBk = await u.bkToken(theirs.b);
      const own = pendingRequest({ build: { pipeline: 'deploy', number: theirs.build.number, creator: email }, jobId: crypto.randomUUID() });
      const elsewhere = pendingRequest({ build: { pipeline: 'deploy', number: others.build.number }, jobId: crypto.randomUUID(), approvals: [email, 'ok@acme.test'] });
      await u.port.store.approvals.open(own, []);
      await u.port.store.approvals.open(elsewhere, []);
      await u.port.store.sessions.create({ idHash: 'a'.repeat(64), email, groups: [], csrfToken: 'x', createdAt: Date.now(), expiresAt: Date.now() + 3_600_000 });
      const expiresAt = Date.now() + 1_800_000;
      await u.port.store.issued.record({
        id: crypto.randomUUID(),
        credential: 'prod-deploy',
        type: 'aws_role',
        jobId: theirs.a.jobId,
        build: `acme/deploy/${theirs.build.number}`,
        agentId: theirs.a.agentId,
        creator: email,
        tokenJtiHash: jtiHash(String(decodeJwt(t).jti)),
        issuedAt: Date.now(),
        expiresAt,
        recallable: false,
        facts: { role_arn: 'arn:aws:iam::123456789012:role/deploy', session_name: `port-${theirs.a.jobId.slice(0, 8)}` },
      });

      const out = await u.cli(['user', 'Mallory@Acme.test', '--reason', 'left the company']);
      expect(out.code, out.stderr).toBe(0);
      expect(out.stdout).toContain('revoked user mallory@acme.test');
      expect(out.stdout).toContain('approval requests closed: 1; approvals withdrawn: 1');
      expect(out.stdout).toContain('approver sessions ended: 1');
      expect(out.stdout).toMatch(/prod-deploy \(session port-[0-9a-f]{8}\)/);
      expect(out.stdout).toContain(new Date(expiresAt).toISOString());
      expect(out.stdout).toContain('Covers every token of a build Port knows this person started');

      expect(await works(u, t)).toBe(false);
      expect(await works(u, tOther)).toBe(true);
      // The running job asks its agent for a fresh Buildkite token: it buys nothing either.
      expect((await u.exchange(oldBk)).status).toBe(400);
      await nextSecond();
      const fresh = await u.exchange(await u.bkToken(theirs.b));
      expect(fresh.status).toBe(400);
      expect(fresh.body.error_description).toMatch(/person who started this build is revoked until/);
      // A new build of theirs, too: "everything that user started".
      const later = buildBy(u, email);
      expect((await u.exchange(await u.bkToken(later.a))).status).toBe(400);

      expect((await u.port.store.approvals.get(own.id))!.status).toBe('revoked');
      const left = (await u.port.store.approvals.get(elsewhere.id))!;
      expect(left.status).toBe('pending');
      expect(left.approvals.map((a) => a.email)).toEqual(['ok@acme.test']);
      expect(await u.port.store.sessions.get('a'.repeat(64))).toBeUndefined();
      const log = await u.port.store.decisions.read(0, 100_000);
      const rec = log.filter((e) => e.record.action === 'revoke').at(-1)!.record;
      expect(rec).toMatchObject({ principal: 'admin', resource: 'Port::User::"mallory@acme.test"', context: { scope: 'user', reason: 'left the company', sessions_ended: 1, credentials_not_recallable: 1 } });

      // Lifted through the CLI: their builds get tokens again, the old Port token works again.
      const lifted = await u.cli(['user', email, '--lift', '--reason', 'wrong person']);
      expect(lifted.code, lifted.stderr).toBe(0);
      expect(lifted.stdout).toContain('lifted the user revocation of mallory@acme.test');
      expect((await u.exchange(await u.bkToken(later.b))).status).toBe(200);
      expect(await works(u, t)).toBe(true);
      const unrevoke = (await u.port.store.decisions.read(0, 100_000)).filter((e) => e.record.action === 'unrevoke').at(-1)!.record;
      expect(unrevoke).toMatchObject({ principal: 'admin', resource: 'Port::User::"mallory@acme.test"', context: { scope: 'user', reason: 'wrong person', lifted: 1 } });
    } finally {
      await u.close();
    }
  }, 60_000);

  it('agent: every token of a job on it, old and new (a running job asking for a fresh Buildkite token too); for 24 h by default; another agent untouched', async () => {
    const agentId = crypto.randomUUID();
    const j1 = h.sim.createJob({ agentId, pipelineSlug: 'deploy', branch: 'main' });
    const j2 = h.sim.createJob({ pipelineSlug: 'deploy', branch: 'main' });
    const t1 = await h.portToken(j1);
    const t2 = await h.portToken(j2);
    const oldBk = await h.bkToken(j1);
    const before = Date.now();
    const res = await h.revoke({ scope: 'agent', id: agentId.toUpperCase() });
    expect(res.status).toBe(200);
    expect(res.body.id).toBe(agentId);
    const lasts = Date.parse(res.body.expires_at) - Date.parse(res.body.revoked_at);
    expect(lasts).toBe(24 * 3600 * 1000);
    expect(Date.parse(res.body.revoked_at)).toBeGreaterThanOrEqual(before);
    expect(await works(h, t1)).toBe(false);
    expect(await works(h, t2)).toBe(true);
    expect((await h.exchange(oldBk)).status).toBe(400);
    // The attack: the same job on the revoked agent mints a fresh Buildkite token a second later.
    await nextSecond();
    const again = await h.exchange(await h.bkToken(j1));
    expect(again.status).toBe(400);
    expect(again.body.error_description).toMatch(/agent this token names is revoked until/);
    const j3 = h.sim.createJob({ agentId, pipelineSlug: 'deploy', branch: 'main' });
    expect((await h.exchange(await h.bkToken(j3))).status).toBe(400);
    // Lifted over HTTP: the agent's jobs get tokens again.
    const lift = await h.lift({ scope: 'agent', id: agentId, reason: 'agent rebuilt' });
    expect(lift.status, JSON.stringify(lift.body)).toBe(200);
    expect(lift.body).toMatchObject({ scope: 'agent', id: agentId, lifted: 1, reason: 'agent rebuilt', still_revoked_until: null });
    expect(await works(h, t1)).toBe(true);
    expect(await works(h, await h.portToken(j3))).toBe(true);
    // Nothing left to lift: 404, nothing logged.
    const twice = await h.lift({ scope: 'agent', id: agentId });
    expect(twice.status).toBe(404);
    expect(twice.body.error).toBe('not_revoked');
  });

  it('pool: every token of a job in the cluster/queue, old and new; other queues untouched; expires_in bounds it', async () => {
    const inPool = h.sim.createJob({ clusterName: 'linux', queueKey: 'deploy-pool' });
    const otherQueue = h.sim.createJob({ clusterName: 'linux', queueKey: 'builds' });
    const t1 = await h.portToken(inPool);
    const t2 = await h.portToken(otherQueue);
    const out = await h.cli(['pool', 'linux/deploy-pool', '--for', '3s', '--json']);
    expect(out.code, out.stderr).toBe(0);
    const result = JSON.parse(out.stdout);
    expect(Date.parse(result.expires_at) - Date.parse(result.revoked_at)).toBe(3000);
    expect(await works(h, t1)).toBe(false);
    expect(await works(h, t2)).toBe(true);
    const next = h.sim.createJob({ clusterName: 'linux', queueKey: 'deploy-pool' });
    expect((await h.exchange(await h.bkToken(next))).status).toBe(400);
    // In force while listed; gone once it expired, and the pool's jobs work again.
    const listed = await fetch(`${h.url}/v1/revocations`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    const body = (await listed.json()) as { revocations: { scope: string; id: string; by: string[] }[] };
    expect(body.revocations.find((r) => r.scope === 'pool' && r.id === 'linux/deploy-pool')).toMatchObject({ by: ['admin'] });
    await new Promise((r) => setTimeout(r, Date.parse(result.expires_at) - Date.now() + 100));
    expect(await works(h, t1)).toBe(true);
    expect(await works(h, await h.portToken(next))).toBe(true);
  });

  it('GET /v1/revocations lists what is in force, for the admin only', async () => {
    const agentId = crypto.randomUUID();
    expect((await h.revoke({ scope: 'agent', id: agentId, expires_in: '1h', reason: 'listed' })).status).toBe(200);
    const res = await fetch(`${h.url}/v1/revocations`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { revocations: { scope: string; id: string; reason: string; by: string[]; revoked_at: string; expires_at: string }[] };
    const listed = body.revocations.find((r) => r.scope === 'agent' && r.id === agentId)!;
    expect(listed).toMatchObject({ reason: 'listed', by: ['admin'] });
    expect(Date.parse(listed.expires_at) - Date.parse(listed.revoked_at)).toBe(3_600_000);
    const { a } = buildBy(h, 'lister@acme.test');
    expect((await fetch(`${h.url}/v1/revocations`, { headers: { authorization: `Bearer ${await h.portToken(a)}` } })).status).toBe(401);
    expect((await fetch(`${h.url}/v1/revocations`)).status).toBe(401);
    expect((await h.lift({ scope: 'agent', id: agentId })).status).toBe(200);
  });
});

describe('self-revocation by a job (the plugin pre-exit hook)', () => {
  it('a Port token revokes its own job, idempotently, and nothing else', async () => {
    const { a, b } = buildBy(h, 'self@acme.test');
    const ta = await h.portToken(a);
    const ta2 = await h.portToken(a);
    const tb = await h.portToken(b);
    for (const body of [
      { scope: 'job', id: b.jobId },
      { scope: 'build', id: `acme/deploy/${a.buildNumber}` },
      { scope: 'agent', id: a.agentId },
      { scope: 'token', id: String(decodeJwt(tb).jti) },
    ]) {
      const res = await h.revoke(body, ta);
      expect(res.status, JSON.stringify(body)).toBe(403);
      expect(res.body.error).toBe('access_denied');
    }
    expect(await works(h, tb)).toBe(true);
    expect(await works(h, ta)).toBe(true);

    const res = await h.revoke({ scope: 'job', id: a.jobId }, ta);
    expect(res.status).toBe(200);
    expect(await works(h, ta)).toBe(false);
    expect(await works(h, ta2)).toBe(false);
    expect(await works(h, tb)).toBe(true);
    const rec = await lastRevokeRecord();
    expect(rec).toMatchObject({
      principal: `Port::Job::"${a.jobId}"`,
      context: { scope: 'job', job: { job_id: a.jobId, build_creator: 'self@acme.test' }, port_token: { jti_sha256: jtiHash(String(decodeJwt(ta).jti)) } },
    });
    // Again (the job.finished webhook may have come first): still answered.
    expect((await h.revoke({ scope: 'job', id: a.jobId }, ta)).status).toBe(200);
    // A revoked token still can't revoke anyone else.
    expect((await h.revoke({ scope: 'job', id: b.jobId }, ta)).status).toBe(403);
  });

  it('refuses tokens that are not Port tokens', async () => {
    const { a } = buildBy(h, 'bk@acme.test');
    expect((await h.revoke({ scope: 'job', id: a.jobId }, await h.bkToken(a))).status).toBe(401);
    expect((await h.revoke({ scope: 'job', id: a.jobId }, 'wrong-admin-token')).status).toBe(401);
  });
});

describe('input validation at the edge', () => {
  const cases: [string, unknown, RegExp][] = [
    ['unknown scope', { scope: 'everything', id: 'x' }, /scope must be one of/],
    ['job id not a UUID', { scope: 'job', id: '../../etc' }, /job revocation's id must be a Buildkite job id/],
    ['agent id not a UUID', { scope: 'agent', id: 'agent-1' }, /agent id/],
    ['build id malformed', { scope: 'build', id: 'acme/deploy' }, /org\/pipeline\/number/],
    ['build number not a number', { scope: 'build', id: 'acme/deploy/4x' }, /org\/pipeline\/number/],
    ['user not an e-mail', { scope: 'user', id: 'mallory' }, /e-mail/],
    ['pool without queue', { scope: 'pool', id: 'linux' }, /cluster_name\/queue_key/],
    ['id too long', { scope: 'user', id: `${'a'.repeat(400)}@acme.test` }, /longer than 320/],
    ['id not a string', { scope: 'job', id: 42 }, /id must be a string/],
    ['missing id', { scope: 'job' }, /id/],
    ['unknown field', { scope: 'job', id: crypto.randomUUID(), everything: true }, /Unknown field/],
    ['reason too long', { scope: 'job', id: crypto.randomUUID(), reason: 'x'.repeat(600) }, /reason is longer/],
    ['not an object', ['job'], /expected object|Invalid input/i],
  ];
  it.each(cases)('%s → 400 with a specific message, nothing revoked', async (_name, body, message) => {
    const before = (await h.port.store.revocations.listActive(Date.now())).length;
    const res = await h.revoke(body);
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_request');
    expect(res.body.error_description).toMatch(message);
    expect((await h.port.store.revocations.listActive(Date.now())).length).toBe(before);
  });

  it('wrong content type → 415; oversized body → 413; bad JSON → 400', async () => {
    const id = crypto.randomUUID();
    expect((await h.revoke(undefined, ADMIN_TOKEN, { contentType: 'application/x-www-form-urlencoded', raw: `scope=job&id=${id}` })).status).toBe(415);
    const big = await h.revoke(undefined, ADMIN_TOKEN, { raw: JSON.stringify({ scope: 'job', id, reason: 'x'.repeat(10_000) }) });
    expect(big.status).toBe(413);
    expect(big.body.error).toBe('request_too_large');
    const bad = await h.revoke(undefined, ADMIN_TOKEN, { raw: '{"scope":' });
    expect(bad.status).toBe(400);
    expect(bad.body.error_description).toMatch(/not valid JSON/);
    expect(h.port.revocations.revocations.get('job', id)).toBeUndefined();
  });

  it('the CLI refuses bad input before calling Port', async () => {
    const out = await h.cli(['job', 'not-a-uuid']);
    expect(out.code).toBe(2);
    expect(out.stderr).toMatch(/Buildkite job id/);
    const scope = await h.cli(['galaxy', 'x']);
    expect(scope.code).toBe(2);
    expect(scope.stderr).toMatch(/unknown scope/);
  });
});
