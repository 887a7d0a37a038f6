import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ApprovalRequestRecord } from '../../src/store/records/approvals.js';
import type { DecisionEntry, DecisionRecord } from '../../src/store/records/decisions.js';
import { entryHash, GENESIS_HASH } from '../../src/store/hash-chain.js';
import type { Store } from '../../src/store/store.js';
import { SigningKeys } from '../../src/issuer/signing-keys.js';

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

    /** Everything appended so far, once sealed (PostgreSQL seals after the commit, in batches). */
    const sealed = async (): Promise<DecisionEntry[]> => {
      await store.decisions.seal();
      expect(await store.decisions.unsealed()).toBe(0);
      return store.decisions.read(0, 10_000);
    };

    it('chains decisions in order, each hash binding seq, previous hash and record', async () => {
      await store.decisions.append([record(1), record(2)]);
      await store.decisions.append([record(3)]);
      const all = await sealed();
      expect(all.map((e) => e.record.reason)).toEqual(['decision 1', 'decision 2', 'decision 3']);
      expect(all.map((e) => e.seq)).toEqual([1, 2, 3]);
      expect(all[0]!.prevHash).toBe(GENESIS_HASH);
      for (const [i, e] of all.entries()) {
        expect(e.hash).toBe(entryHash(e.seq, e.prevHash, e.record));
        if (i > 0) expect(e.prevHash).toBe(all[i - 1]!.hash);
      }
      expect(await store.decisions.read(1, 10)).toEqual(all.slice(1));
      expect((await store.decisions.last())!.seq).toBe(3);
    });

    it('keeps one chain under concurrent appends', async () => {
      await Promise.all(Array.from({ length: 50 }, (_, i) => store.decisions.append([record(i)])));
      const all = await sealed();
      expect(all.map((e) => e.seq)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
      for (let i = 1; i < all.length; i++) expect(all[i]!.prevHash).toBe(all[i - 1]!.hash);
    });

    it('continues the chain after reopening', async () => {
      if (!reopen) return;
      await store.decisions.append([record(1)]);
      await store.close();
      store = await reopen();
      await store.decisions.append([record(2)]);
      const [first, e] = await sealed();
      expect(e!.seq).toBe(2);
      expect(e!.prevHash).toBe(first!.hash);
    });

    it('consumes a replay key once, and again only after it expired', async () => {
      const later = Date.now() + 60_000;
      expect(await store.replay.consume('jti:a', later)).toBe(true);
      expect(await store.replay.consume('jti:a', later)).toBe(false);
      const results = await Promise.all(Array.from({ length: 10 }, () => store.replay.consume('jti:b', later)));
      expect(results.filter(Boolean)).toHaveLength(1);
      expect(await store.replay.consume('jti:c', Date.now() - 1)).toBe(true);
      expect(await store.replay.consume('jti:c', later)).toBe(true);
    });

    it('consumes a key and appends in one write, or appends the replay record instead', async () => {
      const later = Date.now() + 60_000;
      expect(await store.replay.consumeAndLog('jti:x', later, [record(1), record(2)], () => [record(9, { reason: 'replayed' })])).toBe(true);
      const again = await Promise.all([1, 2, 3].map(() => store.replay.consumeAndLog('jti:x', later, [record(3)], () => [record(9, { reason: 'replayed' })])));
      expect(again).toEqual([false, false, false]);
      const all = await sealed();
      expect(all.map((e) => e.record.reason)).toEqual(['decision 1', 'decision 2', 'replayed', 'replayed', 'replayed']);
      for (let i = 1; i < all.length; i++) expect(all[i]!.prevHash).toBe(all[i - 1]!.hash);
    });

    it('records revocations and lists only live ones', async () => {
      const now = Date.now();
      const r1 = { id: 'r1', kind: 'revocation' as const, scope: 'job' as const, target: 'job-1', origin: 'admin' as const, expiresAt: now + 60_000, revokedAt: now, reason: 'test', subject: 'job-1' };
      await store.revocations.add(r1);
      await store.revocations.add({ ...r1, id: 'r2', target: 'job-2', expiresAt: now - 1 });
      // A repeat keeps the later time, the longer life and the reason that goes with the later time.
      await store.revocations.add({ ...r1, revokedAt: now + 5, expiresAt: now + 30_000, reason: 'again' });
      await store.revocations.add({ ...r1, revokedAt: now - 5, expiresAt: now + 10_000, reason: 'stale repeat' });
      const lift = { id: 'lift:job:all:job-1', kind: 'lift' as const, scope: 'job' as const, target: 'job-1', origin: 'all' as const, expiresAt: now + 60_000, revokedAt: now + 5, reason: 'lifted' };
      await store.revocations.add(lift);
      expect(await store.revocations.listActive(now)).toEqual(expect.arrayContaining([{ ...r1, revokedAt: now + 5, reason: 'again' }, lift]));
      expect((await store.revocations.listActive(now)).map((r) => r.id).sort()).toEqual(['lift:job:all:job-1', 'r1']);
      await store.purgeExpired(now);
      expect((await store.revocations.listActive(0)).map((r) => r.id).sort()).toEqual(['lift:job:all:job-1', 'r1']);
    });

    it('keeps signing keys and checkpoints', async () => {
      const key = { kid: 'k1', alg: 'ES256' as const, publicJwk: { kty: 'EC', kid: 'k1' }, privateKey: '{"kty":"EC","d":"secret"}', createdAt: 1, retiresAt: 2, expiresAt: 3 };
      await store.keys.insert(key);
      expect(await store.keys.list()).toEqual([key]);
      await expect(store.keys.insert(key)).rejects.toThrow();
      const cp = { num: 1, seq: 5, hash: 'h', time: new Date(0).toISOString(), kid: 'k1', prev: '0'.repeat(64), jws: 'a.b.c' };
      expect(await store.decisions.appendCheckpoint(cp)).toBe(true);
      expect(await store.decisions.listCheckpoints()).toEqual([cp]);
      // Compare-and-set on the newest number: a second writer of checkpoint 1, or one that skips 2, is refused.
      expect(await store.decisions.appendCheckpoint({ ...cp, jws: 'other' })).toBe(false);
      expect(await store.decisions.appendCheckpoint({ ...cp, num: 3 })).toBe(false);
      const next = { ...cp, num: 2, seq: 5, prev: 'p', jws: 'd.e.f' };
      expect(await store.decisions.appendCheckpoint(next)).toBe(true);
      expect(await store.decisions.lastCheckpoint()).toEqual(next);
      expect(await store.decisions.listCheckpoints()).toEqual([cp, next]);
    });

    it('stores a signing key only where no key would sign at its start (rotation by several processes at once)', async () => {
      const key = (kid: string, createdAt: number) => ({ kid, alg: 'ES256' as const, publicJwk: { kid }, privateKey: '{}', createdAt, retiresAt: createdAt + 100, expiresAt: createdAt + 200 });
      const first = await Promise.all(['a', 'b', 'c', 'd'].map((kid) => store.keys.insertUnlessCovered(key(kid, 1000), 1000)));
      expect(first.filter(Boolean)).toHaveLength(1);
      // A successor from when the signing key retires: again exactly one of the racers.
      const next = await Promise.all(['e', 'f', 'g'].map((kid) => store.keys.insertUnlessCovered(key(kid, 1100), 1100)));
      expect(next.filter(Boolean)).toHaveLength(1);
      // Another algorithm is not covered by these.
      expect(await store.keys.insertUnlessCovered({ ...key('h', 1000), alg: 'EdDSA' }, 1000)).toBe(true);
      expect((await store.keys.list()).map((k) => k.createdAt).sort()).toEqual([1000, 1000, 1100]);
    });

    it('a key dated back by a process whose clock reads later covers the now of one whose clock reads earlier; a key not signing yet covers nothing', async () => {
      const key = (kid: string, createdAt: number, alg: 'ES256' | 'EdDSA' = 'ES256') => ({ kid, alg, publicJwk: { kid }, privateKey: '{}', createdAt, retiresAt: createdAt + 100_000, expiresAt: createdAt + 200_000 });
      // Process A (clock 70_005) stores a first key dated a minute back; B's clock reads 70_000.
      expect(await store.keys.insertUnlessCovered(key('a', 10_005), 70_005)).toBe(true);
      expect(await store.keys.insertUnlessCovered(key('b', 10_000), 70_000)).toBe(false);
      const [kept, ...more] = await store.keys.list();
      expect(more).toEqual([]);
      // B finds A's key signing at its own now.
      expect(kept!.kid).toBe('a');
      expect(kept!.createdAt <= 70_000 && kept!.retiresAt > 70_000).toBe(true);
      // A key created after the moment asked about (a successor stored ahead of time) does not
      // sign then, so it does not cover it.
      expect(await store.keys.insertUnlessCovered(key('later', 50_000, 'EdDSA'), 50_000)).toBe(true);
      expect(await store.keys.insertUnlessCovered(key('sooner', 49_995, 'EdDSA'), 49_995)).toBe(true);
    });

    it('processes whose clocks read a few ms apart, opening the signing keys of a new store together, keep one key and all sign with it', async () => {
      if (!reopen) return;
      const others = await Promise.all([reopen(), reopen(), reopen()]);
      const opened: SigningKeys[] = [];
      try {
        const t0 = Date.now();
        const options = (algorithm: 'ES256' | 'EdDSA') => ({ algorithm, rotation: 86400, overlap: 3660 });
        // The process whose clock reads later stores its key first; the other then finds it
        // signing at its own, earlier, now.
        opened.push(await SigningKeys.open(store, options('ES256'), t0 + 5));
        opened.push(await SigningKeys.open(others[0]!, options('ES256'), t0));
        expect(opened[1]!.signer().kid).toBe(opened[0]!.signer().kid);
        expect((await store.keys.list()).map((k) => k.kid)).toEqual([opened[0]!.signer().kid]);
        // All at once: each reads an empty store, makes a key, and all but one find theirs covered.
        const racers = await Promise.all([store, ...others].map((s, i) => SigningKeys.open(s, options('EdDSA'), t0 + 3 * (3 - i))));
        opened.push(...racers);
        const eddsa = (await store.keys.list()).filter((k) => k.alg === 'EdDSA');
        expect(eddsa).toHaveLength(1);
        for (const k of racers) expect(k.signer().kid).toBe(eddsa[0]!.kid);
      } finally {
        for (const k of opened) k.close();
        await Promise.all(others.map((s) => s.close()));
      }
    });

    it('a failing write in a batch does not undo the others', async () => {
      const key = { kid: 'dup', alg: 'ES256' as const, publicJwk: {}, privateKey: '{}', createdAt: 1, retiresAt: 2, expiresAt: 3 };
      await store.keys.insert(key);
      const [dup, appended] = await Promise.allSettled([store.keys.insert(key), store.decisions.append([record(1)])]);
      expect(dup.status).toBe('rejected');
      expect(appended.status).toBe('fulfilled');
      expect((await sealed()).map((e) => e.seq)).toEqual([1]);
    });

    it('keeps users by lower-cased e-mail', async () => {
      await store.users.upsert({ email: 'Ana@Acme.test', active: true, groups: ['platform'], updatedAt: 1 });
      expect(await store.users.get('ana@acme.test')).toMatchObject({ email: 'ana@acme.test', groups: ['platform'] });
      await store.users.upsert({ email: 'ana@acme.test', active: false, groups: [], updatedAt: 2 });
      expect(await store.users.get('ANA@acme.test')).toMatchObject({ active: false, groups: [] });
      expect(await store.users.get('nobody@acme.test')).toBeUndefined();
    });

    it('SCIM: derives Port users from SCIM users and groups in the same write, with compare-and-set and uniqueness', async () => {
      const u = (id: string, email: string, active = true, version = 1) => ({ id, userName: email, email, active, attributes: {}, created: 1, lastModified: version, version });
      const g = (members: string[], version = 1) => ({ id: 'g1', displayName: 'deployers', members, created: 1, lastModified: version, version });
      expect((await store.scim.createUser(u('u1', 'sc@acme.test'))).changes).toMatchObject([{ email: 'sc@acme.test', after: { active: true, groups: [], source: 'scim' } }]);
      await expect(store.scim.createUser({ ...u('u2', 'other@acme.test'), userName: 'SC@ACME.TEST' })).rejects.toMatchObject({ code: 'uniqueness', status: 409 });
      await expect(store.scim.createGroup(g(['nobody']))).rejects.toMatchObject({ code: 'invalidValue' });
      expect(await store.scim.getGroup('g1')).toBeUndefined();
      const added = await store.scim.createGroup(g(['u1', 'u1']));
      expect(added.changes).toMatchObject([{ email: 'sc@acme.test', before: { groups: [] }, after: { groups: ['deployers'] } }]);
      expect((await store.scim.getGroup('g1'))!.members).toEqual(['u1']);
      expect(await store.scim.replaceGroup(g([], 2), 7)).toBe('conflict');
      expect((await store.users.get('sc@acme.test'))!.groups).toEqual(['deployers']);
      expect(await store.scim.replaceUser(u('u1', 'sc@acme.test', false, 2), 1)).toMatchObject({ changes: [{ after: { active: false, groups: [] } }] });
      expect((await store.scim.listUsers({ userName: 'Sc@Acme.Test', offset: 0, limit: 10 })).total).toBe(1);
      expect((await store.scim.listGroups({ member: 'u1', offset: 0, limit: 0 })).total).toBe(1);
      expect(await store.scim.deleteUser('u1')).toMatchObject({ changes: [{ email: 'sc@acme.test', after: { active: false, groups: [] } }] });
      expect((await store.scim.getGroup('g1'))!.members).toEqual([]);
      expect(await store.scim.deleteUser('u1')).toBe('not_found');
      // updateUser is one read-modify-write.
      expect(await store.users.update('sc@acme.test', (cur) => (cur && !cur.active ? undefined : { email: 'sc@acme.test', active: true, groups: [], updatedAt: 9 }))).toMatchObject({ active: false });
    });

    it('opens an approval request and logs its decision in one write, or writes neither when the job has one', async () => {
      const request = approvalRequest('job-open', 1_000);
      expect(await store.approvals.open(request, [record(1), record(2)])).toBe(true);
      expect((await sealed()).map((e) => e.record.principal)).toEqual(['Port::Job::"job-1"', 'Port::Job::"job-2"']);
      expect((await store.approvals.getByJob('job-open'))!.id).toBe(request.id);
      expect(await store.approvals.open({ ...request, id: 'other-id' }, [record(3)])).toBe(false);
      expect(await sealed()).toHaveLength(2);
    });

    it('keeps one approval request per job, and changes a pending one only once', async () => {
      const request = approvalRequest('job-1', 1_000);
      expect(await store.approvals.open(request, [])).toBe(true);
      expect(await store.approvals.open({ ...request, id: 'other-id' }, [])).toBe(false);
      expect((await store.approvals.getByJob('job-1'))!.id).toBe(request.id);
      // Two concurrent changes: both apply in order while pending; the one that closes it wins.
      const [a, b] = await Promise.all([
        store.approvals.updatePending(request.id, (r) => ({ ...r, status: 'rejected', closedAt: 5 })),
        store.approvals.updatePending(request.id, (r) => ({ ...r, approvals: [...r.approvals, { email: 'x@acme.test', groups: [], decision: 'approve', comment: '', at: 6, policies: [] }] })),
      ]);
      expect(a!.status).toBe('rejected');
      expect(b).toBeUndefined();
      expect((await store.approvals.get(request.id))!).toMatchObject({ status: 'rejected', approvals: [] });
      await store.approvals.open(approvalRequest('job-2', 500), []);
      await store.approvals.open(approvalRequest('job-3', 5_000), []);
      expect((await store.approvals.list({ status: 'pending', expiresBefore: 2_000 })).map((r) => r.jobId)).toEqual(['job-2']);
      await store.approvals.setStatus((await store.approvals.getByJob('job-2'))!.id, 'expired', 2_000);
      expect((await store.approvals.list({ status: 'pending' })).map((r) => r.jobId)).toEqual(['job-3']);
      expect((await store.approvals.list({})).length).toBe(3);
    });

    it('keeps sessions until they expire or their person is signed out everywhere', async () => {
      const s = (id: string, email: string, expiresAt: number) => ({ idHash: id, email, groups: ['platform'], csrfToken: `csrf-${id}`, createdAt: 0, expiresAt });
      const later = Date.now() + 60_000;
      await store.sessions.create(s('h1', 'Pat@acme.test', later));
      await store.sessions.create(s('h2', 'pat@acme.test', later));
      await store.sessions.create(s('h3', 'sam@acme.test', later));
      await store.sessions.create(s('old', 'sam@acme.test', Date.now() - 1));
      expect(await store.sessions.get('h1')).toMatchObject({ email: 'pat@acme.test', csrfToken: 'csrf-h1' });
      expect(await store.sessions.get('old')).toBeUndefined();
      expect(await store.sessions.deleteAllOf('PAT@acme.test')).toBe(2);
      expect(await store.sessions.get('h2')).toBeUndefined();
      await store.sessions.delete('h3');
      expect(await store.sessions.get('h3')).toBeUndefined();
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
      await store.issued.record({ ...base, id: 'c1', jobId: 'job-1', pool: 'default/deploy', creator: 'dev@acme.test', expiresAt: 5_000 });
      await store.issued.record({ ...base, id: 'c2', jobId: 'job-2', build: 'acme/deploy/8', agentId: 'agent-2', tokenJtiHash: 'b'.repeat(64), issuedAt: 2_000, expiresAt: 9_000, type: 'aws_role', recallable: false });
      expect((await store.issued.list({ jobId: 'job-1' })).map((c) => c.id)).toEqual(['c1']);
      expect((await store.issued.list({ build: 'acme/deploy/8' })).map((c) => c.id)).toEqual(['c2']);
      expect((await store.issued.list({ agentId: 'agent-1' })).map((c) => c.id)).toEqual(['c1']);
      expect((await store.issued.list({ pool: 'default/deploy' })).map((c) => c.id)).toEqual(['c1']);
      expect((await store.issued.list({ creator: 'dev@acme.test' })).map((c) => c.id)).toEqual(['c1']);
      expect((await store.issued.list({ tokenJtiHash: 'b'.repeat(64) })).map((c) => c.id)).toEqual(['c2']);
      expect((await store.issued.list({ activeAt: 6_000 })).map((c) => c.id)).toEqual(['c2']);
      expect((await store.issued.list({})).map((c) => c.id)).toEqual(['c1', 'c2']);
      expect((await store.issued.list({ jobId: 'job-1', agentId: 'agent-2' }))).toEqual([]);
      const [c2] = await store.issued.list({ jobId: 'job-2' });
      expect(c2).toMatchObject({ type: 'aws_role', recallable: false, expiresAt: 9_000, facts: { version: 0 } });
      expect(c2).not.toHaveProperty('pool');
    });

    it('keeps secret versions: version 0 once, rotation as compare-and-set, retirement', async () => {
      await store.secretVersions.init({ credential: 's', version: 0, sealedValue: null, createdAt: 100 });
      await store.secretVersions.init({ credential: 's', version: 0, sealedValue: null, createdAt: 999 });
      expect(await store.secretVersions.list('s')).toEqual([{ credential: 's', version: 0, sealedValue: null, createdAt: 100 }]);
      expect(await store.secretVersions.add({ credential: 's', version: 1, sealedValue: 'sealed-1', createdAt: 200 }, 1_200)).toBe(true);
      // A second writer that read the same newest version loses; nothing changes.
      const [a, b] = await Promise.all([
        store.secretVersions.add({ credential: 's', version: 2, sealedValue: 'sealed-2a', createdAt: 300 }, 1_300),
        store.secretVersions.add({ credential: 's', version: 2, sealedValue: 'sealed-2b', createdAt: 301 }, 1_301),
      ]);
      expect([a, b].sort()).toEqual([false, true]);
      expect(await store.secretVersions.add({ credential: 's', version: 5, sealedValue: 'x', createdAt: 400 }, 1_400)).toBe(false);
      expect(await store.secretVersions.add({ credential: 'never-initialised', version: 1, sealedValue: 'x', createdAt: 400 }, 1_400)).toBe(false);
      await store.secretVersions.markRetired('s', 0, 1_250);
      const versions = await store.secretVersions.list('s');
      expect(versions.map((v) => [v.version, v.retiresAt, v.retiredAt])).toEqual([
        [0, 1_200, 1_250],
        [1, a ? 1_300 : 1_301, undefined],
        [2, undefined, undefined],
      ]);
      expect(versions[2]!.sealedValue).toBe(a ? 'sealed-2a' : 'sealed-2b');
      expect(await store.secretVersions.list('other')).toEqual([]);
    });

    it('answers ping', async () => {
      await expect(store.ping()).resolves.toBeUndefined();
    });
  });
}
