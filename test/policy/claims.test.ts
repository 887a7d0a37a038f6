import { describe, expect, it } from 'vitest';
import { identityFromClaims, InvalidClaimError } from '../../src/identity/claims.js';

/** The real sample's shape (https://github.com/rubygems/rubygems.org/issues/5412): build_tag and step_key are null. */
const SAMPLE = {
  iss: 'https://agent.buildkite.com',
  sub: 'organization:acme:pipeline:deploy:ref:refs/heads/main:commit:9f3a:step:',
  aud: 'https://port.acme.test',
  iat: 1_700_000_000,
  nbf: 1_700_000_000,
  exp: 1_700_000_300,
  organization_slug: 'acme',
  pipeline_slug: 'deploy',
  build_number: 7,
  build_branch: 'main',
  build_tag: null,
  build_commit: '9f3a',
  step_key: null,
  job_id: '0190a1b2-0000-7000-8000-000000000001',
  agent_id: '0190a1b2-0000-7000-8000-000000000002',
  build_source: 'webhook',
  runner_environment: 'self-hosted',
  jti: '0190a1b2-0000-7000-8000-00000000000f',
};

describe('identityFromClaims', () => {
  it('maps the default claims', () => {
    expect(identityFromClaims(SAMPLE)).toEqual({
      subject: SAMPLE.sub,
      organizationSlug: 'acme',
      pipelineSlug: 'deploy',
      buildNumber: 7,
      branch: 'main',
      tag: null,
      commit: '9f3a',
      stepKey: null,
      jobId: SAMPLE.job_id,
      agentId: SAMPLE.agent_id,
      buildSource: 'webhook',
      runnerEnvironment: 'self-hosted',
      agentTags: {},
      jti: SAMPLE.jti,
      issuedAt: 1_700_000_000,
      expiresAt: 1_700_000_300,
    });
  });

  it('maps optional claims and agent tags', () => {
    const id = identityFromClaims({
      ...SAMPLE,
      build_tag: 'v1.0.0',
      step_key: 'deploy',
      organization_id: 'org-uuid',
      pipeline_id: 'pipe-uuid',
      build_id: 'build-uuid',
      cluster_id: 'cluster-uuid',
      cluster_name: 'default',
      queue_id: 'queue-uuid',
      queue_key: 'deploy',
      'agent_tag:queue': 'deploy',
      'agent_tag:os': 'linux',
    });
    expect(id).toMatchObject({
      tag: 'v1.0.0',
      stepKey: 'deploy',
      organizationId: 'org-uuid',
      pipelineId: 'pipe-uuid',
      buildId: 'build-uuid',
      clusterId: 'cluster-uuid',
      clusterName: 'default',
      queueId: 'queue-uuid',
      queueKey: 'deploy',
      agentTags: { queue: 'deploy', os: 'linux' },
    });
  });

  it('treats missing, null and empty build_tag / step_key as none, and null optional claims as absent', () => {
    const { build_tag: _t, step_key: _s, jti: _j, ...rest } = SAMPLE;
    const id = identityFromClaims({ ...rest, cluster_id: null, 'agent_tag:queue': null });
    expect(id.tag).toBeNull();
    expect(id.stepKey).toBeNull();
    expect('clusterId' in id).toBe(false);
    expect('jti' in id).toBe(false);
    expect(id.agentTags).toEqual({});
    expect(identityFromClaims({ ...SAMPLE, build_tag: '' }).tag).toBeNull();
  });

  it('keeps an agent tag named __proto__ as data', () => {
    const claims = JSON.parse(JSON.stringify({ ...SAMPLE, 'agent_tag:__proto__': 'x' })) as Record<string, unknown>;
    const { agentTags } = identityFromClaims(claims);
    expect(Object.getPrototypeOf(agentTags)).toBe(Object.prototype);
    expect(Object.keys(agentTags)).toEqual(['__proto__']);
  });

  const bad: [string, Record<string, unknown>, string][] = [
    ['missing job_id', { job_id: undefined }, 'the job_id claim is missing'],
    ['null pipeline_slug', { pipeline_slug: null }, 'the pipeline_slug claim is missing'],
    ['empty organization_slug', { organization_slug: '' }, 'the organization_slug claim must not be empty'],
    ['string build_number', { build_number: '7' }, 'the build_number claim must be a non-negative integer'],
    ['fractional build_number', { build_number: 7.5 }, 'the build_number claim must be a non-negative integer'],
    ['numeric build_branch', { build_branch: 1 }, 'the build_branch claim must be a string'],
    ['numeric build_tag', { build_tag: 1 }, 'the build_tag claim must be a string or null'],
    ['string exp', { exp: '1700000300' }, 'the exp claim must be a NumericDate (seconds since the epoch)'],
    ['missing iat', { iat: undefined }, 'the iat claim is missing'],
    ['numeric cluster_name', { cluster_name: 5 }, 'the cluster_name claim must be a string'],
    ['numeric agent tag', { 'agent_tag:queue': 5 }, 'the agent_tag:queue claim must be a string'],
    ['missing sub', { sub: undefined }, 'the sub claim is missing'],
  ];
  it.each(bad)('rejects %s with an error naming the claim', (_name, change, message) => {
    const claims: Record<string, unknown> = { ...SAMPLE, ...change };
    for (const [k, v] of Object.entries(change)) if (v === undefined) delete claims[k];
    let err: unknown;
    try {
      identityFromClaims(claims);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InvalidClaimError);
    expect((err as InvalidClaimError).message).toBe(message);
    expect((err as InvalidClaimError).claim).toBe(Object.keys(change)[0]);
    expect((err as InvalidClaimError).code).toBe('invalid_claim');
  });
});
