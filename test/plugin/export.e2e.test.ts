/**
 * The plugin as a user gets it: `scripts/export-plugin.sh` writes the standalone
 * `port-buildkite-plugin` repository; a step's `your-org/port#v1.0.0` is resolved and
 * checked out the way the agent does (plugin-source.ts: github.com/your-org/port-buildkite-plugin
 * at tag v1.0.0, with git's `insteadOf` serving github.com from a local directory), and a
 * vendored copy at `<checkout>/.buildkite/plugins/port` is referenced by its relative path.
 * Each runs one job end to end (agent-job.ts) against a running Port and the Buildkite
 * simulator: the environment hook exchanges, the step sees its secret, pre-exit revokes.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeBuildkiteAgentShim } from '../../src/sim/index.js';
import { startHarness, type Harness } from '../helpers/port-harness.js';
import { ensureDist } from '../sim/ensure-dist.js';
import { AgentJob } from './agent-job.js';
import { pluginEnvironment, type PluginConfig } from './plugin-env.js';
import { checkoutPlugin, pluginSource } from './plugin-source.js';

const execFileP = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '..', '..');
const EXPORT = join(ROOT, 'scripts', 'export-plugin.sh');
const LOCATION = 'your-org/port#v1.0.0';
const VENDORED = './.buildkite/plugins/port';
const NPM_SECRET = 'npm-export-Zq8 "quoted" $HOME `tick`\nsecond line';

const POLICIES: Record<string, string> = {
  'exchange.cedar': `
@id("acme-jobs-exchange")
permit (principal, action == Port::Action::"exchange", resource == Port::Organization::"acme");
`,
  'credentials.cedar': `
@id("deploy-credentials")
permit (principal, action == Port::Action::"assume", resource)
when { principal.pipeline_slug == "deploy" };
`,
};

let h: Harness;
let dir: string;
let shimDir: string;

beforeAll(async () => {
  ensureDist();
  dir = mkdtempSync(join(tmpdir(), 'port-plugin-export-'));
  shimDir = join(dir, 'bin');
  writeBuildkiteAgentShim(shimDir);
  writeFileSync(join(dir, 'npm-secret'), NPM_SECRET);
  h = await startHarness({
    policies: POLICIES,
    config: { credentials: { 'npm-publish': { type: 'secret', value: `file:${join(dir, 'npm-secret')}` } } },
  });
});

afterAll(async () => {
  await h?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function run(cmd: string, args: string[], cwd = dir): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await execFileP(cmd, args, { cwd });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

const git = (cwd: string, ...args: string[]) => run('git', ['-c', 'user.name=Test', '-c', 'user.email=test@localhost', ...args], cwd);

/** One job with the plugin at `pluginDir`, referenced as `location`: environment → command → pre-exit. */
async function runJob(location: string, pluginDir: string, extraEnv: Record<string, string> = {}) {
  const sim = h.sim.createJob({ pipelineSlug: 'deploy', branch: 'main' });
  const tmp = mkdtempSync(join(dir, 'job-'));
  const config: PluginConfig = { url: h.url, audience: h.audience, 'export-token': true, secrets: { NPM_TOKEN: 'npm-publish' } };
  const env = {
    PATH: `${shimDir}:${process.env.PATH ?? '/usr/bin:/bin'}`,
    HOME: tmp,
    TMPDIR: tmp,
    OUT: tmp,
    ...h.sim.jobEnv(sim),
    ...extraEnv,
  };
  const agent = new AgentJob(env, pluginDir, pluginEnvironment(location, config));
  const result = await agent.runJob('printf %s "$NPM_TOKEN" > "$OUT/npm"; test -n "$PORT_TOKEN"; echo step ran');
  const npm = existsSync(join(tmp, 'npm')) ? readFileSync(join(tmp, 'npm'), 'utf8') : undefined;
  agent.close();
  return { sim, result, npm };
}

describe('scripts/export-plugin.sh', () => {
  it('writes the standalone repository: the plugin at its root, the LICENSE, one commit tagged with the version', async () => {
    const repo = join(dir, 'export-check', 'port-buildkite-plugin');
    const r = await run(EXPORT, [repo, '--git', 'v1.0.0']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`Exported the Port Buildkite plugin to ${repo} (git repository, tag v1.0.0)`);

    const files = (await git(repo, 'ls-tree', '-r', '--name-only', 'v1.0.0')).stdout.split('\n').filter(Boolean);
    expect(files).toEqual(
      expect.arrayContaining([
        'plugin.yml',
        'README.md',
        'LICENSE',
        'hooks/environment',
        'hooks/pre-exit',
        'lib/config.bash',
        'bin/port-credential-process',
        'tests/environment.bats',
        'tests/helpers/stub.bash',
      ]),
    );
    expect(files.every((f) => /^(plugin\.yml|README\.md|LICENSE|hooks\/|lib\/|bin\/|tests\/)/.test(f)), files.join(' ')).toBe(true);
    expect(readFileSync(join(repo, 'LICENSE'), 'utf8')).toBe(readFileSync(join(ROOT, 'LICENSE'), 'utf8'));
    // The agent runs only executable hooks; git keeps the mode.
    const modes = (await git(repo, 'ls-tree', 'v1.0.0', 'hooks/', 'bin/')).stdout;
    for (const f of ['hooks/environment', 'hooks/pre-exit', 'bin/port-credential-process']) expect(modes).toMatch(new RegExp(`^100755 blob \\w+\\t${f}$`, 'm'));
    // Nothing points outside the exported tree.
    expect(readFileSync(join(repo, 'README.md'), 'utf8')).not.toMatch(/\]\(\.\.\//);
    expect((await git(repo, 'status', '--porcelain')).stdout).toBe('');
  });

  it('refuses a directory that is not empty and a tag that is not a version', async () => {
    const full = mkdtempSync(join(dir, 'full-'));
    writeFileSync(join(full, 'keep'), 'x');
    const notEmpty = await run(EXPORT, [full]);
    expect(notEmpty.code).toBe(1);
    expect(notEmpty.stderr).toContain(`${full} is not empty; export into a new or empty directory`);
    const badTag = await run(EXPORT, [join(dir, 'bad-tag'), '--git', 'latest']);
    expect(badTag.code).toBe(1);
    expect(badTag.stderr).toContain('--git needs a version tag like v1.0.0 (found "latest")');
    expect(existsSync(join(dir, 'bad-tag'))).toBe(false);
    expect((await run(EXPORT, [])).code).toBe(2);
  });
});

describe('the plugin as Buildkite resolves it', () => {
  it(`${LOCATION}: github.com/your-org/port-buildkite-plugin at tag v1.0.0, checked out as the agent does, runs a job`, async () => {
    const source = pluginSource(LOCATION);
    expect(source).toEqual({ kind: 'git', repository: 'https://github.com/your-org/port-buildkite-plugin', version: 'v1.0.0' });

    // "GitHub": a directory holding your-org/port-buildkite-plugin, exported and tagged.
    const github = join(dir, 'github.com');
    const remote = join(github, 'your-org', 'port-buildkite-plugin');
    expect((await run(EXPORT, [remote, '--git', 'v1.0.0'])).code).toBe(0);
    // Work after the release: a checkout pinned to v1.0.0 must not get it.
    writeFileSync(join(remote, 'hooks', 'environment'), '#!/usr/bin/env bash\necho unreleased >&2\nexit 99\n');
    expect((await git(remote, 'commit', '-qam', 'unreleased work')).code).toBe(0);

    const pluginsPath = join(dir, 'agent-plugins');
    mkdirSync(pluginsPath);
    const checkout = await checkoutPlugin(LOCATION, pluginsPath, [`url.file://${github}/.insteadOf=https://github.com/`]);
    expect(checkout).toBe(join(pluginsPath, 'github-com-your-org-port-buildkite-plugin-v1-0-0'));

    const { sim, result, npm } = await runJob(LOCATION, checkout);
    expect(result.environment.stderr).toContain('Exported NPM_TOKEN (secret npm-publish)');
    expect(result.environment.code).toBe(0);
    expect(result.command?.code).toBe(0);
    expect(result.command?.stdout).toContain('step ran');
    expect(npm).toBe(NPM_SECRET);
    expect(h.sim.redactions(sim)).toContain(NPM_SECRET);
    expect(result.preExit.stderr).toContain("revoked this job's Port tokens");
    expect(result.preExit.code).toBe(0);
    expect(result.log).not.toContain(NPM_SECRET);
  });

  it(`vendored: a copy at <checkout>/${VENDORED.slice(2)}, referenced as ${VENDORED}, runs a job`, async () => {
    const source = pluginSource(VENDORED);
    expect(source).toEqual({ kind: 'vendored', path: VENDORED });
    const checkout = join(dir, 'builds', 'acme', 'deploy');
    const vendored = resolve(checkout, VENDORED);
    expect((await run(EXPORT, [vendored])).code).toBe(0);

    const { sim, result, npm } = await runJob(VENDORED, vendored, { BUILDKITE_BUILD_CHECKOUT_PATH: checkout });
    expect(result.environment.stderr).toContain('Exported NPM_TOKEN (secret npm-publish)');
    expect(result.environment.code).toBe(0);
    expect(result.command?.code).toBe(0);
    expect(npm).toBe(NPM_SECRET);
    expect(h.sim.redactions(sim)).toContain(NPM_SECRET);
    expect(result.preExit.code).toBe(0);
    expect(result.preExit.stderr).toContain("revoked this job's Port tokens");
  });
});
