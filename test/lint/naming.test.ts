import { afterAll, describe, expect, it } from 'vitest';
import { LintInputError } from '../../src/lint/errors.js';
import { base, fixtures, ofRule } from './lint-fixture.js';

const fx = fixtures('naming');
afterAll(() => fx.cleanup());

const NAMING = { roles: '^ci-(dev|staging|prod)-[a-z-]+$', aws_role_name: '{role}' };

/** A role granting the deploy credential to acme/deploy's main builds. */
function withRole(role: string, roleArn = 'arn:aws:iam::123456789012:role/ci/ci-prod-deployer', naming: Record<string, unknown> = NAMING): Record<string, unknown> {
  const config = base();
  return {
    ...config,
    credentials: { 'ci-prod-deployer': { ...(config.credentials as Record<string, Record<string, unknown>>)['ci-prod-deployer'], role_arn: roleArn } },
    naming,
    grants: {
      roles: { [role]: { description: 'deploys acme/deploy from main', credentials: ['ci-prod-deployer'] } },
      bindings: [{ role, pipelines: [{ pipeline: 'deploy', branches: ['main'] }] }],
    },
  };
}

describe('naming rules', () => {
  it('passes a role named by the rule whose IAM role carries its name (the ARN path ignored)', async () => {
    expect(await fx.lint(withRole('ci-prod-deployer'))).toEqual([]);
  });

  it('naming.role: a grants role name that does not match naming.roles is an error at its key', async () => {
    const findings = ofRule(await fx.lint(withRole('deployer', 'arn:aws:iam::123456789012:role/deployer', { roles: NAMING.roles })), 'naming.role');
    expect(findings).toEqual([
      {
        severity: 'error',
        rule: 'naming.role',
        location: 'grants.roles.deployer',
        message: expect.stringMatching(/^"deployer" does not match naming\.roles \^ci-\(dev\|staging\|prod\)-\[a-z-\]\+\$; rename the role/),
      },
    ]);
  });

  it('naming.roles must match the whole name, anchored or not', async () => {
    const findings = ofRule(await fx.lint(withRole('my-ci-prod-deployer-x', 'arn:aws:iam::123456789012:role/my-ci-prod-deployer-x', { roles: 'ci-prod-[a-z]+' })), 'naming.role');
    expect(findings.map((f) => f.location)).toEqual(['grants.roles.my-ci-prod-deployer-x']);
  });

  it('naming.role: a role of a grants.directory file is located in that file', async () => {
    const config = { ...base(), naming: { roles: NAMING.roles }, grants: { directory: './grants' } };
    const findings = await fx.lint(config, undefined, {
      'grants/team.yaml': 'roles:\n  deployer:\n    description: deploys\n    credentials: [ci-prod-deployer]\nbindings:\n  - role: deployer\n    pipelines: [{ pipeline: deploy }]\n',
    });
    expect(ofRule(findings, 'naming.role')).toEqual([expect.objectContaining({ location: 'grants/team.yaml: roles.deployer' })]);
  });

  it('naming.aws_role_name: the IAM role must be named after the Port role that grants it', async () => {
    const findings = ofRule(await fx.lint(withRole('ci-prod-deployer', 'arn:aws:iam::123456789012:role/ci/ci-prod-deploy')), 'naming.aws_role_name');
    expect(findings).toHaveLength(1);
    expect(findings[0]).toMatchObject({ severity: 'error', location: 'credentials.ci-prod-deployer.role_arn' });
    expect(findings[0]!.message).toContain('wants the IAM role named "ci-prod-deployer", but arn:aws:iam::123456789012:role/ci/ci-prod-deploy names "ci-prod-deploy"');
    expect(findings[0]!.message).toContain("the ARN's last path segment");
    expect(findings[0]!.message).toMatch(/rename the IAM role to ci-prod-deployer or the Port role to ci-prod-deploy\.$/);
  });

  it('naming.aws_role_name: {role} inside a longer template', async () => {
    const naming = { aws_role_name: 'buildkite-{role}' };
    expect(ofRule(await fx.lint(withRole('ci-prod-deployer', 'arn:aws:iam::123456789012:role/buildkite-ci-prod-deployer', naming)), 'naming.aws_role_name')).toEqual([]);
    const wrong = ofRule(await fx.lint(withRole('ci-prod-deployer', 'arn:aws:iam::123456789012:role/ci-prod-deployer', naming)), 'naming.aws_role_name');
    expect(wrong).toHaveLength(1);
    expect(wrong[0]!.message).toContain('wants the IAM role named "buildkite-ci-prod-deployer"');
  });

  it('naming.aws_role: an aws_role credential whose IAM role name breaks naming.roles', async () => {
    const config: Record<string, unknown> = { ...base(), naming: { roles: NAMING.roles } };
    config.credentials = { ...(config.credentials as object), legacy: { type: 'aws_role', role_arn: 'arn:aws:iam::123456789012:role/LegacyDeploy' } };
    const policies = {
      'all.cedar': '@id("all-creds")\n@reason("every acme job may get any credential")\npermit (principal is Port::Job, action, resource);\n',
    };
    const findings = ofRule(await fx.lint(config, policies), 'naming.aws_role');
    expect(findings).toEqual([
      { severity: 'error', rule: 'naming.aws_role', location: 'credentials.legacy.role_arn', message: expect.stringContaining('IAM role name "LegacyDeploy"') },
    ]);
    expect(ofRule(await fx.lint({ ...base(), naming: { roles: NAMING.roles } }, policies), 'naming.aws_role')).toEqual([]);
  });

  it('a naming.roles that is no regular expression stops lint (exit 2 at the CLI)', async () => {
    await expect(fx.lint({ ...base(), naming: { roles: '^ci-(' } })).rejects.toBeInstanceOf(LintInputError);
  });
});
