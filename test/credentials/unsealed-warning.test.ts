import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { BuildkiteSimulator } from '../../src/sim/index.js';
import { spawnPort } from '../helpers/spawn-port.js';
import { CRED_POLICIES } from './support.js';

/**
 * With a rotating secret and no issuer.key_encryption_key, rotated values are
 * stored in plain text; `port serve` says so in its log at start, naming the credentials.
 */
let sim: BuildkiteSimulator;
let dir: string;

beforeAll(async () => {
  sim = await BuildkiteSimulator.start({ organization: 'acme' });
  dir = mkdtempSync(join(tmpdir(), 'port-unsealed-warning-'));
  mkdirSync(join(dir, 'policies'));
  for (const [f, text] of Object.entries(CRED_POLICIES)) writeFileSync(join(dir, 'policies', f), text);
});
afterAll(async () => {
  await sim?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Starts `port serve` with these credentials and issuer keys; answers its log once it listens. */
async function startLog(name: string, credentials: Record<string, unknown>, issuer: Record<string, unknown> = {}): Promise<string> {
  const config = join(dir, `${name}.yaml`);
  writeFileSync(
    config,
    stringify({
      server: { listen: '127.0.0.1:0', public_url: 'https://port.acme.test', log_level: 'info' },
      store: { sqlite: `./${name}.db` },
      buildkite: { organization: 'acme', issuer: sim.issuer, jwks_url: sim.jwksUrl, audience: 'https://port.acme.test' },
      policies: './policies',
      issuer,
      credentials,
    }),
  );
  const port = spawnPort(['serve', '--create-store', '-c', config], { env: { PORT_TEST_WARN_KEK: 'key-encryption-key-for-the-warning-test' } });
  try {
    await port.waitFor(/"url":"http:\/\/127\.0\.0\.1:\d+"/);
    return port.stdout() + port.stderr();
  } finally {
    await port.stop();
  }
}

const rotating = (hook: string) => ({ type: 'secret', value: 'command:printf initial', rotation: { hook: { command: hook } } });
const WARNING = /"level":40,.*"msg":"issuer\.key_encryption_key is not set: rotated secret values of credentials\.db, credentials\.api are stored unencrypted in the store; set issuer\.key_encryption_key to seal them"/;

describe('start-up warning for rotated values stored in plain text', () => {
  it('is logged when a secret rotates and issuer.key_encryption_key is unset, naming each such credential', async () => {
    const log = await startLog('no-kek', { db: rotating('/bin/true'), api: rotating('/bin/true'), plain: { type: 'secret', value: 'command:printf p' } });
    expect(log).toMatch(WARNING);
    expect(log).not.toContain('credentials.plain');
  });

  it('is not logged with issuer.key_encryption_key, nor without a rotating secret', async () => {
    const sealed = await startLog('kek', { db: rotating('/bin/true') }, { key_encryption_key: 'env:PORT_TEST_WARN_KEK' });
    expect(sealed).toContain('"url"');
    expect(sealed).not.toContain('rotated secret values');
    const unrotated = await startLog('no-rotation', { plain: { type: 'secret', value: 'command:printf p' } });
    expect(unrotated).toContain('issuer.key_encryption_key is not set'); // the signing-key warning
    expect(unrotated).not.toContain('rotated secret values');
  });
});
