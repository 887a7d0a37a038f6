import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { BuildkiteSimulator } from '../../src/sim/index.js';
import { TEST_POLICIES } from '../helpers/port-harness.js';
import { ROOT, runPort, spawnPort } from '../helpers/spawn-port.js';

/** Each test runs the real bin several times; on a busy 2-core machine one start can take seconds. */
const SLOW = 120_000;

let sim: BuildkiteSimulator;
let dir: string;
beforeAll(async () => {
  sim = await BuildkiteSimulator.start({ organization: 'acme' });
  dir = mkdtempSync(join(tmpdir(), 'port-read-only-'));
});
afterAll(async () => {
  await sim?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A config whose relay, credential and SSO secrets are environment variables an auditor won't have. */
function writeConfig(name: string, listen = '127.0.0.1:0'): string {
  const base = join(dir, name);
  mkdirSync(join(base, 'policies'), { recursive: true });
  for (const [f, text] of Object.entries(TEST_POLICIES)) writeFileSync(join(base, 'policies', f), text);
  const file = join(base, 'port.yaml');
  writeFileSync(
    file,
    stringify({
      server: { listen, public_url: 'https://port.acme.test', log_level: 'info' },
      buildkite: { organization: 'acme', issuer: sim.issuer, jwks_url: sim.jwksUrl, audience: 'https://port.acme.test' },
      credentials: {
        'deploy-token': { type: 'port_token', audience: 'https://deploy.acme.test' },
        'npm-publish': { type: 'secret', value: 'env:PORT_TEST_NPM_TOKEN' },
      },
      upstreams: { artifacts: { url: 'https://artifacts.acme.test', inject: { bearer: 'env:PORT_TEST_ARTIFACTS_TOKEN' } } },
      sso: { issuer: 'https://idp.acme.test', client_id: 'port', client_secret: 'env:PORT_TEST_SSO_SECRET' },
    }),
  );
  return file;
}

const SECRETS = { PORT_TEST_NPM_TOKEN: 'npm-secret', PORT_TEST_ARTIFACTS_TOKEN: 'artifacts-secret', PORT_TEST_SSO_SECRET: 'sso-secret' };
const NO_SECRETS = { PORT_TEST_NPM_TOKEN: '', PORT_TEST_ARTIFACTS_TOKEN: '', PORT_TEST_SSO_SECRET: '' };

describe('read-only commands need only the settings they use', () => {
  it('audit verify works without the upstream, credential and SSO secrets; serve refuses, naming the variable', async () => {
    const file = writeConfig('auditor');
    // The operator's first start, with every secret, creates the store.
    const p = spawnPort(['serve', '--create-store', '-c', file], { env: SECRETS });
    try {
      await p.waitFor(/Port is listening/);
    } finally {
      await p.stop();
    }

    const verify = await runPort(['audit', 'verify', '-c', file], { env: NO_SECRETS });
    expect(verify.stderr).toBe('');
    expect(verify.code).toBe(0);
    expect(verify.stdout).toContain('OK:');
    const tail = await runPort(['audit', 'tail', '--no-follow', '-c', file], { env: NO_SECRETS });
    expect(tail.code).toBe(0);
    const policy = await runPort(['policy', 'validate', '-c', file], { env: NO_SECRETS });
    expect(policy.code).toBe(0);

    const serve = await runPort(['serve', '-c', file], { env: NO_SECRETS });
    expect(serve.code).toBe(2);
    expect(serve.stderr).toMatch(/PORT_TEST_(NPM|ARTIFACTS|SSO)_\w+ is not set/);
  }, SLOW);

  it('serve exits 2 with one sentence naming host:port when the address is in use', async () => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const { port } = taken.address() as AddressInfo;
    try {
      const file = writeConfig('in-use', `127.0.0.1:${port}`);
      const r = await runPort(['serve', '--create-store', '-c', file], { env: SECRETS });
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`port: cannot start: 127.0.0.1:${port} is already in use`);
      expect(r.stderr).toContain('change server.listen');
    } finally {
      taken.close();
    }
  }, SLOW);
});

describe('help and version', () => {
  it('serve --help describes every endpoint family serve runs', async () => {
    const r = await runPort(['serve', '--help']);
    expect(r.code).toBe(0);
    for (const s of [
      '/oauth/token',
      '/.well-known/jwks.json',
      '/oauth/introspect',
      '/oauth/revoke',
      '/v1/credentials/{name}',
      '/relay/{upstream}',
      '/webhooks/buildkite',
      '/v1/revocations',
      '/v1/admin/credentials',
      '/login',
      '/approvals',
      '/scim/v2',
      '/healthz',
      '/readyz',
      '--create-store',
      '-c, --config',
    ]) {
      expect(r.stdout, s).toContain(s);
    }
  }, SLOW);

  it('--version prints the version in package.json', async () => {
    const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const r = await runPort(['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(version);
  }, SLOW);

  it('a usage mistake exits 2', async () => {
    expect((await runPort(['serve', '--no-such-option'])).code).toBe(2);
    expect((await runPort(['no-such-command'])).code).toBe(2);
  }, SLOW);
});
