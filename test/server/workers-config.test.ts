/**
 * `server.workers` as the configuration reads it: `auto` (the default) is the CPU count;
 * with `sso` and no `issuer.key_encryption_key` — each process would seal sign-ins under a
 * key of its own — `auto` runs one worker and an explicit count above 1 is refused.
 */
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { configFromObject } from '../../src/config/config.js';

const dir = mkdtempSync(join(tmpdir(), 'port-workers-config-'));
mkdirSync(join(dir, 'policies'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const SSO = { issuer: 'https://idp.acme.test', client_id: 'port', client_secret: 'env:PORT_TEST_SSO_SECRET' };

function load(server: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  return configFromObject(
    {
      server: { public_url: 'https://port.acme.test', ...server },
      buildkite: { organization: 'acme' },
      policies: './policies',
      ...extra,
    },
    join(dir, 'port.yaml'),
    { resolveSecrets: false },
  ).server;
}

describe('server.workers', () => {
  it('defaults to auto: one per CPU Node reports', () => {
    expect(load({}).workers).toBe(Math.min(availableParallelism(), 256));
    expect(load({ workers: 'auto' }).workers).toBe(Math.min(availableParallelism(), 256));
    expect(load({}).workersLimitedBy).toBeUndefined();
  });

  it('takes a count from 1 to 256', () => {
    expect(load({ workers: 1 }).workers).toBe(1);
    expect(load({ workers: 256 }).workers).toBe(256);
    for (const bad of [0, 257, 1.5, 'four', -1]) expect(() => load({ workers: bad })).toThrow(/server\.workers: .*expected "auto" or a whole number from 1 to 256/);
  });

  it('with sso but no issuer.key_encryption_key: auto runs one worker and says why; an explicit count above 1 is refused', () => {
    const auto = load({}, { sso: SSO });
    expect(auto.workers).toBe(1);
    if (availableParallelism() > 1) expect(auto.workersLimitedBy).toMatch(/sso is set without issuer\.key_encryption_key/);
    expect(load({ workers: 1 }, { sso: SSO }).workers).toBe(1);
    expect(() => load({ workers: 2 }, { sso: SSO })).toThrow(/server\.workers: 2 with sso needs issuer\.key_encryption_key/);
    // With the key, sign-ins are sealed alike in every worker.
    const withKey = load({ workers: 2 }, { sso: SSO, issuer: { key_encryption_key: 'env:PORT_TEST_KEK' } });
    expect(withKey.workers).toBe(2);
  });
});
