import { describe, expect, it } from 'vitest';
import { AgentGate } from '../../src/agents/agent-gate.js';
import type { BuildkiteLiveCheck } from '../../src/agents/buildkite-check.js';
import type { PoolConfig } from '../../src/config/config.js';
import { TokenRejectedError } from '../../src/identity/errors.js';
import type { JobIdentity } from '../../src/identity/job-identity.js';
import type { AgentAttestationRecord } from '../../src/store/repositories/agent-attestations.js';

/** The gate's rules that need no Buildkite: attestation records, pool rules changed since, host keys, and a missing API token. */
const AGENT = '01980000-0000-7000-8000-0000000000a1';
const NOW = 1_800_000_000_000;

function pool(over: Partial<PoolConfig> = {}): PoolConfig {
  return { key: 'linux/deploy', clusterName: 'linux', queueKey: 'deploy', attestation: ['aws_iam'], enforcement: 'enforce', aws: { accounts: [], regions: [], roles: [] }, hostBound: false, attestationTtl: 86400, autoscalers: [], ...over };
}

const identity = {
  subject: 's', organizationSlug: 'acme', pipelineSlug: 'deploy', buildNumber: 1, branch: 'main', tag: null, commit: 'c', stepKey: null,
  jobId: 'job-1', agentId: AGENT, buildSource: 'ui', runnerEnvironment: 'self-hosted', clusterName: 'linux', queueKey: 'deploy', agentTags: {}, issuedAt: 0, expiresAt: 0,
} satisfies JobIdentity;

function record(over: Partial<AgentAttestationRecord> = {}): AgentAttestationRecord {
  return { agentId: AGENT, pool: 'linux/deploy', jobId: 'j', methods: ['aws_iam'], account: '123456789012', iamRole: 'arn:aws:iam::123456789012:role/ci', attestedAt: NOW - 1000, expiresAt: NOW + 1000, ...over };
}

function gate(p: PoolConfig, rec: AgentAttestationRecord | undefined, live?: BuildkiteLiveCheck): AgentGate {
  return new AgentGate({ config: { pools: { [p.key]: p } }, attestations: { get: async () => rec }, live, now: () => NOW });
}

async function refusal(g: AgentGate, opts: { dpopJkt?: string } = {}): Promise<TokenRejectedError> {
  const err = await g.check(identity, opts).then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(TokenRejectedError);
  return err as TokenRejectedError;
}

describe('AgentGate', () => {
  it('takes a current record of the pool, with its facts', async () => {
    const checked = await gate(pool(), record()).check(identity);
    expect(checked.facts).toEqual({ attested: true, attestation: ['aws_iam'], account: '123456789012', iamRole: 'arn:aws:iam::123456789012:role/ci' });
    expect(checked.jkt).toBeUndefined();
  });

  it("ignores a record the pool's aws rules no longer allow (tightened since it was made)", async () => {
    const err = await refusal(gate(pool({ aws: { accounts: ['999999999999'], regions: [], roles: [] } }), record()));
    expect(err).toMatchObject({ check: 'agent_not_attested', status: 403, code: 'access_denied' });
    await refusal(gate(pool({ aws: { accounts: [], regions: [], roles: ['arn:aws:iam::123456789012:role/deploy-*'] } }), record()));
    expect((await gate(pool({ aws: { accounts: [], regions: [], roles: ['arn:aws:iam::123456789012:role/c*'] } }), record()).check(identity)).facts?.attested).toBe(true);
  });

  it('ignores a record that lacks a fact a rule added since asks for (the attest endpoint would refuse it now)', async () => {
    // Attested with aws_iam alone (no region) before the pool listed regions: only aws_iid shows one.
    const regions = await refusal(gate(pool({ aws: { accounts: [], regions: ['eu-west-1'], roles: [] } }), record()));
    expect(regions).toMatchObject({ check: 'agent_not_attested' });
    // Attested with aws_iid alone (no role) before the pool listed roles: only aws_iam shows one.
    const { iamRole: _role, ...iamFree } = record({ methods: ['aws_iid'], instanceId: 'i-0123456789abcdef0', region: 'eu-west-1' });
    const iidOnly: AgentAttestationRecord = iamFree;
    const p = pool({ attestation: ['aws_iid'], aws: { accounts: [], regions: [], roles: ['arn:aws:iam::123456789012:role/*'] } });
    expect(await refusal(gate(p, iidOnly))).toMatchObject({ check: 'agent_not_attested' });
    expect(await refusal(gate(pool({ attestation: ['aws_iid'], aws: { accounts: [], regions: [], roles: ['arn:aws:sts::123456789012:assumed-role/ci/*'] } }), iidOnly))).toMatchObject({
      check: 'agent_not_attested',
    });
    // With the fact present and allowed, the record still serves.
    expect((await gate(pool({ aws: { accounts: [], regions: ['eu-west-1'], roles: [] } }), record({ region: 'eu-west-1' })).check(identity)).facts?.attested).toBe(true);
  });

  it('refuses unless enforcement says audit (a pool built without it is enforced, never served)', async () => {
    const p = { ...pool(), enforcement: undefined } as unknown as PoolConfig;
    expect(await refusal(gate(p, undefined))).toMatchObject({ check: 'agent_not_attested' });
  });

  it('binds a host-bound pool to the registered key only when the proof shows it', async () => {
    const p = pool({ hostBound: true });
    expect(await refusal(gate(p, record()))).toMatchObject({ check: 'agent_not_attested', message: expect.stringMatching(/registered no host key/) });
    expect(await refusal(gate(p, record({ jkt: 'key-a' })))).toMatchObject({ check: 'dpop_required' });
    expect(await refusal(gate(p, record({ jkt: 'key-a' })), { dpopJkt: 'key-b' })).toMatchObject({ check: 'dpop_key_mismatch' });
    const bound = await gate(p, record({ jkt: 'key-a' })).check(identity, { dpopJkt: 'key-a' });
    expect(bound.jkt).toBe('key-a');
    expect(bound.context).toMatchObject({ host_bound: true, missing: [] });
  });

  it('in audit mode serves everything, listing what enforcing would refuse', async () => {
    const checked = await gate(pool({ hostBound: true, enforcement: 'audit' }), undefined).check(identity);
    expect(checked.jkt).toBeUndefined();
    expect(checked.context).toMatchObject({ enforcement: 'audit', attested: false, missing: ['aws_iam'], host_bound: false, would_refuse: ['agent_not_attested'] });
  });

  it('refuses (503) the jobs of a pool requiring buildkite when Port has no API token to check with, and says which pools', async () => {
    const g = gate(pool({ attestation: ['buildkite'] }), undefined);
    expect(g.uncheckable).toEqual(['linux/deploy']);
    const err = await refusal(g);
    expect(err).toMatchObject({ check: 'buildkite_unavailable', status: 503, retryAfterSeconds: 5, message: expect.stringMatching(/no buildkite.api_token/) });
    expect(err.context).toMatchObject({ agent: { missing: ['buildkite'] } });
  });
});
