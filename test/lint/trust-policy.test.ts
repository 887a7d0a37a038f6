import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LintInputError } from '../../src/lint/errors.js';
import type { LintFinding } from '../../src/lint/finding.js';
import { base, fixtures, GOOD_POLICIES } from './lint-fixture.js';

const fx = fixtures('trust');
afterAll(() => fx.cleanup());

const PROVIDER = 'arn:aws:iam::123456789012:oidc-provider/port.acme.test';
const ROLE_ARN = 'arn:aws:iam::123456789012:role/ci/ci-prod-deployer';

type Statement = Record<string, unknown>;

/** Port's trust statement as the docs write it; `change` edits a copy. */
function statement(change: (s: Statement & { Condition: Record<string, Record<string, unknown>> }) => void = () => {}): Statement {
  const s = {
    Effect: 'Allow',
    Principal: { Federated: PROVIDER },
    Action: ['sts:AssumeRoleWithWebIdentity', 'sts:TagSession'],
    Condition: {
      StringEquals: { 'port.acme.test:aud': 'sts.amazonaws.com' } as Record<string, unknown>,
      StringLike: { 'port.acme.test:sub': 'organization:acme:pipeline:deploy:ref:refs/heads/main:*' } as Record<string, unknown>,
    },
  };
  change(s);
  return s;
}

function doc(...statements: Statement[]): string {
  return JSON.stringify({ Version: '2012-10-17', Statement: statements }, null, 2);
}

/** Lints base() (plus `config`) with `trust.json` holding `text`, named by naming.trust_policies. */
async function trust(text: string, config: Record<string, unknown> = {}): Promise<LintFinding[]> {
  const findings = await fx.lint({ ...base(), naming: { trust_policies: ['./aws/trust.json'] }, ...config }, GOOD_POLICIES, { 'aws/trust.json': text });
  return findings.filter((f) => f.rule.startsWith('trust.'));
}

describe('trust policies', () => {
  it("passes the docs' trust policy: Port's provider, both actions, aud and a pinned sub", async () => {
    expect(await trust(doc(statement()))).toEqual([]);
  });

  it('reads aws iam get-role output and checks it against the credential with that role ARN (CLI-decoded or URL-encoded)', async () => {
    const document = JSON.parse(doc(statement())) as unknown;
    expect(await trust(JSON.stringify({ Role: { RoleName: 'ci-prod-deployer', Arn: ROLE_ARN, AssumeRolePolicyDocument: document } }))).toEqual([]);
    expect(await trust(JSON.stringify({ Role: { Arn: ROLE_ARN, AssumeRolePolicyDocument: encodeURIComponent(JSON.stringify(document)) } }))).toEqual([]);
  });

  it("trust.principal: a role that trusts another issuer (Buildkite's own) is an error naming Port's provider", async () => {
    const findings = await trust(doc(statement((s) => (s.Principal = { Federated: 'arn:aws:iam::123456789012:oidc-provider/agent.buildkite.com' }))));
    expect(findings).toEqual([
      {
        severity: 'error',
        rule: 'trust.principal',
        location: 'aws/trust.json#/Statement',
        message: expect.stringContaining(
          "no Allow statement trusts Port's OIDC provider arn:aws:iam::ACCOUNT:oidc-provider/port.acme.test (server.public_url https://port.acme.test); it trusts arn:aws:iam::123456789012:oidc-provider/agent.buildkite.com;",
        ),
      },
    ]);
  });

  it("trust.principal: with get-role output, the provider must be in the role's account", async () => {
    const document = JSON.parse(doc(statement((s) => (s.Principal = { Federated: PROVIDER.replace('123456789012', '210987654321') })))) as unknown;
    const findings = await trust(JSON.stringify({ Role: { Arn: ROLE_ARN, AssumeRolePolicyDocument: document } }));
    expect(findings).toEqual([expect.objectContaining({ rule: 'trust.principal', location: 'aws/trust.json#/Role/AssumeRolePolicyDocument/Statement', message: expect.stringContaining('arn:aws:iam::123456789012:oidc-provider/port.acme.test') })]);
  });

  it('trust.action: without sts:AssumeRoleWithWebIdentity; a wildcard action covers it', async () => {
    expect(await trust(doc(statement((s) => (s.Action = ['sts:AssumeRole', 'sts:TagSession']))))).toEqual([
      expect.objectContaining({ severity: 'error', rule: 'trust.action', location: 'aws/trust.json#/Statement/0/Action' }),
    ]);
    expect(await trust(doc(statement((s) => (s.Action = 'sts:*'))))).toEqual([]);
  });

  it('trust.tag_session: session_tags need sts:TagSession; a credential without them does not', async () => {
    const noTag = statement((s) => (s.Action = 'sts:AssumeRoleWithWebIdentity'));
    expect(await trust(doc(noTag))).toEqual([expect.objectContaining({ severity: 'error', rule: 'trust.tag_session', message: expect.stringContaining('credential ci-prod-deployer sets session_tags') })]);
    const untagged = { credentials: { 'ci-prod-deployer': { type: 'aws_role', role_arn: ROLE_ARN } } };
    expect(await trust(doc(noTag), untagged)).toEqual([]);
  });

  it("trust.audience: missing, or not the credential's web_identity_audience", async () => {
    expect(await trust(doc(statement((s) => delete s.Condition.StringEquals)))).toEqual([
      expect.objectContaining({ severity: 'error', rule: 'trust.audience', location: 'aws/trust.json#/Statement/0/Condition', message: expect.stringContaining('has no StringEquals condition on port.acme.test:aud') }),
    ]);
    const other = { credentials: { 'ci-prod-deployer': { type: 'aws_role', role_arn: ROLE_ARN, session_tags: { pipeline: 'pipeline_slug' }, web_identity_audience: 'port-ci' } } };
    expect(await trust(doc(statement()), other)).toEqual([
      expect.objectContaining({ rule: 'trust.audience', message: expect.stringContaining(`credential ci-prod-deployer's web_identity_audience is "port-ci"`) }),
    ]);
  });

  it('trust.subject: no sub condition lets every job in; nor does "*"', async () => {
    const missing = await trust(doc(statement((s) => delete s.Condition.StringLike)));
    expect(missing).toEqual([expect.objectContaining({ severity: 'error', rule: 'trust.subject', message: expect.stringContaining('so any job of any pipeline') })]);
    // A negated operator pins nothing either.
    const negated = await trust(doc(statement((s) => (s.Condition = { ...s.Condition, StringLike: undefined, StringNotLike: { 'port.acme.test:sub': 'organization:acme:pipeline:sandbox:*' } } as never))));
    expect(negated.map((f) => f.rule)).toEqual(['trust.subject']);
    const star = await trust(doc(statement((s) => (s.Condition.StringLike = { 'PORT.ACME.TEST:SUB': '*' }))));
    expect(star).toEqual([expect.objectContaining({ severity: 'error', rule: 'trust.subject', location: 'aws/trust.json#/Statement/0/Condition/StringLike', message: expect.stringContaining('allows "*", which pins nothing') })]);
    // Wildcards and colons only pin nothing either; a single Statement object is located without an index.
    const colons = await trust(JSON.stringify({ Version: '2012-10-17', Statement: statement((s) => (s.Condition.StringLike = { 'port.acme.test:sub': '*:*' })) }));
    expect(colons).toEqual([expect.objectContaining({ rule: 'trust.subject', location: 'aws/trust.json#/Statement/Condition/StringLike', message: expect.stringContaining('allows "*:*", which pins nothing') })]);
  });

  it('trust.subject: a pattern that pins only the organization pins nothing, since Port signs for that organization alone', async () => {
    for (const open of ['organization:acme:*', 'organization:acme*', 'organization:acme:pipeline:*', 'organization:acme:pipeline:*:ref:refs/*', 'organization:?cme:*']) {
      const findings = await trust(doc(statement((s) => (s.Condition['ForAnyValue:StringLike'] = s.Condition.StringLike = { 'port.acme.test:sub': ['organization:acme:pipeline:deploy:*', open] }))));
      expect(findings.map((f) => `${f.severity} ${f.rule}`), open).toContain('error trust.subject');
      expect(findings.find((f) => f.rule === 'trust.subject')!.message).toContain(`allows ${JSON.stringify(open)}, which pins nothing`);
    }
    // A pinned pipeline, any ref, is no finding; ${*} is IAM's literal star, not a wildcard.
    for (const pinned of ['organization:acme:pipeline:deploy:*', 'organization:acme:pipeline:deploy*', 'organization:acme:pipeline:${*}:*', 'organization:acme:pipeline:*:ref:refs/heads/main:*']) {
      expect(await trust(doc(statement((s) => (s.Condition.StringLike = { 'port.acme.test:sub': pinned })))), pinned).toEqual([]);
    }
  });

  it('trust.subject_organization: a sub pattern that does not pin the organization is a warning', async () => {
    const findings = await trust(doc(statement((s) => (s.Condition.StringLike = { 'port.acme.test:sub': ['organization:acme:pipeline:deploy:*', '*:pipeline:deploy:*'] }))));
    expect(findings).toEqual([
      { severity: 'warning', rule: 'trust.subject_organization', location: 'aws/trust.json#/Statement/0/Condition/StringLike', message: expect.stringContaining('"*:pipeline:deploy:*" does not start with organization:acme:') },
    ]);
  });

  it('every Allow statement trusting Port is checked: a second, loose one is its own way in', async () => {
    const findings = await trust(doc(statement(), statement((s) => delete s.Condition.StringLike)));
    expect(findings).toEqual([expect.objectContaining({ rule: 'trust.subject', location: 'aws/trust.json#/Statement/1/Condition' })]);
  });

  describe('trust.bypass: an Allow statement that lets someone besides Port assume the role', () => {
    const BUILDKITE = 'arn:aws:iam::123456789012:oidc-provider/agent.buildkite.com';
    const bypass = async (...statements: Statement[]): Promise<LintFinding[]> => (await trust(doc(statement(), ...statements))).filter((f) => f.rule === 'trust.bypass');

    it("Buildkite's own provider is an error: any job could assume the role with its Buildkite token, without Port", async () => {
      const direct = { Sid: 'BuildkiteDirect', Effect: 'Allow', Principal: { Federated: BUILDKITE }, Action: 'sts:AssumeRoleWithWebIdentity', Condition: { StringLike: { 'agent.buildkite.com:sub': 'organization:acme:pipeline:deploy:*' } } };
      expect(await trust(doc(statement(), direct))).toEqual([
        {
          severity: 'error',
          rule: 'trust.bypass',
          location: 'aws/trust.json#/Statement/1/Principal/Federated',
          message: expect.stringMatching(/^statement 1 \(Sid "BuildkiteDirect"\) also trusts Buildkite's own OIDC provider \(Federated "arn:aws:iam::123456789012:oidc-provider\/agent\.buildkite\.com"\), so any job .* could assume the role without Port/),
        },
      ]);
    });

    it("Buildkite's provider listed beside Port's in one statement is found at its array index", async () => {
      const both = statement((s) => (s.Principal = { Federated: [PROVIDER, BUILDKITE] }));
      const findings = await trust(JSON.stringify({ Version: '2012-10-17', Statement: both }));
      expect(findings).toEqual([
        expect.objectContaining({ severity: 'error', rule: 'trust.bypass', location: 'aws/trust.json#/Statement/Principal/Federated/1', message: expect.stringMatching(/^the statement also trusts Buildkite's own OIDC provider/) }),
      ]);
    });

    it('Principal "*" and {"AWS": "*"} are errors: everyone could assume the role', async () => {
      expect(await bypass({ Effect: 'Allow', Principal: '*', Action: 'sts:AssumeRole' })).toEqual([
        { severity: 'error', rule: 'trust.bypass', location: 'aws/trust.json#/Statement/1/Principal', message: expect.stringMatching(/^statement 1 also trusts Principal "\*", which is everyone: .* could assume the role without Port/) },
      ]);
      expect(await bypass({ Sid: 'Anyone', Effect: 'Allow', Principal: { AWS: ['*'] }, Action: 'sts:AssumeRole' })).toEqual([
        expect.objectContaining({ severity: 'error', location: 'aws/trust.json#/Statement/1/Principal/AWS/0', message: expect.stringContaining('statement 1 (Sid "Anyone") also trusts AWS "*", which is everyone') }),
      ]);
      // {"Federated": "*"} also passes for Port's provider, and still trusts every other.
      const anyFederated = (await trust(doc(statement((s) => (s.Principal = { Federated: '*' }))))).filter((f) => f.rule === 'trust.bypass');
      expect(anyFederated).toEqual([expect.objectContaining({ severity: 'error', location: 'aws/trust.json#/Statement/0/Principal/Federated', message: expect.stringContaining('also trusts Federated "*", which is everyone') })]);
    });

    it('an AWS account, role or account id is a warning (a break-glass role may mean it), one per principal; NotAction counts', async () => {
      const findings = await bypass({ Sid: 'BreakGlass', Effect: 'Allow', Principal: { AWS: ['arn:aws:iam::123456789012:root', 'arn:aws:iam::210987654321:role/break-glass', '210987654321'] }, NotAction: 'sts:TagSession' });
      expect(findings.map((f) => [f.severity, f.location])).toEqual([
        ['warning', 'aws/trust.json#/Statement/1/Principal/AWS/0'],
        ['warning', 'aws/trust.json#/Statement/1/Principal/AWS/1'],
        ['warning', 'aws/trust.json#/Statement/1/Principal/AWS/2'],
      ]);
      expect(findings[1]!.message).toMatch(/^statement 1 \(Sid "BreakGlass"\) also trusts AWS "arn:aws:iam::210987654321:role\/break-glass": .* could assume the role without Port.*deliberate break-glass/);
    });

    it('a Service principal is a warning', async () => {
      expect(await bypass({ Effect: 'Allow', Principal: { Service: 'ec2.amazonaws.com' }, Action: 'sts:AssumeRole' })).toEqual([
        { severity: 'warning', rule: 'trust.bypass', location: 'aws/trust.json#/Statement/1/Principal/Service', message: expect.stringContaining('statement 1 also trusts Service "ec2.amazonaws.com": that AWS service could assume the role without Port') },
      ]);
    });

    it("another identity provider (OIDC or SAML) is a warning; Port's provider in the same statement is not", async () => {
      const github = 'arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com';
      const saml = 'arn:aws:iam::123456789012:saml-provider/okta';
      const findings = await bypass({ Effect: 'Allow', Principal: { Federated: [PROVIDER, github, saml] }, Action: ['sts:AssumeRoleWithWebIdentity', 'sts:AssumeRoleWithSAML'] });
      expect(findings.map((f) => [f.severity, f.location, f.message.split(':')[0]])).toEqual([
        ['warning', 'aws/trust.json#/Statement/1/Principal/Federated/1', 'statement 1 also trusts Federated "arn'],
        ['warning', 'aws/trust.json#/Statement/1/Principal/Federated/2', 'statement 1 also trusts Federated "arn'],
      ]);
      expect(findings[0]!.message).toContain(github);
    });

    it('NotPrincipal in an Allow is an error: it trusts everyone but those listed', async () => {
      expect(await bypass({ Effect: 'Allow', NotPrincipal: { AWS: 'arn:aws:iam::123456789012:role/ops' }, Action: 'sts:AssumeRole' })).toEqual([
        { severity: 'error', rule: 'trust.bypass', location: 'aws/trust.json#/Statement/1/NotPrincipal', message: expect.stringMatching(/^statement 1 is an Allow with NotPrincipal, which trusts every principal except those listed, so anyone else could assume the role without Port/) },
      ]);
    });

    it('clean: Deny statements (with "*" or NotPrincipal) and an Allow of no assume call let no one in', async () => {
      const text = doc(
        statement(),
        { Effect: 'Deny', Principal: { AWS: '*' }, Action: 'sts:AssumeRole', Condition: { StringNotEquals: { 'aws:PrincipalAccount': '123456789012' } } },
        { Effect: 'Deny', NotPrincipal: { Federated: PROVIDER }, Action: 'sts:*' },
        { Effect: 'Allow', Principal: { AWS: 'arn:aws:iam::123456789012:role/tagger' }, Action: ['sts:TagSession', 'sts:SetSourceIdentity'] },
      );
      expect(await trust(text)).toEqual([]);
    });
  });

  it('trust.file: not JSON, or not a policy', async () => {
    expect(await trust('{ "Version": ')).toEqual([expect.objectContaining({ severity: 'error', rule: 'trust.file', location: 'aws/trust.json', message: expect.stringMatching(/^is not JSON/) })]);
    expect(await trust('{"Role": {"RoleName": "x"}}')).toEqual([expect.objectContaining({ rule: 'trust.file', message: expect.stringContaining('is neither an IAM policy document') })]);
  });

  it('trust.credential: get-role output of a role no credential uses; a bare document without web_identity credentials', async () => {
    const document = JSON.parse(doc(statement())) as unknown;
    expect(await trust(JSON.stringify({ Role: { Arn: 'arn:aws:iam::123456789012:role/other', AssumeRolePolicyDocument: document } }))).toEqual([
      expect.objectContaining({ severity: 'error', rule: 'trust.credential', location: 'aws/trust.json#/Role/Arn' }),
    ]);
    const assumeRole = { credentials: { 'ci-prod-deployer': { type: 'aws_role', role_arn: ROLE_ARN, mode: 'assume_role' } } };
    expect(await trust(doc(statement()), assumeRole)).toEqual([expect.objectContaining({ rule: 'trust.credential', message: expect.stringContaining('no aws_role credential with mode web_identity') })]);
  });

  it('trust.mode: get-role output of an assume_role credential is not checked, and lint says so', async () => {
    const assumeRole = { credentials: { 'ci-prod-deployer': { type: 'aws_role', role_arn: ROLE_ARN, mode: 'assume_role' } } };
    const document = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { AWS: 'arn:aws:iam::123456789012:user/port' }, Action: 'sts:AssumeRole' }] };
    expect(await trust(JSON.stringify({ Role: { Arn: ROLE_ARN, AssumeRolePolicyDocument: document } }), assumeRole)).toEqual([
      expect.objectContaining({ severity: 'warning', rule: 'trust.mode', location: 'credentials.ci-prod-deployer.mode' }),
    ]);
  });

  it('trust.issuer: IAM takes only an https:// issuer', async () => {
    const findings = await trust(doc(statement()), { server: { listen: '127.0.0.1:0', public_url: 'http://port.acme.test' } });
    expect(findings).toEqual([expect.objectContaining({ severity: 'error', rule: 'trust.issuer', location: 'server.public_url' })]);
  });

  it('an issuer with a path is named with it, in the provider ARN and the condition keys', async () => {
    const text = doc(
      statement((s) => {
        s.Principal = { Federated: `${PROVIDER}/port` };
        s.Condition = { StringEquals: { 'port.acme.test/port:aud': 'sts.amazonaws.com' }, StringLike: { 'port.acme.test/port:sub': 'organization:acme:pipeline:deploy:*' } };
      }),
    );
    expect(await trust(text, { server: { listen: '127.0.0.1:0', public_url: 'https://port.acme.test/port' } })).toEqual([]);
  });

  it('a --trust-policy file that cannot be read stops lint (exit 2 at the CLI)', async () => {
    const file = fx.write(base());
    const { lintConfig } = await import('../../src/lint/lint.js');
    await expect(lintConfig(fx.load(file), { trustPolicies: [join(file, '..', 'missing.json')] })).rejects.toBeInstanceOf(LintInputError);
  });
});
