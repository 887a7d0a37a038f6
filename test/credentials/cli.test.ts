import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { BuildkiteSimulator, writeBuildkiteAgentShim } from '../../src/sim/index.js';
import type { SimJob } from '../../src/sim/types.js';
import { runPort, spawnPort, type Spawned } from '../helpers/spawn-port.js';
import { ADMIN_TOKEN, CRED_POLICIES } from './support.js';

/**
 * `port creds` and `port rotate` as a user runs them, against `port serve` (a real
 * process with its JSON log on, so the test can check no secret ever reaches it).
 */
let sim: BuildkiteSimulator;
let dir: string;
let port: Spawned;
let url: string;
const AUDIENCE = 'https://port.acme.test';
const VALUES = ['cli-initial-value-8e21', 'cli-secret-v1', 'cli-secret-v2', 'cli-secret-v3', 'cmd-leak-9d0c'];

beforeAll(async () => {
  sim = await BuildkiteSimulator.start({ organization: 'acme' });
  dir = mkdtempSync(join(tmpdir(), 'port-creds-cli-'));
  mkdirSync(join(dir, 'policies'));
  for (const [f, text] of Object.entries(CRED_POLICIES)) writeFileSync(join(dir, 'policies', f), text);
  const hook = join(dir, 'hook.sh');
  writeFileSync(hook, '#!/bin/sh\nreq=$(cat)\ncase "$req" in *\'"action":"rotate"\'*) printf \'cli-secret-v%s\\n\' "$(printf \'%s\' "$req" | sed \'s/.*"version":\\([0-9]*\\).*/\\1/\')" ;; esac\n');
  chmodSync(hook, 0o755);
  writeFileSync(join(dir, 'admin-token'), `${ADMIN_TOKEN}\n`);
  writeFileSync(
    join(dir, 'port.yaml'),
    stringify({
      server: { listen: '127.0.0.1:0', public_url: AUDIENCE, log_level: 'debug', admin_token: 'file:admin-token' },
      store: { sqlite: './port.db' },
      buildkite: { organization: 'acme', issuer: sim.issuer, jwks_url: sim.jwksUrl, audience: AUDIENCE },
      policies: './policies',
      credentials: {
        app: { type: 'secret', value: 'env:PORT_TEST_CLI_INITIAL', rotation: { overlap: '1h', hook: { command: hook } } },
        broken: { type: 'secret', value: 'command:echo cmd-leak-9d0c; exit 4' },
        'deploy-token': { type: 'port_token', audience: 'https://deploy.acme.test' },
      },
    }),
  );
  port = spawnPort(['serve', '--create-store', '-c', join(dir, 'port.yaml')], { env: { PORT_TEST_CLI_INITIAL: VALUES[0]! } });
  [, url] = (await port.waitFor(/"url":"(http:\/\/127\.0\.0\.1:\d+)"/)) as unknown as [string, string];
});
afterAll(async () => {
  await port?.stop();
  await sim?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The environment of a job step: no PORT_TOKEN or admin token leaking in from the test runner. */
function cleanEnv(extra: Record<string, string>): Record<string, string> {
  return { PORT_TOKEN: '', PORT_ADMIN_TOKEN: '', PORT_URL: '', ...extra };
}

async function portTokenFor(job: SimJob, scope: string): Promise<string> {
  const bk = await sim.mintToken(job, { audience: AUDIENCE });
  const res = await fetch(`${url}/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: bk, subject_token_type: 'urn:ietf:params:oauth:token-type:jwt', scope }),
  });
  return ((await res.json()) as { access_token: string }).access_token;
}

const deployJob = () => sim.createJob({ pipelineSlug: 'deploy', branch: 'main' });

describe('port creds', () => {
  it('prints exactly the credential JSON with $PORT_TOKEN', async () => {
    const token = await portTokenFor(deployJob(), 'app deploy-token');
    const r = await runPort(['creds', 'app'], { env: cleanEnv({ PORT_TOKEN: token, PORT_URL: url }) });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.endsWith('\n')).toBe(true);
    const body = JSON.parse(r.stdout);
    expect(Object.keys(body)).toEqual(['name', 'value', 'expires_at']);
    expect(body).toMatchObject({ name: 'app', value: VALUES[0] });

    const value = await runPort(['creds', 'app', '--value', '--url', url], { env: cleanEnv({ PORT_TOKEN: token }) });
    expect(value).toMatchObject({ code: 0, stdout: VALUES[0], stderr: '' });

    const jwt = await runPort(['creds', 'deploy-token', '--url', url], { env: cleanEnv({ PORT_TOKEN: token }) });
    expect(JSON.parse(jwt.stdout)).toMatchObject({ name: 'deploy-token', token_type: 'Bearer', audience: 'https://deploy.acme.test' });
  });

  it('inside a job: asks buildkite-agent for a token, exchanges it with scope=<name>, prints the JSON', async () => {
    const shimDir = join(dir, 'bin');
    writeBuildkiteAgentShim(shimDir);
    const job = deployJob();
    const env = cleanEnv({ ...sim.jobEnv(job), PATH: `${shimDir}${delimiter}${process.env.PATH}`, PORT_URL: url, PORT_AUDIENCE: AUDIENCE });
    const r = await runPort(['creds', 'app'], { env });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ name: 'app', value: expect.stringMatching(/^cli-/) });
  });

  it('on refusal: one line on stderr with the reason, nothing on stdout, exit 1', async () => {
    const token = await portTokenFor(deployJob(), 'app');
    const notInScope = await runPort(['creds', 'broken', '--url', url], { env: cleanEnv({ PORT_TOKEN: token }) });
    expect(notInScope).toMatchObject({ code: 1, stdout: '' });
    expect(notInScope.stderr).toMatch(/^port: creds broken: refused \(403 access_denied\): .*"broken".*\n$/);
    expect(notInScope.stderr.trim().split('\n')).toHaveLength(1);

    const broken = await runPort(['creds', 'broken', '--url', url], { env: cleanEnv({ PORT_TOKEN: await portTokenFor(deployJob(), 'broken') }) });
    expect(broken).toMatchObject({ code: 1, stdout: '' });
    expect(broken.stderr).toContain('exited with status 4');
    expect(broken.stderr).not.toContain('cmd-leak');

    const bad = await runPort(['creds', 'app', '--url', url], { env: cleanEnv({ PORT_TOKEN: 'garbage' }) });
    expect(bad).toMatchObject({ code: 1, stdout: '' });
    expect(bad.stderr).toContain('401 invalid_token');

    const denied = sim.createJob({ pipelineSlug: 'deploy', branch: 'feature' });
    const shimDir = join(dir, 'bin');
    const viaAgent = await runPort(['creds', 'app'], {
      env: cleanEnv({ ...sim.jobEnv(denied), PATH: `${shimDir}${delimiter}${process.env.PATH}`, PORT_URL: url, PORT_AUDIENCE: AUDIENCE }),
    });
    expect(viaAgent).toMatchObject({ code: 1, stdout: '' });
    expect(viaAgent.stderr).toMatch(/token exchange refused \(403 access_denied\)/);

    expect((await runPort(['creds', 'app'], { env: cleanEnv({ PORT_TOKEN: token }) })).code).toBe(2);
  });
});

describe('port rotate', () => {
  it('rotates through the admin API with $PORT_ADMIN_TOKEN, --admin-token-env or the config', async () => {
    const token = await portTokenFor(deployJob(), 'app');
    const viaEnv = await runPort(['rotate', 'app', '--url', url], { env: cleanEnv({ PORT_ADMIN_TOKEN: ADMIN_TOKEN }) });
    expect(viaEnv.stderr).toBe('');
    expect(viaEnv.stdout).toMatch(/^rotated app: version 1 is current; version 0 is accepted until \d{4}-\d\d-\d\dT/);
    expect((await runPort(['creds', 'app', '--value', '--url', url], { env: cleanEnv({ PORT_TOKEN: token }) })).stdout).toBe('cli-secret-v1');

    const viaVar = await runPort(['rotate', 'app', '--url', url, '--admin-token-env', 'MY_ADMIN', '--json'], { env: cleanEnv({ MY_ADMIN: ADMIN_TOKEN }) });
    expect(JSON.parse(viaVar.stdout)).toMatchObject({ name: 'app', version: 2, previous_version: 1 });

    const viaConfig = await runPort(['rotate', 'app', '-c', join(dir, 'port.yaml'), '--url', url], { env: cleanEnv({ PORT_TEST_CLI_INITIAL: 'x' }) });
    expect(viaConfig.stdout).toMatch(/^rotated app: version 3 is current/);
    expect((await runPort(['creds', 'app', '--value', '--url', url], { env: cleanEnv({ PORT_TOKEN: token }) })).stdout).toBe('cli-secret-v3');
  });

  it('fails with the reason on a wrong admin token or no token at all', async () => {
    const wrong = await runPort(['rotate', 'app', '--url', url], { env: cleanEnv({ PORT_ADMIN_TOKEN: 'wrong' }) });
    expect(wrong).toMatchObject({ code: 1, stdout: '' });
    expect(wrong.stderr).toContain('refused (401 invalid_token)');
    const none = await runPort(['rotate', 'app', '--url', url], { env: cleanEnv({}) });
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('no admin token');
  });
});

describe('secrets at rest and in logs', () => {
  it("never writes a value to Port's log, and without key_encryption_key the store holds them in the clear", async () => {
    // Everything above ran against this Port with its debug log on.
    const log = port.stdout() + port.stderr();
    expect(log).toContain('"url"');
    for (const v of VALUES) expect(log).not.toContain(v);
    expect(log).toContain('issuer.key_encryption_key is not set');
    // The control for the sealed-at-rest test (rotation.test.ts): with no KEK the value is readable.
    const db = join(dir, 'port.db');
    const bytes = Buffer.concat([readFileSync(db), existsSync(`${db}-wal`) ? readFileSync(`${db}-wal`) : Buffer.alloc(0)]);
    expect(bytes.includes('cli-secret-v3')).toBe(true);
  });
});
