import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Harness } from '../helpers/port-harness.js';
import { ADMIN_TOKEN, admin, deployJob, portToken, release, startCredsHarness } from './support.js';

/**
 * A `command:` secret or a rotation hook command sees a minimal environment,
 * not Port's (which holds its admin token, key-encryption key, AWS keys…), plus the
 * names its credential lists in `command_env`. Driven over HTTP against a running Port
 * whose own environment holds the variables the commands try to read.
 */
let h: Harness;
let dir: string;
const HIDDEN = 'port-only-value-5e0a';
const KEK = 'kek-in-ports-env-only-77c1';
/** What `sh -c env` may print besides what Port passes: the shell's own. */
const SHELL_OWN = ['PWD', 'OLDPWD', 'SHLVL', '_'];
const BASE = ['PATH', 'HOME', 'LANG', 'LC_ALL', 'TZ', 'TMPDIR'];

/** A rotation hook that answers, as the new value, what it can see of two variables. */
function hook(name: string): string {
  const path = join(dir, `${name}.sh`);
  writeFileSync(path, `#!/bin/sh\ncat >/dev/null\nprintf 'hook hidden=[%s] cred=[%s] kek=[%s]\\n' "$PORT_TEST_HIDDEN" "$PORT_CREDENTIAL" "$PORT_TEST_ENV_KEK"\n`);
  chmodSync(path, 0o755);
  return path;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'port-command-env-'));
  process.env.PORT_TEST_HIDDEN = HIDDEN;
  process.env.PORT_TEST_ENV_KEK = KEK;
  const show = 'command:printf \'hidden=[%s] cred=[%s] admin=[%s] kek=[%s]\' "$PORT_TEST_HIDDEN" "$PORT_CREDENTIAL" "$PORT_TEST_ADMIN_TOKEN" "$PORT_TEST_ENV_KEK"';
  h = await startCredsHarness({
    issuer: { key_encryption_key: 'env:PORT_TEST_ENV_KEK' },
    credentials: {
      'env-dump': { type: 'secret', value: 'command:env' },
      unlisted: { type: 'secret', value: show },
      listed: { type: 'secret', value: show, command_env: ['PORT_TEST_HIDDEN', 'PORT_TEST_NOT_SET_ANYWHERE'] },
      'hook-unlisted': { type: 'secret', value: 'command:printf initial', rotation: { hook: { command: hook('hook-unlisted') } } },
      'hook-listed': { type: 'secret', value: 'command:printf initial', rotation: { hook: { command: hook('hook-listed'), command_env: ['PORT_TEST_HIDDEN'] } } },
    },
  });
});
afterAll(async () => {
  await h?.close();
  delete process.env.PORT_TEST_HIDDEN;
  delete process.env.PORT_TEST_ENV_KEK;
  rmSync(dir, { recursive: true, force: true });
});

async function valueOf(name: string): Promise<string> {
  const res = await release(h, name, await portToken(h, deployJob(h), name));
  expect(res.status).toBe(200);
  return res.body.value as string;
}

describe('the environment of a command: secret', () => {
  it("holds only the basic variables and PORT_CREDENTIAL, none of Port's secrets", async () => {
    const dump = await valueOf('env-dump');
    const names = dump.split('\n').map((l) => l.slice(0, l.indexOf('=')));
    expect(names).toContain('PORT_CREDENTIAL');
    expect(names).toContain('PATH');
    for (const n of names) expect([...BASE, ...SHELL_OWN, 'PORT_CREDENTIAL']).toContain(n);
    expect(dump).toContain('PORT_CREDENTIAL=env-dump');
    expect(dump).not.toContain(HIDDEN);
    expect(dump).not.toContain(ADMIN_TOKEN);
    expect(dump).not.toContain(KEK);
  });

  it('a variable Port has is empty to the command unless the credential lists it in command_env', async () => {
    expect(await valueOf('unlisted')).toBe('hidden=[] cred=[unlisted] admin=[] kek=[]');
    // Listed: passed on; a listed name Port doesn't have is simply absent. Unlisted stay hidden.
    expect(await valueOf('listed')).toBe(`hidden=[${HIDDEN}] cred=[listed] admin=[] kek=[]`);
  });
});

describe('the environment of a rotation hook command', () => {
  it('is as minimal, with the hook command_env passed on', async () => {
    expect((await admin(h, 'POST', '/v1/admin/credentials/hook-unlisted/rotate')).status).toBe(200);
    expect(await valueOf('hook-unlisted')).toBe('hook hidden=[] cred=[hook-unlisted] kek=[]');
    expect((await admin(h, 'POST', '/v1/admin/credentials/hook-listed/rotate')).status).toBe(200);
    expect(await valueOf('hook-listed')).toBe(`hook hidden=[${HIDDEN}] cred=[hook-listed] kek=[]`);
  });
});
