/**
 * ApprovalService and revocations in force, at the service's own
 * boundary — the cases the web pages can't reach because a revoked person's session is
 * refused first (revocation-reach.e2e.test.ts drives the rest over HTTP):
 * a revoked approver calling `decide`, a commit author's revocation, a revocation that
 * lands while a decision is on its way, a revoked step that is never reopened once the
 * revocation is lifted, and a revocation that lasts until lifted (SCIM).
 */
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ApprovalService } from '../../src/approvals/approval-service.js';
import type { BuildkiteBuildSummary } from '../../src/approvals/buildkite-builds.js';
import type { ApprovalRequestRecord } from '../../src/store/records/approvals.js';
import { DecisionLog } from '../../src/audit/decision-log.js';
import { configFromObject, type PortConfig } from '../../src/config/config.js';
import { PolicyEngine } from '../../src/policy/engine.js';
import { RevocationList, UNTIL_LIFTED, type NewRevocation } from '../../src/revocation/revocation-list.js';
import type { Store } from '../../src/store/store.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { APPROVAL_POLICIES } from '../helpers/approval-policies.js';
import { FakeBuildkite } from '../helpers/fake-buildkite.js';

let dir: string;
let store: SqliteStore;
let bk: FakeBuildkite;
let clock: { t: number };
let config: PortConfig;
let revocations: RevocationList;
let service: ApprovalService;

const users = {
  pat: { email: 'pat@acme.test', active: true, groups: ['platform'], updatedAt: 0 },
  sam: { email: 'sam@acme.test', active: true, groups: ['security'], updatedAt: 0 },
  rel: { email: 'rel@acme.test', active: true, groups: ['deployers'], updatedAt: 0 },
};

function blockedBuild(number: number, init: Partial<BuildkiteBuildSummary> = {}): void {
  bk.builds.set(`deploy/${number}`, {
    id: `build-${number}`,
    number,
    branch: 'feature/x',
    tag: null,
    commit: 'a'.repeat(40),
    source: 'ui',
    blocked: true,
    creator: { id: 'u1', name: 'Dev', email: 'dev@acme.test' },
    jobs: [
      { id: `cmd-${number}`, type: 'script', state: 'passed' },
      { id: `block-${number}`, type: 'manual', state: 'blocked', label: 'Deploy?', step_key: 'deploy', unblockable: true },
    ],
    ...init,
  });
}

async function open(number: number, init: Partial<BuildkiteBuildSummary> = {}): Promise<ApprovalRequestRecord> {
  blockedBuild(number, init);
  await service.handleBlockedBuild('deploy', number);
  return (await store.approvals.getByJob(`block-${number}`))!;
}

function revocation(scope: NewRevocation['scope'], id: string, lasts = 3600_000): NewRevocation {
  return { scope, id, revokedAt: clock.t, expiresAt: lasts === Infinity ? UNTIL_LIFTED : clock.t + lasts, reason: 'incident 42', origin: 'admin' };
}

async function makeService(s: Store): Promise<ApprovalService> {
  return new ApprovalService({ config, policy: await PolicyEngine.open(join(dir, 'policies')), store: s, log: new DecisionLog(s), api: bk, revocations, now: () => clock.t });
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'port-approval-revocation-'));
  mkdirSync(join(dir, 'policies'));
  writeFileSync(join(dir, 'policies', 'approvals.cedar'), APPROVAL_POLICIES);
  store = SqliteStore.open(join(dir, 'port.db'));
  for (const u of Object.values(users)) await store.users.upsert(u);
  bk = new FakeBuildkite();
  clock = { t: Date.UTC(2026, 10, 25, 12) };
  config = configFromObject(
    { server: { public_url: 'https://port.test' }, buildkite: { organization: 'acme' }, policies: './policies', approvals: { expire_after: '1h' } },
    join(dir, 'port.yaml'),
  );
  revocations = await RevocationList.open(store, clock.t);
  service = await makeService(store);
});
afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

const lastRecord = async () => (await store.decisions.last())!.record;

describe('a revoked approver', () => {
  it("can't approve or reject; the refusal is logged and the request is unchanged", async () => {
    const request = await open(1);
    await revocations.add(revocation('user', 'pat@acme.test'));
    for (const verdict of ['approve', 'reject'] as const) {
      await expect(service.decide(request.id, users.pat, verdict, 'me')).rejects.toMatchObject({ code: 'user_revoked', status: 403 });
      expect(await lastRecord()).toMatchObject({
        principal: 'Port::User::"pat@acme.test"',
        action: verdict,
        decision: 'deny',
        context: { request_id: request.id, revocation: { scope: 'user', id: 'pat@acme.test', reason: 'incident 42', origins: ['admin'] } },
      });
    }
    expect(await store.approvals.get(request.id)).toEqual(request);
    expect(service.eligibility(request, users.pat)).toMatchObject({ eligible: false, reason: expect.stringMatching(/^your access is revoked until 2026-11-25T13:00:00.000Z$/) });
    // Another approver is unaffected.
    expect((await service.decide(request.id, users.sam, 'approve', 'ok')).approvals.map((a) => a.email)).toEqual(['sam@acme.test']);
  });

  it('a revocation that lasts until lifted (SCIM) says so', async () => {
    const request = await open(2);
    await revocations.add({ ...revocation('user', 'pat@acme.test', Infinity), origin: 'scim' });
    await expect(service.decide(request.id, users.pat, 'approve', '')).rejects.toMatchObject({
      code: 'user_revoked',
      message: 'Your access to Port is revoked until it is lifted; your decision is not recorded.',
    });
    expect((await lastRecord()).context).toMatchObject({ revocation: { expires_at: null, origins: ['scim'] } });
  });
});

describe('a revoked step', () => {
  it("a build whose commit author is revoked is shut like its creator's (the reach of the revocation's own clean-up)", async () => {
    await revocations.add(revocation('user', 'ghost@acme.test'));
    const request = await open(3, { author: { name: 'Ghost', email: 'Ghost@acme.test' } });
    expect(request).toMatchObject({ status: 'revoked', authors: ['dev@acme.test', 'ghost@acme.test'] });
    expect(await lastRecord()).toMatchObject({ action: 'unblock', decision: 'deny', context: { revocation: { scope: 'user', id: 'ghost@acme.test' } } });
    expect(bk.unblocks).toHaveLength(0);
  });

  it('is never reopened or unblocked once the revocation is lifted: the closed request stands', async () => {
    const rel = { id: 'u2', name: 'Rel', email: 'rel@acme.test' };
    await revocations.add(revocation('build', 'acme/deploy/4'));
    const closed = await open(4, { branch: 'main', tag: 'v1.0.0', creator: rel });
    expect(closed.status).toBe('revoked');
    await revocations.lift('build', 'acme/deploy/4', { reason: 'false alarm', now: clock.t + 1 });
    clock.t += 2;
    await service.handleBlockedBuild('deploy', 4); // the webhook again
    expect(await store.approvals.getByJob('block-4')).toEqual(closed);
    expect(bk.unblocks).toHaveLength(0);
    // Control: the same build, never revoked, opens by policy.
    await open(5, { branch: 'main', tag: 'v1.0.0', creator: rel });
    expect(bk.unblocks.map((u) => u.jobId)).toEqual(['block-5']);
  });

  it('a revocation that lands while the last approval is on its way wins: the request closes, nothing is unblocked', async () => {
    const request = await open(6);
    expect((await service.decide(request.id, users.pat, 'approve', 'ok')).status).toBe('pending');
    // The revocation arrives between decide()'s checks and its transaction.
    const approvals = Object.create(store.approvals, {
      updatePending: {
        value: async (id: string, change: (r: ApprovalRequestRecord) => ApprovalRequestRecord) => {
          if (revocations.get('build', 'acme/deploy/6', clock.t) === undefined) await revocations.add(revocation('build', 'acme/deploy/6'));
          return store.approvals.updatePending(id, change);
        },
      },
    }) as typeof store.approvals;
    const racing = new Proxy(store, {
      get(target, prop, receiver) {
        if (prop === 'approvals') return approvals;
        const v = Reflect.get(target, prop, receiver) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    const raced = await makeService(racing);
    await expect(raced.decide(request.id, users.sam, 'approve', 'ok')).rejects.toMatchObject({ code: 'request_revoked', status: 409 });
    const after = (await store.approvals.get(request.id))!;
    expect(after.status).toBe('revoked');
    expect(after.approvals.map((a) => a.email)).toEqual(['pat@acme.test']);
    expect(bk.unblocks).toHaveLength(0);
    expect(await lastRecord()).toMatchObject({ principal: 'Port::User::"sam@acme.test"', action: 'approve', decision: 'deny', context: { request_closed: true, revocation: { scope: 'build' } } });
  });

  it('a viewer who may approve still sees a revoked request (wouldBeEligible), but may not act on it', async () => {
    await revocations.add(revocation('job', 'block-7'));
    const request = await open(7);
    expect(request.status).toBe('revoked');
    expect(service.wouldBeEligible(request, users.pat)).toBe(true);
    expect(service.eligibility(request, users.pat).eligible).toBe(false);
    await expect(service.decide(request.id, users.pat, 'approve', '')).rejects.toMatchObject({ code: 'request_closed' });
  });
});
