import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DecisionLog } from '../../src/audit/decision-log.js';
import { SecretRotation } from '../../src/broker/credentials/secret-rotation.js';
import type { SecretCredentialConfig } from '../../src/config/config.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import type { SecretVersionStore, Store } from '../../src/store/store.js';
import { eventually } from './support.js';

/**
 * Two Port processes on one database rotate the same secret at once. Both
 * hooks create a value in the backing system; only one is stored. The loser must ask its
 * hook to discard the value it got (naming it by the rotate call's request_id, never by
 * the version number the winner now owns), audited. Two SecretRotation engines, each on
 * its own connection to one SQLite file, stand for the two processes; the hook is a real
 * process that records each request and holds every rotate until the test lets it go.
 */
let dir: string;
const stores: SqliteStore[] = [];
const engines: SecretRotation[] = [];
const errors: string[] = [];

function hookCommand(): string {
  const path = join(dir, 'hook.sh');
  writeFileSync(
    path,
    `#!/bin/sh
req=$(cat)
printf '%s\\n' "$req" >> ${dir}/requests.log
id=$(printf '%s' "$req" | sed 's/.*"request_id":"\\([^"]*\\)".*/\\1/')
case "$req" in
  *'"action":"rotate"'*)
    while [ ! -e ${dir}/go ]; do sleep 0.02; done
    printf 'value-%s\\n' "$id" ;;
  *'"action":"discard"'*) [ -e ${dir}/discard-fails ] && exit 6 ;;
esac
exit 0
`,
  );
  chmodSync(path, 0o755);
  return path;
}

type HookRequest = { action: string; version: number; request_id: string; rotation_id?: string };
const requests = (): HookRequest[] => (existsSync(join(dir, 'requests.log')) ? readFileSync(join(dir, 'requests.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)) : []);

function cred(): SecretCredentialConfig {
  return {
    name: 'db',
    type: 'secret',
    value: { ref: 'command:printf initial', key: 'credentials.db.value', baseDir: dir },
    commandTimeout: 5,
    commandEnv: [],
    commandConcurrency: 4,
    cacheFor: 0,
    rotation: { overlap: 1, timeout: 10, hook: { kind: 'command', command: hookCommand(), commandEnv: [] } },
  };
}

/** One "Port process": its own connection to the shared file. */
function engine(c: SecretCredentialConfig, wrap: (s: Store) => Store = (s) => s): { rotation: SecretRotation; store: SqliteStore } {
  const store = SqliteStore.open(join(dir, 'port.db'));
  stores.push(store);
  const rotation = new SecretRotation({ store: wrap(store), log: new DecisionLog(store), credentials: [c], onError: (_e, m) => errors.push(m), retireRetryAfter: 200 });
  engines.push(rotation);
  return { rotation, store };
}

async function decisions(store: SqliteStore) {
  return (await store.decisions.read(0, 1000)).map((e) => e.record);
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'port-rotation-race-'));
  errors.length = 0;
});
afterEach(async () => {
  writeFileSync(join(dir, 'go'), '');
  for (const e of engines.splice(0)) await e.stop();
  for (const s of stores.splice(0)) await s.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Both engines call the hook for version 1; returns once both rotate calls are in. */
async function raceToVersionOne(c: SecretCredentialConfig) {
  const a = engine(c);
  const b = engine(c);
  await a.rotation.start();
  await b.rotation.start();
  const results = [a.rotation.rotate('db', 'schedule'), b.rotation.rotate('db', 'admin')].map((p) => p.then((v) => ({ ok: true as const, v }), (e: Error) => ({ ok: false as const, e })));
  await eventually(async () => (requests().filter((r) => r.action === 'rotate').length === 2 ? true : undefined));
  writeFileSync(join(dir, 'go'), '');
  const [ra, rb] = await Promise.all(results);
  return { a, b, ra: ra!, rb: rb! };
}

describe('a rotation that loses the compare-and-set', () => {
  it("asks its hook to discard the value it got, by the rotate call's request_id, and audits it", async () => {
    const c = cred();
    const { a, ra, rb } = await raceToVersionOne(c);
    expect([ra.ok, rb.ok].sort()).toEqual([false, true]);
    const lost = (ra.ok ? rb : ra) as { ok: false; e: Error };
    expect(lost.e.message).toMatch(/lost to a concurrent rotation; its new value was not stored/);

    const rotates = requests().filter((r) => r.action === 'rotate');
    expect(rotates.map((r) => r.version)).toEqual([1, 1]);
    const current = (await a.rotation.current(c)).value;
    const winner = rotates.find((r) => current === `value-${r.request_id}`)!;
    const loser = rotates.find((r) => r !== winner)!;
    expect(winner).toBeDefined();

    // The loser's value, and only it, is discarded; version 1 (the winner's) stays current.
    // The discard names no version — the only number it could carry is 1, the
    // winner's live value, which a hook keying values by version would delete.
    const discards = requests().filter((r) => r.action === 'discard');
    expect(discards).toEqual([{ action: 'discard', credential: 'db', rotation_id: loser.request_id, request_id: expect.any(String), timestamp: expect.any(Number) }]);
    expect(discards[0]!.request_id).not.toBe(loser.request_id);
    expect(requests().filter((r) => r.action === 'retire' && r.version === 1)).toEqual([]);
    expect((await a.rotation.status('db')).map((v) => [v.version, v.state])).toEqual([
      [0, 'accepted'],
      [1, 'current'],
    ]);

    const log = (await decisions(a.store)).filter((r) => r.action === 'rotate');
    expect(log.map((r) => [r.decision, r.context.event, r.context.rotation_id])).toEqual(
      expect.arrayContaining([
        ['allow', 'rotate', winner.request_id],
        ['deny', 'rotate', loser.request_id],
        ['allow', 'discard', loser.request_id],
      ]),
    );
    expect(JSON.stringify(log)).not.toContain('value-');

    // The winner's version is retired in its turn, named by its own rotate call.
    writeFileSync(join(dir, 'go'), '');
    await a.rotation.rotate('db', 'admin');
    await eventually(async () => (requests().some((r) => r.action === 'retire' && r.version === 1) ? true : undefined));
    expect(requests().find((r) => r.action === 'retire' && r.version === 1)).toMatchObject({ rotation_id: winner.request_id });
  });

  it('audits a discard the hook refuses, and logs it for an operator to clean up', async () => {
    writeFileSync(join(dir, 'discard-fails'), '');
    const c = cred();
    const { a } = await raceToVersionOne(c);
    const current = (await a.rotation.current(c)).value;
    const loser = requests().find((r) => r.action === 'rotate' && current !== `value-${r.request_id}`)!;
    const denied = (await decisions(a.store)).find((r) => r.context.event === 'discard')!;
    expect(denied).toMatchObject({ action: 'rotate', decision: 'deny', context: { event: 'discard', attempted_version: 1, rotation_id: loser.request_id } });
    expect(denied.context).not.toHaveProperty('version');
    expect(denied.reason).toMatch(/^Discarding the unstored value of rotation [0-9a-f-]{36} of "db" failed: the rotation hook command exited with status 6; it may still be live: delete it by hand\.$/);
    expect(errors.some((m) => m.startsWith(`Discarding the unstored value of rotation ${loser.request_id}`))).toBe(true);
  });
});

describe('a rotation whose store write throws', () => {
  it('discards the value when the version was not stored', async () => {
    const c = cred();
    writeFileSync(join(dir, 'go'), '');
    const { rotation, store } = engine(c, (s) =>
      withSecretVersionAdd(s, () => Promise.reject(new Error('disk I/O error'))),
    );
    await rotation.start();
    await expect(rotation.rotate('db', 'admin')).rejects.toThrow('Rotation of "db" could not store its new value; the current value stays.');
    const [rotate] = requests().filter((r) => r.action === 'rotate');
    expect(requests().filter((r) => r.action === 'discard')).toEqual([{ action: 'discard', credential: 'db', rotation_id: rotate!.request_id, request_id: expect.any(String), timestamp: expect.any(Number) }]);
    expect((await rotation.current(c)).value).toBe('initial');
    expect(errors).toContain('storing version 1 of "db" failed');
    expect((await decisions(store)).some((r) => r.context.event === 'discard' && r.decision === 'allow')).toBe(true);
  });

  it('keeps the value when the write landed and only its answer was lost', async () => {
    const c = cred();
    writeFileSync(join(dir, 'go'), '');
    const { rotation } = engine(c, (s) =>
      withSecretVersionAdd(s, async (...args) => {
        await s.secretVersions.add(...args);
        throw new Error('connection reset after commit');
      }),
    );
    await rotation.start();
    const result = await rotation.rotate('db', 'admin');
    expect(result.version).toBe(1);
    const [rotate] = requests().filter((r) => r.action === 'rotate');
    expect((await rotation.current(c)).value).toBe(`value-${rotate!.request_id}`);
    expect(requests().filter((r) => r.action === 'discard')).toEqual([]);
  });
});

/** The store, with the secret versions' `add` replaced (a fault at the storage boundary). */
function withSecretVersionAdd(s: Store, add: SecretVersionStore['add']): Store {
  const secretVersions: SecretVersionStore = {
    list: (credential) => s.secretVersions.list(credential),
    init: (record) => s.secretVersions.init(record),
    markRetired: (credential, version, at) => s.secretVersions.markRetired(credential, version, at),
    add,
  };
  return new Proxy(s, { get: (t, k) => (k === 'secretVersions' ? secretVersions : Reflect.get(t, k, t).bind?.(t) ?? Reflect.get(t, k, t)) });
}
