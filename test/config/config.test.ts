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
    expect(load(`${minimal}issuer:\n  token_ttl: soon\n`)).toThrow(/issuer\.token_ttl: "soon" is not a duration/);
    expect(load(`${minimal}  clock_skew: 5m\n`)).toThrow(/buildkite\.clock_skew: 5m is longer than the allowed maximum of 60s/);
    expect(load(`${minimal}  algorithms: [HS256]\n`)).toThrow(/buildkite\.algorithms\.0/);
    // A present value of the wrong type is not reported as missing.
    expect(load(`${minimal}  max_token_bytes: lots\n`)).toThrow(/buildkite\.max_token_bytes: Invalid input: expected number, received string/);
    expect(load(`${minimal}  max_token_bytes: lots\n`)).not.toThrow(/required key is missing/);
  });
  it('names a missing required key', () => {
    expect(load('server:\n  public_url: https://port.example\n')).toThrow(/buildkite: required key is missing/);
    expect(load('buildkite:\n  organization: acme\nserver: {}\n')).toThrow(/server\.public_url: required key is missing/);
  });
  it('refuses a missing reference: policies folder, secret env var', () => {
    expect(load(`${minimal}policies: ./nowhere\n`)).toThrow(/policies: folder .*nowhere does not exist/);
    delete process.env.PORT_NOT_SET;
    expect(load(`${minimal}issuer:\n  introspection_token: env:PORT_NOT_SET\n`)).toThrow(/issuer\.introspection_token: environment variable PORT_NOT_SET is not set/);
    expect(load(`${minimal}issuer:\n  introspection_token: hunter2\n`)).toThrow(/must be a secret reference/);
  });
  it('refuses duplicate YAML keys and a missing file', () => {
    expect(load(`${minimal}buildkite:\n  organization: other\n`)).toThrow(/invalid YAML/);
    expect(() => loadConfig(join(dir, 'absent.yaml'))).toThrow(/no such file/);
  });
});
