import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';

const dir = mkdtempSync(join(tmpdir(), 'port-config-'));
mkdirSync(join(dir, 'policies'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function load(yaml: string) {
  const file = join(dir, `port-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, yaml);
  return () => loadConfig(file);
}

const minimal = 'server:\n  public_url: https://port.example\nbuildkite:\n  organization: acme\n';

describe('config', () => {
  it('fills in defaults', () => {
    const c = load(minimal)();
    expect(c.server.listen).toEqual({ host: '127.0.0.1', port: 8080 });
    expect(c.buildkite).toMatchObject({ issuer: 'https://agent.buildkite.com', jwksUrl: 'https://agent.buildkite.com/.well-known/jwks', audience: 'https://port.example', algorithms: ['RS256'], clockSkew: 30 });
    expect(c.issuer).toMatchObject({ tokenTtl: 900, algorithm: 'ES256', audiences: ['https://port.example'] });
    expect(c.store.sqlite).toBe(join(dir, 'port.db'));
  });
  it('names an unknown key and suggests the fix', () => {
    expect(load(`${minimal}  audiance: x\n`)).toThrow(/buildkite\.audiance: unknown key; did you mean "audience"\?/);
    expect(load(`${minimal}polices: ./p\n`)).toThrow(/polices: unknown key; did you mean "policies"\?/);
  });
  it('names a wrong type', () => {
    expect(load(`${minimal}issuer:\n  token_ttl: soon\n`)).toThrow(/issuer\.token_ttl: found "soon"; expected a duration/);
    expect(load(`${minimal}  clock_skew: 5m\n`)).toThrow(/buildkite\.clock_skew: found 5m, longer than the allowed maximum; expected at most 1m\./);
    expect(load(`${minimal}  algorithms: [HS256]\n`)).toThrow(/buildkite\.algorithms\[0\]: found "HS256"/);
    // A present value of the wrong type is not reported as missing.
    expect(load(`${minimal}  max_token_bytes: lots\n`)).toThrow(/buildkite\.max_token_bytes: found "lots"; expected a whole number from 512 to 65536\./);
    expect(load(`${minimal}  max_token_bytes: lots\n`)).not.toThrow(/missing/);
  });
  it('names a missing required key', () => {
    expect(load('server:\n  public_url: https://port.example\n')).toThrow(/buildkite: missing; expected a map with the keys organization, /);
    expect(load('buildkite:\n  organization: acme\nserver: {}\n')).toThrow(/server\.public_url: missing; expected an http:\/\/ or https:\/\/ URL, e\.g\. https:\/\/port\.example\.com\./);
  });
  it('refuses a missing reference: policies folder, secret env var', () => {
    expect(load(`${minimal}policies: ./nowhere\n`)).toThrow(/policies: folder .*nowhere does not exist/);
    delete process.env.PORT_NOT_SET;
    expect(load(`${minimal}issuer:\n  introspection_token: env:PORT_NOT_SET\n`)).toThrow(/issuer\.introspection_token: environment variable PORT_NOT_SET is not set/);
    expect(load(`${minimal}issuer:\n  introspection_token: hunter2\n`)).toThrow(/issuer\.introspection_token: found a value that is not a reference .*; expected a secret reference env:NAME or file:PATH/);
    expect(load(`${minimal}issuer:\n  introspection_token: hunter2\n`)).not.toThrow(/hunter2/);
  });
  it('reads the store settings: SQLite by default, PostgreSQL by reference, with the replica settings', () => {
    const c = load(minimal)();
    expect(c.store).toMatchObject({ postgresPoolSize: 10, feedMaxLag: 5, leaseTtl: 15 });
    expect(c.store.postgres).toBeUndefined();
    process.env.PORT_TEST_CONFIG_DB = 'postgres://port@db.internal/port';
    const pg = load(`${minimal}store:\n  postgres: env:PORT_TEST_CONFIG_DB\n  postgres_pool_size: 20\n  feed_max_lag: 2s\n  lease_ttl: 30s\n`)();
    expect(pg.store).toMatchObject({ postgres: { ref: 'env:PORT_TEST_CONFIG_DB', key: 'store.postgres' }, postgresPoolSize: 20, feedMaxLag: 2, leaseTtl: 30 });
    // Never inline: a URL holds a password.
    expect(load(`${minimal}store:\n  postgres: postgres://port:secret@db/port\n`)).toThrow(/store\.postgres: found a value that is not a reference/);
    expect(load(`${minimal}store:\n  postgres: postgres://port:secret@db/port\n`)).not.toThrow(/secret@db/);
    expect(load(`${minimal}store:\n  postgres: env:PORT_TEST_CONFIG_UNSET\n`)).toThrow(/store\.postgres: environment variable PORT_TEST_CONFIG_UNSET is not set/);
    expect(load(`${minimal}store:\n  feed_max_lag: 2m\n`)).toThrow(/store\.feed_max_lag: found 2m, longer than the allowed maximum; expected at most 1m\./);
  });
  it('refuses sso on PostgreSQL without issuer.key_encryption_key (a sign-in must finish on any replica)', () => {
    process.env.PORT_TEST_CONFIG_DB = 'postgres://port@db.internal/port';
    process.env.PORT_TEST_CONFIG_SSO = 'client-secret';
    const sso = 'sso:\n  issuer: https://idp.example\n  client_id: port\n  client_secret: env:PORT_TEST_CONFIG_SSO\n';
    expect(load(`${minimal}store:\n  postgres: env:PORT_TEST_CONFIG_DB\n${sso}`)).toThrow(
      /issuer\.key_encryption_key: not set, but sso with store\.postgres needs it \(the same on every replica\)/,
    );
    process.env.PORT_TEST_CONFIG_KEK = 'k'.repeat(43);
    expect(load(`${minimal}store:\n  postgres: env:PORT_TEST_CONFIG_DB\n${sso}issuer:\n  key_encryption_key: env:PORT_TEST_CONFIG_KEK\n`)).not.toThrow();
  });
  it('refuses duplicate YAML keys and a missing file', () => {
    expect(load(`${minimal}buildkite:\n  organization: other\n`)).toThrow(/:5:1: invalid YAML: the key "buildkite" appears twice in the same map; keep one of them\./);
    expect(() => loadConfig(join(dir, 'absent.yaml'))).toThrow(/absent\.yaml: no such file; pass the config with -c PATH or create \.\/port\.yaml \(see docs\/reference\/configuration\.md\)\./);
  });
});
