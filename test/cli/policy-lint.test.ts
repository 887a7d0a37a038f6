import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { runPort } from '../helpers/spawn-port.js';

/** Each test runs the real bin; on a busy 2-core machine one start can take seconds. */
const SLOW = 60_000;

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'port-policy-lint-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const EXCHANGE = `@id("acme-exchange")
@reason("any acme job may hold a Port token")
permit (principal is Port::Job, action == Port::Action::"exchange", resource == Port::Organization::"acme");
`;

const TRUST = {
  Version: '2012-10-17',
  Statement: [
    {
      Effect: 'Allow',
      Principal: { Federated: 'arn:aws:iam::123456789012:oidc-provider/port.acme.test' },
      Action: ['sts:AssumeRoleWithWebIdentity', 'sts:TagSession'],
      Condition: {
        StringEquals: { 'port.acme.test:aud': 'sts.amazonaws.com' },
        StringLike: { 'port.acme.test:sub': 'organization:acme:pipeline:deploy:ref:refs/heads/main:*' },
      },
    },
  ],
};

/** A config whose grants role is named by the rule and whose IAM role carries the name; secrets by env: references nobody sets. */
function config(role = 'ci-prod-deployer'): Record<string, unknown> {
  return {
    server: { listen: '127.0.0.1:0', public_url: 'https://port.acme.test', admin_token: 'env:PORT_LINT_TEST_UNSET' },
    buildkite: { organization: 'acme', api_token: 'env:PORT_LINT_TEST_UNSET' },
    credentials: {
      'ci-prod-deployer': { type: 'aws_role', role_arn: 'arn:aws:iam::123456789012:role/ci/ci-prod-deployer', session_tags: { pipeline: 'pipeline_slug' } },
    },
    naming: { roles: '^ci-(dev|staging|prod)-[a-z-]+$', aws_role_name: '{role}', trust_policies: ['./aws/deploy-trust.json'] },
    grants: {
      roles: { [role]: { description: 'deploys acme/deploy from main', credentials: ['ci-prod-deployer'] } },
      bindings: [{ role, pipelines: [{ pipeline: 'deploy', branches: ['main'] }] }],
    },
  };
}

function setup(name: string, cfg: Record<string, unknown>, policies: Record<string, string> = { 'exchange.cedar': EXCHANGE }, trust: unknown = TRUST): string {
  const root = join(dir, name);
  mkdirSync(join(root, 'policies'), { recursive: true });
  mkdirSync(join(root, 'aws'), { recursive: true });
  for (const [f, text] of Object.entries(policies)) writeFileSync(join(root, 'policies', f), text);
  writeFileSync(join(root, 'aws', 'deploy-trust.json'), JSON.stringify(trust, null, 2));
  writeFileSync(join(root, 'port.yaml'), stringify(cfg));
  return root;
}

describe('port policy lint', () => {
  it('passes a consistent config (exit 0), reading ./port.yaml and none of its secrets', async () => {
    const root = setup('clean', config());
    const r = await runPort(['policy', 'lint'], { cwd: root });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('0 errors, 0 warnings\n');
    expect(r.code).toBe(0);
  }, SLOW);

  it('prints one line a finding and a summary; exit 1 on errors', async () => {
    const bare = '@id("bare")\npermit (principal is Port::Job, action == Port::Action::"assume", resource == Port::Credential::"ci-prod-deploy");\n';
    const loose = { ...TRUST, Statement: [{ ...TRUST.Statement[0], Condition: { StringEquals: TRUST.Statement[0]!.Condition.StringEquals } }] };
    const root = setup('mistakes', config('deployer'), { 'exchange.cedar': EXCHANGE, 'bare.cedar': bare }, loose);
    const r = await runPort(['policy', 'lint', '-c', join(root, 'port.yaml')], { cwd: root });
    expect(r.code).toBe(1);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines).toEqual([
      expect.stringMatching(/^error {2}naming\.role {2}grants\.roles\.deployer: "deployer" does not match naming\.roles \^ci-\(dev\|staging\|prod\)-\[a-z-\]\+\$; rename the role/),
      expect.stringMatching(/^error {2}naming\.aws_role_name {2}credentials\.ci-prod-deployer\.role_arn: role deployer grants this credential, so naming\.aws_role_name "\{role\}" wants the IAM role named "deployer"/),
      expect.stringMatching(/^error {2}reference\.credential {2}policies\/bare\.cedar:2:\d+: policy bare: Port::Credential::"ci-prod-deploy" is not a credential/),
      expect.stringMatching(/^error {2}policy\.reason {2}policies\/bare\.cedar:1:1: permit bare has no @reason/),
      expect.stringMatching(/^error {2}trust\.subject {2}aws\/deploy-trust\.json#\/Statement\/0\/Condition: has no StringLike or StringEquals condition on port\.acme\.test:sub/),
      '5 errors, 0 warnings',
    ]);
    expect(r.stderr).toBe('');
  }, SLOW);

  it('--json prints the findings as an array; warnings alone exit 0; --trust-policy adds files', async () => {
    const root = setup('warnings', {
      ...config(),
      credentials: { ...(config().credentials as object), 'ci-dev-spare': { type: 'port_token', audience: 'https://spare.acme.test' } },
    });
    // Pins the pipeline but not the organization: a warning (organization:* would pin nothing, an error).
    const unpinned = { ...TRUST, Statement: [{ ...TRUST.Statement[0], Condition: { ...TRUST.Statement[0]!.Condition, StringLike: { 'port.acme.test:sub': '*:pipeline:deploy:*' } } }] };
    writeFileSync(join(root, 'extra-trust.json'), JSON.stringify(unpinned));
    const r = await runPort(['policy', 'lint', '--json', '--trust-policy', 'extra-trust.json'], { cwd: root });
    expect(r.code).toBe(0);
    const findings = JSON.parse(r.stdout) as { severity: string; rule: string; location: string; message: string }[];
    expect(findings.map((f) => [f.severity, f.rule, f.location])).toEqual([
      ['warning', 'reach.credential', 'credentials.ci-dev-spare'],
      ['warning', 'trust.subject_organization', 'extra-trust.json#/Statement/0/Condition/StringLike'],
    ]);
  }, SLOW);

  it('exit 2 when the config or a trust policy file cannot be read', async () => {
    const root = setup('usage', config());
    const noConfig = await runPort(['policy', 'lint', '-c', 'nope.yaml'], { cwd: root });
    expect(noConfig.code).toBe(2);
    expect(noConfig.stderr).toMatch(/^port policy lint: nope\.yaml: no such file/);
    const noTrust = await runPort(['policy', 'lint', '--trust-policy', 'missing.json'], { cwd: root });
    expect(noTrust.code).toBe(2);
    expect(noTrust.stderr).toMatch(/^port policy lint: trust policy missing\.json: cannot be read \(ENOENT\)/);
    expect(noTrust.stdout).toBe('');
  }, SLOW);
});
