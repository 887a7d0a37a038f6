import { afterAll, describe, expect, it } from 'vitest';
import { at, base, fixtures, GOOD_POLICIES, ofRule } from './lint-fixture.js';

const fx = fixtures('policies');
afterAll(() => fx.cleanup());

const UPSTREAMS = { artifacts: { url: 'https://artifacts.acme.test' } };
const PROXY = `@id("artifacts-read")
@reason("acme jobs may read artifacts")
permit (principal is Port::Job, action == Port::Action::"proxy", resource == Port::Upstream::"artifacts")
when { context.method == "GET" };
`;
const POOL_PERMIT = (pool: string) => `@id("deploy-from-pool")
@reason("deploy jobs on the deploy agents may assume the deploy role")
permit (principal is Port::Job in Port::Pool::${JSON.stringify(pool)}, action == Port::Action::"assume", resource == Port::Credential::"ci-prod-deployer");
`;
const SCALE = (autoscaler: string) => `@id("elastic-scales-deploy")
@reason("the elastic stack may grow the deploy pool to 10 agents")
permit (principal == Port::Autoscaler::${JSON.stringify(autoscaler)}, action == Port::Action::"scale", resource == Port::Pool::"linux/deploy")
when { context.desired <= 10 };
`;
const CONTRACTORS = `@id("no-contractor-builds")
@reason("builds started by contractors get nothing")
forbid (principal is Port::Job, action, resource) when { principal has creator && principal.creator in Port::Group::"contractors" };
`;
const GRANTS = (groups: string[]) => ({
  roles: { 'ci-prod-deployer': { description: 'deploys acme/deploy from main', credentials: ['ci-prod-deployer'] } },
  bindings: [{ role: 'ci-prod-deployer', pipelines: [{ pipeline: 'deploy', branches: ['main'] }], ...(groups.length > 0 ? { groups } : {}) }],
});

describe('reference rules', () => {
  it('a config whose policies name only what exists has no findings', async () => {
    expect(await fx.lint(base())).toEqual([]);
  });

  it('reference.credential: an error at the literal, naming the credentials there are', async () => {
    const policies = { ...GOOD_POLICIES, 'typo.cedar': GOOD_POLICIES['deploy.cedar']!.replace('deploy-main', 'typo').replace('"ci-prod-deployer"', '"ci-prod-deploy"') };
    const findings = ofRule(await fx.lint(base(), policies), 'reference.credential');
    expect(findings).toEqual([
      {
        severity: 'error',
        rule: 'reference.credential',
        location: at('typo.cedar', policies['typo.cedar'], 'Port::Credential::"ci-prod-deploy"'),
        message: 'policy typo: Port::Credential::"ci-prod-deploy" is not a credential in the config; add it under credentials: or use one of: ci-prod-deployer.',
      },
    ]);
  });

  it('reference.upstream: an upstream the config lacks; clean once it is configured', async () => {
    const policies = { ...GOOD_POLICIES, 'proxy.cedar': PROXY };
    expect(ofRule(await fx.lint(base(), policies), 'reference.upstream')).toEqual([
      expect.objectContaining({ severity: 'error', location: at('proxy.cedar', PROXY, 'Port::Upstream::'), message: expect.stringContaining('Port::Upstream::"artifacts" is not an upstream') }),
    ]);
    expect(await fx.lint({ ...base(), upstreams: UPSTREAMS }, policies)).toEqual([]);
  });

  it('reference.pool: with pools: configured, a pool it does not cover is an error; CLUSTER/* covers its queues', async () => {
    const policies = { ...GOOD_POLICIES, 'pool.cedar': POOL_PERMIT('linux/deplyo') };
    const pools = { 'linux/deploy': { attestation: ['buildkite'] } };
    expect(ofRule(await fx.lint({ ...base(), pools }, policies), 'reference.pool')).toEqual([
      expect.objectContaining({ severity: 'error', location: at('pool.cedar', policies['pool.cedar'], 'Port::Pool::'), message: expect.stringContaining('Port::Pool::"linux/deplyo" is covered by no pools: entry') }),
    ]);
    expect(ofRule(await fx.lint({ ...base(), pools: { 'linux/*': { attestation: ['none'] } } }, policies), 'reference.pool')).toEqual([]);
    // Without pools:, pools are whatever the agents' tokens say: nothing to check against.
    expect(ofRule(await fx.lint(base(), policies), 'reference.pool')).toEqual([]);
  });

  it('reference.pool: a * in a pool id is no pattern (warning)', async () => {
    const findings = ofRule(await fx.lint(base(), { ...GOOD_POLICIES, 'pool.cedar': POOL_PERMIT('linux/*') }), 'reference.pool');
    expect(findings).toEqual([expect.objectContaining({ severity: 'warning', message: expect.stringContaining('* is no pattern here') })]);
  });

  it('reference.autoscaler: an autoscaler not under scaling.autoscalers', async () => {
    const config = { ...base(), pools: { 'linux/deploy': { attestation: ['buildkite'], autoscalers: ['elastic'] } }, scaling: { autoscalers: { elastic: { token: 'env:PORT_SCALER_TOKEN' } } } };
    expect(ofRule(await fx.lint(config, { ...GOOD_POLICIES, 'scale.cedar': SCALE('elastik') }), 'reference.autoscaler')).toEqual([
      expect.objectContaining({ severity: 'error', message: expect.stringContaining('Port::Autoscaler::"elastik" is not an autoscaler in the config; add it under scaling.autoscalers: or use one of: elastic.') }),
    ]);
    expect(await fx.lint(config, { ...GOOD_POLICIES, 'scale.cedar': SCALE('elastic') })).toEqual([]);
  });

  it('reference.group: with grants in use, a group no binding names is a warning; one a binding names is not', async () => {
    const policies = { ...GOOD_POLICIES, 'contractors.cedar': CONTRACTORS };
    const findings = ofRule(await fx.lint({ ...base(), grants: GRANTS(['deployers']) }, policies), 'reference.group');
    expect(findings).toEqual([
      {
        severity: 'warning',
        rule: 'reference.group',
        location: at('contractors.cedar', CONTRACTORS, 'Port::Group::'),
        message: expect.stringMatching(/^policy no-contractor-builds: Port::Group::"contractors" is named in no grants binding; .* \(deployers\)\.$/),
      },
    ]);
    expect(ofRule(await fx.lint({ ...base(), grants: GRANTS(['contractors']) }, policies), 'reference.group')).toEqual([]);
    // Without grants, groups are the identity provider's alone: nothing to compare with.
    expect(ofRule(await fx.lint(base(), policies), 'reference.group')).toEqual([]);
  });

  it('grants.invalid: a grant naming a credential the config lacks, located at its key', async () => {
    const grants = { roles: { 'ci-prod-deployer': { description: 'deploys', credentials: ['ci-prod-deploy'] } }, bindings: [{ role: 'ci-prod-deployer', pipelines: [{ pipeline: 'deploy' }] }] };
    const findings = ofRule(await fx.lint({ ...base(), grants }), 'grants.invalid');
    expect(findings).toEqual([
      expect.objectContaining({ severity: 'error', location: 'port.yaml: grants.roles.ci-prod-deployer.credentials[0]', message: expect.stringContaining('"ci-prod-deploy" is not a credential') }),
    ]);
  });

  it('policy.invalid: a policy that does not validate is an error (it would otherwise go unchecked)', async () => {
    const policies = { ...GOOD_POLICIES, 'bad.cedar': '@id("bad")\n@reason("x")\npermit (principal is Port::Job, action, resource) when { principal.no_such_attribute == "x" };\n' };
    const findings = ofRule(await fx.lint(base(), policies), 'policy.invalid');
    expect(findings).toEqual([expect.objectContaining({ severity: 'error', location: expect.stringMatching(/^policies\/bad\.cedar:3:\d+$/) })]);
  });
});

describe('reasons', () => {
  it('policy.reason: a hand-written permit without @reason is an error; a forbid without one is not', async () => {
    const policies = {
      ...GOOD_POLICIES,
      'bare.cedar': '@id("bare")\npermit (principal is Port::Job, action == Port::Action::"assume", resource == Port::Credential::"ci-prod-deployer");\n\n@id("no-forks")\nforbid (principal is Port::Job, action, resource) when { principal.build_source == "fork" };\n',
    };
    expect(ofRule(await fx.lint(base(), policies), 'policy.reason')).toEqual([
      { severity: 'error', rule: 'policy.reason', location: 'policies/bare.cedar:1:1', message: expect.stringMatching(/^permit bare has no @reason; add @reason\("…"\)/) },
    ]);
  });

  it('compiled grants always carry a reason', async () => {
    expect(ofRule(await fx.lint({ ...base(), grants: GRANTS([]) }, { 'exchange.cedar': GOOD_POLICIES['exchange.cedar']! }), 'policy.reason')).toEqual([]);
  });
});

describe('reach', () => {
  it('reach.credential and reach.upstream: what no permit names are warnings at their keys', async () => {
    const findings = await fx.lint({ ...base(), upstreams: UPSTREAMS }, { 'exchange.cedar': GOOD_POLICIES['exchange.cedar']! });
    expect(ofRule(findings, 'reach.credential')).toEqual([
      expect.objectContaining({ severity: 'warning', location: 'credentials.ci-prod-deployer', message: expect.stringContaining('no job can get it') }),
    ]);
    expect(ofRule(findings, 'reach.upstream')).toEqual([
      expect.objectContaining({ severity: 'warning', location: 'upstreams.artifacts', message: expect.stringContaining('the relay refuses every request to it') }),
    ]);
  });

  it('a credential granted only by a role is reached; so is one an upstream signs with', async () => {
    const config = {
      ...base(),
      upstreams: { s3: { url: 'https://s3.eu-west-1.amazonaws.com', inject: { aws_sigv4: { service: 's3', region: 'eu-west-1', credential: 'signer' } } } },
      credentials: { ...(base().credentials as object), signer: { type: 'aws_role', role_arn: 'arn:aws:iam::123456789012:role/ci-prod-signer' } },
      grants: GRANTS([]),
    };
    const policies = { 'exchange.cedar': GOOD_POLICIES['exchange.cedar']!, 's3.cedar': PROXY.replace('artifacts-read', 's3-read').replace('"artifacts"', '"s3"') };
    const findings = await fx.lint(config, policies);
    expect(findings.filter((f) => f.rule.startsWith('reach.'))).toEqual([]);
  });
});
