/** The JWKS deadlines as configuration: defaults, limits, and one clear message each. */
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';

const dir = mkdtempSync(join(tmpdir(), 'port-jwks-config-'));
mkdirSync(join(dir, 'policies'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const minimal = 'server:\n  public_url: https://port.example\nbuildkite:\n  organization: acme\n';

function load(extra: string) {
  const file = join(dir, `port-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, `${minimal}${extra}`);
  return () => loadConfig(file);
}

describe('buildkite.jwks_fetch_timeout and jwks_request_wait', () => {
  it('default to a 10 s total fetch deadline and a 2 s request wait', () => {
    expect(load('')().buildkite).toMatchObject({ jwksFetchTimeout: 10, jwksRequestWait: 2 });
    expect(load('  jwks_fetch_timeout: 30s\n  jwks_request_wait: 0\n')().buildkite).toMatchObject({ jwksFetchTimeout: 30, jwksRequestWait: 0 });
  });

  it('refuse values that would disable the deadline or stall requests, naming the key', () => {
    expect(load('  jwks_fetch_timeout: 0s\n')).toThrow(/buildkite\.jwks_fetch_timeout: found 0s, shorter than the allowed minimum; expected at least 1s/);
    expect(load('  jwks_fetch_timeout: 1h\n')).toThrow(/buildkite\.jwks_fetch_timeout: found 1h, longer than the allowed maximum; expected at most 5m/);
    expect(load('  jwks_request_wait: 5m\n')).toThrow(/buildkite\.jwks_request_wait: found 5m, longer than the allowed maximum; expected at most 1m/);
  });
});
