import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { ApprovalEntry, ApprovalRequestRecord } from '../../src/store/records/approvals.js';
import type { DecisionRecord } from '../../src/store/records/decisions.js';
import type { ApprovalStore } from '../../src/store/repositories/approvals.js';
import type { IssuedCredentialRecord, IssuedCredentialStore, SecretVersionStore } from '../../src/store/repositories/credentials.js';
import type { SigningKeyRecord, SigningKeyStore } from '../../src/store/repositories/signing-keys.js';

/** One replica's (or process's) view of the repositories this suite covers. */
export interface OperationsHandles {
  keys: SigningKeyStore;
  approvals: ApprovalStore;
  issued: IssuedCredentialStore;
  secretVersions: SecretVersionStore;
}

export interface OperationsFixture {
  a: OperationsHandles;
  b: OperationsHandles;
  /** Every decision record made durable so far, in log order (sealed or not). */
  logged: () => Promise<DecisionRecord[]>;
  cleanup: () => Promise<void>;
}

/**
 * What the signing key, approval, issued credential and secret version repositories must
 * do whatever the backend, beyond test/store/store-contract.ts: `open` gives two handles
 * on one store (two Port processes on one SQLite file, or two replicas' pools on one
 * database), and the races run across both.
 */
export function describeOperationsContract(name: string, open: () => Promise<OperationsFixture>): void {
  describe(`Operations contract: ${name}`, () => {
    const withStores = (fn: (f: OperationsFixture) => Promise<void>) => async () => {
      const f = await open();
      try {
        await fn(f);
      } finally {
        await f.cleanup();
      }
    };
    /** The handle for racer `i`: alternately one replica and the other. */
    const on = (f: OperationsFixture, i: number) => (i % 2 ? f.a : f.b);

    describe('signing keys', () => {
      const key = (kid: string, createdAt: number): SigningKeyRecord => ({
        kid,
        alg: 'EdDSA',
        publicJwk: { kty: 'OKP', crv: 'Ed25519', x: `x-${kid}`, kid, use: 'sig', key_ops: ['verify'] },
        privateKey: `sealed:v1:${kid}:${'q'.repeat(40)}`,
        createdAt,
        retiresAt: createdAt + 1000,
        expiresAt: createdAt + 5000,
      });

      it(
        'keys inserted on either replica are listed on both, oldest first, exactly as given',
        withStores(async ({ a, b }) => {
          expect(await a.keys.list()).toEqual([]);
          const [k2, k1, k3] = [key('k2', 1_800_000_000_200), key('k1', 1_800_000_000_100), { ...key('k3', 1_800_000_000_300), alg: 'ES256' as const, publicJwk: { kty: 'EC', crv: 'P-256', x: 'x', y: 'y', kid: 'k3' } }];
          await a.keys.insert(k2);
          await b.keys.insert(k1);
          await a.keys.insert(k3);
          expect(await b.keys.list()).toEqual([k1, k2, k3]);
          expect(await a.keys.list()).toEqual([k1, k2, k3]);
        }),
      );

      it(
        'a kid is inserted once: two replicas inserting it at once, exactly one succeeds and its key is kept',
        withStores(async ({ a, b }) => {
          const [one, two] = [key('same', 100), { ...key('same', 200), privateKey: 'sealed:other' }];
          const results = await Promise.allSettled([a.keys.insert(one), b.keys.insert(two)]);
          expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
          const kept = results[0]!.status === 'fulfilled' ? one : two;
          expect(await a.keys.list()).toEqual([kept]);
          await expect(a.keys.insert(key('same', 300))).rejects.toThrow();
          expect(await b.keys.list()).toEqual([kept]);
        }),
      );
    });

    describe('approval requests', () => {
      const T = 1_800_000_000_000;
      const request = (jobId: string, extra: Partial<ApprovalRequestRecord> = {}): ApprovalRequestRecord => ({
        id: randomUUID(),
        jobId,
        buildId: `build-of-${jobId}`,
        build: { organization: 'acme', pipeline: 'deploy', number: 7, branch: 'main', tag: null, commit: 'c'.repeat(40), source: 'ui' },
        step: { step: 'release', fields: { region: 'eu' }, label: 'Release?', key: 'release' },
        authors: ['dev@acme.test'],
        requirement: { approvals: 1, groups: [], policies: [{ id: 'needs-review' }], reason: 'needs a review' },
        status: 'pending',
        createdAt: T,
        expiresAt: T + 3_600_000,
        approvals: [],
        ...extra,
      });
      const decision = (reason: string): DecisionRecord => ({
        id: randomUUID(),
        time: new Date(T).toISOString(),
        principal: 'Port::Job::"job"',
        action: 'request_approval',
        resource: 'Port::BlockStep::"release"',
        decision: 'deny',
        policies: [{ id: 'needs-review' }],
        reason,
        context: {},
      });
      const approval = (email: string, at: number): ApprovalEntry => ({ email, groups: ['platform'], decision: 'approve', comment: '', at, policies: ['approvers'] });
      /** Adds `email`'s approval, and unblocks once the requirement is met: what the approval service does. */
      const approve = (email: string, at: number) => (r: ApprovalRequestRecord): ApprovalRequestRecord => {
        const approvals = [...r.approvals, approval(email, at)];
        const met = approvals.length >= r.requirement.approvals;
        return { ...r, approvals, ...(met ? { status: 'unblocked' as const, closedAt: at } : {}) };
      };

      it(
        'two replicas opening one job at once: exactly one opens it, and only its decision records are logged, in order',
        withStores(async (f) => {
          const [one, two] = [request('job-race'), request('job-race')];
          const [d1, d2, d3] = [decision('one: first'), decision('one: second'), decision('two')];
          const opened = await Promise.all([f.a.approvals.open(one, [d1, d2]), f.b.approvals.open(two, [d3])]);
          expect(opened.filter(Boolean)).toHaveLength(1);
          const winner = opened[0] ? one : two;
          expect(await f.a.approvals.getByJob('job-race')).toEqual(winner);
          expect(await f.b.approvals.get(winner.id)).toEqual(winner);
          expect(await f.a.approvals.get((opened[0] ? two : one).id)).toBeUndefined();
          expect((await f.logged()).map((r) => r.reason)).toEqual(opened[0] ? ['one: first', 'one: second'] : ['two']);

          // Many more at once on both replicas: none opens it again, nothing more is logged.
          const again = await Promise.all(Array.from({ length: 8 }, (_, i) => on(f, i).approvals.open(request('job-race'), [decision(`late ${i}`)])));
          expect(again.filter(Boolean)).toHaveLength(0);
          expect(await f.logged()).toHaveLength(opened[0] ? 2 : 1);
        }),
      );

      it(
        'many jobs opened at once on both replicas each open once, with their own records logged',
        withStores(async (f) => {
          const requests = Array.from({ length: 12 }, (_, i) => request(`job-${i}`));
          const opened = await Promise.all(requests.map((r, i) => on(f, i).approvals.open(r, [decision(`opened ${r.jobId}`)])));
          expect(opened.every(Boolean)).toBe(true);
          expect((await f.logged()).map((r) => r.reason).sort()).toEqual(requests.map((r) => `opened ${r.jobId}`).sort());
          // A request opened with no records logs nothing.
          expect(await f.b.approvals.open(request('job-quiet'), [])).toBe(true);
          expect(await f.logged()).toHaveLength(12);
          expect(await f.a.approvals.list({})).toHaveLength(13);
        }),
      );

      it(
        'two replicas giving the last approval at once: both are applied in turn, exactly one of them sees it pending and unblocks it',
        withStores(async (f) => {
          const r = request('job-last', { requirement: { approvals: 2, groups: [], policies: [], reason: 'two people' } });
          expect(await f.a.approvals.open(r, [])).toBe(true);
          expect(await f.b.approvals.updatePending(r.id, approve('first@acme.test', T + 1))).toMatchObject({ status: 'pending', approvals: [{ email: 'first@acme.test' }] });
          const [x, y] = await Promise.all([f.a.approvals.updatePending(r.id, approve('x@acme.test', T + 2)), f.b.approvals.updatePending(r.id, approve('y@acme.test', T + 3))]);
          const applied = [x, y].filter((u): u is ApprovalRequestRecord => u !== undefined);
          expect(applied).toHaveLength(1);
          expect(applied[0]!.status).toBe('unblocked');
          const stored = await f.a.approvals.get(r.id);
          expect(stored).toEqual(applied[0]);
          expect(stored!.approvals.map((e) => e.email)).toEqual(['first@acme.test', x ? 'x@acme.test' : 'y@acme.test']);
        }),
      );

      it(
        'many concurrent approvals on both replicas: none is lost, each sees the one before it, and only one closes the request',
        withStores(async (f) => {
          const r = request('job-many', { requirement: { approvals: 4, groups: [], policies: [], reason: 'four people' } });
          await f.b.approvals.open(r, []);
          const emails = Array.from({ length: 10 }, (_, i) => `approver-${i}@acme.test`);
          const results = await Promise.all(emails.map((email, i) => on(f, i).approvals.updatePending(r.id, approve(email, T + i))));
          const applied = results.filter((u): u is ApprovalRequestRecord => u !== undefined);
          // Each applied change saw every earlier one: counts 1, 2, 3, 4 — the 4th closed it.
          expect(applied.map((u) => u.approvals.length).sort()).toEqual([1, 2, 3, 4]);
          expect(applied.filter((u) => u.status === 'unblocked')).toHaveLength(1);
          const stored = (await f.a.approvals.get(r.id))!;
          expect(stored.status).toBe('unblocked');
          expect(stored).toEqual(applied.find((u) => u.status === 'unblocked'));
          expect(new Set(stored.approvals.map((e) => e.email)).size).toBe(4);
          for (const [i, u] of results.entries()) {
            if (u !== undefined) expect(stored.approvals.map((e) => e.email)).toContain(emails[i]);
          }
        }),
      );

      it(
        'updatePending leaves an unknown or closed request alone without calling change; a change that throws writes nothing',
        withStores(async (f) => {
          let called = 0;
          const change = (r: ApprovalRequestRecord) => {
            called++;
            return r;
          };
          expect(await f.a.approvals.updatePending('unknown', change)).toBeUndefined();
          const r = request('job-closed');
          await f.a.approvals.open(r, []);
          await f.b.approvals.setStatus(r.id, 'expired', T + 5);
          expect(await f.a.approvals.updatePending(r.id, change)).toBeUndefined();
          expect(called).toBe(0);

          const p = request('job-throws');
          await f.a.approvals.open(p, []);
          await expect(
            f.b.approvals.updatePending(p.id, () => {
              throw new Error('the change failed');
            }),
          ).rejects.toThrow('the change failed');
          expect(await f.a.approvals.get(p.id)).toEqual(p);
          // The request is not left locked: the next change applies.
          expect(await f.a.approvals.updatePending(p.id, approve('z@acme.test', T + 9))).toMatchObject({ status: 'unblocked' });
        }),
      );

      it(
        'setStatus sets the status and closing time whatever it was; list filters by status and expiry, soonest expiry first',
        withStores(async (f) => {
          const [soon, mid, late] = [request('job-soon', { expiresAt: T + 100 }), request('job-mid', { expiresAt: T + 200 }), request('job-late', { expiresAt: T + 300 })];
          await f.a.approvals.open(late, []);
          await f.b.approvals.open(soon, []);
          await f.a.approvals.open(mid, []);
          expect((await f.b.approvals.list({})).map((r) => r.jobId)).toEqual(['job-soon', 'job-mid', 'job-late']);
          expect((await f.b.approvals.list({ status: 'pending', expiresBefore: T + 200 })).map((r) => r.jobId)).toEqual(['job-soon']);
          expect((await f.b.approvals.list({ expiresBefore: T + 201 })).map((r) => r.jobId)).toEqual(['job-soon', 'job-mid']);

          await f.a.approvals.updatePending(mid.id, (r) => ({ ...r, status: 'rejected', closedAt: T + 10 }));
          await f.b.approvals.setStatus(mid.id, 'unblock_failed', T + 20);
          expect(await f.a.approvals.get(mid.id)).toEqual({ ...mid, status: 'unblock_failed', closedAt: T + 20 });
          await f.b.approvals.setStatus('unknown', 'expired', T);
          expect(await f.a.approvals.get('unknown')).toBeUndefined();

          expect((await f.a.approvals.list({ status: 'pending' })).map((r) => r.jobId)).toEqual(['job-soon', 'job-late']);
          expect((await f.a.approvals.list({ status: 'unblock_failed' })).map((r) => r.jobId)).toEqual(['job-mid']);
          expect((await f.a.approvals.list({ expiresBefore: T + 250 })).map((r) => r.jobId)).toEqual(['job-soon', 'job-mid']);
          // A change that moves the expiry moves it in the listing too.
          await f.b.approvals.updatePending(late.id, (r) => ({ ...r, expiresAt: T + 50 }));
          expect((await f.a.approvals.list({ status: 'pending', expiresBefore: T + 60 })).map((r) => r.jobId)).toEqual(['job-late']);
        }),
      );
    });

    describe('issued credentials', () => {
      const issued = (id: string, extra: Partial<IssuedCredentialRecord> = {}): IssuedCredentialRecord => ({
        id,
        credential: 'npm',
        type: 'secret',
        jobId: 'job-1',
        build: 'acme/deploy/7',
        agentId: 'agent-1',
        tokenJtiHash: 'a'.repeat(64),
        issuedAt: 1_000,
        expiresAt: 5_000,
        recallable: true,
        facts: { version: 3, nested: { arn: 'arn:aws:iam::123456789012:role/deploy', tags: ['a', 'b'] } },
        ...extra,
      });

      it(
        'credentials recorded on either replica are found on both, by issue time, each filter and their combinations',
        withStores(async ({ a, b }) => {
          await a.issued.record(issued('c3', { issuedAt: 3_000, expiresAt: 7_000, jobId: 'job-2', pool: 'default/deploy', creator: 'dev@acme.test' }));
          await b.issued.record(issued('c1', { issuedAt: 1_000, pool: 'default/deploy', creator: 'dev@acme.test' }));
          await a.issued.record(issued('c2', { issuedAt: 2_000, type: 'aws_role', recallable: false, agentId: 'agent-2', tokenJtiHash: 'b'.repeat(64) }));
          const ids = async (f: Parameters<IssuedCredentialStore['list']>[0]) => (await b.issued.list(f)).map((c) => c.id);
          expect(await ids({})).toEqual(['c1', 'c2', 'c3']);
          expect(await ids({ jobId: 'job-1' })).toEqual(['c1', 'c2']);
          expect(await ids({ jobId: 'job-1', pool: 'default/deploy' })).toEqual(['c1']);
          expect(await ids({ creator: 'dev@acme.test', build: 'acme/deploy/7' })).toEqual(['c1', 'c3']);
          expect(await ids({ agentId: 'agent-2', tokenJtiHash: 'b'.repeat(64) })).toEqual(['c2']);
          expect(await ids({ agentId: 'agent-2', tokenJtiHash: 'a'.repeat(64) })).toEqual([]);
          // Valid at activeAt means expiring after it: one expiring at that instant is not.
          expect(await ids({ activeAt: 5_000 })).toEqual(['c3']);
          expect(await ids({ activeAt: 4_999, jobId: 'job-1' })).toEqual(['c1', 'c2']);
          expect(await ids({ build: 'acme/deploy/8' })).toEqual([]);

          const [c2] = await a.issued.list({ agentId: 'agent-2' });
          expect(c2).toEqual(issued('c2', { issuedAt: 2_000, type: 'aws_role', recallable: false, agentId: 'agent-2', tokenJtiHash: 'b'.repeat(64) }));
          expect(c2).not.toHaveProperty('pool');
          expect(c2).not.toHaveProperty('creator');
        }),
      );

      it(
        'an id is recorded once: a second record of it is refused and the first kept',
        withStores(async ({ a, b }) => {
          await a.issued.record(issued('dup'));
          await expect(b.issued.record(issued('dup', { jobId: 'job-other' }))).rejects.toThrow();
          expect((await a.issued.list({})).map((c) => c.jobId)).toEqual(['job-1']);
        }),
      );
    });

    describe('secret versions', () => {
      it(
        'two replicas initialising a secret at once store one version 0; later inits change nothing',
        withStores(async (f) => {
          await Promise.all(Array.from({ length: 6 }, (_, i) => on(f, i).secretVersions.init({ credential: 's', version: 0, sealedValue: null, createdAt: 100 + i })));
          const versions = await f.a.secretVersions.list('s');
          expect(versions).toHaveLength(1);
          expect(versions[0]).toMatchObject({ credential: 's', version: 0, sealedValue: null });
          expect(versions[0]).not.toHaveProperty('retiresAt');
          expect(versions[0]).not.toHaveProperty('retiredAt');
          await f.b.secretVersions.add({ credential: 's', version: 1, sealedValue: 'sealed-1', createdAt: 200 }, 1_200);
          await f.b.secretVersions.init({ credential: 's', version: 0, sealedValue: null, createdAt: 999 });
          expect((await f.b.secretVersions.list('s')).map((v) => [v.version, v.createdAt])).toEqual([
            [0, versions[0]!.createdAt],
            [1, 200],
          ]);
        }),
      );

      it(
        'replicas rotating at once: exactly one rotation wins each version, and the previous version retires at the winner’s time',
        withStores(async (f) => {
          await f.a.secretVersions.init({ credential: 's', version: 0, sealedValue: null, createdAt: 100 });
          const winners: string[] = [];
          for (let version = 1; version <= 12; version++) {
            const tries = Array.from({ length: 4 }, (_, i) => ({ sealed: `sealed-${version}-${i}`, retiresAt: version * 1000 + i }));
            const results = await Promise.all(
              tries.map((t, i) => on(f, i).secretVersions.add({ credential: 's', version, sealedValue: t.sealed, createdAt: version * 100 }, t.retiresAt)),
            );
            expect(results.filter(Boolean)).toHaveLength(1);
            const won = tries[results.indexOf(true)]!;
            winners.push(won.sealed);
            const stored = await on(f, version).secretVersions.list('s');
            expect(stored.map((v) => v.version)).toEqual(Array.from({ length: version + 1 }, (_, i) => i));
            expect(stored[version - 1]!.retiresAt).toBe(won.retiresAt);
            expect(stored[version]).toEqual({ credential: 's', version, sealedValue: won.sealed, createdAt: version * 100 });
          }
          expect((await f.b.secretVersions.list('s')).slice(1).map((v) => v.sealedValue)).toEqual(winners);
        }),
      );

      it(
        'a rotation that does not follow the newest version changes nothing; markRetired marks one version; secrets are independent',
        withStores(async ({ a, b }) => {
          expect(await a.secretVersions.add({ credential: 'fresh', version: 1, sealedValue: 'x', createdAt: 1 }, 10)).toBe(false);
          expect(await a.secretVersions.list('fresh')).toEqual([]);
          await a.secretVersions.init({ credential: 's', version: 0, sealedValue: null, createdAt: 100 });
          await b.secretVersions.init({ credential: 't', version: 0, sealedValue: null, createdAt: 150 });
          expect(await b.secretVersions.add({ credential: 's', version: 1, sealedValue: 'sealed-1', createdAt: 200 }, 1_200)).toBe(true);
          const before = await a.secretVersions.list('s');
          expect(await a.secretVersions.add({ credential: 's', version: 1, sealedValue: 'stale', createdAt: 300 }, 1_300)).toBe(false);
          expect(await a.secretVersions.add({ credential: 's', version: 3, sealedValue: 'gap', createdAt: 300 }, 1_300)).toBe(false);
          expect(await b.secretVersions.list('s')).toEqual(before);

          await b.secretVersions.markRetired('s', 0, 1_250);
          expect(await a.secretVersions.list('s')).toEqual([
            { credential: 's', version: 0, sealedValue: null, createdAt: 100, retiresAt: 1_200, retiredAt: 1_250 },
            { credential: 's', version: 1, sealedValue: 'sealed-1', createdAt: 200 },
          ]);
          expect(await a.secretVersions.list('t')).toEqual([{ credential: 't', version: 0, sealedValue: null, createdAt: 150 }]);
          expect(await a.secretVersions.add({ credential: 't', version: 1, sealedValue: 't-1', createdAt: 400 }, 1_400)).toBe(true);
          expect((await b.secretVersions.list('s')).map((v) => v.version)).toEqual([0, 1]);
        }),
      );
    });
  });
}
