/**
 * `lineage()` over hand-made entries: the record shapes Port writes today and the ones
 * for credentials, revocation and SCIM (credential `assume` with facts, `revoke` by scope, `rotate`,
 * `scim_*`), linked the way the decision log's convention says (src/audit/lineage.ts).
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DecisionLog } from '../../src/audit/decision-log.js';
import type { DecisionEntry, DecisionRecord } from '../../src/store/records/decisions.js';
import { lineage, selectorProblem, type Lineage } from '../../src/audit/lineage.js';
import { lineageToText } from '../../src/audit/lineage-format.js';
import { readLineage } from '../../src/audit/lineage-read.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { jtiHash } from '../../src/audit/token-hash.js';
import { tempDir } from './helpers.js';

const JOB = '01900000-0000-4000-8000-00000000000a';
const SIBLING = '01900000-0000-4000-8000-00000000000b';
const BLOCK = '01900000-0000-4000-8000-00000000000c';
const OTHER = '01900000-0000-4000-8000-0000000000ff';
const AGENT = '01900000-0000-4000-8000-0000000000a1';
const H1 = jtiHash('jti-1');
const H2 = jtiHash('jti-2');
const HX = jtiHash('jti-other');

const t = (s: number): string => new Date(Date.UTC(2025, 5, 1, 10, 0, s)).toISOString();
const job = (id: string, extra: Record<string, unknown> = {}) => ({
  organization_slug: 'acme',
  pipeline_slug: 'deploy',
  build_number: 7,
  build_branch: 'main',
  build_tag: '',
  build_commit: 'abcdef0123456789',
  step_key: 'ship',
  job_id: id,
  agent_id: AGENT,
  cluster_name: 'prod',
  queue_key: 'deploy',
  build_source: 'ui',
  runner_environment: 'buildkite-hosted',
  build_creator: 'dev@acme.test',
  ...extra,
});

let seq = 0;
function rec(time: number, r: Partial<DecisionRecord>): DecisionEntry {
  seq++;
  return {
    seq,
    prevHash: '0'.repeat(64),
    hash: String(seq).padStart(64, '0'),
    record: { id: `dec-${seq}`, time: t(time), principal: null, action: 'x', resource: null, decision: 'allow', policies: [], reason: 'r', context: {}, ...r },
  };
}
const jobP = (id: string) => `Port::Job::"${id}"`;
const ids = (l: Lineage) => l.entries.map((e) => e.record.id);
const actions = (l: Lineage) => l.entries.map((e) => e.record.action);

function jobChain(): DecisionEntry[] {
  seq = 0;
  return [
    // 1: an agent revocation before the job existed covers none of its tokens.
    rec(0, { action: 'revoke', principal: 'Port::User::"admin@acme.test"', context: { scope: 'agent', id: AGENT, reason: 'old incident' } }),
    // 2–3: the exchange and its grant (same HTTP request id as another job's exchange below).
    rec(1, {
      action: 'exchange',
      principal: jobP(JOB),
      resource: 'Port::Organization::"acme"',
      policies: [{ id: 'acme-jobs', reason: 'acme jobs' }],
      reason: 'allowed by acme-jobs: acme jobs',
      context: { job: job(JOB), subject_token: { kid: 'k', jti_sha256: HX, iat: 1, exp: 2 }, port_token: { jti_sha256: H1, exp: 1748772900, aud: 'https://port.acme.test' }, request_id: 'req-1' },
    }),
    rec(1, {
      action: 'assume',
      principal: jobP(JOB),
      resource: 'Port::Credential::"aws-prod"',
      reason: 'allowed by aws',
      context: { job: job(JOB), subject_token: { kid: 'k', jti_sha256: HX }, port_token: { jti_sha256: H1 }, request_id: 'req-1' },
    }),
    // 4: another job's exchange with the same HTTP request id: not linked.
    rec(2, { action: 'exchange', principal: jobP(OTHER), context: { job: job(OTHER, { build_number: 8, agent_id: 'agent-x' }), port_token: { jti_sha256: H2 }, request_id: 'req-1' } }),
    // 5: the credential is issued (the record shape the credentials engineer adds).
    rec(3, {
      action: 'assume',
      principal: jobP(JOB),
      resource: 'Port::Credential::"aws-prod"',
      reason: 'allowed by aws',
      context: {
        job: job(JOB),
        port_token: { jti_sha256: H1 },
        credential: { type: 'aws_role', role_arn: 'arn:aws:iam::123456789012:role/deploy', session_name: `bk-deploy-7-${JOB}`.slice(0, 64), expires_at: 1748773800, recallable: false },
      },
    }),
    // 6: a relay denial, logged at once (with the job and the token, as the relay writes it).
    rec(5, {
      action: 'proxy',
      decision: 'deny',
      principal: jobP(JOB),
      resource: 'Port::Upstream::"files"',
      reason: 'forbidden by no-admin',
      policies: [{ id: 'no-admin' }],
      context: { token_kind: 'port', job: job(JOB), port_token: { jti_sha256: H1 }, upstream: 'files', method: 'GET', path: '/admin/x' },
    }),
    // 7: a rotation of the credential it holds; 8: of one it never got.
    rec(6, { action: 'rotate', principal: null, resource: 'Port::Credential::"aws-prod"', context: { trigger: 'admin', versions: { current: 3, previous: 2 }, retires_at: t(600) } }),
    rec(6, { action: 'rotate', principal: null, resource: 'Port::Credential::"npm"', context: { trigger: 'schedule' } }),
    // 9: the agent is revoked after the job got its token: covers it.
    rec(7, { action: 'revoke', principal: 'Port::User::"admin@acme.test"', context: { scope: 'agent', id: AGENT, reason: 'suspicious', tokens: 2 } }),
    // 10: the job's own token revoked by the holder (RFC 7009 shape).
    rec(8, { action: 'revoke', principal: jobP(JOB), context: { port_token: { jti_sha256: H1, exp: 1748772900 }, request_id: 'req-9' } }),
    // 11: job.finished.
    rec(9, { action: 'revoke', principal: jobP(JOB), reason: 'The job finished', context: { job_id: JOB, build: { pipeline: 'deploy', number: 7 } } }),
    // 12: the aggregated relay allow, written when its window closed, after everything above.
    rec(20, {
      action: 'proxy',
      principal: jobP(JOB),
      resource: 'Port::Upstream::"files"',
      reason: 'allowed by files-read',
      policies: [{ id: 'files-read', reason: 'reads' }],
      context: { token_kind: 'port', job: job(JOB), port_token: { jti_sha256: H1 }, upstream: 'files', method: 'GET', requests: 3, window_start: t(4) },
    }),
    // 13: a token-scope revocation as RevocationService writes it (actor a word, the token by jti hash); 14: another job's, not linked.
    rec(21, {
      action: 'revoke',
      principal: 'admin',
      resource: null,
      context: { scope: 'token', jti_sha256: H1, reason: 'leaked', approvals_closed: [], sessions_ended: 0, credentials_recallable: 1, credentials_not_recallable: 0 },
    }),
    rec(21, { action: 'revoke', principal: 'admin', context: { scope: 'token', jti_sha256: H2 } }),
    // 15: a credential asked for with the revoked token: refused at release.
    rec(22, { action: 'assume', decision: 'deny', principal: jobP(JOB), resource: 'Port::Credential::"aws-prod"', reason: 'The Port token has been revoked.', context: { job: job(JOB), port_token: { jti_sha256: H1 }, check: 'revoked' } }),
  ];
}

describe('lineage --job', () => {
  it('follows a job from its exchange to its revocations, in time order, and nothing else', () => {
    const entries = jobChain();
    const l = lineage(entries, { kind: 'job', id: JOB });
    expect(l.groups.map((g) => `${g.kind}:${g.id}`)).toEqual([`job:${JOB}`]);
    // The relay window (started at :04) sorts before the denial at :05; unlinked entries are absent.
    expect(ids(l)).toEqual(['dec-2', 'dec-3', 'dec-5', 'dec-12', 'dec-6', 'dec-7', 'dec-9', 'dec-10', 'dec-11', 'dec-13', 'dec-15']);
    const steps = l.groups[0]!.steps;
    expect(steps.map((s) => s.stage)).toEqual(['exchange', 'grant', 'credential', 'relay', 'relay', 'rotation', 'revocation', 'revocation', 'revocation', 'revocation', 'credential']);
    const facts = (i: number) => Object.fromEntries(steps[i]!.facts);
    const short = `sha256:${H1.slice(0, 16)}`;
    expect(facts(0)).toMatchObject({ port_token: short, audience: 'https://port.acme.test', expires: new Date(1748772900 * 1000).toISOString() });
    expect(facts(2)).toMatchObject({ type: 'aws_role', session_name: `bk-deploy-7-${JOB}`.slice(0, 64), expires: new Date(1748773800 * 1000).toISOString(), recallable: 'false', port_token: short });
    expect(facts(3)).toEqual({ upstream: 'files', method: 'GET', requests: '3', until: t(20), token_kind: 'port', port_token: short });
    expect(steps[3]!.at).toBe(t(4));
    expect(facts(4)).toEqual({ upstream: 'files', method: 'GET', path: '/admin/x', token_kind: 'port', port_token: short });
    expect(facts(5)).toMatchObject({ trigger: 'admin', 'versions.current': '3', retires_at: t(600) });
    expect(facts(6)).toMatchObject({ scope: 'agent', id: AGENT, actor: 'User admin@acme.test', tokens: '2' });
    expect(facts(7)).toMatchObject({ scope: 'token', port_token: short });
    expect(facts(8)).toMatchObject({ scope: 'job', id: JOB });
    expect(facts(10)).toEqual({ refused_at: 'revoked', port_token: short });
    expect(facts(9)).toEqual({ scope: 'token', token: short, actor: 'admin', sessions_ended: '0', credentials_recallable: '1', credentials_not_recallable: '0' });
    expect(l.groups[0]!.title).toEqual(
      expect.arrayContaining([
        ['build', 'acme/deploy/7'],
        ['branch', 'main'],
        ['step', 'ship'],
        ['agent', AGENT],
        ['pool', 'prod/deploy'],
        ['creator', 'dev@acme.test'],
      ]),
    );
  });

  it('prints one line per entry with time, decision, action, resource, reason and facts; control characters escaped', () => {
    const entries = jobChain();
    entries[1]!.record.context.job = job(JOB, { build_branch: 'evil\u001b[2J\nforged line' });
    const text = lineageToText(lineage(entries, { kind: 'job', id: JOB }));
    const lines = text.trimEnd().split('\n');
    expect(lines[0]).toBe(`Lineage of job ${JOB}: 11 entries.`);
    // No raw newline or escape survives: the value is quoted as JSON and then escaped.
    expect(lines[2]).toContain('branch="evil\\u001b[2J\\nforged line"');
    expect(lines).toHaveLength(3 + 11);
    expect(lines[4]).toMatch(/ allow assume \(granted at exchange\) Port::Credential::"aws-prod" — allowed by aws \| port_token=/);
    expect(lines.at(-1)).toMatch(/ deny {2}assume \(credential refused\) Port::Credential::"aws-prod" — The Port token has been revoked\. \| refused_at=revoked port_token=/);
    expect(lines[3]).toBe(
      `  ${t(1)} allow exchange Port::Organization::"acme" — allowed by acme-jobs: acme jobs | port_token=sha256:${H1.slice(0, 16)} expires=${new Date(1748772900 * 1000).toISOString()} audience=https://port.acme.test buildkite_token=sha256:${HX.slice(0, 16)}`,
    );
    expect(lines[5]).toMatch(/^ {2}\S+ allow assume \(credential issued\) Port::Credential::"aws-prod" — allowed by aws \| type=aws_role session_name=bk-deploy-7-/);
    expect(lines[7]).toContain('deny  proxy Port::Upstream::"files" — forbidden by no-admin | upstream=files method=GET path=/admin/x');
  });

  it('an unknown job has no lineage', () => {
    expect(lineage(jobChain(), { kind: 'job', id: '01900000-0000-4000-8000-000000000999' }).entries).toEqual([]);
  });
});

function buildChain(): DecisionEntry[] {
  seq = 0;
  const step = `acme/deploy/7/deploy`;
  return [
    rec(1, { action: 'exchange', principal: jobP(JOB), resource: 'Port::Organization::"acme"', context: { job: job(JOB), port_token: { jti_sha256: H1 } } }),
    rec(2, { action: 'exchange', principal: jobP(SIBLING), resource: 'Port::Organization::"acme"', context: { job: job(SIBLING, { step_key: 'test' }), port_token: { jti_sha256: H2 } } }),
    // A job of another build.
    rec(2, { action: 'exchange', principal: jobP(OTHER), context: { job: job(OTHER, { build_number: 8 }) } }),
    // The block step: denied by policy, a request opened, notified, approved by two people, unblocked, seen.
    rec(3, {
      action: 'unblock',
      decision: 'deny',
      principal: 'Port::Build::"acme/deploy/7"',
      resource: `Port::BlockStep::"${step}"`,
      reason: 'forbidden by feature-deploys-need-review',
      context: { build: { id: 'b', pipeline: 'deploy', number: 7, branch: 'feature/x', creator: 'dev@acme.test' }, job_id: BLOCK, step: { key: 'deploy', label: 'Deploy?' } },
    }),
    rec(3, {
      action: 'approval_requested',
      principal: 'Port::Build::"acme/deploy/7"',
      resource: `Port::BlockStep::"${step}"`,
      context: { build: { pipeline: 'deploy', number: 7, creator: 'dev@acme.test' }, job_id: BLOCK, step: { key: 'deploy', label: 'Deploy?' }, request_id: 'req-A', requirement: { approvals: 2, groups: ['platform', 'security'] } },
    }),
    rec(4, { action: 'approval_notified', principal: 'Port::Build::"acme/deploy/7"', resource: `Port::BlockStep::"${step}"`, context: { request_id: 'req-A', job_id: BLOCK, event: 'opened', sink: 'slack' } }),
    rec(5, {
      action: 'approve',
      principal: 'Port::User::"plat@acme.test"',
      resource: `Port::BlockStep::"${step}"`,
      context: { request_id: 'req-A', job_id: BLOCK, build: { organization: 'acme', pipeline: 'deploy', number: 7, creator: { email: 'dev@acme.test', active: true, groups: [] } }, verdict: 'approve', is_author: false },
    }),
    rec(6, { action: 'approve', principal: 'Port::User::"sec@acme.test"', resource: `Port::BlockStep::"${step}"`, context: { request_id: 'req-A', job_id: BLOCK, verdict: 'approve', is_author: false } }),
    rec(6, { action: 'unblocked', principal: 'Port::Build::"acme/deploy/7"', resource: `Port::BlockStep::"${step}"`, context: { request_id: 'req-A', by: 'approvals', approvers: ['plat@acme.test', 'sec@acme.test'], unblocker: 'member-9', job_id: BLOCK } }),
    rec(7, { action: 'unblock_observed', principal: 'Port::Build::"acme/deploy/7"', context: { job_id: BLOCK, step_key: 'deploy', unblocked_by: { id: 'u', name: 'Sec', email: 'sec@acme.test' } } }),
    // job.finished for the sibling (its build has no organization in this record).
    rec(8, { action: 'revoke', principal: jobP(SIBLING), context: { job_id: SIBLING, build: { pipeline: 'deploy', number: 7 } } }),
    // A build-scope revocation, and one of another build.
    rec(9, { action: 'revoke', principal: 'Port::User::"admin@acme.test"', context: { scope: 'build', id: 'acme/deploy/7', reason: 'stop', approvals_closed: 0 } }),
    rec(9, { action: 'revoke', principal: 'Port::User::"admin@acme.test"', context: { scope: 'build', id: 'acme/deploy/8' } }),
    // A relay use by a job of the build with no job context (a Buildkite-token caller).
    rec(10, { action: 'proxy', principal: jobP(SIBLING), resource: 'Port::Upstream::"files"', context: { upstream: 'files', method: 'GET', requests: 1, window_start: t(10) } }),
  ];
}

describe('lineage --build', () => {
  it('groups the jobs of a build (block step included), with build-wide entries apart', () => {
    const l = lineage(buildChain(), { kind: 'build', id: 'acme/deploy/7' });
    expect(l.groups.map((g) => `${g.kind}:${g.id}`)).toEqual([`job:${JOB}`, `job:${SIBLING}`, `job:${BLOCK}`, 'build:acme/deploy/7']);
    const group = (id: string) => l.groups.find((g) => g.id === id)!;
    expect(group(JOB).steps.map((s) => s.entry.record.action)).toEqual(['exchange']);
    expect(group(SIBLING).steps.map((s) => s.entry.record.action)).toEqual(['exchange', 'revoke', 'proxy']);
    expect(group(BLOCK).steps.map((s) => s.entry.record.action)).toEqual(['unblock', 'approval_requested', 'approval_notified', 'approve', 'approve', 'unblocked', 'unblock_observed']);
    expect(group(BLOCK).title).toEqual(expect.arrayContaining([['block_step', 'acme/deploy/7/deploy'], ['label', 'Deploy?'], ['creator', 'dev@acme.test']]));
    const facts = group(BLOCK).steps.map((s) => Object.fromEntries(s.facts));
    expect(facts[1]).toMatchObject({ request: 'req-A', needs: '2 from platform,security', step: 'deploy' });
    expect(facts[3]).toMatchObject({ request: 'req-A', approver: 'plat@acme.test', verdict: 'approve', is_author: 'false' });
    expect(facts[5]).toMatchObject({ by: 'approvals', approvers: 'plat@acme.test,sec@acme.test', unblocker: 'member-9' });
    expect(facts[6]).toMatchObject({ unblocked_by: 'sec@acme.test' });
    expect(group('acme/deploy/7').steps.map((s) => Object.fromEntries(s.facts))).toEqual([{ scope: 'build', id: 'acme/deploy/7', actor: 'User admin@acme.test', approvals_closed: '0' }]);
    expect(l.entries.some((e) => JSON.stringify(e.record).includes('acme/deploy/8') || JSON.stringify(e.record).includes(OTHER))).toBe(false);
    expect(lineageToText(l).split('\n')[0]).toBe('Lineage of build acme/deploy/7: 12 entries in 3 jobs.');
  });
});

describe('lineage --user', () => {
  it('what a person started (their builds) and did (their approvals, the unblocks those led to), SCIM and user revocations', () => {
    seq = 0;
    const entries = [
      ...buildChain(),
      rec(11, { action: 'scim_deprovision', principal: 'Port::User::"dev@acme.test"', context: { active: false, source: 'okta' } }),
      rec(12, { action: 'revoke', principal: 'Port::User::"admin@acme.test"', context: { scope: 'user', id: 'Dev@Acme.test', reason: 'deprovisioned', actor: 'scim' } }),
      rec(12, { action: 'scim_provision', principal: 'Port::User::"someone@acme.test"', context: {} }),
    ];
    const l = lineage(entries, { kind: 'user', id: 'DEV@acme.test' });
    // dev@ created build 7 (and build 8's job carries their e-mail as creator too).
    expect(l.groups.map((g) => `${g.kind}:${g.id}`)).toEqual([`job:${JOB}`, `job:${SIBLING}`, `job:${OTHER}`, `job:${BLOCK}`, 'build:acme/deploy/7', 'build:acme/deploy/8', 'user:dev@acme.test']);
    const user = l.groups.at(-1)!;
    expect(user.steps.map((s) => s.entry.record.action)).toEqual(['scim_deprovision', 'revoke']);
    expect(Object.fromEntries(user.steps[1]!.facts)).toMatchObject({ scope: 'user', actor: 'scim' });
    expect(l.entries.some((e) => e.record.principal === 'Port::User::"someone@acme.test"')).toBe(false);

    // The approver's lineage: the request they decided, their approval and the unblock it led to; not the build's jobs.
    const plat = lineage(entries, { kind: 'user', id: 'plat@acme.test' });
    expect(actions(plat)).toEqual(['approval_requested', 'approval_notified', 'approve', 'approve', 'unblocked']);
  });
});

describe('relay decisions (context.job and the token hash, allows aggregated per token)', () => {
  const SOLO = '01900000-0000-4000-8000-0000000000c1';
  const HS = jtiHash('bk-jti-solo');
  const HP = jtiHash('jti-solo-port');
  const relayRec = (time: number, id: string, extra: Record<string, unknown>, r: Partial<DecisionRecord> = {}) =>
    rec(time, { action: 'proxy', principal: jobP(id), resource: 'Port::Upstream::"files"', reason: 'allowed by files-read', policies: [{ id: 'files-read' }], context: { upstream: 'files', method: 'GET', ...extra }, ...r });
  function chain(): DecisionEntry[] {
    seq = 0;
    const soloJob = job(SOLO, { build_number: 9, build_creator: 'solo@acme.test' });
    return [
      // 1: a Buildkite token presented to the relay by a job that never exchanged one.
      relayRec(1, SOLO, { token_kind: 'buildkite', job: soloJob, subject_token: { kid: 'k', jti_sha256: HS, iat: 1, exp: 2 }, requests: 2, window_start: t(0) }),
      // 2: later, a Port token of the same job; 3: denied on another path.
      relayRec(2, SOLO, { token_kind: 'port', job: soloJob, port_token: { jti_sha256: HP }, requests: 5, window_start: t(1) }),
      relayRec(3, SOLO, { token_kind: 'port', job: soloJob, port_token: { jti_sha256: HP }, path: '/admin' }, { decision: 'deny', reason: 'forbidden by no-admin', policies: [{ id: 'no-admin' }] }),
      // 4: someone else's build uses the same upstream.
      relayRec(4, OTHER, { token_kind: 'port', job: job(OTHER, { build_number: 8, build_creator: 'other@acme.test' }), port_token: { jti_sha256: H2 }, requests: 1, window_start: t(4) }),
      // 5, 6: records naming only a token of the job (no principal, no job context): linked by hash.
      rec(5, { action: 'revoke', principal: null, context: { port_token: { jti_sha256: HP } } }),
      rec(6, { action: 'exchange', principal: null, decision: 'deny', reason: 'replayed', context: { check: 'replayed', subject_token: { jti_sha256: HS } } }),
      // 7: a token hash of the other job: not linked.
      rec(7, { action: 'revoke', principal: null, context: { port_token: { jti_sha256: H2 } } }),
    ];
  }

  it('--build and --user find relay use through context.job alone (no exchange in the log)', () => {
    for (const selector of [{ kind: 'build', id: 'acme/deploy/9' }, { kind: 'user', id: 'Solo@acme.test' }] as const) {
      const l = lineage(chain(), selector);
      expect(ids(l), selector.kind).toEqual(['dec-1', 'dec-2', 'dec-3', 'dec-5', 'dec-6']);
      expect(l.groups.map((g) => `${g.kind}:${g.id}`)).toEqual([`job:${SOLO}`]);
      expect(l.groups[0]!.title).toEqual(expect.arrayContaining([['build', 'acme/deploy/9'], ['creator', 'solo@acme.test']]));
    }
    expect(ids(lineage(chain(), { kind: 'user', id: 'other@acme.test' }))).toEqual(['dec-4', 'dec-7']);
  });

  it('--job links records that name only its tokens, Port or Buildkite, by their hash; relay facts show which token', () => {
    const l = lineage(chain(), { kind: 'job', id: SOLO });
    expect(ids(l)).toEqual(['dec-1', 'dec-2', 'dec-3', 'dec-5', 'dec-6']);
    const facts = l.groups[0]!.steps.map((s) => Object.fromEntries(s.facts));
    expect(facts[0]).toEqual({ upstream: 'files', method: 'GET', requests: '2', until: t(1), token_kind: 'buildkite', buildkite_token: `sha256:${HS.slice(0, 16)}` });
    expect(facts[1]).toMatchObject({ requests: '5', token_kind: 'port', port_token: `sha256:${HP.slice(0, 16)}` });
    expect(facts[2]).toEqual({ upstream: 'files', method: 'GET', path: '/admin', token_kind: 'port', port_token: `sha256:${HP.slice(0, 16)}` });
  });
});

describe('tolerance', () => {
  it('odd and older records neither throw nor link by accident', () => {
    seq = 0;
    const entries = [
      rec(1, { principal: 'not an entity', context: { job: 'x', build: 5, port_token: 'abc', scope: 3 } }),
      rec(2, { principal: 'Port::Job::"unterminated', resource: 'Port::BlockStep::"x"', context: null as unknown as Record<string, unknown> }),
      rec(3, { action: 'exchange', principal: null, decision: 'deny', reason: 'bad signature', context: { check: 'signature' } }),
      rec(4, { action: 'revoke', principal: jobP(JOB), context: { scope: 'job', id: JOB } }),
      rec(5, { action: 'proxy', principal: jobP(JOB), context: { requests: 'many', window_start: 'not a time' } }),
    ];
    const l = lineage(entries, { kind: 'job', id: JOB });
    expect(ids(l)).toEqual(['dec-4', 'dec-5']);
    expect(l.groups[0]!.steps[1]!.at).toBe(t(5));
    expect(() => lineageToText(l)).not.toThrow();
    expect(lineage(entries, { kind: 'build', id: 'acme/deploy/7' }).entries).toEqual([]);
  });

  it('selectors are checked for shape', () => {
    expect(selectorProblem('job', JOB)).toBeUndefined();
    expect(selectorProblem('job', '../etc')).toMatch(/--job must be a Buildkite job id/);
    expect(selectorProblem('build', 'acme/deploy/7')).toBeUndefined();
    expect(selectorProblem('build', 'acme/deploy')).toMatch(/ORG\/PIPELINE\/NUMBER/);
    expect(selectorProblem('build', 'acme/deploy/x')).toBeDefined();
    expect(selectorProblem('user', 'dev@acme.test')).toBeUndefined();
    expect(selectorProblem('user', 'dev')).toMatch(/e-mail/);
  });
});

describe('readLineage (the store, in pages)', () => {
  it('reads the same chain as the pure function, whatever the page size', async () => {
    const tmp = tempDir();
    const store = SqliteStore.open(join(tmp.dir, 'port.db'));
    try {
      const records = [...buildChain(), ...jobChain()].map((e) => e.record);
      await new DecisionLog(store).record(records);
      const stored = await store.decisions.read(0, 1000);
      for (const selector of [
        { kind: 'job', id: JOB },
        { kind: 'build', id: 'acme/deploy/7' },
        { kind: 'user', id: 'dev@acme.test' },
      ] as const) {
        const expected = ids(lineage(stored, selector));
        expect(expected.length).toBeGreaterThan(0);
        for (const pageSize of [1, 2, 7, 1000]) {
          const read = await readLineage(store, selector, pageSize);
          expect(ids(read.lineage), `${selector.kind} in pages of ${pageSize}`).toEqual(expected);
          expect(read.lastSeq).toBe(stored.length);
        }
      }
    } finally {
      await store.close();
      tmp.cleanup();
    }
  });
});
