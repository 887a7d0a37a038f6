import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ApprovalService } from '../../src/approvals/approval-service.js';
import type { BuildkiteBuildSummary } from '../../src/approvals/buildkite-builds.js';
import { DecisionLog } from '../../src/audit/decision-log.js';
import { configFromObject } from '../../src/config/config.js';
import { PolicyEngine } from '../../src/policy/engine.js';
import { RevocationList } from '../../src/revocation/revocation-list.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { APPROVAL_POLICIES } from '../helpers/approval-policies.js';
import { FakeBuildkite } from '../helpers/fake-buildkite.js';


let dir: string;
let store: SqliteStore;
let bk: FakeBuildkite;
let clock: { t: number };
let service: ApprovalService;

const users = {
  dev: { email: 'dev@acme.test', active: true, groups: ['platform', 'developers'], updatedAt: 0 },
  deployer: { email: 'rel@acme.test', active: true, groups: ['deployers'], updatedAt: 0 },
  pat: { email: 'pat@acme.test', active: true, groups: ['platform'], updatedAt: 0 },
  sam: { email: 'sam@acme.test', active: true, groups: ['security'], updatedAt: 0 },
  outsider: { email: 'out@acme.test', active: true, groups: ['developers'], updatedAt: 0 },
};

function blockedBuild(number: number, init: Partial<BuildkiteBuildSummary>): BuildkiteBuildSummary {
  const b: BuildkiteBuildSummary = {
    id: `build-${number}`,
    number,
    branch: 'main',
    tag: null,
    commit: 'a'.repeat(40),
    source: 'webhook',
    blocked: true,
    creator: { id: 'u1', name: 'Dev', email: 'dev@acme.test' },
    jobs: [
      { id: `cmd-${number}`, type: 'script', state: 'passed' },
      { id: `block-${number}`, type: 'manual', state: 'blocked', label: 'Deploy?', step_key: 'deploy', unblockable: true },
    ],
    ...init,
  };
  bk.builds.set(`deploy/${number}`, b);
  return b;
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'port-approvals-'));
  mkdirSync(join(dir, 'policies'));
  writeFileSync(join(dir, 'policies', 'approvals.cedar'), APPROVAL_POLICIES);
  store = SqliteStore.open(join(dir, 'port.db'));
  for (const u of Object.values(users)) await store.users.upsert(u);
  bk = new FakeBuildkite();
  clock = { t: Date.UTC(2026, 10, 25, 12) };
  const config = configFromObject(
    { server: { public_url: 'https://port.test' }, buildkite: { organization: 'acme' }, policies: './policies', approvals: { expire_after: '1h' } },
    join(dir, 'port.yaml'),
  );
  service = new ApprovalService({ config, policy: await PolicyEngine.open(join(dir, 'policies')), store, log: new DecisionLog(store), api: bk, revocations: await RevocationList.open(store), now: () => clock.t });
});
afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

async function actions() {
  return (await store.decisions.read(0, 1000)).map((e) => `${e.record.action}:${e.record.decision}`);
}

describe('approvals', () => {
  it('(a) policy opens a release tag from main built by a deployer at once, and logs why', async () => {
    blockedBuild(1, { tag: 'v1.2.0', creator: { id: 'u2', email: 'REL@acme.test' } });
    await service.handleBlockedBuild('deploy', 1);
    expect(bk.unblocks).toEqual([{ jobId: 'block-1', body: {} }]);
    const log = await store.decisions.read(0, 10);
    expect(log[0]!.record).toMatchObject({ action: 'unblock', decision: 'allow', principal: 'Port::Build::"acme/deploy/1"', resource: 'Port::BlockStep::"acme/deploy/1/deploy"', policies: [{ id: 'release-tags-open' }] });
    expect(log[1]!.record).toMatchObject({ action: 'unblocked', context: { by: 'policy' } });
    expect(await store.approvals.getByJob('block-1')).toBeUndefined();
  });

  it('(b) a feature-branch deploy needs one platform and one security approval; the author and outsiders do not count', async () => {
    blockedBuild(2, { branch: 'feature/login' });
    await service.handleBlockedBuild('deploy', 2);
    await service.handleBlockedBuild('deploy', 2); // a repeated webhook opens nothing new
    const request = (await store.approvals.getByJob('block-2'))!;
    expect(request).toMatchObject({ status: 'pending', requirement: { approvals: 2, groups: ['platform', 'security'], policies: [{ id: 'feature-deploys-need-review' }] } });
    expect(bk.unblocks).toHaveLength(0);

    await expect(service.decide(request.id, users.dev, 'approve', 'lgtm')).rejects.toMatchObject({ code: 'author_cannot_approve', status: 403 });
    await expect(service.decide(request.id, users.outsider, 'approve', '')).rejects.toMatchObject({ code: 'not_eligible', status: 403 });
    await expect(service.decide(request.id, { ...users.pat, active: false }, 'approve', '')).rejects.toMatchObject({ code: 'user_inactive' });
    expect((await service.decide(request.id, users.pat, 'approve', 'ok from platform')).status).toBe('pending');
    await expect(service.decide(request.id, users.pat, 'approve', 'again')).rejects.toMatchObject({ code: 'already_decided' });
    expect(bk.unblocks).toHaveLength(0);
    expect((await service.decide(request.id, users.sam, 'approve', 'ok from security')).status).toBe('unblocked');
    expect(bk.unblocks).toEqual([{ jobId: 'block-2', body: {} }]);
    await expect(service.decide(request.id, users.sam, 'approve', '')).rejects.toMatchObject({ code: 'request_closed' });
    expect(await actions()).toEqual([
      'unblock:deny',
      'approval_requested:allow',
      'approve:deny', // the author
      'approve:deny', // the outsider
      'approve:allow',
      'approve:allow',
      'unblocked:allow',
    ]);
    const last = await store.decisions.last();
    expect(last!.record.context).toMatchObject({ by: 'approvals', approvers: ['pat@acme.test', 'sam@acme.test'] });
  });

  it('a rejection closes the request and nothing is unblocked', async () => {
    blockedBuild(3, { branch: 'feature/x' });
    await service.handleBlockedBuild('deploy', 3);
    const request = (await store.approvals.getByJob('block-3'))!;
    expect((await service.decide(request.id, users.sam, 'reject', 'not today')).status).toBe('rejected');
    await expect(service.decide(request.id, users.pat, 'approve', '')).rejects.toMatchObject({ code: 'request_closed' });
    expect(bk.unblocks).toHaveLength(0);
  });

  it('(c) an unanswered request expires and can no longer be approved', async () => {
    blockedBuild(4, { branch: 'feature/y' });
    await service.handleBlockedBuild('deploy', 4);
    const request = (await store.approvals.getByJob('block-4'))!;
    await service.decide(request.id, users.pat, 'approve', '');
    expect(await service.expireDue()).toBe(0);
    clock.t += 3600_000;
    expect(await service.expireDue()).toBe(1);
    expect((await store.approvals.get(request.id))!.status).toBe('expired');
    await expect(service.decide(request.id, users.sam, 'approve', '')).rejects.toMatchObject({ code: 'request_closed' });
    expect(bk.unblocks).toHaveLength(0);
    expect((await store.decisions.last())!.record).toMatchObject({ action: 'approval_expired' });
  });

  it('credits the unblock to the approver who completed it, and says so when the unblock call fails', async () => {
    blockedBuild(7, { branch: 'feature/c' });
    blockedBuild(8, { branch: 'feature/d' });
    await service.handleBlockedBuild('deploy', 7);
    await service.handleBlockedBuild('deploy', 8);
    bk.members.set('sam@acme.test', 'bk-user-sam');
    const r7 = (await store.approvals.getByJob('block-7'))!;
    await service.decide(r7.id, users.pat, 'approve', '');
    await service.decide(r7.id, users.sam, 'approve', '');
    expect(bk.unblocks).toEqual([{ jobId: 'block-7', body: { unblocker: 'bk-user-sam' } }]);
    const r8 = (await store.approvals.getByJob('block-8'))!;
    bk.failUnblock = true;
    await service.decide(r8.id, users.pat, 'approve', '');
    await expect(service.decide(r8.id, users.sam, 'approve', '')).rejects.toMatchObject({ code: 'unblock_failed', status: 502 });
    expect((await store.approvals.get(r8.id))!.status).toBe('unblock_failed');
    expect((await store.decisions.last())!.record).toMatchObject({ action: 'unblock_failed', decision: 'deny' });
  });

  it('with on_expiry: fail, an expired request cancels the build', async () => {
    const config = configFromObject(
      { server: { public_url: 'https://port.test' }, buildkite: { organization: 'acme' }, policies: './policies', approvals: { expire_after: '1h', on_expiry: 'fail' } },
      join(dir, 'port.yaml'),
    );
    const failing = new ApprovalService({ config, policy: await PolicyEngine.open(join(dir, 'policies')), store, log: new DecisionLog(store), api: bk, revocations: await RevocationList.open(store), now: () => clock.t });
    blockedBuild(9, { branch: 'feature/z' });
    await failing.handleBlockedBuild('deploy', 9);
    clock.t += 3600_000;
    expect(await failing.expireDue()).toBe(1);
    expect(bk.cancels).toEqual(['deploy/9']);
    expect(bk.unblocks).toHaveLength(0);
    expect((await store.decisions.last())!.record).toMatchObject({ action: 'build_canceled', decision: 'allow' });
  });

  it('two concurrent last approvals unblock once; the loser finds the request closed', async () => {
    blockedBuild(10, { branch: 'feature/race' });
    await service.handleBlockedBuild('deploy', 10);
    const r = (await store.approvals.getByJob('block-10'))!;
    await service.decide(r.id, users.pat, 'approve', '');
    const sam2 = { ...users.sam, email: 'sam2@acme.test' };
    await store.users.upsert(sam2);
    const results = await Promise.allSettled([service.decide(r.id, users.sam, 'approve', ''), service.decide(r.id, sam2, 'approve', '')]);
    expect(results.filter((x) => x.status === 'fulfilled')).toHaveLength(1);
    expect(results.find((x) => x.status === 'rejected')).toMatchObject({ reason: { code: 'request_closed' } });
    expect(bk.unblocks.filter((u) => u.jobId === 'block-10')).toHaveLength(1);
    expect((await store.approvals.get(r.id))!.status).toBe('unblocked');
  });

  it('an approval is bound to its own build and step', async () => {
    blockedBuild(5, { branch: 'feature/a' });
    blockedBuild(6, { branch: 'feature/b' });
    await service.handleBlockedBuild('deploy', 5);
    await service.handleBlockedBuild('deploy', 6);
    const r5 = (await store.approvals.getByJob('block-5'))!;
    const r6 = (await store.approvals.getByJob('block-6'))!;
    await service.decide(r5.id, users.pat, 'approve', '');
    await service.decide(r5.id, users.sam, 'approve', '');
    expect(bk.unblocks.map((u) => u.jobId)).toEqual(['block-5']);
    expect((await store.approvals.get(r6.id))!).toMatchObject({ status: 'pending', approvals: [] });
  });
});
