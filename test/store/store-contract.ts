import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ApprovalRequestRecord } from '../../src/approvals/records.js';
import type { DecisionRecord } from '../../src/audit/decision-record.js';
import { entryHash, GENESIS_HASH } from '../../src/audit/hash-chain.js';
import type { Store } from '../../src/store/store.js';

export function record(i: number, extra: Partial<DecisionRecord> = {}): DecisionRecord {
  return {
    id: randomUUID(),
    time: new Date(1_700_000_000_000 + i * 1000).toISOString(),
    principal: `Port::Job::"job-${i}"`,
    action: 'exchange',
    resource: 'Port::Organization::"acme"',
    decision: i % 2 ? 'allow' : 'deny',
    policies: [{ id: `p${i}`, reason: 'because' }],
    reason: `decision ${i}`,
    context: { i },
    ...extra,
  };
}

export function approvalRequest(jobId: string, expiresAt: number): ApprovalRequestRecord {
  return {
    id: randomUUID(),
    jobId,
    buildId: `build-of-${jobId}`,
    build: { organization: 'acme', pipeline: 'deploy', number: 7, branch: 'main', tag: null, commit: 'c'.repeat(40), source: 'ui' },
    step: { step: 'release', fields: {}, label: 'Release?', key: 'release' },
    authors: ['dev@acme.test'],
    requirement: { approvals: 1, groups: [], policies: [], reason: 'needs a review' },
    status: 'pending',
    createdAt: 0,
    expiresAt,
    approvals: [],
  };
}

/**
 * The behaviour every Store must have, whatever its backend. A new backend passes
 * this suite before anything uses it.
 */
export function describeStoreContract(name: string, open: () => Promise<{ store: Store; reopen?: () => Promise<Store>; cleanup: () => Promise<void> }>): void {
  describe(`Store contract: ${name}`, () => {
    let store: Store;
    let reopen: (() => Promise<Store>) | undefined;
    let cleanup: () => Promise<void>;
    beforeEach(async () => {
      ({ store, reopen, cleanup } = await open());
    });
    afterEach(async () => {
      await store.close().catch(() => undefined);
      await cleanup();
    });

    it('chains decisions in order, each hash binding seq, previous hash and record', async () => {
      const a = await store.appendDecisions([record(1), record(2)]);
      const b = await store.appendDecisions([record(3)]);
      const all = [...a, ...b];
      expect(all.map((e) => e.seq)).toEqual([1, 2, 3]);
      expect(all[0]!.prevHash).toBe(GENESIS_HASH);
      for (const [i, e] of all.entries()) {
        expect(e.hash).toBe(entryHash(e.seq, e.prevHash, e.record));
        if (i > 0) expect(e.prevHash).toBe(all[i - 1]!.hash);
      }
      expect(await store.readDecisions(1, 10)).toEqual(all.slice(1));
      expect((await store.lastDecision())!.seq).toBe(3);
    });

    it('keeps one chain under concurrent appends', async () => {
      await Promise.all(Array.from({ length: 50 }, (_, i) => store.appendDecisions([record(i)])));
      const all = await store.readDecisions(0, 100);
      expect(all.map((e) => e.seq)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
      for (let i = 1; i < all.length; i++) expect(all[i]!.prevHash).toBe(all[i - 1]!.hash);
    });

    it('continues the chain after reopening', async () => {
      if (!reopen) return;
      await store.appendDecisions([record(1)]);
      await store.close();
      store = await reopen();
      const [e] = await store.appendDecisions([record(2)]);
      expect(e!.seq).toBe(2);
      expect(e!.prevHash).toBe((await store.readDecisions(0, 1))[0]!.hash);
    });

    it('consumes a replay key once, and again only after it expired', async () => {
      const later = Date.now() + 60_000;
      expect(await store.consumeOnce('jti:a', later)).toBe(true);
      expect(await store.consumeOnce('jti:a', later)).toBe(false);
      const results = await Promise.all(Array.from({ length: 10 }, () => store.consumeOnce('jti:b', later)));
      expect(results.filter(Boolean)).toHaveLength(1);
      expect(await store.consumeOnce('jti:c', Date.now() - 1)).toBe(true);
      expect(await store.consumeOnce('jti:c', later)).toBe(true);
    });

    it('consumes a key and appends in one write, or appends the replay record instead', async () => {
      const later = Date.now() + 60_000;
      const first = await store.consumeOnceAndAppend('jti:x', later, [record(1), record(2)], [record(9, { reason: 'replayed' })]);
      expect(first.firstUse).toBe(true);
      expect(first.entries.map((e) => e.record.reason)).toEqual(['decision 1', 'decision 2']);
      const again = await Promise.all([1, 2, 3].map(() => store.consumeOnceAndAppend('jti:x', later, [record(3)], [record(9, { reason: 'replayed' })])));
      expect(again.map((r) => r.firstUse)).toEqual([false, false, false]);
      const all = await store.readDecisions(0, 100);
      expect(all.map((e) => e.record.reason)).toEqual(['decision 1', 'decision 2', 'replayed', 'replayed', 'replayed']);
      for (let i = 1; i < all.length; i++) expect(all[i]!.prevHash).toBe(all[i - 1]!.hash);
    });

    it('records revocations and lists only live ones', async () => {
      const now = Date.now();
      await store.addRevocation({ jti: 'r1', expiresAt: now + 60_000, revokedAt: now, reason: 'test', subject: 'job-1' });
      await store.addRevocation({ jti: 'r2', expiresAt: now - 1, revokedAt: now, reason: 'test' });
      await store.addRevocation({ jti: 'r1', expiresAt: now + 60_000, revokedAt: now, reason: 'twice is fine' });
      expect(await store.isRevoked('r1')).toBe(true);
      expect(await store.isRevoked('nope')).toBe(false);
      expect((await store.listActiveRevocations(now)).map((r) => r.jti)).toEqual(['r1']);
      await store.purgeExpired(now);
      expect(await store.isRevoked('r2')).toBe(false);
      expect(await store.isRevoked('r1')).toBe(true);
    });

    it('keeps signing keys and checkpoints', async () => {
      const key = { kid: 'k1', alg: 'ES256' as const, publicJwk: { kty: 'EC', kid: 'k1' }, privateKey: '{"kty":"EC","d":"secret"}', createdAt: 1, retiresAt: 2, expiresAt: 3 };
      await store.insertSigningKey(key);
      expect(await store.listSigningKeys()).toEqual([key]);
      await expect(store.insertSigningKey(key)).rejects.toThrow();
      const cp = { num: 1, seq: 5, hash: 'h', time: new Date(0).toISOString(), kid: 'k1', prev: '0'.repeat(64), jws: 'a.b.c' };
      expect(await store.appendCheckpoint(cp)).toBe(true);
      expect(await store.listCheckpoints()).toEqual([cp]);
      // Compare-and-set on the newest number: a second writer of checkpoint 1, or one that skips 2, is refused.
      expect(await store.appendCheckpoint({ ...cp, jws: 'other' })).toBe(false);
      expect(await store.appendCheckpoint({ ...cp, num: 3 })).toBe(false);
      const next = { ...cp, num: 2, seq: 5, prev: 'p', jws: 'd.e.f' };
      expect(await store.appendCheckpoint(next)).toBe(true);
      expect(await store.lastCheckpoint()).toEqual(next);
      expect(await store.listCheckpoints()).toEqual([cp, next]);
    });

    it('a failing write in a batch does not undo the others', async () => {
      const key = { kid: 'dup', alg: 'ES256' as const, publicJwk: {}, privateKey: '{}', createdAt: 1, retiresAt: 2, expiresAt: 3 };
      await store.insertSigningKey(key);
      const [dup, appended] = await Promise.allSettled([store.insertSigningKey(key), store.appendDecisions([record(1)])]);
      expect(dup.status).toBe('rejected');
      expect(appended.status).toBe('fulfilled');
      expect((await store.lastDecision())!.seq).toBe(1);
    });

    it('keeps users by lower-cased e-mail', async () => {
      await store.upsertUser({ email: 'Ana@Acme.test', active: true, groups: ['platform'], updatedAt: 1 });
      expect(await store.getUser('ana@acme.test')).toMatchObject({ email: 'ana@acme.test', groups: ['platform'] });
      await store.upsertUser({ email: 'ana@acme.test', active: false, groups: [], updatedAt: 2 });
      expect(await store.getUser('ANA@acme.test')).toMatchObject({ active: false, groups: [] });
      expect(await store.getUser('nobody@acme.test')).toBeUndefined();
    });

    it('SCIM: derives Port users from SCIM users and groups in the same write, with compare-and-set and uniqueness', async () => {
      const u = (id: string, email: string, active = true, version = 1) => ({ id, userName: email, email, active, attributes: {}, created: 1, lastModified: version, version });
      const g = (members: string[], version = 1) => ({ id: 'g1', displayName: 'deployers', members, created: 1, lastModified: version, version });
      expect((await store.createScimUser(u('u1', 'sc@acme.test'))).changes).toMatchObject([{ email: 'sc@acme.test', after: { active: true, groups: [], source: 'scim' } }]);
      await expect(store.createScimUser({ ...u('u2', 'other@acme.test'), userName: 'SC@ACME.TEST' })).rejects.toMatchObject({ code: 'uniqueness', status: 409 });
      await expect(store.createScimGroup(g(['nobody']))).rejects.toMatchObject({ code: 'invalidValue' });
      expect(await store.getScimGroup('g1')).toBeUndefined();
      const added = await store.createScimGroup(g(['u1', 'u1']));
      expect(added.changes).toMatchObject([{ email: 'sc@acme.test', before: { groups: [] }, after: { groups: ['deployers'] } }]);
      expect((await store.getScimGroup('g1'))!.members).toEqual(['u1']);
      expect(await store.replaceScimGroup(g([], 2), 7)).toBe('conflict');
      expect((await store.getUser('sc@acme.test'))!.groups).toEqual(['deployers']);
      expect(await store.replaceScimUser(u('u1', 'sc@acme.test', false, 2), 1)).toMatchObject({ changes: [{ after: { active: false, groups: [] } }] });
      expect((await store.listScimUsers({ userName: 'Sc@Acme.Test', offset: 0, limit: 10 })).total).toBe(1);
      expect((await store.listScimGroups({ member: 'u1', offset: 0, limit: 0 })).total).toBe(1);
      expect(await store.deleteScimUser('u1')).toMatchObject({ changes: [{ email: 'sc@acme.test', after: { active: false, groups: [] } }] });
      expect((await store.getScimGroup('g1'))!.members).toEqual([]);
      expect(await store.deleteScimUser('u1')).toBe('not_found');
      // updateUser is one read-modify-write.
      expect(await store.updateUser('sc@acme.test', (cur) => (cur && !cur.active ? undefined : { email: 'sc@acme.test', active: true, groups: [], updatedAt: 9 }))).toMatchObject({ active: false });
    });

    it('opens an approval request and logs its decision in one write, or writes neither when the job has one', async () => {
      const request = approvalRequest('job-open', 1_000);
      const entries = await store.openApprovalRequest(request, [record(1), record(2)]);
      expect(entries?.map((e) => e.record.principal)).toEqual(['Port::Job::"job-1"', 'Port::Job::"job-2"']);
      expect((await store.getApprovalRequestByJob('job-open'))!.id).toBe(request.id);
      const head = (await store.lastDecision())!.seq;
      expect(await store.openApprovalRequest({ ...request, id: 'other-id' }, [record(3)])).toBeUndefined();
      expect((await store.lastDecision())!.seq).toBe(head);
    });

    it('keeps one approval request per job, and changes a pending one only once', async () => {
      const request = approvalRequest('job-1', 1_000);
      expect(await store.createApprovalRequest(request)).toBe(true);
      expect(await store.createApprovalRequest({ ...request, id: 'other-id' })).toBe(false);
      expect((await store.getApprovalRequestByJob('job-1'))!.id).toBe(request.id);
      // Two concurrent changes: both apply in order while pending; the one that closes it wins.
      const [a, b] = await Promise.all([
        store.updatePendingApprovalRequest(request.id, (r) => ({ ...r, status: 'rejected', closedAt: 5 })),
        store.updatePendingApprovalRequest(request.id, (r) => ({ ...r, approvals: [...r.approvals, { email: 'x@acme.test', groups: [], decision: 'approve', comment: '', at: 6, policies: [] }] })),
      ]);
      expect(a!.status).toBe('rejected');
      expect(b).toBeUndefined();
      expect((await store.getApprovalRequest(request.id))!).toMatchObject({ status: 'rejected', approvals: [] });
      await store.createApprovalRequest(approvalRequest('job-2', 500));
      await store.createApprovalRequest(approvalRequest('job-3', 5_000));
      expect((await store.listApprovalRequests({ status: 'pending', expiresBefore: 2_000 })).map((r) => r.jobId)).toEqual(['job-2']);
      await store.setApprovalStatus((await store.getApprovalRequestByJob('job-2'))!.id, 'expired', 2_000);
      expect((await store.listApprovalRequests({ status: 'pending' })).map((r) => r.jobId)).toEqual(['job-3']);
      expect((await store.listApprovalRequests({})).length).toBe(3);
    });

    it('keeps sessions until they expire or their person is signed out everywhere', async () => {
      const s = (id: string, email: string, expiresAt: number) => ({ idHash: id, email, groups: ['platform'], csrfToken: `csrf-${id}`, createdAt: 0, expiresAt });
      const later = Date.now() + 60_000;
      await store.createSession(s('h1', 'Pat@acme.test', later));
      await store.createSession(s('h2', 'pat@acme.test', later));
      await store.createSession(s('h3', 'sam@acme.test', later));
      await store.createSession(s('old', 'sam@acme.test', Date.now() - 1));
      expect(await store.getSession('h1')).toMatchObject({ email: 'pat@acme.test', csrfToken: 'csrf-h1' });
      expect(await store.getSession('old')).toBeUndefined();
      expect(await store.deleteSessionsOf('PAT@acme.test')).toBe(2);
      expect(await store.getSession('h2')).toBeUndefined();
      await store.deleteSession('h3');
      expect(await store.getSession('h3')).toBeUndefined();
    });

    it('records issued credentials and finds them by job, build, agent, pool, creator, token and validity', async () => {
      const base = {
        credential: 'npm',
        type: 'secret' as const,
        build: 'acme/deploy/7',
        agentId: 'agent-1',
        tokenJtiHash: 'a'.repeat(64),
        issuedAt: 1_000,
        recallable: true,
        facts: { version: 0 },
      };
      await store.recordIssuedCredential({ ...base, id: 'c1', jobId: 'job-1', pool: 'default/deploy', creator: 'dev@acme.test', expiresAt: 5_000 });
      await store.recordIssuedCredential({ ...base, id: 'c2', jobId: 'job-2', build: 'acme/deploy/8', agentId: 'agent-2', tokenJtiHash: 'b'.repeat(64), issuedAt: 2_000, expiresAt: 9_000, type: 'aws_role', recallable: false });
      expect((await store.listIssuedCredentials({ jobId: 'job-1' })).map((c) => c.id)).toEqual(['c1']);
      expect((await store.listIssuedCredentials({ build: 'acme/deploy/8' })).map((c) => c.id)).toEqual(['c2']);
      expect((await store.listIssuedCredentials({ agentId: 'agent-1' })).map((c) => c.id)).toEqual(['c1']);
      expect((await store.listIssuedCredentials({ pool: 'default/deploy' })).map((c) => c.id)).toEqual(['c1']);
      expect((await store.listIssuedCredentials({ creator: 'dev@acme.test' })).map((c) => c.id)).toEqual(['c1']);
      expect((await store.listIssuedCredentials({ tokenJtiHash: 'b'.repeat(64) })).map((c) => c.id)).toEqual(['c2']);
      expect((await store.listIssuedCredentials({ activeAt: 6_000 })).map((c) => c.id)).toEqual(['c2']);
      expect((await store.listIssuedCredentials({})).map((c) => c.id)).toEqual(['c1', 'c2']);
      expect((await store.listIssuedCredentials({ jobId: 'job-1', agentId: 'agent-2' }))).toEqual([]);
      const [c2] = await store.listIssuedCredentials({ jobId: 'job-2' });
      expect(c2).toMatchObject({ type: 'aws_role', recallable: false, expiresAt: 9_000, facts: { version: 0 } });
      expect(c2).not.toHaveProperty('pool');
    });

    it('keeps secret versions: version 0 once, rotation as compare-and-set, retirement', async () => {
      await store.initSecretVersion({ credential: 's', version: 0, sealedValue: null, createdAt: 100 });
      await store.initSecretVersion({ credential: 's', version: 0, sealedValue: null, createdAt: 999 });
      expect(await store.listSecretVersions('s')).toEqual([{ credential: 's', version: 0, sealedValue: null, createdAt: 100 }]);
      expect(await store.addSecretVersion({ credential: 's', version: 1, sealedValue: 'sealed-1', createdAt: 200 }, 1_200)).toBe(true);
      // A second writer that read the same newest version loses; nothing changes.
      const [a, b] = await Promise.all([
        store.addSecretVersion({ credential: 's', version: 2, sealedValue: 'sealed-2a', createdAt: 300 }, 1_300),
        store.addSecretVersion({ credential: 's', version: 2, sealedValue: 'sealed-2b', createdAt: 301 }, 1_301),
      ]);
      expect([a, b].sort()).toEqual([false, true]);
      expect(await store.addSecretVersion({ credential: 's', version: 5, sealedValue: 'x', createdAt: 400 }, 1_400)).toBe(false);
      expect(await store.addSecretVersion({ credential: 'never-initialised', version: 1, sealedValue: 'x', createdAt: 400 }, 1_400)).toBe(false);
      await store.markSecretVersionRetired('s', 0, 1_250);
      const versions = await store.listSecretVersions('s');
      expect(versions.map((v) => [v.version, v.retiresAt, v.retiredAt])).toEqual([
        [0, 1_200, 1_250],
        [1, a ? 1_300 : 1_301, undefined],
        [2, undefined, undefined],
      ]);
      expect(versions[2]!.sealedValue).toBe(a ? 'sealed-2a' : 'sealed-2b');
      expect(await store.listSecretVersions('other')).toEqual([]);
    });

    it('answers ping', async () => {
      await expect(store.ping()).resolves.toBeUndefined();
    });
  });
}
