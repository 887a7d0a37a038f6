/**
 * Every folder in examples/ is a complete configuration a user can copy: it loads with the
 * real config loader given only the environment variables its README names, its policies
 * load and validate against Port's Cedar schema, its policy tests pass through the CLI,
 * and `port config check` accepts it. The approval and AWS examples are also checked for
 * what their READMEs promise (who must approve what; a trust policy that admits exactly
 * the jobs Port's policy does).
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { requirementFrom } from '../../src/approvals/requirement.js';
import { compoundSubject } from '../../src/broker/credentials/aws-web-identity-token.js';
import { loadConfig, type AwsRoleCredentialConfig, type PortConfig } from '../../src/config/config.js';
import { configSchema } from '../../src/config/schema.js';
import type { JobIdentityClaims } from '../../src/issuer/port-token.js';
import { approveRequestParts, unblockRequestParts, type BuildFacts } from '../../src/policy/block-step-entities.js';
import { PolicyEngine } from '../../src/policy/engine.js';
import { loadPolicyDir, loadPolicyFiles } from '../../src/policy/loader.js';
import type { AuthzRequest } from '../../src/policy/types.js';
import { stringLike } from '../../src/sim/aws-sts/web-identity.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const EXAMPLES = path.join(ROOT, 'examples');
const BIN = path.join(ROOT, 'bin/port.js');
/** The demo's policy folder (`port demo`), not a configuration of its own. */
const NOT_EXAMPLES = new Set(['policies']);

const examples = readdirSync(EXAMPLES)
  .filter((name) => statSync(path.join(EXAMPLES, name)).isDirectory() && !NOT_EXAMPLES.has(name))
  .sort();

/** The environment variables an example's README lists: `NAME` in the first cell of a table row. */
function readmeEnv(example: string): string[] {
  const readme = readFileSync(path.join(EXAMPLES, example, 'README.md'), 'utf8');
  return [...readme.matchAll(/^\|\s*`([A-Z][A-Z0-9_]*)`\s*\|/gm)].map((m) => m[1]!);
}

/** Every `env:NAME` secret reference among the values of the example's port.yaml (comments aside). */
function referencedEnv(example: string): string[] {
  const found = new Set<string>();
  const walk = (value: unknown): void => {
    if (typeof value === 'string') {
      const m = /^env:([A-Za-z_][A-Za-z0-9_]*)$/.exec(value);
      if (m) found.add(m[1]!);
    } else if (Array.isArray(value)) value.forEach(walk);
    else if (typeof value === 'object' && value !== null) Object.values(value).forEach(walk);
  };
  walk(parseYaml(readFileSync(path.join(EXAMPLES, example, 'port.yaml'), 'utf8')));
  return [...found].sort();
}

function dummy(name: string): string {
  return `dummy-${name.toLowerCase()}-value-for-the-examples-test`;
}

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI as a user would, with only a basic environment plus `env`, from the repository root. */
function port(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  const base = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', LANG: 'C.UTF-8' };
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/**
 * The CLI runs of every example, started together once: each is a fresh Node process
 * loading Port and Cedar, so running them side by side keeps this file to seconds.
 */
const cliRuns = new Map<string, Promise<CliResult>>();
function cli(key: string, args: string[], env?: Record<string, string>): Promise<CliResult> {
  let run = cliRuns.get(key);
  if (run === undefined) cliRuns.set(key, (run = port(args, env)));
  return run;
}
const policyTestRun = (example: string) => cli(`test:${example}`, ['policy', 'test', '--policies', `examples/${example}/policies`]);
const configCheckRun = (example: string) =>
  cli(`check:${example}`, ['config', 'check', '-c', `examples/${example}/port.yaml`], Object.fromEntries(readmeEnv(example).map((n) => [n, dummy(n)])));
beforeAll(() => {
  for (const example of examples) {
    void policyTestRun(example);
    void configCheckRun(example);
  }
});

const savedEnv = { ...process.env };
afterEach(() => {
  for (const k of Object.keys(process.env)) if (!(k in savedEnv)) delete process.env[k];
  Object.assign(process.env, savedEnv);
});

/** loadConfig with exactly the README's variables set among those the file references. */
function loadWithReadmeEnv(example: string): PortConfig {
  for (const name of referencedEnv(example)) delete process.env[name];
  for (const name of readmeEnv(example)) process.env[name] = dummy(name);
  return loadConfig(path.join(EXAMPLES, example, 'port.yaml'));
}

describe('the examples folder', () => {
  it('holds the documented examples, each a folder with port.yaml, policies/, a policy test file and a README', () => {
    expect(examples).toEqual(expect.arrayContaining(['approvals-sso', 'aws-credentials', 'exchange-minimal', 'relay']));
    for (const example of examples) {
      const dir = path.join(EXAMPLES, example);
      expect(existsSync(path.join(dir, 'port.yaml')), `examples/${example}/port.yaml is missing`).toBe(true);
      expect(existsSync(path.join(dir, 'README.md')), `examples/${example}/README.md is missing`).toBe(true);
      expect(existsSync(path.join(dir, 'policies', 'policies.test.yaml')), `examples/${example}/policies/policies.test.yaml is missing`).toBe(true);
    }
  });
});

describe.each(examples)('examples/%s', (example) => {
  const dir = path.join(EXAMPLES, example);

  it('loads with the real config loader, given only the environment variables its README names', () => {
    const referenced = referencedEnv(example);
    const listed = readmeEnv(example);
    // The README names every variable the file needs, and none it doesn't.
    expect([...listed].sort()).toEqual([...referenced].sort());
    const config = loadWithReadmeEnv(example);
    expect(config.policies).toBe(path.join(dir, 'policies'));
  });

  it('fails to load without them, naming the key (so the README list is what makes it load)', () => {
    const referenced = referencedEnv(example);
    if (referenced.length === 0) return; // nothing secret: exchange-minimal
    for (const name of referenced) delete process.env[name];
    expect(() => loadConfig(path.join(dir, 'port.yaml'))).toThrow(new RegExp(`environment variable (${referenced.join('|')}) is not set`));
  });

  it("loads its policies with the policy loader, valid against Port's Cedar schema, with no warnings", async () => {
    const outcome = await loadPolicyDir(path.join(dir, 'policies'));
    if (!outcome.ok) throw new Error(outcome.problems.map((p) => `${p.file}:${p.line}: ${p.message}`).join('\n'));
    expect(outcome.set.policies.length).toBeGreaterThan(0);
    expect(outcome.set.warnings).toEqual([]);
  });

  it('passes its policy tests through `port policy test`', async () => {
    const r = await policyTestRun(example);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^\d+ passed, 0 failed$/m);
    expect(r.stdout).not.toContain('✗');
    expect(r.code).toBe(0);
  }, 120_000);

  it('passes `port config check` with the README variables set', async () => {
    const r = await configCheckRun(example);
    expect(r.stdout + r.stderr).toContain('OK');
    expect(r.code, r.stdout + r.stderr).toBe(0);
  }, 120_000);
});

describe('the capability guides (docs/guides)', () => {
  const GUIDES = path.join(ROOT, 'docs', 'guides');
  const guides = ['agent-pools', 'approvals', 'audit', 'credentials', 'exchange', 'relay', 'revocation', 'scim'];

  it.each(guides)("%s.md: every cedar snippet is valid against Port's Cedar schema", (guide) => {
    const text = readFileSync(path.join(GUIDES, `${guide}.md`), 'utf8');
    const snippets = [...text.matchAll(/^ *```cedar\n([\s\S]*?)^ *```$/gm)].map((m) => m[1]!);
    // Every guide but the log's own shows the policies its capability needs.
    if (guide !== 'audit') expect(snippets.length, `${guide}.md has no cedar snippet`).toBeGreaterThan(0);
    for (const [i, snippet] of snippets.entries()) {
      // Indented snippets (inside a list item) are dedented as Markdown renders them.
      const indent = /^( *)\S/m.exec(snippet)?.[1]?.length ?? 0;
      const body = snippet.replace(new RegExp(`^ {0,${indent}}`, 'gm'), '');
      const name = `${guide}-snippet-${i + 1}.cedar`;
      const outcome = loadPolicyFiles(GUIDES, [{ name, path: path.join(GUIDES, name), text: body }]);
      if (!outcome.ok) throw new Error(`${guide}.md, cedar block ${i + 1}: ${outcome.problems.map((p) => `${p.line}:${p.column}: ${p.message}`).join('; ')}`);
    }
  });

  it.each(guides)('%s.md: every port.yaml snippet uses only keys and values the config schema accepts', (guide) => {
    const text = readFileSync(path.join(GUIDES, `${guide}.md`), 'utf8');
    const blocks = [...text.matchAll(/^```yaml\n([\s\S]*?)^```$/gm)].map((m) => parseYaml(m[1]!) as Record<string, unknown>);
    // Pipeline definitions (steps:) are Buildkite's, not Port's.
    const configs = blocks.filter((b) => !('steps' in b));
    if (guide !== 'audit') expect(configs.length, `${guide}.md has no port.yaml snippet`).toBeGreaterThan(0);
    for (const snippet of configs) {
      // A snippet shows the keys it is about; the two required sections are filled in around it.
      const base: Record<string, Record<string, unknown>> = { server: { public_url: 'https://port.example.com' }, buildkite: { organization: 'acme' } };
      const merged: Record<string, unknown> = { ...snippet };
      for (const [key, value] of Object.entries(base)) merged[key] = { ...value, ...((snippet[key] as object | undefined) ?? {}) };
      const parsed = configSchema.safeParse(merged);
      expect(parsed.success ? [] : parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`), `${guide}.md`).toEqual([]);
    }
  });

  it('links every guide to its example and to the configuration reference', () => {
    for (const guide of guides) {
      const text = readFileSync(path.join(GUIDES, `${guide}.md`), 'utf8');
      expect(text, guide).toContain('../reference/configuration.md');
      expect(text, `${guide}.md links to no example`).toMatch(/\]\(\.\.\/\.\.\/examples\/[a-z-]+\/README\.md\)/);
      for (const [, target] of text.matchAll(/\]\((\.\.\/\.\.\/examples\/[^)#]+)\)/g)) {
        expect(existsSync(path.resolve(GUIDES, target!)), `${guide}.md links to ${target}`).toBe(true);
      }
    }
  });
});

describe('examples/approvals-sso: what its policies ask of a block step', () => {
  let engine: PolicyEngine;
  beforeAll(async () => {
    engine = await PolicyEngine.open(path.join(EXAMPLES, 'approvals-sso', 'policies'));
  });

  const build = (over: Partial<BuildFacts> = {}): BuildFacts => ({
    organization: 'acme',
    pipeline: 'deploy',
    number: 7,
    branch: 'main',
    tag: null,
    commit: 'a'.repeat(40),
    source: 'ui',
    ...over,
  });
  const unblock = (b: BuildFacts, stepKey: string, hour: number, weekday: number): AuthzRequest => ({
    ...unblockRequestParts(b, { step: stepKey, fields: {} }),
    action: 'unblock',
    context: { hour, weekday, step_label: stepKey, step_key: stepKey },
  });
  const approve = (b: BuildFacts, stepKey: string, groups: string[], isAuthor = false, active = true): AuthzRequest => ({
    ...approveRequestParts(b, { step: stepKey, fields: {} }, { email: 'ana@acme.example', active, groups }),
    action: 'approve',
    context: { is_author: isAuthor },
  });

  it('unblocks a deploy of main on a weekday at 10:00 by itself', () => {
    const d = engine.decide(unblock(build(), 'deploy', 10, 2));
    expect(d.decision).toBe('allow');
    expect(d.determining.map((p) => p.id)).toEqual(['deploy-main-office-hours']);
  });

  it('asks one approval from anyone eligible for the same deploy on a Saturday (a default deny)', () => {
    const d = engine.decide(unblock(build(), 'deploy', 10, 6));
    expect(d.decision).toBe('deny');
    expect(requirementFrom(d, engine)).toMatchObject({ approvals: 1, groups: [] });
  });

  it('asks platform and security for a deploy of a feature branch', () => {
    const d = engine.decide(unblock(build({ branch: 'feature/x' }), 'deploy', 10, 2));
    expect(d.decision).toBe('deny');
    expect(requirementFrom(d, engine)).toMatchObject({ approvals: 2, groups: ['platform', 'security'] });
  });

  it('asks two approvals, one from a release manager, for release-production even from main in office hours', () => {
    const d = engine.decide(unblock(build(), 'release-production', 10, 2));
    expect(d.decision).toBe('deny');
    expect(requirementFrom(d, engine)).toMatchObject({ approvals: 2, groups: ['release-managers'] });
  });

  it('lets platform approve deploy steps but not other pipelines; security and release managers anywhere', () => {
    expect(engine.decide(approve(build(), 'deploy', ['platform'])).decision).toBe('allow');
    expect(engine.decide(approve(build({ pipeline: 'app' }), 'deploy', ['platform'])).decision).toBe('deny');
    expect(engine.decide(approve(build({ pipeline: 'app' }), 'deploy', ['security'])).decision).toBe('allow');
    expect(engine.decide(approve(build(), 'release-production', ['release-managers'])).decision).toBe('allow');
    expect(engine.decide(approve(build(), 'deploy', ['developers'])).decision).toBe('deny');
  });

  it('refuses an author and a deactivated person whatever their groups', () => {
    const author = engine.decide(approve(build(), 'deploy', ['platform', 'security'], true));
    expect(author.decision).toBe('deny');
    expect(author.determining.map((p) => p.id)).toEqual(['no-self-approval']);
    const inactive = engine.decide(approve(build(), 'deploy', ['security'], false, false));
    expect(inactive.decision).toBe('deny');
    expect(inactive.determining.map((p) => p.id)).toEqual(['inactive-people-approve-nothing']);
  });
});

describe('examples/aws-credentials: the IAM trust policies match what Port presents', () => {
  const dir = path.join(EXAMPLES, 'aws-credentials');
  type Statement = { Effect: string; Principal: Record<string, string>; Action: string[]; Condition?: Record<string, Record<string, string>> };
  const trust = (file: string): Statement[] => (JSON.parse(readFileSync(path.join(dir, 'iam', file), 'utf8')) as { Statement: Statement[] }).Statement;
  let config: PortConfig;
  beforeAll(() => {
    config = loadWithReadmeEnv('aws-credentials');
  });
  const job = (over: Partial<JobIdentityClaims>): JobIdentityClaims => ({
    organization_slug: 'acme',
    pipeline_slug: 'deploy',
    build_number: 12,
    build_branch: 'main',
    build_tag: null,
    build_commit: 'b'.repeat(40),
    step_key: 'deploy',
    job_id: '01900000-0000-7000-8000-000000000001',
    agent_id: '01900000-0000-7000-8000-000000000002',
    build_source: 'webhook',
    runner_environment: 'self-hosted',
    ...over,
  });

  it("web_identity: federates Port's issuer host, checks the credential's audience, and its sub admits only acme/deploy on main", () => {
    const cred = config.credentials['aws-deploy'] as AwsRoleCredentialConfig;
    expect(cred.mode).toBe('web_identity');
    const host = new URL(config.server.publicUrl).host;
    const [s] = trust('trust-policy-web-identity.json');
    const account = cred.roleArn.split(':')[4];
    expect(s!.Principal.Federated).toBe(`arn:aws:iam::${account}:oidc-provider/${host}`);
    expect(s!.Action).toEqual(expect.arrayContaining(['sts:AssumeRoleWithWebIdentity', 'sts:TagSession']));
    expect(s!.Condition!.StringEquals![`${host}:aud`]).toBe(cred.webIdentityAudience);
    const sub = s!.Condition!.StringLike![`${host}:sub`]!;
    expect(stringLike(sub, compoundSubject(job({})))).toBe(true);
    expect(stringLike(sub, compoundSubject(job({ step_key: null })))).toBe(true);
    expect(stringLike(sub, compoundSubject(job({ build_branch: 'feature/x' })))).toBe(false);
    expect(stringLike(sub, compoundSubject(job({ build_branch: 'v1.0.0', build_tag: 'v1.0.0' })))).toBe(false);
    expect(stringLike(sub, compoundSubject(job({ pipeline_slug: 'app' })))).toBe(false);
    expect(stringLike(sub, compoundSubject(job({ organization_slug: 'globex' })))).toBe(false);
  });

  it('assume_role: trusts an IAM identity of the role’s account, with sts:TagSession for the session tags', () => {
    const cred = config.credentials['aws-readonly'] as AwsRoleCredentialConfig;
    expect(cred.mode).toBe('assume_role');
    const [s] = trust('trust-policy-assume-role.json');
    expect(s!.Principal.AWS).toMatch(new RegExp(`^arn:aws:iam::${cred.roleArn.split(':')[4]}:`));
    expect(s!.Action).toEqual(expect.arrayContaining(['sts:AssumeRole', 'sts:TagSession']));
  });
});
