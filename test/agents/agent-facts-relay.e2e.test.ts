import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProof, loadOrCreateHostKey, type HostKey } from '../../src/dpop/host-key.js';
import type { SimJob } from '../../src/sim/index.js';
import type { DecisionRecord } from '../../src/store/records/decisions.js';
import { startHarness, type Harness } from '../helpers/port-harness.js';
import { startRecordingUpstream, type RecordingUpstream } from '../helpers/relay/recording-upstream.js';

/**
 * What Port verified about an agent, used where it matters: Cedar decides `proxy` on the
 * facts a Port token carries (no lookup at the relay); a Buildkite token at the relay
 * meets the agent gate; a host-bound pool binds its tokens to the attested host key and
 * never lets a Buildkite token through directly.
 */
const POLICIES: Record<string, string> = {
  'exchange.cedar': `
@id("acme-jobs-exchange")
permit (principal, action == Port::Action::"exchange", resource == Port::Organization::"acme");
`,
  'relay.cedar': `
@id("files-from-attested-prod-hosts")
@reason("the file store is read only from attested hosts of the production account")
permit (principal is Port::Job, action == Port::Action::"proxy", resource == Port::Upstream::"files")
when {
  context.method == "GET" &&
  principal.agent has attested && principal.agent.attested &&
  principal.agent has account && principal.agent.account == "123456789012"
};
`,
};

let h: Harness;
let upstream: RecordingUpstream;
let keyDir: string;
let hostKey: HostKey;
let otherKey: HostKey;

beforeAll(async () => {
  upstream = await startRecordingUpstream();
  keyDir = mkdtempSync(join(tmpdir(), 'port-agents-keys-'));
  hostKey = await loadOrCreateHostKey(join(keyDir, 'host', 'key.jwk'));
  otherKey = await loadOrCreateHostKey(join(keyDir, 'other', 'key.jwk'));
  process.env.PORT_TEST_AGENT_RELAY_UPSTREAM = 'agent-relay-upstream-secret';
  h = await startHarness({
    policies: POLICIES,
    config: (sim) => {
      process.env.PORT_TEST_AGENT_RELAY_API = sim.apiToken;
      return {
        buildkite: { organization: 'acme', issuer: sim.issuer, jwks_url: sim.jwksUrl, audience: 'https://port.acme.test', api_url: sim.apiUrl, api_token: 'env:PORT_TEST_AGENT_RELAY_API' },
        credentials: {},
        relay: { accept_buildkite_tokens: true, decision_cache_ttl: 5 },
        upstreams: { files: { url: `${upstream.url}/base`, timeout: 2, connect_timeout: 2, inject: { bearer: 'env:PORT_TEST_AGENT_RELAY_UPSTREAM' } } },
        pools: {
          'linux/prod': { attestation: ['buildkite', 'aws_iam'], aws: { accounts: ['123456789012', '210987654321'] } },
          'linux/bound': { attestation: ['aws_iam'], host_bound: true, aws: { accounts: ['123456789012', '210987654321'] } },
        },
        attestation: { buildkite_cache_ttl: 0 },
      };
    },
  });
});
afterAll(async () => {
  await h?.close();
  await upstream?.close();
  rmSync(keyDir, { recursive: true, force: true });
});

function job(queue: string): SimJob {
  return h.sim.createJob({ pipelineSlug: 'deploy', branch: 'main', clusterName: 'linux', queueKey: queue });
}

function tokenOf(j: SimJob): Promise<string> {
  return h.sim.mintToken(j, { audience: h.audience, claims: ['cluster_name', 'queue_key'] });
}

function attest(agentId: string, pool: string, extra: Record<string, unknown> = {}) {
  const now = Date.now();
  return h.port.store.attestations.put({
    agentId,
    pool,
    jobId: 'attesting-job',
    methods: ['aws_iam'],
    account: '123456789012',
    iamRole: 'arn:aws:iam::123456789012:role/buildkite-agent',
    attestedAt: now,
    expiresAt: now + 3_600_000,
    ...extra,
  });
}

async function relayGet(path: string, authorization: string): Promise<{ status: number; body: any }> {
  const res = await fetch(`${h.url}/relay/files${path}`, { headers: { authorization } });
  const text = await res.text();
  return { status: res.status, body: text.startsWith('{') ? JSON.parse(text) : text };
}

async function head(): Promise<number> {
  return (await h.port.store.decisions.last())?.seq ?? 0;
}

async function since(seq: number): Promise<DecisionRecord[]> {
  return (await h.port.store.decisions.read(seq, 1000)).map((e) => e.record);
}

describe('Cedar decides on the agent facts a Port token carries', () => {
  it('lets an attested host of the production account through the relay', async () => {
    const j = job('prod');
    await attest(j.agentId, 'linux/prod');
    const res = await h.exchange(await tokenOf(j));
    expect(res.status).toBe(200);
    // Once the token is minted, the relay needs nothing but the token: not even the Buildkite API.
    h.sim.setApiOutage({ mode: 'unavailable' });
    try {
      const got = await relayGet('/report.txt', `Bearer ${res.body.access_token}`);
      expect(got.status).toBe(200);
    } finally {
      h.sim.setApiOutage(null);
    }
    expect(upstream.requests.at(-1)?.url).toBe('/base/report.txt');
  });

  it('denies a host of another account, and records the facts it decided on', async () => {
    const j = job('prod');
    await attest(j.agentId, 'linux/prod', { account: '210987654321', iamRole: 'arn:aws:iam::210987654321:role/other' });
    const res = await h.exchange(await tokenOf(j));
    expect(res.status).toBe(200);
    const before = await head();
    const got = await relayGet('/report.txt', `Bearer ${res.body.access_token}`);
    expect(got.status).toBe(403);
    const [deny] = await since(before);
    expect(deny).toMatchObject({ action: 'proxy', decision: 'deny', context: { agent: { id: j.agentId, pool: 'linux/prod', attested: true, account: '210987654321', host_bound: false } } });
  });

  it('denies a job whose agent Port verified nothing about (a pool without a pools: entry)', async () => {
    const res = await h.exchange(await tokenOf(job('misc')));
    expect(res.status).toBe(200);
    expect(decodeJwt(res.body.access_token).agent_attestation).toBeUndefined();
    expect((await relayGet('/report.txt', `Bearer ${res.body.access_token}`)).status).toBe(403);
  });
});

describe('a Buildkite token at the relay', () => {
  it('is served on an attested, connected agent, with the facts the gate verified', async () => {
    const j = job('prod');
    await attest(j.agentId, 'linux/prod');
    expect((await relayGet('/direct.txt', `Bearer ${await tokenOf(j)}`)).status).toBe(200);
  });

  it('is refused for a disconnected agent, with the reason', async () => {
    const j = job('prod');
    await attest(j.agentId, 'linux/prod');
    const bk = await tokenOf(j);
    h.sim.setAgentConnectionState(j.agentId, 'disconnected');
    const got = await relayGet('/direct.txt', `Bearer ${bk}`);
    expect(got.status).toBe(403);
    expect(got.body).toMatchObject({ error: 'access_denied' });
    expect(got.body.error_description).toMatch(/is disconnected, not connected/);
  });

  it("is refused for a host-bound pool's job: only a token bound to the host key serves it", async () => {
    const j = job('bound');
    await attest(j.agentId, 'linux/bound', { jkt: hostKey.jkt });
    const got = await relayGet('/direct.txt', `Bearer ${await tokenOf(j)}`);
    expect(got.status).toBe(403);
    expect(got.body.error_description).toMatch(/Pool linux\/bound is host-bound/);
  });
});

describe('host-bound pools at the exchange', () => {
  const tokenUrl = 'https://port.acme.test/oauth/token';

  it('binds the token to the attested host key when the request proves it (token_type DPoP)', async () => {
    const j = job('bound');
    await attest(j.agentId, 'linux/bound', { jkt: hostKey.jkt });
    const proof = await createProof(hostKey, { method: 'POST', url: tokenUrl });
    const before = await head();
    const res = await h.exchange(await tokenOf(j), {});
    expect(res.status).toBe(403);
    expect(res.body.error_description).toMatch(/host-bound: the token must be bound to the agent host's key with a DPoP proof/);
    const [refusal] = await since(before);
    expect(refusal).toMatchObject({ context: { check: 'dpop_required', agent: { pool: 'linux/bound', host_bound: false } } });

    const bound = await h.post(
      '/oauth/token',
      { grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: await tokenOf(j), subject_token_type: 'urn:ietf:params:oauth:token-type:jwt' },
      { dpop: proof },
    );
    expect(bound.status).toBe(200);
    expect(bound.body.token_type).toBe('DPoP');
    const claims = decodeJwt(bound.body.access_token);
    expect(claims.cnf).toEqual({ jkt: hostKey.jkt });
    expect(claims.agent_attestation).toMatchObject({ attested: true, attestation: ['aws_iam'] });
  });

  it('refuses a proof made with another key than the one the host registered', async () => {
    const j = job('bound');
    await attest(j.agentId, 'linux/bound', { jkt: hostKey.jkt });
    const proof = await createProof(otherKey, { method: 'POST', url: tokenUrl });
    const res = await h.post(
      '/oauth/token',
      { grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: await tokenOf(j), subject_token_type: 'urn:ietf:params:oauth:token-type:jwt' },
      { dpop: proof },
    );
    expect(res.status).toBe(403);
    expect(res.body.error_description).toMatch(/not the host key agent .* registered/);
  });
});
