import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SimJob } from '../../src/sim/index.js';
import type { DecisionRecord } from '../../src/store/records/decisions.js';
import { startHarness, type Harness } from '../helpers/port-harness.js';

/**
 * The agent gate over HTTP against the Buildkite simulator: pools with the `buildkite`
 * live check and `aws_iam` attestation, refusals with their reasons in the answer and
 * the decision log, audit mode, and what an attested agent's token carries.
 */
const POLICIES: Record<string, string> = {
  'exchange.cedar': `
@id("acme-jobs-exchange")
@reason("jobs of acme may hold a Port token")
permit (principal, action == Port::Action::"exchange", resource == Port::Organization::"acme");
`,
  'credentials.cedar': `
@id("deploy-token-for-deploys")
@reason("deploy jobs get the deploy token")
permit (principal, action == Port::Action::"assume", resource == Port::Credential::"deploy-token")
when { principal.pipeline_slug == "deploy" };

@id("prod-secret-on-attested-hosts")
@reason("the production secret goes only to attested hosts of the production account")
permit (principal, action == Port::Action::"assume", resource == Port::Credential::"prod-secret")
when {
  principal.agent has attested && principal.agent.attested &&
  principal.agent has account && principal.agent.account == "123456789012"
};
`,
};

const PROD_SECRET = 'agents-e2e-prod-secret-4f1c';
const NOW = () => Date.now();

let h: Harness;
beforeAll(async () => {
  process.env.PORT_TEST_AGENTS_PROD_SECRET = PROD_SECRET;
  h = await startHarness({
    policies: POLICIES,
    config: (sim) => {
      process.env.PORT_TEST_AGENTS_API = sim.apiToken;
      return {
        buildkite: { organization: 'acme', issuer: sim.issuer, jwks_url: sim.jwksUrl, audience: 'https://port.acme.test', api_url: sim.apiUrl, api_token: 'env:PORT_TEST_AGENTS_API' },
        credentials: {
          'deploy-token': { type: 'port_token', audience: 'https://deploy.acme.test' },
          'prod-secret': { type: 'secret', value: 'env:PORT_TEST_AGENTS_PROD_SECRET' },
        },
        pools: {
          'linux/deploy': { attestation: ['buildkite'] },
          'linux/prod': { attestation: ['buildkite', 'aws_iam'], aws: { accounts: ['123456789012', '210987654321'] } },
          'linux/canary': { attestation: ['buildkite', 'aws_iam'], enforcement: 'audit', aws: { accounts: ['123456789012', '210987654321'] } },
        },
        // Every check asks Buildkite afresh: the tests change agents between requests.
        attestation: { buildkite_cache_ttl: 0 },
      };
    },
  });
});
afterAll(async () => {
  await h?.close();
});

/** A running job of acme/deploy on main in `linux/<queue>`. */
function job(queue: string, init: Partial<SimJob> = {}): SimJob {
  return h.sim.createJob({ pipelineSlug: 'deploy', branch: 'main', clusterName: 'linux', queueKey: queue, ...init });
}

/** The job's Buildkite token for Port, with the pool claims (as the plugin requests them). */
function tokenOf(j: SimJob, claims = ['cluster_name', 'queue_key']): Promise<string> {
  return h.sim.mintToken(j, { audience: h.audience, claims });
}

async function head(): Promise<number> {
  return (await h.port.store.decisions.last())?.seq ?? 0;
}

async function since(seq: number): Promise<DecisionRecord[]> {
  return (await h.port.store.decisions.read(seq, 1000)).map((e) => e.record);
}

/** Exchanges and expects a refusal with `check`: 403 access_denied, the reason in the answer and in the log. */
async function expectRefused(bk: string, check: string, reason: RegExp): Promise<DecisionRecord> {
  const before = await head();
  const res = await h.exchange(bk, { scope: 'deploy-token' });
  expect(res.status).toBe(403);
  expect(res.body.error).toBe('access_denied');
  expect(res.body.error_description).toMatch(reason);
  const records = await since(before);
  expect(records).toHaveLength(1);
  const [record] = records;
  expect(record).toMatchObject({ action: 'exchange', decision: 'deny', reason: res.body.error_description, context: { check } });
  expect(record!.context.port_token).toBeUndefined();
  expect(JSON.stringify(record)).not.toContain(bk);
  return record!;
}

function attest(agentId: string, pool: string, extra: Record<string, unknown> = {}) {
  const now = NOW();
  return h.port.store.attestations.put({
    agentId,
    pool,
    jobId: 'attesting-job',
    methods: ['aws_iam'],
    account: '123456789012',
    iamRole: 'arn:aws:iam::123456789012:role/buildkite-prod-agent',
    attestedAt: now,
    expiresAt: now + 3_600_000,
    ...extra,
  });
}

describe('the buildkite live check', () => {
  it('serves a running job on its connected agent of the pool, and records what was verified', async () => {
    const j = job('deploy');
    const before = await head();
    const res = await h.exchange(await tokenOf(j), { scope: 'deploy-token' });
    expect(res.status).toBe(200);
    expect(res.body.token_type).toBe('Bearer');
    expect(decodeJwt(res.body.access_token).agent_attestation).toEqual({ attested: false, attestation: ['buildkite'], connected: true });
    const records = await since(before);
    expect(records.map((r) => r.action)).toEqual(['exchange', 'assume']);
    for (const r of records) {
      expect(r.context.agent).toEqual({
        id: j.agentId,
        pool: 'linux/deploy',
        configured: true,
        required: ['buildkite'],
        enforcement: 'enforce',
        attested: false,
        attestation: ['buildkite'],
        connected: true,
        missing: [],
        host_bound: false,
      });
    }
  });

  it('refuses a disconnected agent, and a lost one', async () => {
    for (const state of ['disconnected', 'lost'] as const) {
      const j = job('deploy');
      const bk = await tokenOf(j);
      h.sim.setAgentConnectionState(j.agentId, state);
      const record = await expectRefused(bk, 'agent_not_connected', new RegExp(`agent ${j.agentId} is ${state}, not connected`));
      expect(record.context.agent).toMatchObject({ id: j.agentId, pool: 'linux/deploy', connected: false, missing: ['buildkite'] });
    }
  });

  it('refuses an agent registered into another queue than the pool the token claims', async () => {
    const agent = h.sim.createAgent({ clusterName: 'linux', queueKey: 'build' });
    const j = job('deploy', { agentId: agent.id, agentTags: { queue: 'build' } });
    const record = await expectRefused(await tokenOf(j), 'agent_wrong_pool', /queue build, not (in|to) pool linux\/deploy/);
    expect(record.context.agent).toMatchObject({ pool: 'linux/deploy', missing: ['buildkite'] });
  });

  it('refuses a job acquired (buildkite-agent start --acquire-job) by an agent of another queue', async () => {
    const j = job('deploy');
    const outsider = h.sim.createAgent({ clusterName: 'linux', queueKey: 'build' });
    h.sim.acquireJob(j, outsider);
    const bk = await tokenOf(j);
    // The job's tokens now name the acquiring agent.
    expect(decodeJwt(bk).agent_id).toBe(outsider.id);
    await expectRefused(bk, 'job_acquired_outside_pool', /belongs to queue deploy but runs on agent .* of queue build: it was acquired outside its pool/);
  });

  it('refuses a token whose job is not running, and one naming an agent that does not run the job', async () => {
    const done = job('deploy');
    const bk = await tokenOf(done);
    h.sim.finishJob(done);
    await expectRefused(bk, 'job_not_running', /is passed, not running/);

    const j = job('deploy');
    const other = h.sim.createAgent({ clusterName: 'linux', queueKey: 'deploy' });
    const forged = await h.sim.mintToken(j, { audience: h.audience, claims: ['cluster_name', 'queue_key'], overrides: { agent_id: other.id } });
    await expectRefused(forged, 'job_not_on_agent', new RegExp(`runs on agent ${j.agentId}, not on agent ${other.id}`));
  });

  it('answers 503 with Retry-After when Buildkite cannot be asked, mints nothing, and serves the same token once it can', async () => {
    const j = job('deploy');
    const bk = await tokenOf(j);
    const before = await head();
    h.sim.setApiOutage({ mode: 'unavailable' });
    let res;
    try {
      res = await h.exchange(bk, { scope: 'deploy-token' });
    } finally {
      h.sim.setApiOutage(null);
    }
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('5');
    expect(res.body).toMatchObject({ error: 'temporarily_unavailable' });
    expect(res.body.error_description).toMatch(/could not check the job's agent with Buildkite's REST API/);
    expect(res.body.access_token).toBeUndefined();
    const records = await since(before);
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({ decision: 'deny', context: { check: 'buildkite_unavailable', agent: { missing: ['buildkite'] } } });
    // Nothing was consumed: the retry works.
    expect((await h.exchange(bk, { scope: 'deploy-token' })).status).toBe(200);
  });
});

describe('pools and their claims', () => {
  it('refuses a token without cluster_name and queue_key once pools are configured', async () => {
    const j = job('deploy');
    const record = await expectRefused(await tokenOf(j, ['queue_key']), 'pool_claims_missing', /lacks the cluster_name claim naming its pool; request it with --claim cluster_name,queue_key/);
    expect(record.context.agent).toMatchObject({ id: j.agentId, configured: false, missing_claims: ['cluster_name'] });
  });

  it('serves a job of a pool without a pools: entry, and says so', async () => {
    const j = job('misc');
    const before = await head();
    const res = await h.exchange(await tokenOf(j), { scope: 'deploy-token' });
    expect(res.status).toBe(200);
    expect(decodeJwt(res.body.access_token).agent_attestation).toBeUndefined();
    const [exchange] = await since(before);
    expect(exchange!.context.agent).toEqual({ id: j.agentId, pool: 'linux/misc', configured: false, required: [] });
  });
});

describe('AWS attestation', () => {
  it('refuses an unattested agent of a pool requiring aws_iam', async () => {
    const j = job('prod');
    const record = await expectRefused(await tokenOf(j), 'agent_not_attested', /has no current aws_iam attestation for pool linux\/prod; run `port agent attest`/);
    expect(record.context.agent).toMatchObject({ required: ['buildkite', 'aws_iam'], attested: false, attestation: ['buildkite'], missing: ['aws_iam'] });
  });

  it('does not take an attestation made for another pool, or one that expired', async () => {
    const j = job('prod');
    await attest(j.agentId, 'linux/deploy');
    await expectRefused(await tokenOf(j), 'agent_not_attested', /no current aws_iam attestation/);
    await attest(j.agentId, 'linux/prod', { attestedAt: NOW() - 7_200_000, expiresAt: NOW() - 1000 });
    await expectRefused(await tokenOf(j), 'agent_not_attested', /no current aws_iam attestation/);
  });

  it("serves an attested agent: its facts are in the Port token, the decision log and the policy's decision", async () => {
    const j = job('prod');
    await attest(j.agentId, 'linux/prod');
    const before = await head();
    const res = await h.exchange(await tokenOf(j), { scope: 'prod-secret' });
    expect(res.status).toBe(200);
    const facts = { attested: true, attestation: ['buildkite', 'aws_iam'], account: '123456789012', iam_role: 'arn:aws:iam::123456789012:role/buildkite-prod-agent', connected: true };
    expect(decodeJwt(res.body.access_token).agent_attestation).toEqual(facts);
    const [exchange, assume] = await since(before);
    expect(assume).toMatchObject({ decision: 'allow', policies: [{ id: 'prod-secret-on-attested-hosts' }] });
    expect(exchange!.context.agent).toMatchObject({ ...facts, missing: [], configured: true, required: ['buildkite', 'aws_iam'] });

    // The Port token's facts decide the release, without another check.
    const released = await fetch(`${h.url}/v1/credentials/prod-secret`, { method: 'POST', headers: { authorization: `Bearer ${res.body.access_token}` } });
    expect(released.status).toBe(200);
    expect((await released.json()).value).toBe(PROD_SECRET);
    const [release] = (await since(before)).slice(-1);
    expect(release).toMatchObject({ action: 'assume', decision: 'allow', context: { agent: { id: j.agentId, attested: true, account: '123456789012', host_bound: false } } });
  });

  it('lets policy refuse an attested host of another account, with its reason', async () => {
    const j = job('prod');
    await attest(j.agentId, 'linux/prod', { account: '210987654321', iamRole: 'arn:aws:iam::210987654321:role/other' });
    const res = await h.exchange(await tokenOf(j), { scope: 'prod-secret' });
    expect(res.status).toBe(403);
    expect(res.body.error_description).toMatch(/Policy denied the grant "prod-secret"/);
  });

  it('serves an unattested agent of an audit pool, and logs what was missing and what enforcing would refuse', async () => {
    const j = job('canary');
    const before = await head();
    const res = await h.exchange(await tokenOf(j), { scope: 'deploy-token' });
    expect(res.status).toBe(200);
    const [exchange] = await since(before);
    expect(exchange!.context.agent).toMatchObject({
      pool: 'linux/canary',
      enforcement: 'audit',
      attested: false,
      attestation: ['buildkite'],
      missing: ['aws_iam'],
      would_refuse: ['agent_not_attested'],
    });
  });
});

describe('a Buildkite token as the bearer at /v1/credentials', () => {
  it('meets the same gate: a disconnected agent gets nothing, with the reason', async () => {
    const j = job('deploy');
    const bk = await tokenOf(j);
    h.sim.setAgentConnectionState(j.agentId, 'stopped');
    const before = await head();
    const res = await fetch(`${h.url}/v1/credentials/deploy-token`, { method: 'POST', headers: { authorization: `Bearer ${bk}` } });
    expect(res.status).toBe(403);
    const body = await res.json();
    expect(body).toMatchObject({ error: 'access_denied' });
    expect(body.error_description).toMatch(/is stopped, not connected/);
    const [record] = await since(before);
    expect(record).toMatchObject({ action: 'assume', decision: 'deny', resource: 'Port::Credential::"deploy-token"', context: { check: 'agent_not_connected', agent: { id: j.agentId } } });
  });

  it('answers 503 with Retry-After while Buildkite is down', async () => {
    const bk = await tokenOf(job('deploy'));
    h.sim.setApiOutage({ mode: 'unavailable' });
    try {
      const res = await fetch(`${h.url}/v1/credentials/deploy-token`, { method: 'POST', headers: { authorization: `Bearer ${bk}` } });
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBe('5');
      expect((await res.json()).error).toBe('credential_unavailable');
    } finally {
      h.sim.setApiOutage(null);
    }
  });
});
