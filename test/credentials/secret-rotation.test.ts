import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DecisionLog } from '../../src/audit/decision-log.js';
import { SecretRotation } from '../../src/broker/credentials/secret-rotation.js';
import type { SecretCredentialConfig } from '../../src/config/config.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { eventually } from './support.js';

/**
 * The rotation engine on a real SQLite file and real hook processes: what the HTTP tests
 * can't reach quickly (retire retries, a restart in the middle of a schedule).
 */
let dir: string;
let store: SqliteStore;
let rotation: SecretRotation | undefined;
const errors: string[] = [];

function hookCommand(): string {
  const path = join(dir, 'hook.sh');
  writeFileSync(
    path,
    `#!/bin/sh
req=$(cat)
printf '%s\\n' "$req" >> ${dir}/requests.log
case "$req" in
  *'"action":"retire"'*) [ -e ${dir}/retire-fails ] && exit 9 ;;
  *) sleep 0.3; printf 'value-%s\\n' "$(printf '%s' "$req" | sed 's/.*"version":\\([0-9]*\\).*/\\1/')" ;;
esac
exit 0
`,
  );
  chmodSync(path, 0o755);
  return path;
}

const requests = () => (existsSync(join(dir, 'requests.log')) ? readFileSync(join(dir, 'requests.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)) : []);

function cred(rotationConfig: Partial<NonNullable<SecretCredentialConfig['rotation']>> = {}): SecretCredentialConfig {
  return {
    name: 'db',
    type: 'secret',
    value: { ref: 'command:printf initial', key: 'credentials.db.value', baseDir: dir },
    commandTimeout: 5,
    commandEnv: [],
    commandConcurrency: 4,
    cacheFor: 0,
    rotation: { overlap: 1, timeout: 5, hook: { kind: 'command', command: hookCommand(), commandEnv: [] }, ...rotationConfig },
  };
}

function open(c: SecretCredentialConfig): SecretRotation {
  rotation = new SecretRotation({ store, log: new DecisionLog(store), credentials: [c], onError: (_e, m) => errors.push(m), retireRetryAfter: 200 });
  return rotation;
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'port-secret-rotation-'));
  store = SqliteStore.open(join(dir, 'port.db'));
  errors.length = 0;
});
afterEach(async () => {
  await rotation?.stop();
  rotation = undefined;
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('SecretRotation', () => {
  it('runs one rotation at a time: concurrent requests share it', async () => {
    const c = cred();
    const r = open(c);
    await r.start();
    const [a, b] = await Promise.all([r.rotate('db', 'admin'), r.rotate('db', 'admin')]);
    expect(a).toBe(b);
    expect(requests().filter((q) => q.action === 'rotate')).toHaveLength(1);
    expect((await r.current(c)).value).toBe('value-1');
  });

  it('retries a failed retire call, then retires; the failure is logged, not fatal', async () => {
    const c = cred();
    const r = open(c);
    await r.start();
    writeFileSync(join(dir, 'retire-fails'), '');
    await r.rotate('db', 'admin');
    await eventually(async () => (requests().filter((q) => q.action === 'retire').length >= 2 ? true : undefined));
    expect((await r.status('db'))[0]!.state).toBe('retiring');
    expect(errors.some((m) => m.includes('Retiring version 0 of "db" failed: the rotation hook command exited with status 9'))).toBe(true);
    rmSync(join(dir, 'retire-fails'));
    await eventually(async () => ((await r.status('db'))[0]!.state === 'retired' ? true : undefined));
    // The version is marked retired before its decision is logged: wait for the entry too.
    await eventually(async () => ((await store.decisions.last())?.record.context.event === 'retire' && (await store.decisions.last())?.record.decision === 'allow' ? true : undefined));
    const log = (await store.decisions.read(0, 100)).map((e) => e.record);
    expect(log.filter((x) => x.context.event === 'retire').map((x) => x.decision)).toContain('deny');
    expect(log.at(-1)).toMatchObject({ action: 'rotate', decision: 'allow', context: { event: 'retire', version: 0 } });
  });

  it('bases the schedule on the stored last rotation, across a restart', async () => {
    const c = cred({ every: 3600 });
    let r = open(c);
    await r.start();
    await r.rotate('db', 'admin');
    await r.stop();
    // A restart well within `every`: no rotation is due, so none happens.
    r = open(c);
    await r.start();
    await new Promise((res) => setTimeout(res, 300));
    expect(requests().filter((q) => q.action === 'rotate')).toHaveLength(1);
    await r.stop();
    // The stored rotation is older than `every` (as after a long downtime): due at start.
    const short = cred({ every: 1 });
    await new Promise((res) => setTimeout(res, 1100));
    r = open(short);
    await r.start();
    await eventually(async () => ((await r.current(short)).version >= 2 ? true : undefined));
    // The audit entry follows the stored version: wait for it too.
    const log = await eventually(async () => {
      const rotations = (await store.decisions.read(0, 100)).map((e) => e.record).filter((x) => x.context.event === 'rotate');
      return rotations.length >= 2 ? rotations : undefined;
    });
    expect(log.map((x) => x.context.trigger).slice(0, 2)).toEqual(['admin', 'schedule']);
  });
});
