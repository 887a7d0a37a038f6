import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { PORT_BIN, runPort } from '../helpers/spawn-port.js';

/** Each test runs the real bin several times; on a busy 2-core machine one start can take seconds. */
const SLOW = 120_000;

const exec = promisify(execFile);

let dir: string;
/** A folder with a `port` on it that runs this repository's bin, as the installed bin would. */
let binDir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'port-init-'));
  binDir = join(dir, 'bin');
  mkdirSync(binDir);
  writeFileSync(join(binDir, 'port'), `#!/bin/sh\nexec "${process.execPath}" "${PORT_BIN}" "$@"\n`);
  chmodSync(join(binDir, 'port'), 0o755);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The commands of the printed next steps: indented lines starting with `export` or `port`. */
function commands(stdout: string): string[] {
  return stdout
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => /^(export|port) /.test(l));
}

/** Runs lines in one bash, as a person pasting them would; the environment has none of the starter's secrets. */
async function paste(lines: string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${binDir}:${process.env.PATH}` };
  delete env.PORT_ADMIN_TOKEN;
  delete env.PORT_KEY_ENCRYPTION_KEY;
  try {
    const r = await exec('bash', ['-e', '-c', lines.join('\n')], { cwd, env });
    return { code: 0, ...r };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('port init', () => {
  it('writes a starter config and policies whose printed next steps run verbatim: config check and policy test pass', async () => {
    const cwd = join(dir, 'first');
    mkdirSync(cwd);
    const r = await runPort(['init', '--org', 'acme'], { cwd });
    expect(r.code).toBe(0);
    for (const f of ['port.yaml', 'policies/exchange.cedar', 'policies/credentials.cedar', 'policies/upstreams.cedar', 'policies/policies.test.yaml']) {
      expect(existsSync(join(cwd, f)), f).toBe(true);
      expect(r.stdout).toContain(f);
    }
    expect(r.stdout + readFileSync(join(cwd, 'port.yaml'), 'utf8')).not.toMatch(/npx/);
    const config = parse(readFileSync(join(cwd, 'port.yaml'), 'utf8')) as { buildkite: { organization: string }; server: { admin_token: string } };
    expect(config.buildkite.organization).toBe('acme');
    // Secrets are references; the next steps name every variable the config refers to.
    expect(config.server.admin_token).toBe('env:PORT_ADMIN_TOKEN');
    const steps = commands(r.stdout);
    expect(steps).toEqual([
      'export PORT_ADMIN_TOKEN="$(openssl rand -hex 32)"',
      'export PORT_KEY_ENCRYPTION_KEY="$(openssl rand -hex 32)"',
      'port config check -c port.yaml',
      'port policy test -c port.yaml',
      'port serve -c port.yaml --create-store',
    ]);
    // Steps 1 and 2 as pasted (serve runs until stopped, so not here).
    const run = await paste(steps.slice(0, 4), cwd);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('port.yaml: OK: 3 policies, 1 credential, 0 upstreams');
    expect(run.stdout).toMatch(/8 passed, 0 failed/);
  }, SLOW);

  it('without the secrets set, config check names every missing variable with its key', async () => {
    const cwd = join(dir, 'first');
    const r = await paste(['port config check -c port.yaml'], cwd);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/port\.yaml: server\.admin_token: environment variable PORT_ADMIN_TOKEN is not set/);
    expect(r.stderr).toMatch(/port\.yaml: issuer\.key_encryption_key: environment variable PORT_KEY_ENCRYPTION_KEY is not set/);
  }, SLOW);

  it('refuses to overwrite without --force (exit 2, naming the files), and overwrites with it', async () => {
    const target = join(dir, 'again');
    expect((await runPort(['init', '--org', 'acme', '--dir', target])).code).toBe(0);
    writeFileSync(join(target, 'port.yaml'), '# mine\n');
    const refused = await runPort(['init', '--org', 'globex', '--dir', target]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(`${join(target, 'port.yaml')}, ${join(target, 'policies', 'exchange.cedar')}`);
    expect(refused.stderr).toContain('pass --force');
    expect(readFileSync(join(target, 'port.yaml'), 'utf8')).toBe('# mine\n');
    const forced = await runPort(['init', '--org', 'globex', '--dir', target, '--force']);
    expect(forced.code).toBe(0);
    expect(readFileSync(join(target, 'port.yaml'), 'utf8')).toContain('organization: globex');
  }, SLOW);

  it('needs --org, a valid slug and valid options (exit 2 with one sentence)', async () => {
    const missing = await runPort(['init', '--dir', join(dir, 'none')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('--org SLUG is required');
    const bad = await runPort(['init', '--org', 'Acme Corp', '--dir', join(dir, 'none')]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('"Acme Corp" is not a Buildkite organization slug');
    const url = await runPort(['init', '--org', 'acme', '--public-url', 'port.example.com', '--dir', join(dir, 'none')]);
    expect(url.code).toBe(2);
    expect(url.stderr).toContain('is not an http(s) URL');
    expect(existsSync(join(dir, 'none'))).toBe(false);
  }, SLOW);

  it('quotes a folder with spaces in the printed commands so they still run as pasted', async () => {
    const target = join(dir, 'my port');
    const r = await runPort(['init', '--org', 'my-org', '--dir', target, '--public-url', 'https://port.my-org.example']);
    expect(r.code).toBe(0);
    const steps = commands(r.stdout);
    expect(steps).toContain(`port config check -c '${join(target, 'port.yaml')}'`);
    const run = await paste(steps.slice(0, 4), dir);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/8 passed, 0 failed/);
    expect(readFileSync(join(target, 'port.yaml'), 'utf8')).toContain('public_url: https://port.my-org.example');
  }, SLOW);
});
