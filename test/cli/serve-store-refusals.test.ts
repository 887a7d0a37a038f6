/**
 * `port serve` on a store it must not run on exits 2 — the operator's to fix, and a
 * supervisor that stops retrying on 2 (the shipped systemd unit's RestartPreventExitStatus=2)
 * doesn't restart it every few seconds: a store written by a newer Port, and signing keys
 * sealed under another issuer.key_encryption_key.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { BuildkiteSimulator } from '../../src/sim/index.js';
import { TEST_POLICIES } from '../helpers/port-harness.js';
import { runPort, spawnPort } from '../helpers/spawn-port.js';

let sim: BuildkiteSimulator;
let dir: string;
beforeAll(async () => {
  sim = await BuildkiteSimulator.start({ organization: 'acme' });
  dir = mkdtempSync(join(tmpdir(), 'port-serve-store-'));
});
afterAll(async () => {
  await sim?.close();
  rmSync(dir, { recursive: true, force: true });
});

function writeConfig(name: string, kek: string): string {
  const base = join(dir, name);
  mkdirSync(join(base, 'policies'), { recursive: true });
  for (const [f, text] of Object.entries(TEST_POLICIES)) writeFileSync(join(base, 'policies', f), text);
  writeFileSync(join(base, 'kek'), kek, { mode: 0o600 });
  const file = join(base, 'port.yaml');
  writeFileSync(
    file,
    stringify({
      server: { listen: '127.0.0.1:0', public_url: 'https://port.acme.test' },
      store: { sqlite: './port.db' },
      buildkite: { organization: 'acme', issuer: sim.issuer, jwks_url: sim.jwksUrl, audience: 'https://port.acme.test' },
      issuer: { key_encryption_key: 'file:./kek' },
    }),
  );
  return file;
}

/** Starts Port once on a new store (it creates and seals its first signing key), then stops it. */
async function createStore(file: string): Promise<void> {
  const p = spawnPort(['serve', '--create-store', '-c', file]);
  try {
    await p.waitFor(/Port is listening/);
  } finally {
    await p.stop();
  }
}

describe('port serve on a store it must not run on', () => {
  it('a store written by a newer Port: exit 2, naming both versions', async () => {
    const file = writeConfig('newer', randomBytes(32).toString('base64url'));
    await createStore(file);
    const db = new Database(join(dir, 'newer', 'port.db'));
    db.pragma('user_version = 999');
    db.close();
    const r = await runPort(['serve', '-c', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/cannot start: .*the database is at schema version 999, newer than this Port \(\d+\); upgrade Port/);
  });

  it('signing keys sealed under another key_encryption_key: exit 2, naming the key to set', async () => {
    const file = writeConfig('other-kek', randomBytes(32).toString('base64url'));
    await createStore(file);
    writeFileSync(join(dir, 'other-kek', 'kek'), randomBytes(32).toString('base64url'));
    const r = await runPort(['serve', '-c', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/does not open with issuer\.key_encryption_key/);
  });
});
