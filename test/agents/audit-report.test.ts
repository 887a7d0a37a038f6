import { describe, expect, it } from 'vitest';
import { readAgentAudit } from '../../src/agents/audit-read.js';
import { agentAuditJson, agentAuditText } from '../../src/agents/audit-report-format.js';
import { buildAgentAudit, type AgentAuditOptions } from '../../src/agents/audit-report.js';
import { DecisionLog } from '../../src/audit/decision-log.js';
import type { AttestationMethod, PoolConfig } from '../../src/config/config.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { exchange, exchangeRefused, refusedRelease, relayed, release, type AgentJob } from './agent-decisions.js';

const DAY = 86_400_000;
const NOW = Date.UTC(2030, 5, 15, 12);
const SINCE = NOW - 7 * DAY;

function pool(key: string, attestation: AttestationMethod[], enforcement: 'enforce' | 'audit' = 'enforce'): PoolConfig {
  const [clusterName, queueKey] = key.split('/') as [string, string];
  return { key, clusterName, queueKey, attestation, enforcement, aws: { accounts: [], regions: [], roles: [] }, hostBound: false, attestationTtl: 86400, autoscalers: [] };
}

const POOLS = {
  'linux/deploy': pool('linux/deploy', ['buildkite', 'aws_iam'], 'audit'),
  'linux/ci': pool('linux/ci', []),
  'mac/*': pool('mac/*', ['aws_iid']),
};
const opts = (over: Partial<AgentAuditOptions> = {}): AgentAuditOptions => ({ pools: POOLS, since: SINCE, until: NOW, ...over });

const deployA: AgentJob = { agentId: 'agent-a', pool: 'linux/deploy' };
const deployB: AgentJob = { agentId: 'agent-b', pool: 'linux/deploy' };
const ciC: AgentJob = { agentId: 'agent-c', pool: 'linux/ci' };
const macD: AgentJob = { agentId: 'agent-d', pool: 'mac/arm' };
const attested = { required: ['buildkite', 'aws_iam'], attestation: ['buildkite', 'aws_iam'] };
const auditModeUnattested = { required: ['buildkite', 'aws_iam'], attestation: ['buildkite'], attested: false, enforcement: 'audit' as const };
const T = NOW - DAY;

describe('agent audit report', () => {
  it('a pool requiring aws_iam that served an agent lacking it (audit mode) fails, naming the agent and everything it received', () => {
    const report = buildAgentAudit(
      [
        ...exchange(T, deployA, auditModeUnattested, ['aws-deploy']),
        release(T + 1, deployA, auditModeUnattested, 'aws-deploy'),
        relayed(T + 2, deployA, auditModeUnattested, 'github'),
        ...exchange(T + 3, deployB, attested, ['npm-publish']),
      ],
      opts(),
    );
    expect(report.ok).toBe(false);
    expect(report.pools).toHaveLength(1);
    const [deploy] = report.pools;
    expect(deploy).toMatchObject({ pool: 'linux/deploy', ok: false, rule: { key: 'linux/deploy', attestation: ['buildkite', 'aws_iam'], enforcement: 'audit' } });
    expect(deploy!.rows).toEqual([
      {
        agentId: 'agent-a',
        attestation: { recorded: true, attested: false, methods: ['buildkite'], missing: ['aws_iam'], enforcement: 'audit' },
        received: { portTokens: 1, credentials: ['aws-deploy'], upstreams: ['github'] },
        decisions: 4,
        first: new Date(T).toISOString(),
        last: new Date(T + 2).toISOString(),
        unmet: ['aws_iam'],
      },
      expect.objectContaining({ agentId: 'agent-b', unmet: [], received: { portTokens: 1, credentials: ['npm-publish'], upstreams: [] } }),
    ]);
    const text = agentAuditText(report);
    expect(text).toContain('Pool linux/deploy — requires buildkite + aws_iam, enforcement: audit');
    expect(text).toMatch(/FAIL: 1 agent received something without buildkite \+ aws_iam attestation: agent-a \(credentials aws-deploy; Port token; upstreams github\)\./);
    expect(text).toMatch(/^  agent-a +buildkite \(missing aws_iam; audit mode\) +credentials aws-deploy; Port token; upstreams github +NOT ATTESTED \(aws_iam\)$/m);
    expect(text).toMatch(/^FAILED: 1 pool \(linux\/deploy\) served agents not attested/m);
  });

  it('every agent attested as its pool requires: ok, with one OK line per pool', () => {
    const report = buildAgentAudit([...exchange(T, deployB, attested, ['aws-deploy']), relayed(T, ciC, { required: [], attestation: [] }, 'npm'), release(T, macD, { required: ['aws_iid'], attestation: ['aws_iid'] }, 'signing')], opts());
    expect(report.ok).toBe(true);
    expect(report.pools.map((p) => [p.pool, p.ok, p.rule?.key])).toEqual([
      ['linux/ci', true, 'linux/ci'],
      ['linux/deploy', true, 'linux/deploy'],
      ['mac/arm', true, 'mac/*'],
    ]);
    const text = agentAuditText(report);
    expect(text).toContain('OK: this pool requires no attestation.');
    expect(text).toContain('OK: every agent was attested with buildkite + aws_iam.');
    expect(text).toContain('Pool mac/arm (pools.mac/*) — requires aws_iid, enforcement: enforce');
    expect(text).toMatch(/^OK: every pool that requires attestation served only agents attested/m);
  });

  it('decisions recorded before Port checked agents count as unattested for a pool that requires attestation now', () => {
    const report = buildAgentAudit([...exchange(T, deployA, undefined, ['aws-deploy']), relayed(T, ciC, undefined, 'npm')], opts());
    expect(report.ok).toBe(false);
    const deploy = report.pools.find((p) => p.pool === 'linux/deploy')!;
    expect(deploy.rows).toEqual([expect.objectContaining({ agentId: 'agent-a', attestation: { recorded: false }, unmet: ['buildkite', 'aws_iam'] })]);
    // A pool requiring nothing is fine with it.
    expect(report.pools.find((p) => p.pool === 'linux/ci')!.ok).toBe(true);
    expect(agentAuditText(report)).toContain('unknown (no agent check recorded)');
  });

  it('an agent served in two states gets a row for each; only the unattested one fails, listed first', () => {
    const report = buildAgentAudit([...exchange(T, deployA, attested, ['aws-deploy']), release(T + 5, deployA, auditModeUnattested, 'npm-publish')], opts());
    expect(report.pools[0]!.rows.map((r) => [r.agentId, r.received.credentials, r.unmet])).toEqual([
      ['agent-a', ['npm-publish'], ['aws_iam']],
      ['agent-a', ['aws-deploy'], []],
    ]);
  });

  it("a Port token's later uses (recorded without the pool's rules) join its exchange's row", () => {
    const [minted] = exchange(T, deployB, attested, []);
    const proxied = relayed(T + 1, deployB, attested, 'github');
    // The relay records what the token carries: the facts, not the pool's enforcement or what it requires.
    const agent = proxied.context.agent as Record<string, unknown>;
    delete agent.enforcement;
    delete agent.required;
    delete agent.configured;
    const report = buildAgentAudit([minted!, proxied], opts());
    expect(report.pools[0]!.rows).toHaveLength(1);
    expect(report.pools[0]!.rows[0]).toMatchObject({ agentId: 'agent-b', received: { upstreams: ['github'] }, unmet: [] });
  });

  it('only what was handed out counts: refusals and decisions of a refused exchange are not deliveries', () => {
    const report = buildAgentAudit([...exchangeRefused(T, deployA, auditModeUnattested, 'aws-deploy', 'prod-db'), refusedRelease(T, deployA, auditModeUnattested, 'prod-db')], opts());
    expect(report).toMatchObject({ ok: true, pools: [] });
    expect(agentAuditText(report)).toMatch(/^No agent received anything from .* to .*\.\nOK: nothing to audit in this window\.\n$/);
  });

  it('fails closed on records that contradict themselves or are malformed', () => {
    const liar = exchange(T, deployA, { required: ['buildkite', 'aws_iam'], attestation: ['buildkite', 'aws_iam'], attested: false, missing: [] });
    const listed = exchange(T, deployB, { required: ['buildkite', 'aws_iam'], attestation: ['buildkite', 'aws_iam'], missing: ['aws_iam'] });
    const garbled = exchange(T, { agentId: 'agent-e', pool: 'linux/deploy' }, attested);
    (garbled[0]!.context.agent as Record<string, unknown>).attestation = 'buildkite,aws_iam';
    const report = buildAgentAudit([...liar, ...listed, ...garbled], opts());
    expect(report.pools[0]!.rows.map((r) => [r.agentId, r.unmet])).toEqual([
      ['agent-a', ['aws_iam']],
      ['agent-b', ['aws_iam']],
      ['agent-e', ['buildkite', 'aws_iam']],
    ]);
  });

  it('the window: before --since and at or after the end are left out', () => {
    const report = buildAgentAudit(
      [...exchange(SINCE - 1, deployA, undefined, ['old']), ...exchange(SINCE, deployB, attested, ['edge']), ...exchange(NOW, deployA, undefined, ['future']), { ...release(T, deployA, undefined, 'x'), time: 'yesterday' }],
      opts(),
    );
    expect(report.ok).toBe(true);
    expect(report.pools[0]!.rows.map((r) => [r.agentId, r.received.credentials])).toEqual([['agent-b', ['edge']]]);
    expect(report.since).toBe(new Date(SINCE).toISOString());
  });

  it('--pool keeps one pool exactly, or every queue of a cluster with CLUSTER/*', () => {
    const records = [...exchange(T, deployA, undefined), ...exchange(T, ciC, undefined), ...exchange(T, macD, undefined), ...exchange(T, { agentId: 'agent-x' }, undefined)];
    expect(buildAgentAudit(records, opts({ pool: 'linux/ci' })).pools.map((p) => p.pool)).toEqual(['linux/ci']);
    expect(buildAgentAudit(records, opts({ pool: 'linux/*' })).pools.map((p) => p.pool)).toEqual(['linux/ci', 'linux/deploy']);
    expect(buildAgentAudit(records, opts({ pool: 'linux/dep' })).pools).toEqual([]);
    const all = buildAgentAudit(records, opts());
    // Tokens without pool claims are listed last and judged by no pool.
    expect(all.pools.map((p) => p.pool)).toEqual(['linux/ci', 'linux/deploy', 'mac/arm', null]);
    expect(all.pools.at(-1)).toMatchObject({ ok: true, rows: [{ agentId: 'agent-x' }] });
    expect(agentAuditText(all)).toContain('Jobs without pool claims (cluster_name, queue_key) — no pools: entry');
  });

  it('--json: snake_case report with the rule, the attestation seen and what was received', () => {
    const report = buildAgentAudit([...exchange(T, deployA, auditModeUnattested, ['aws-deploy']), relayed(T, deployA, undefined, 'github')], opts({ pool: 'linux/deploy' }));
    expect(JSON.parse(agentAuditJson(report))).toEqual({
      ok: false,
      since: new Date(SINCE).toISOString(),
      until: new Date(NOW).toISOString(),
      pool_filter: 'linux/deploy',
      pools: [
        {
          pool: 'linux/deploy',
          rule: { key: 'linux/deploy', attestation: ['buildkite', 'aws_iam'], enforcement: 'audit', host_bound: false },
          ok: false,
          agents: [
            {
              agent_id: 'agent-a',
              attestation: { recorded: true, attested: false, methods: ['buildkite'], missing: ['aws_iam'], enforcement: 'audit' },
              received: { port_tokens: 1, credentials: ['aws-deploy'], upstreams: [] },
              decisions: 2,
              first: new Date(T).toISOString(),
              last: new Date(T).toISOString(),
              unmet: ['aws_iam'],
            },
            {
              agent_id: 'agent-a',
              attestation: { recorded: false },
              received: { port_tokens: 0, credentials: [], upstreams: ['github'] },
              decisions: 1,
              first: new Date(T).toISOString(),
              last: new Date(T).toISOString(),
              unmet: ['buildkite', 'aws_iam'],
            },
          ],
        },
      ],
    });
  });

  it('reads the whole log from the store in pages', async () => {
    const store = SqliteStore.open(':memory:');
    try {
      const log = new DecisionLog(store);
      for (let i = 0; i < 5; i++) await log.record(exchange(T + i, { agentId: `agent-${i}`, pool: 'linux/deploy' }, i === 3 ? undefined : attested, ['aws-deploy']));
      const report = await readAgentAudit(store.decisions, opts(), 3);
      expect(report.pools[0]!.rows.map((r) => [r.agentId, r.unmet.length])).toEqual([
        ['agent-3', 2],
        ['agent-0', 0],
        ['agent-1', 0],
        ['agent-2', 0],
        ['agent-4', 0],
      ]);
    } finally {
      await store.close();
    }
  });
});
