import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DecisionLog } from '../../src/audit/decision-log.js';
import type { DecisionRecord } from '../../src/store/records/decisions.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { exchange, relayed, release } from '../agents/agent-decisions.js';
import { writeConfig } from '../audit/helpers.js';
import { runPort } from '../helpers/spawn-port.js';

/** The real bin, several runs per test; a start can take seconds on a busy machine. */
const SLOW = 60_000;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

const POOLS = `pools:
  linux/deploy: {attestation: [buildkite, aws_iam], enforcement: audit, aws: {accounts: ['123456789012']}}
  linux/ci: {}
`;
const attested = { required: ['buildkite', 'aws_iam'], attestation: ['buildkite', 'aws_iam'] };
const lacking = { required: ['buildkite', 'aws_iam'], attestation: ['buildkite'], attested: false, enforcement: 'audit' as const };

let root: string;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'port-agents-audit-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A config with pools and a store holding `records`, written through the real DecisionLog. */
async function setup(name: string, records: DecisionRecord[]): Promise<string> {
  const dir = join(root, name);
  const config = writeConfig(dir, POOLS);
  const store = SqliteStore.open(join(dir, 'port.db'));
  try {
    await new DecisionLog(store).record(records);
  } finally {
    await store.close();
  }
  return config;
}

const audit = (config: string, ...args: string[]) => runPort(['agents', 'audit', '-c', config, ...args]);

describe('port agents audit', () => {
  const now = Date.now();
  let recentBad: string;
  let oldBad: string;
  beforeAll(async () => {
    recentBad = await setup('recent-bad', [
      ...exchange(now - DAY, { agentId: 'agent-good', pool: 'linux/deploy' }, attested, ['aws-deploy']),
      release(now - DAY, { agentId: 'agent-good', pool: 'linux/deploy' }, attested, 'aws-deploy'),
      relayed(now - DAY, { agentId: 'agent-ci', pool: 'linux/ci' }, { required: [], attestation: [] }, 'npm'),
      // Served because the pool is in audit mode: what enforcing would have refused.
      ...exchange(now - 2 * HOUR, { agentId: 'agent-bad', pool: 'linux/deploy' }, lacking, ['aws-deploy']),
      relayed(now - HOUR, { agentId: 'agent-bad', pool: 'linux/deploy' }, lacking, 'github'),
    ]);
    oldBad = await setup('old-bad', [
      // Before Port checked agents (no context.agent), ten days ago.
      ...exchange(now - 10 * DAY, { agentId: 'agent-old', pool: 'linux/deploy' }, undefined, ['aws-deploy']),
      ...exchange(now - DAY, { agentId: 'agent-good', pool: 'linux/deploy' }, attested, ['aws-deploy']),
    ]);
  });

  it(
    'exit 1 when a pool requiring aws_iam served an agent in audit mode without it, naming the agent and what it got',
    async () => {
      const r = await audit(recentBad);
      expect(r.code).toBe(1);
      expect(r.stdout).toContain('Pool linux/deploy — requires buildkite + aws_iam, enforcement: audit');
      expect(r.stdout).toMatch(/^ {2}agent-bad +buildkite \(missing aws_iam; audit mode\) +credentials aws-deploy; Port token; upstreams github +NOT ATTESTED \(aws_iam\)$/m);
      expect(r.stdout).toMatch(/^ {2}agent-good +aws_iam\+buildkite +credentials aws-deploy; Port token +ok$/m);
      expect(r.stdout).toContain('FAIL: 1 agent received something without buildkite + aws_iam attestation: agent-bad (credentials aws-deploy; Port token; upstreams github).');
      expect(r.stdout).toContain('Pool linux/ci — requires no attestation');
      expect(r.stdout).toMatch(/^FAILED: 1 pool \(linux\/deploy\)/m);
      expect(r.stderr).toBe('port agents audit: FAILED: a pool that requires attestation served agents not attested as it requires\n');
    },
    SLOW,
  );

  it(
    '--json prints the report for machines, with the same exit code',
    async () => {
      const r = await audit(recentBad, '--json');
      expect(r.code).toBe(1);
      const report = JSON.parse(r.stdout) as { ok: boolean; since: string; until: string; pools: { pool: string; ok: boolean; rule: unknown; agents: { agent_id: string; unmet: string[] }[] }[] };
      expect(report.ok).toBe(false);
      expect(Date.parse(report.until) - Date.parse(report.since)).toBe(7 * DAY);
      expect(report.pools.map((p) => [p.pool, p.ok])).toEqual([
        ['linux/ci', true],
        ['linux/deploy', false],
      ]);
      const deploy = report.pools[1]!;
      expect(deploy.rule).toEqual({ key: 'linux/deploy', attestation: ['buildkite', 'aws_iam'], enforcement: 'audit', host_bound: false });
      expect(deploy.agents[0]).toMatchObject({
        agent_id: 'agent-bad',
        attestation: { recorded: true, attested: false, methods: ['buildkite'], missing: ['aws_iam'], enforcement: 'audit' },
        received: { port_tokens: 1, credentials: ['aws-deploy'], upstreams: ['github'] },
        decisions: 3,
        unmet: ['aws_iam'],
      });
      expect(deploy.agents[1]).toMatchObject({ agent_id: 'agent-good', unmet: [] });
    },
    SLOW,
  );

  it(
    '--pool audits one pool (or a cluster with CLUSTER/*)',
    async () => {
      const ci = await audit(recentBad, '--pool', 'linux/ci');
      expect(ci.code).toBe(0);
      expect(ci.stdout).toContain('agent-ci');
      expect(ci.stdout).not.toContain('linux/deploy');
      expect(ci.stdout).toMatch(/^OK: /m);
      const cluster = await audit(recentBad, '--pool', 'linux/*', '--json');
      expect(cluster.code).toBe(1);
      expect((JSON.parse(cluster.stdout) as { pools: { pool: string }[] }).pools.map((p) => p.pool)).toEqual(['linux/ci', 'linux/deploy']);
    },
    SLOW,
  );

  it(
    'exit 0 when every agent served in the window was attested; --since reaching further back finds the older unattested one',
    async () => {
      const week = await audit(oldBad);
      expect(week.code).toBe(0);
      expect(week.stdout).toContain('OK: every agent was attested with buildkite + aws_iam.');
      expect(week.stdout).not.toContain('agent-old');
      expect(week.stderr).toBe('');

      const month = await audit(oldBad, '--since', '30d');
      expect(month.code).toBe(1);
      expect(month.stdout).toMatch(/^ {2}agent-old +unknown \(no agent check recorded\) +credentials aws-deploy; Port token +NOT ATTESTED \(buildkite, aws_iam\)$/m);
      const iso = await audit(oldBad, '--since', new Date(now - 11 * DAY).toISOString(), '--json');
      expect(iso.code).toBe(1);
    },
    SLOW,
  );

  it(
    'exit 2 for a bad --since or --pool, or a store that does not exist (and creates none)',
    async () => {
      const since = await audit(oldBad, '--since', 'last tuesday');
      expect(since.code).toBe(2);
      expect(since.stderr).toContain('--since "last tuesday" is not a window');
      const future = await audit(oldBad, '--since', new Date(now + DAY).toISOString());
      expect(future.code).toBe(2);
      const pool = await audit(oldBad, '--pool', 'linux');
      expect(pool.code).toBe(2);
      expect(pool.stderr).toContain('write CLUSTER/QUEUE');
      const empty = writeConfig(join(root, 'no-store'), POOLS);
      const missing = await audit(empty);
      expect(missing.code).toBe(2);
      expect(missing.stderr).toContain('does not exist');
      expect(existsSync(join(root, 'no-store', 'port.db'))).toBe(false);
    },
    SLOW,
  );
});
