/**
 * The Buildkite plugin end to end: the real hook scripts in bash, sourced the way the
 * agent sources them (agent-job.ts), with the simulator's `buildkite-agent` on PATH and
 * the job's env from the simulator, against a running Port (and a local STS for the AWS
 * profile). Each job's TMPDIR is its own, to see what the hooks leave behind.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { fromProcess } from '@aws-sdk/credential-providers';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StsSimulator } from '../../src/sim/aws-sts/index.js';
import { writeBuildkiteAgentShim, type SimJob, type SimJobInit } from '../../src/sim/index.js';
import { startHarness, type Harness } from '../helpers/port-harness.js';
import { ensureDist } from '../sim/ensure-dist.js';
import { AgentJob } from './agent-job.js';
import { pluginEnvironment, type PluginConfig } from './plugin-env.js';

const execFileP = promisify(execFile);
const PLUGIN_DIR = resolve(import.meta.dirname, '..', '..', 'plugin');
const LOCATION = 'acme/port#v1.0.0';

// A secret with everything a shell or a JSON encoder could get wrong.
const NPM_SECRET = `npm_Zq8 "quoted" $HOME \`tick\` 'single' \\ back\nsecond line`;
const DB_SECRET = 'db-pass-Hq8Zr2Lw4';
const AWS_USER = { name: 'port', accessKeyId: 'AKIAPLUGINSIMULATOR1', secretAccessKey: 'plugin-sim-secret-Kd8Wq1Zr4Tn6Vb2Mc3Pd5Fh7' };

const POLICIES: Record<string, string> = {
  'exchange.cedar': `
@id("acme-jobs-exchange")
permit (principal, action == Port::Action::"exchange", resource == Port::Organization::"acme");
`,
  'credentials.cedar': `
@id("deploy-credentials")
@reason("the deploy pipeline holds its deploy credentials")
permit (principal, action == Port::Action::"assume", resource)
when { principal.pipeline_slug == "deploy" };

@id("prod-db-only-from-main")
@reason("the production database password is only for builds of main")
forbid (principal, action == Port::Action::"assume", resource == Port::Credential::"db-prod")
when { principal.branch != "main" };
`,
};

let h: Harness;
let sts: StsSimulator;
let dir: string;
let shimDir: string;

beforeAll(async () => {
  ensureDist();
  dir = mkdtempSync(join(tmpdir(), 'port-plugin-test-'));
  shimDir = join(dir, 'bin');
  writeBuildkiteAgentShim(shimDir);
  writeFileSync(join(dir, 'npm-secret'), NPM_SECRET);
  sts = await StsSimulator.start({ users: [AWS_USER], roles: [{ name: 'deploy', maxSessionDuration: 3600, trust: { users: ['port'] } }] });
  process.env.PORT_PLUGIN_TEST_AWS_KEY_ID = AWS_USER.accessKeyId;
  process.env.PORT_PLUGIN_TEST_AWS_SECRET = AWS_USER.secretAccessKey;
  h = await startHarness({
    policies: POLICIES,
    config: {
      credentials: {
        'deploy-token': { type: 'port_token', audience: 'https://deploy.acme.test' },
        'npm-publish': { type: 'secret', value: `file:${join(dir, 'npm-secret')}` },
        'db-password': { type: 'secret', value: `command:printf %s ${DB_SECRET}` },
        'db-prod': { type: 'secret', value: 'command:printf %s prod-db-secret-Xy7' },
        'aws-prod': {
          type: 'aws_role',
          mode: 'assume_role',
          role_arn: sts.roleArn('deploy'),
          sts_endpoint: sts.url,
          region: 'eu-west-1',
          duration: '15m',
          access_key_id: 'env:PORT_PLUGIN_TEST_AWS_KEY_ID',
          secret_access_key: 'env:PORT_PLUGIN_TEST_AWS_SECRET',
        },
      },
    },
  });
});

afterAll(async () => {
  await h?.close();
  await sts?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Job {
  sim: SimJob;
  agent: AgentJob;
  tmp: string;
  out: string;
}

function newJob(config: PluginConfig, init: SimJobInit = { pipelineSlug: 'deploy', branch: 'main' }, shellFlags: string[] = []): Job {
  const sim = h.sim.createJob(init);
  const tmp = mkdtempSync(join(dir, 'tmp-'));
  const out = join(tmp, 'out');
  mkdirSync(out);
  const env = {
    PATH: `${shimDir}:${process.env.PATH ?? '/usr/bin:/bin'}`,
    HOME: process.env.HOME ?? tmp,
    TMPDIR: tmp,
    OUT: out,
    ...h.sim.jobEnv(sim),
  };
  return { sim, agent: new AgentJob(env, PLUGIN_DIR, pluginEnvironment(LOCATION, config), shellFlags), tmp, out };
}

const base = (extra: PluginConfig = {}): PluginConfig => ({ url: h.url, audience: h.audience, ...extra });

function stateDirs(tmp: string): string[] {
  return readdirSync(tmp).filter((n) => n.startsWith('port-plugin.'));
}

async function introspect(token: string): Promise<number> {
  const res = await fetch(`${h.url}/oauth/introspect`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token }).toString(),
  });
  return res.status;
}

async function credential(name: string, token: string): Promise<{ status: number; body: any }> {
  const res = await fetch(`${h.url}/v1/credentials/${name}`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

async function closedPortUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  await new Promise<void>((r) => server.close(() => r()));
  return `http://127.0.0.1:${port}`;
}

describe('hooks/environment → command → hooks/pre-exit', () => {
  it('exports PORT_TOKEN and the named secrets exactly, redacts them all, then revokes the job at pre-exit', async () => {
    const job = newJob(base({ 'export-token': true, scopes: ['deploy-token'], secrets: { NPM_TOKEN: 'npm-publish', DB_PASSWORD: 'db-password' } }));
    const env = await job.agent.hook('environment');
    expect(env.stderr).toContain('Exported NPM_TOKEN (secret npm-publish)');
    expect(env.code).toBe(0);

    const cmd = await job.agent.command(
      'printf %s "$NPM_TOKEN" > "$OUT/npm"; printf %s "$DB_PASSWORD" > "$OUT/db"; printf %s "$PORT_TOKEN" > "$OUT/token"; echo step ran',
    );
    expect(cmd.code).toBe(0);
    expect(readFileSync(join(job.out, 'npm'), 'utf8')).toBe(NPM_SECRET);
    expect(readFileSync(join(job.out, 'db'), 'utf8')).toBe(DB_SECRET);
    const token = readFileSync(join(job.out, 'token'), 'utf8');

    // The token is this job's, carries the grants asked for (scopes ∪ secrets), and the
    // optional claims the plugin requested from Buildkite.
    const claims = decodeJwt(token);
    expect(claims.sub).toBe(job.sim.jobId);
    expect(String(claims.scope).split(' ').sort()).toEqual(['db-password', 'deploy-token', 'npm-publish']);
    for (const claim of ['organization_id', 'pipeline_id', 'cluster_id', 'cluster_name', 'queue_id', 'queue_key']) {
      expect(claims[claim], claim).toBeTruthy();
    }

    // Every secret and the Port token were registered for redaction before export.
    const redactions = h.sim.redactions(job.sim);
    expect(redactions).toEqual(expect.arrayContaining([token, NPM_SECRET, DB_SECRET]));

    // The state dir is private to the job's user.
    const [state] = stateDirs(job.tmp);
    expect(state).toBeDefined();
    const stateDir = join(job.tmp, state!);
    expect(job.agent.env.PORT_PLUGIN_STATE_DIR).toBe(stateDir);
    expect(statSync(stateDir).mode & 0o777).toBe(0o700);
    expect(statSync(join(stateDir, 'port-token')).mode & 0o777).toBe(0o600);

    expect(await introspect(token)).toBe(200);
    expect((await credential('db-password', token)).status).toBe(200);

    const pre = await job.agent.hook('pre-exit');
    expect(pre.code).toBe(0);
    expect(pre.stderr).toContain("revoked this job's Port tokens");
    expect(existsSync(stateDir)).toBe(false);
    expect(job.agent.env.PORT_PLUGIN_STATE_DIR).toBeUndefined();

    // Refused at Port from now on.
    expect(await introspect(token)).toBe(401);
    const after = await credential('db-password', token);
    expect(after.status).toBe(401);
    expect(after.body.error).toBe('invalid_token');

    // Nothing secret reached the log (the Buildkite token is the one oidc request-token redacted).
    const log = env.stdout + env.stderr + cmd.stdout + cmd.stderr + pre.stdout + pre.stderr;
    expect(log).toContain('step ran');
    for (const secret of [...redactions, NPM_SECRET, DB_SECRET, token]) expect(log).not.toContain(secret);
    job.agent.close();
  });

  it('writes an AWS profile whose credential_process prints AWS credential JSON that an AWS SDK accepts', async () => {
    const job = newJob(base({ 'aws-profile': 'aws-prod', 'aws-region': 'eu-west-1' }));
    const env = await job.agent.hook('environment');
    expect(env.stderr).toContain('Exported AWS_PROFILE=aws-prod');
    expect(env.code).toBe(0);
    const jobEnv = job.agent.env;
    expect(jobEnv.PORT_TOKEN).toBeUndefined(); // not asked for: the profile reads the token file
    expect(jobEnv.AWS_PROFILE).toBe('aws-prod');
    const configFile = jobEnv.AWS_CONFIG_FILE!;
    const stateDir = jobEnv.PORT_PLUGIN_STATE_DIR!;
    expect(configFile).toBe(join(stateDir, 'aws-config'));
    expect(statSync(configFile).mode & 0o777).toBe(0o600);
    const tool = join(PLUGIN_DIR, 'bin', 'port-credential-process');
    expect(readFileSync(configFile, 'utf8')).toBe(
      `# Written by the Port plugin for job ${job.sim.jobId}; removed by its pre-exit hook.\n` +
        '[profile aws-prod]\n' +
        `credential_process = "${tool}" --format aws --url "${h.url}" --token-file "${join(stateDir, 'port-token')}" aws-prod\n` +
        'region = eu-west-1\n',
    );

    // The step runs the profile's command line as the AWS SDK would (through a shell).
    const cmd = await job.agent.command(`eval "$(sed -n 's/^credential_process = //p' "$AWS_CONFIG_FILE")" > "$OUT/creds.json"`);
    expect(cmd.stderr).toBe('');
    expect(cmd.code).toBe(0);
    const creds = JSON.parse(readFileSync(join(job.out, 'creds.json'), 'utf8'));
    expect(creds).toMatchObject({ Version: 1, AccessKeyId: expect.any(String), SecretAccessKey: expect.any(String), SessionToken: expect.any(String) });
    expect(new Date(creds.Expiration).getTime()).toBeGreaterThan(Date.now());
    expect(sts.sessions.get(creds.AccessKeyId)?.roleArn).toBe(sts.roleArn('deploy'));
    // Inside the job, the AWS secrets were registered for redaction before being printed.
    expect(h.sim.redactions(job.sim)).toEqual(expect.arrayContaining([creds.SecretAccessKey, creds.SessionToken]));

    // A real AWS SDK credential provider reads the same profile file and runs it.
    const provider = fromProcess({ profile: 'aws-prod', configFilepath: configFile, filepath: join(job.tmp, 'no-credentials-file') });
    const sdkCreds = await provider();
    expect(sdkCreds.accessKeyId).toMatch(/^ASIA/);
    expect(sts.sessions.has(sdkCreds.accessKeyId)).toBe(true);

    const pre = await job.agent.hook('pre-exit');
    expect(pre.code).toBe(0);
    expect(existsSync(stateDir)).toBe(false);
    // After pre-exit the profile's command fails with a reason and prints nothing.
    await expect(execFileP(tool, ['--format', 'aws', '--url', h.url, '--token-file', join(stateDir, 'port-token'), 'aws-prod'])).rejects.toMatchObject({
      stdout: '',
      stderr: expect.stringContaining('does not exist'),
    });
    for (const secret of [creds.SecretAccessKey, creds.SessionToken]) expect(env.stderr + cmd.stdout + pre.stderr).not.toContain(secret);
    job.agent.close();
  });

  it('works under a caller shell in strict mode (set -euo pipefail) and exports nothing but what was asked', async () => {
    const job = newJob(base({ 'export-token': true }), undefined, ['-euo', 'pipefail']);
    const run = await job.agent.runJob('test -n "$PORT_TOKEN"');
    expect(run.environment.code).toBe(0);
    expect(run.command?.code).toBe(0);
    expect(run.commandEnv.PORT_TOKEN).toMatch(/^ey/);
    expect(Object.keys(run.commandEnv).filter((k) => k.startsWith('PORT_')).sort()).toEqual(['PORT_PLUGIN_STATE_DIR', 'PORT_TOKEN']);
    expect(run.preExit.code).toBe(0);
    expect(stateDirs(job.tmp)).toEqual([]);
    job.agent.close();
  });
});

describe('failures stop the job with the reason', () => {
  it('a denied scope: the hook fails with Port’s error and policy reason; the command never runs; nothing is left behind', async () => {
    const job = newJob(base({ 'export-token': true, secrets: { DB: 'db-prod' } }), { pipelineSlug: 'deploy', branch: 'feature/x' });
    const run = await job.agent.runJob('echo must-not-run');
    expect(run.environment.code).not.toBe(0);
    expect(run.command).toBeUndefined();
    expect(run.environment.stderr).toContain('token exchange refused by Port (HTTP 403 access_denied: ');
    expect(run.environment.stderr).toContain('the production database password is only for builds of main');
    expect(run.commandEnv.PORT_TOKEN).toBeUndefined();
    expect(run.commandEnv.DB).toBeUndefined();
    expect(run.preExit.code).toBe(0);
    expect(stateDirs(job.tmp)).toEqual([]);
    expect(run.log).not.toContain('prod-db-secret-Xy7');
    job.agent.close();
  });

  it('Port unreachable: a clear message naming the URL', async () => {
    const url = await closedPortUrl();
    const job = newJob({ url, audience: h.audience, 'export-token': true });
    const run = await job.agent.runJob('echo must-not-run');
    expect(run.environment.code).not.toBe(0);
    expect(run.command).toBeUndefined();
    expect(run.environment.stderr).toContain(`cannot reach Port at ${url}/oauth/token (curl exit 7`);
    expect(stateDirs(job.tmp)).toEqual([]);
    job.agent.close();
  });

  it('Port refuses the Buildkite token (wrong audience): its error and description are shown', async () => {
    const job = newJob({ url: h.url, audience: 'https://not-port.example', 'export-token': true });
    const run = await job.agent.runJob('echo must-not-run');
    expect(run.environment.code).not.toBe(0);
    expect(run.environment.stderr).toMatch(/token exchange refused by Port \(HTTP 400 invalid_grant: .*audience/i);
    job.agent.close();
  });

  it('the job cannot get a Buildkite token: says so', async () => {
    const job = newJob(base({ 'export-token': true }));
    h.sim.finishJob(job.sim); // its job token no longer works
    const run = await job.agent.runJob('echo must-not-run');
    expect(run.environment.code).not.toBe(0);
    expect(run.environment.stderr).toContain('could not get a Buildkite OIDC token for audience "https://port.acme.test"');
    job.agent.close();
  });

  it.each<[string, PluginConfig, string]>([
    ['missing url', { 'export-token': true }, 'the plugin option "url" is required'],
    ['plain http to a remote host', { url: 'http://port.example.com', 'export-token': true }, 'must be an https:// URL'],
    ['unknown option', { url: 'https://port.example.com', 'export-token': true, scope: ['x'] }, 'unknown option "scope"'],
    ['scopes not a list', { url: 'https://port.example.com', 'export-token': true, scopes: 'deploy-token' }, 'option "scopes" must be a list'],
    ['export-token not a boolean', { url: 'https://port.example.com', 'export-token': 'yes' }, 'option "export-token" must be true or false'],
    ['nothing to export', { url: 'https://port.example.com', scopes: ['deploy-token'] }, 'nothing to do'],
    ['a secret into a reserved variable', { url: 'https://port.example.com', secrets: { PATH: 'npm-publish' } }, 'secrets: "PATH" is reserved'],
    ['a secret into BUILDKITE_*', { url: 'https://port.example.com', secrets: { BUILDKITE_AGENT_ACCESS_TOKEN: 'npm-publish' } }, 'is reserved'],
    ['a bad credential name', { url: 'https://port.example.com', secrets: { NPM: 'NPM Publish' } }, '"NPM Publish" is not a credential name'],
    ['a bad region', { url: 'https://port.example.com', 'aws-profile': 'aws-prod', 'aws-region': 'Europe' }, 'is not an AWS region'],
  ])('bad configuration (%s): a clear message, and no Buildkite token is even requested', async (_name, config, message) => {
    const job = newJob(config);
    const run = await job.agent.runJob('echo must-not-run');
    expect(run.environment.code).not.toBe(0);
    expect(run.command).toBeUndefined();
    expect(run.environment.stderr).toContain(message);
    expect(h.sim.redactions(job.sim)).toEqual([]);
    expect(stateDirs(job.tmp)).toEqual([]);
    job.agent.close();
  });

  it('a secret credential that is not a secret (a port_token) is refused rather than exported empty', async () => {
    const job = newJob(base({ secrets: { DEPLOY: 'deploy-token' } }));
    const run = await job.agent.runJob('echo must-not-run');
    expect(run.environment.code).not.toBe(0);
    expect(run.environment.stderr).toContain('credential "deploy-token" is not a secret with a value');
    expect(run.commandEnv.DEPLOY).toBeUndefined();
    job.agent.close();
  });
});

describe('hooks/pre-exit', () => {
  it('reports a revocation it could not make without failing the job, and still removes the state dir', async () => {
    const job = newJob(base({ 'export-token': true }));
    expect((await job.agent.hook('environment')).code).toBe(0);
    const stateDir = job.agent.env.PORT_PLUGIN_STATE_DIR!;
    writeFileSync(join(stateDir, 'url'), await closedPortUrl());
    const pre = await job.agent.hook('pre-exit');
    expect(pre.code).toBe(0);
    expect(pre.stderr).toContain('cannot reach Port');
    expect(pre.stderr).toContain("the job's Port tokens were not revoked");
    expect(existsSync(stateDir)).toBe(false);
    // The token is still valid (it will expire, or job.finished revokes it).
    expect(await introspect(job.agent.env.PORT_TOKEN!)).toBe(200);
    job.agent.close();
  });

  it('after pre-exit a kept token file is refused as revoked, with Port’s reason, and is not renewed', async () => {
    const job = newJob(base({ 'aws-profile': 'aws-prod' }));
    expect((await job.agent.hook('environment')).code).toBe(0);
    // A process of the job that copied the token file and its audience (the renewal inputs).
    const kept = mkdtempSync(join(job.tmp, 'kept-'));
    for (const f of ['port-token', 'audience']) writeFileSync(join(kept, f), readFileSync(join(job.agent.env.PORT_PLUGIN_STATE_DIR!, f)), { mode: 0o600 });
    const keptFile = join(kept, 'port-token');
    const token = readFileSync(keptFile, 'utf8');
    expect((await job.agent.hook('pre-exit')).code).toBe(0);
    const redactions = h.sim.redactions(job.sim).length;

    // Still inside the job (its env, buildkite-agent on PATH): renewal would be possible,
    // but a revoked token is never renewed.
    const tool = join(PLUGIN_DIR, 'bin', 'port-credential-process');
    const run = await execFileP(tool, ['--format', 'aws', '--url', h.url, '--token-file', keptFile, 'aws-prod'], { env: job.agent.env }).then(
      () => ({ code: 0, stdout: '', stderr: '' }),
      (e: { code: number; stdout: string; stderr: string }) => e,
    );
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain('credential "aws-prod" refused by Port (HTTP 401 invalid_token: The Port token has been revoked: The job this token belongs to has finished or was revoked');
    expect(run.stderr).toContain('a revoked token is not renewed');
    expect(run.stderr).not.toContain(token);
    expect(h.sim.redactions(job.sim)).toHaveLength(redactions); // no Buildkite token was even requested
    expect(readFileSync(keptFile, 'utf8')).toBe(token);
    job.agent.close();
  });

  it('does not remove a directory that is not its own when the step changed PORT_PLUGIN_STATE_DIR', async () => {
    const job = newJob(base({ 'export-token': true }));
    expect((await job.agent.hook('environment')).code).toBe(0);
    const own = job.agent.env.PORT_PLUGIN_STATE_DIR!;
    const victim = mkdtempSync(join(job.tmp, 'victim-'));
    job.agent.env.PORT_PLUGIN_STATE_DIR = victim;
    const pre = await job.agent.hook('pre-exit');
    expect(pre.code).toBe(0);
    expect(pre.stderr).toContain('PORT_PLUGIN_STATE_DIR does not name this plugin');
    expect(existsSync(victim)).toBe(true);
    rmSync(own, { recursive: true, force: true });
    job.agent.close();
  });
});

describe('bin/port-credential-process', () => {
  const tool = join(PLUGIN_DIR, 'bin', 'port-credential-process');

  async function portToken(scope: string): Promise<string> {
    const job = h.sim.createJob({ pipelineSlug: 'deploy', branch: 'main' });
    const res = await h.exchange(await h.sim.mintToken(job, { audience: h.audience }), { scope });
    expect(res.status).toBe(200);
    return res.body.access_token as string;
  }

  async function runTool(args: string[], env: Record<string, string> = {}) {
    try {
      const r = await execFileP(tool, args, { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env } });
      return { code: 0, stdout: r.stdout, stderr: r.stderr };
    } catch (err) {
      const e = err as { code: number; stdout: string; stderr: string };
      return { code: e.code, stdout: e.stdout, stderr: e.stderr };
    }
  }

  it('prints a secret credential from $PORT_TOKEN; refuses an unknown one with Port’s error', async () => {
    const token = await portToken('db-password');
    const ok = await runTool(['--url', h.url, 'db-password'], { PORT_TOKEN: token });
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ name: 'db-password', value: DB_SECRET });

    const unknown = await runTool(['--url', h.url, 'npm-publish'], { PORT_TOKEN: token });
    expect(unknown.code).toBe(1);
    expect(unknown.stdout).toBe('');
    expect(unknown.stderr).toMatch(/credential "npm-publish" refused by Port \(HTTP 403 access_denied: /);
    expect(unknown.stderr).not.toContain(token);
  });

  it('refuses a token file others can read, a missing token, a bad name and usage errors', async () => {
    const token = await portToken('db-password');
    const file = join(dir, 'loose-token');
    writeFileSync(file, token, { mode: 0o644 });
    const loose = await runTool(['--url', h.url, '--token-file', file, 'db-password']);
    expect(loose).toMatchObject({ code: 1, stdout: '' });
    expect(loose.stderr).toContain('readable by others (mode 644)');

    const none = await runTool(['--url', h.url, 'db-password']);
    expect(none).toMatchObject({ code: 1, stdout: '' });
    expect(none.stderr).toContain('no Port token');

    const badName = await runTool(['--url', h.url, '../oauth/revoke'], { PORT_TOKEN: token });
    expect(badName).toMatchObject({ code: 1, stdout: '' });
    expect(badName.stderr).toContain('is not a credential name');

    expect((await runTool([])).code).toBe(2);
    expect((await runTool(['--format', 'xml', 'a'])).code).toBe(2);
  });

  it('--format aws refuses a credential that is not AWS credentials', async () => {
    const token = await portToken('db-password');
    const r = await runTool(['--format', 'aws', '--url', h.url, 'db-password'], { PORT_TOKEN: token });
    expect(r).toMatchObject({ code: 1, stdout: '' });
    expect(r.stderr).toContain('is not AWS credentials');
  });
});
