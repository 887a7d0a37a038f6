/**
 * `port policy show [--compiled]`, and `port policy test | explain | validate` and
 * `port config check` on a config with grants, through the real bin (dist/, built by
 * `npm test`) as a user runs them.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { loadConfig } from '../../src/config/config.js';
import { compileGrants, type CompiledGrants } from '../../src/grants/compile.js';
import { runPort } from '../helpers/spawn-port.js';

/** Each test runs the real bin; on a busy 2-core machine one start can take seconds. */
const SLOW = 120_000;

let dir: string;
let compiled: CompiledGrants;
const id = (permission: string) => compiled.policies.find((p) => p.role === 'deployer' && p.permission === permission)!.id;
const publisherId = () => compiled.policies.find((p) => p.role === 'publisher' && p.permission === 'assume.npm-publish')!.id;

const CONFIG = {
  server: { public_url: 'https://port.example.com' },
  buildkite: { organization: 'acme' },
  credentials: { 'aws-prod': { type: 'secret', value: 'env:AWS_PROD' }, 'npm-publish': { type: 'secret', value: 'env:NPM_TOKEN' } },
  upstreams: { github: { url: 'https://api.github.com' } },
  grants: {
    directory: './grants',
    roles: {
      deployer: {
        credentials: ['aws-prod'],
        upstreams: [{ upstream: 'github', methods: ['GET'], paths: ['/repos/acme/*'] }],
      },
      publisher: { credentials: ['npm-publish'] },
    },
    bindings: [
      { role: 'deployer', pipelines: [{ pipeline: 'deploy', branches: ['main'] }], pools: ['linux/deploy'] },
      { role: 'publisher', pipelines: [{ pipeline: 'app', tags: ['v*'] }], groups: ['releasers'] },
    ],
  },
};

const FORBID = `@id("no-scheduled-aws")
@reason("scheduled builds never hold production AWS credentials")
forbid (principal is Port::Job, action == Port::Action::"assume", resource == Port::Credential::"aws-prod")
when { principal.build_source == "schedule" };
`;

const DEPLOY_CLAIMS = { pipeline_slug: 'deploy', build_branch: 'main', cluster_name: 'linux', queue_key: 'deploy' };

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'port-policy-show-'));
  mkdirSync(join(dir, 'policies'));
  mkdirSync(join(dir, 'grants'));
  writeFileSync(join(dir, 'port.yaml'), stringify(CONFIG));
  writeFileSync(join(dir, 'grants', 'approvers.yaml'), stringify({ roles: { approver: { approve: ['deploy'] } }, bindings: [{ role: 'approver', groups: ['sre'] }] }));
  writeFileSync(join(dir, 'policies', 'forbid.cedar'), FORBID);
  compiled = compileGrants(loadConfig(join(dir, 'port.yaml'), { resolveSecrets: false }));
  writeFileSync(
    join(dir, 'policies', 'grants.test.yaml'),
    stringify({
      defaults: { claims: DEPLOY_CLAIMS },
      cases: [
        { name: 'main deploys in linux/deploy get aws-prod', action: 'assume', resource: { credential: 'aws-prod' }, expect: { decision: 'allow', policies: [id('assume.aws-prod')] } },
        { name: 'feature branches do not', claims: { build_branch: 'feature' }, action: 'assume', resource: { credential: 'aws-prod' }, expect: { decision: 'deny', policies: [] } },
        { name: 'other pools do not', claims: { queue_key: 'build' }, action: 'assume', resource: { credential: 'aws-prod' }, expect: { decision: 'deny' } },
        { name: 'the forbid beats the grant', claims: { build_source: 'schedule' }, action: 'assume', resource: { credential: 'aws-prod' }, expect: { decision: 'deny', policies: ['no-scheduled-aws'] } },
        { name: 'reads the repos', action: 'proxy', resource: { upstream: 'github' }, context: { method: 'GET', path: '/repos/acme/app' }, expect: { decision: 'allow', policies: [id('proxy.github')] } },
        { name: 'but writes nothing', action: 'proxy', resource: { upstream: 'github' }, context: { method: 'POST', path: '/repos/acme/app' }, expect: { decision: 'deny' } },
        {
          name: 'releasers publish release tags',
          claims: { pipeline_slug: 'app', build_branch: 'v1.0', build_tag: 'v1.0' },
          creator: { email: 'dev@acme.example', groups: ['releasers'] },
          action: 'assume',
          resource: { credential: 'npm-publish' },
          expect: { decision: 'allow', policies: [publisherId()] },
        },
        { name: 'others do not', claims: { pipeline_slug: 'app', build_branch: 'v1.0', build_tag: 'v1.0' }, creator: { email: 'dev@acme.example', groups: ['web'] }, action: 'assume', resource: { credential: 'npm-publish' }, expect: { decision: 'deny' } },
        { name: 'nor builds whose creator is unknown', claims: { pipeline_slug: 'app', build_branch: 'v1.0', build_tag: 'v1.0' }, action: 'assume', resource: { credential: 'npm-publish' }, expect: { decision: 'deny' } },
      ],
    }),
  );
  writeFileSync(join(dir, 'main.json'), JSON.stringify(DEPLOY_CLAIMS));
  writeFileSync(join(dir, 'feature.json'), JSON.stringify({ ...DEPLOY_CLAIMS, build_branch: 'feature' }));
  writeFileSync(join(dir, 'bad.yaml'), stringify({ ...CONFIG, grants: { roles: { deployer: { credentials: ['aws-prd'] } } } }));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const port = (args: string[], env: Record<string, string> = {}) => runPort(args, { cwd: dir, env });

describe('port policy show', () => {
  it(
    '--compiled prints the Cedar the grants compile to, a header comment per role and binding',
    async () => {
      const r = await port(['policy', 'show', '--compiled', '-c', 'port.yaml']);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout.trimEnd()).toBe(compiled.sources.map((s) => s.text.trimEnd()).join('\n\n'));
      expect(r.stdout).toContain('// grants:approver: role approver, defined in grants/approvers.yaml (roles.approver)\n\n// binding grants/approvers.yaml bindings[0]: groups sre\n');
      expect(r.stdout).toContain('// binding port.yaml grants.bindings[0]: pipelines acme/deploy (branches main); pools linux/deploy\n');
      expect(r.stdout).toContain(`@id("${id('assume.aws-prod')}")\n@reason("role deployer: jobs of acme/deploy (main) in linux/deploy may assume aws-prod")\npermit (`);
    },
    SLOW,
  );

  it(
    'prints the policy set by source: the folder\'s files, then each grant role',
    async () => {
      const r = await port(['policy', 'show', '-c', 'port.yaml']);
      expect(r.code).toBe(0);
      const lines = r.stdout.trimEnd().split('\n');
      expect(lines.filter((l) => !l.startsWith('  '))).toEqual([
        'policies/forbid.cedar (1 policy)',
        'grants:approver (1 policy)',
        'grants:deployer (3 policies)',
        'grants:publisher (2 policies)',
        expect.stringMatching(/^7 policies from 1 file and 3 grant roles; revision [0-9a-f]{64}$/),
      ]);
      expect(lines).toContain('  forbid no-scheduled-aws (line 1; assume): scheduled builds never hold production AWS credentials');
      expect(lines).toContain(`  permit ${id('exchange')} (line ${compiled.sources[1]!.text.split('\n').indexOf(`@id("${id('exchange')}")`) + 1}; exchange): role deployer: jobs of acme/deploy (main) in linux/deploy may hold a Port token`);
    },
    SLOW,
  );

  it(
    '--compiled needs a config; a grant naming what does not exist is refused with the file and key',
    async () => {
      const [noConfig, bad, validate] = await Promise.all([
        port(['policy', 'show', '--compiled']),
        port(['policy', 'show', '--compiled', '-c', 'bad.yaml']),
        port(['policy', 'validate', '-c', 'bad.yaml']),
      ]);
      expect(noConfig.code).toBe(2);
      expect(noConfig.stderr).toContain('--compiled prints the grants: section of a config: pass -c FILE');
      for (const r of [bad, validate]) {
        expect(r.code).toBe(1);
        expect(r.stderr.trim()).toBe('port policy: bad.yaml: grants.roles.deployer.credentials[0]: "aws-prd" is not a credential in bad.yaml; add it under credentials: or use one of: aws-prod, npm-publish.');
      }
    },
    SLOW,
  );
});

describe('port serve with grants', () => {
  it(
    'refuses to start on a grant that cannot be right, naming it, before it creates a store',
    async () => {
      const r = await port(['serve', '-c', 'bad.yaml', '--create-store'], { AWS_PROD: 'not-a-real-secret', NPM_TOKEN: 'not-a-real-secret' });
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('bad.yaml: grants.roles.deployer.credentials[0]: "aws-prd" is not a credential in bad.yaml');
      expect(existsSync(join(dir, 'port.db'))).toBe(false);
    },
    SLOW,
  );
});

describe('the other policy commands with grants', () => {
  it(
    'policy validate counts the grant roles; policy test decides its cases with the grants and the folder together',
    async () => {
      const [validate, test] = await Promise.all([port(['policy', 'validate', '-c', 'port.yaml']), port(['policy', 'test', '-c', 'port.yaml'])]);
      expect(validate.code, validate.stderr).toBe(0);
      expect(validate.stdout).toMatch(/^7 policies in 1 file and 3 grant roles OK; revision [0-9a-f]{64}\n$/);
      expect(test.stderr).toBe('');
      expect(test.code, test.stdout).toBe(0);
      expect(test.stdout).toContain('✓ grants.test.yaml: the forbid beats the grant');
      expect(test.stdout.match(/✓/g)).toHaveLength(9);
    },
    SLOW,
  );

  it(
    'with --policies DIR, a config that is not YAML or not there is a usage error, not a check of the folder without its grants',
    async () => {
      writeFileSync(join(dir, 'broken.yaml'), 'grants:\n  roles: {}\n  roles: {}\n');
      const [broken, missing] = await Promise.all([
        port(['policy', 'validate', '--policies', 'policies', '-c', 'broken.yaml']),
        port(['policy', 'test', '--policies', 'policies', '-c', 'missing.yaml']),
      ]);
      expect(broken.code, broken.stdout).toBe(2);
      expect(broken.stderr).toMatch(/^port policy: broken\.yaml: invalid YAML: /);
      expect(missing.code, missing.stdout).toBe(2);
      expect(missing.stderr.trim()).toBe('port policy: cannot read missing.yaml (ENOENT)');
    },
    SLOW,
  );

  it(
    'policy explain names the grant policy, where it is and its reason — or the grant that did not match',
    async () => {
      const [allow, deny] = await Promise.all([
        port(['policy', 'explain', '-c', 'port.yaml', '--action', 'assume', '--credential', 'aws-prod', '--claims', 'main.json']),
        port(['policy', 'explain', '-c', 'port.yaml', '--action', 'assume', '--credential', 'aws-prod', '--claims', 'feature.json']),
      ]);
      const policy = compiled.policies.find((p) => p.id === id('assume.aws-prod'))!;
      const line = compiled.sources[1]!.text.split('\n').indexOf(`@id("${policy.id}")`) + 1;
      expect(allow.code, allow.stderr).toBe(0);
      expect(allow.stdout).toContain(`ALLOW: assume on Credential::"aws-prod"`);
      expect(allow.stdout).toContain(`Allowed by:\n  ${policy.id} (grants:deployer:${line}) — ${policy.reason}\n`);
      expect(deny.code, deny.stderr).toBe(0);
      expect(deny.stdout).toContain('DENY: assume');
      expect(deny.stdout).toContain(`Permit policies for assume that did not match this request:\n  ${policy.id} (grants:deployer:${line}) — ${policy.reason}\n`);
    },
    SLOW,
  );

  it(
    'policy explain --creator states who started the build, for grants bound to groups',
    async () => {
      writeFileSync(join(dir, 'tag.json'), JSON.stringify({ pipeline_slug: 'app', build_branch: 'v2.0', build_tag: 'v2.0' }));
      const explainAs = (creator?: object) => port(['policy', 'explain', '-c', 'port.yaml', '--action', 'assume', '--credential', 'npm-publish', '--claims', 'tag.json', ...(creator ? ['--creator', JSON.stringify(creator)] : [])]);
      const [member, inactive, unknown, bad] = await Promise.all([
        explainAs({ email: 'dev@acme.example', groups: ['releasers'] }),
        explainAs({ email: 'dev@acme.example', groups: ['releasers'], active: false }),
        explainAs(),
        explainAs({ groups: ['releasers'] }),
      ]);
      expect(member.stdout).toContain(`ALLOW: assume on Credential::"npm-publish"`);
      expect(member.stdout).toContain(`Allowed by:\n  ${publisherId()} (grants:publisher:`);
      expect(inactive.stdout).toContain('DENY: assume');
      expect(unknown.stdout).toContain('DENY: assume');
      expect(bad.code).toBe(2);
      expect(bad.stderr).toContain('--creator needs "email", a string');
    },
    SLOW,
  );

  it(
    'config check counts the grants: a credential only a grant reaches is not reported unreachable',
    async () => {
      const r = await port(['config', 'check', '-c', 'port.yaml'], { AWS_PROD: 'not-a-real-secret', NPM_TOKEN: 'not-a-real-secret' });
      expect(r.stdout + r.stderr).not.toContain('no permit');
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.stdout).toContain('7 policies');
    },
    SLOW,
  );
});
