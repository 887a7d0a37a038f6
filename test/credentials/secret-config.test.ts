import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';

/** The secret keys for command limits, caching and environments, as `port serve` validates them at start. */
const dir = mkdtempSync(join(tmpdir(), 'port-secret-config-'));
mkdirSync(join(dir, 'policies'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

process.env.PORT_TEST_CFG_SECRET = 'x';

function load(credential: string) {
  const file = join(dir, `port-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, `server:\n  public_url: https://port.example\nbuildkite:\n  organization: acme\ncredentials:\n  app:\n${credential.replace(/^/gm, '    ')}\n`);
  return () => loadConfig(file);
}

const httpHook = (url: string) => `type: secret\nvalue: env:PORT_TEST_CFG_SECRET\nrotation:\n  hook:\n    url: ${url}\n    signing_secret: env:PORT_TEST_CFG_SECRET`;

describe('rotation.hook.url', () => {
  it.each(['http://vault.internal/rotate', 'http://10.0.0.7:8200/rotate', 'http://127.0.0.1.nip.io/rotate', 'http://localhost.evil.example/'])('refuses plain http to %s, naming the key', (url) => {
    expect(load(httpHook(url))).toThrow(/credentials\.app\.rotation\.hook\.url: .* is plain http:\/\/ to a host other than this machine; use https:\/\//);
  });

  it.each(['https://vault.internal/rotate', 'http://127.0.0.1:9000/rotate', 'http://localhost:9000/', 'http://[::1]:9000/'])('accepts %s', (url) => {
    const c = load(httpHook(url))();
    expect(c.credentials.app).toMatchObject({ rotation: { hook: { kind: 'http', url } } });
  });
});

describe('command_env', () => {
  it('defaults to none, on the secret and on a command hook', () => {
    const c = load('type: secret\nvalue: command:printf x\nrotation:\n  hook:\n    command: /bin/true')();
    expect(c.credentials.app).toMatchObject({ commandEnv: [], commandConcurrency: 4, cacheFor: 0, rotation: { hook: { kind: 'command', commandEnv: [] } } });
  });

  it('lists names for the command and for the hook', () => {
    const c = load('type: secret\nvalue: command:printf x\ncommand_env: [VAULT_ADDR, VAULT_TOKEN]\nrotation:\n  hook:\n    command: /bin/true\n    command_env: [DB_ADMIN_URL]')();
    expect(c.credentials.app).toMatchObject({ commandEnv: ['VAULT_ADDR', 'VAULT_TOKEN'], rotation: { hook: { commandEnv: ['DB_ADMIN_URL'] } } });
  });

  it('refuses a name that is no variable name, PORT_CREDENTIAL, and a list on an env:/file: value', () => {
    expect(load('type: secret\nvalue: command:printf x\ncommand_env: ["A=B"]')).toThrow(/credentials\.app\.command_env\[0\]: found "A=B"; expected an environment variable name/);
    expect(load('type: secret\nvalue: command:printf x\ncommand_env: [PORT_CREDENTIAL]')).toThrow(/credentials\.app\.command_env: found PORT_CREDENTIAL in the list/);
    expect(load('type: secret\nvalue: env:PORT_TEST_CFG_SECRET\ncommand_env: [HOME]')).toThrow(/credentials\.app\.command_env: only a command: value runs a command/);
  });
});

describe('command_concurrency and cache_for', () => {
  it('reads them', () => {
    expect(load('type: secret\nvalue: command:printf x\ncommand_concurrency: 1\ncache_for: 30s')()).toMatchObject({ credentials: { app: { commandConcurrency: 1, cacheFor: 30 } } });
  });

  it('refuses out-of-range values and a cache on an env:/file: value', () => {
    expect(load('type: secret\nvalue: command:printf x\ncommand_concurrency: 0')).toThrow(/credentials\.app\.command_concurrency/);
    expect(load('type: secret\nvalue: command:printf x\ncommand_concurrency: 65')).toThrow(/credentials\.app\.command_concurrency/);
    expect(load('type: secret\nvalue: command:printf x\ncache_for: 2h')).toThrow(/credentials\.app\.cache_for: found 2h, longer than the allowed maximum; expected at most 1h/);
    expect(load('type: secret\nvalue: env:PORT_TEST_CFG_SECRET\ncache_for: 30s')).toThrow(/credentials\.app\.cache_for: only a command: value is cached/);
  });
});
