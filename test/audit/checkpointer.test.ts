import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Checkpointer } from '../../src/audit/checkpointer.js';
import { DecisionLog } from '../../src/audit/decision-log.js';
import type { AuditError } from '../../src/audit/errors.js';
import { verifyAuditLog } from '../../src/audit/verify.js';
import { SigningKeys } from '../../src/issuer/signing-keys.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { buildLog, KEY_OPTIONS, sampleRecord, tempDir } from './helpers.js';

async function storeKeys(store: SqliteStore) {
  return new Map((await store.listSigningKeys()).map((k) => [k.kid, k.publicJwk]));
}

async function until(check: () => Promise<boolean>, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await sleep(5);
  }
}

describe('Checkpointer and DecisionLog', () => {
  let tmp: ReturnType<typeof tempDir>;
  let dbPath: string;
  let store: SqliteStore;
  let keys: SigningKeys;

  beforeEach(async () => {
    tmp = tempDir();
    dbPath = join(tmp.dir, 'port.db');
    store = SqliteStore.open(dbPath);
    keys = await SigningKeys.open(store, KEY_OPTIONS);
  });
  afterEach(async () => {
    await store.close().catch(() => undefined);
    tmp.cleanup();
  });

  it('signs after every N entries appended one at a time', async () => {
    const errors: AuditError[] = [];
    const cp = new Checkpointer(store, keys, { every: 5, intervalSeconds: 0, onError: (e) => errors.push(e) });
    const log = new DecisionLog(store, cp);
    for (let i = 1; i <= 23; i++) await log.record([sampleRecord(i)]);
    // Fewer than `every` entries stay unsigned once the background writes settle.
    await until(async () => ((await store.listCheckpoints()).at(-1)?.seq ?? 0) >= 19);
    const cps = await store.listCheckpoints();
    expect(cps.length).toBeGreaterThanOrEqual(4);
    for (const [i, c] of cps.entries()) expect(c.seq - (cps[i - 1]?.seq ?? 0)).toBeLessThanOrEqual(5 + 1);
    expect(errors).toEqual([]);
    expect((await verifyAuditLog(store, await storeKeys(store))).ok).toBe(true);
  });

  it('keeps up with concurrent writers sharing a group commit', async () => {
    const cp = new Checkpointer(store, keys, { every: 10, intervalSeconds: 0 });
    const log = new DecisionLog(store, cp);
    const entries = (await Promise.all(Array.from({ length: 100 }, (_, i) => log.record([sampleRecord(i + 1)])))).flat();
    expect(entries.map((e) => e.seq).sort((a, b) => a - b)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    await until(async () => ((await store.listCheckpoints()).at(-1)?.seq ?? 0) > 90);
    await cp.stop();
    const r = await verifyAuditLog(store, await storeKeys(store));
    expect(r).toMatchObject({ ok: true, entries: 100, lastCheckpointSeq: 100, unsignedEntries: 0 });
  });

  it('writes one checkpoint covering a large batch', async () => {
    const cp = new Checkpointer(store, keys, { every: 5, intervalSeconds: 0 });
    await new DecisionLog(store, cp).record(Array.from({ length: 12 }, (_, i) => sampleRecord(i + 1)));
    await until(async () => (await store.listCheckpoints()).length > 0);
    await sleep(20);
    expect((await store.listCheckpoints()).map((c) => c.seq)).toEqual([12]);
  });

  it('checkpointNow signs the head once, and nothing for an empty log', async () => {
    const cp = new Checkpointer(store, keys, { every: 1000, intervalSeconds: 0 });
    expect(await cp.checkpointNow()).toBeUndefined();
    const log = new DecisionLog(store, cp);
    const [, last] = await log.record([sampleRecord(1), sampleRecord(2)]);
    const c = await cp.checkpointNow();
    expect(c).toMatchObject({ seq: 2, hash: last!.hash, kid: keys.signer().kid });
    expect(c!.jws.split('.')).toHaveLength(3);
    expect(await cp.checkpointNow()).toBeUndefined();
  });

  it('signs with an explicit checkpoint type and the canonical payload', async () => {
    const cp = new Checkpointer(store, keys, { every: 1000, intervalSeconds: 0, now: () => Date.UTC(2025, 0, 2) });
    await new DecisionLog(store, cp).record([sampleRecord(1)]);
    const c = (await cp.checkpointNow())!;
    const [header, payload] = c.jws.split('.').slice(0, 2).map((p) => JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as Record<string, unknown>);
    expect(header).toEqual({ alg: 'ES256', kid: c.kid, typ: 'port-audit-checkpoint+jwt' });
    // Chained: its own number, and the link to the checkpoint before (none: 64 zeros).
    expect(payload).toEqual({ num: 1, hash: c.hash, seq: 1, time: '2025-01-02T00:00:00.000Z', prev: '0'.repeat(64) });
  });

  it('counts from the last stored checkpoint after a restart', async () => {
    await store.close();
    await buildLog(dbPath, 13, 10); // checkpoint at 10; 11–13 unsigned
    store = SqliteStore.open(dbPath);
    keys = await SigningKeys.open(store, KEY_OPTIONS);
    const cp = new Checkpointer(store, keys, { every: 5, intervalSeconds: 0 });
    const log = new DecisionLog(store, cp);
    await log.record([sampleRecord(14)]);
    await sleep(30);
    expect((await store.listCheckpoints()).map((c) => c.seq)).toEqual([10]);
    await log.record([sampleRecord(15)]);
    await until(async () => (await store.listCheckpoints()).length === 2);
    expect((await store.listCheckpoints()).map((c) => c.seq)).toEqual([10, 15]);
  });

  it('start() signs what an earlier run left unsigned', async () => {
    const cp = new Checkpointer(store, keys, { every: 1000, intervalSeconds: 3600 });
    const log = new DecisionLog(store, cp);
    await log.record([sampleRecord(1), sampleRecord(2)]);
    cp.start();
    await until(async () => (await store.listCheckpoints()).length === 1);
    expect((await store.listCheckpoints()).map((c) => c.seq)).toEqual([2]);
    await cp.stop();
  });

  it('each tick signs new entries, or writes a heartbeat once the newest checkpoint is an interval old', async () => {
    let now = Date.UTC(2025, 0, 1);
    const cp = new Checkpointer(store, keys, { every: 1000, intervalSeconds: 300, now: () => now });
    const log = new DecisionLog(store, cp);
    // An empty, idle log still gets a heartbeat: a verifier can demand a recent checkpoint.
    expect(await cp.tick()).toMatchObject({ num: 1, seq: 0 });
    now += 100_000;
    expect(await cp.tick()).toBeUndefined(); // nothing new, last one 100 s old
    await log.record([sampleRecord(1)]);
    expect(await cp.tick()).toMatchObject({ num: 2, seq: 1 }); // new entries are signed at once
    now += 299_000; // 0.9 of the interval tolerates timer jitter
    expect(await cp.tick()).toMatchObject({ num: 3, seq: 1 });
    const cps = await store.listCheckpoints();
    expect(cps.map((c) => [c.num, c.seq])).toEqual([
      [1, 0],
      [2, 1],
      [3, 1],
    ]);
    const r = await verifyAuditLog(store, await storeKeys(store), { checkpointInterval: 300, now: () => now, maxAgeSeconds: 300 });
    expect(r).toMatchObject({ ok: true, checkpoints: 3, lastCheckpointNum: 3 });
  });

  it('stop() writes a final checkpoint', async () => {
    const cp = new Checkpointer(store, keys, { every: 1000, intervalSeconds: 3600 });
    cp.start();
    const log = new DecisionLog(store, cp);
    await log.record([sampleRecord(1), sampleRecord(2), sampleRecord(3)]);
    await cp.stop();
    expect((await store.listCheckpoints()).at(-1)?.seq).toBe(3);
  });

  it('reports a failing background write once and retries on the next trigger, not on every append', async () => {
    const errors: AuditError[] = [];
    let signs = 0;
    const broken = {
      signer: () => {
        signs++;
        throw new Error('no active signing key');
      },
    } as unknown as SigningKeys;
    const cp = new Checkpointer(store, broken, { every: 2, intervalSeconds: 0, onError: (e) => errors.push(e) });
    const log = new DecisionLog(store, cp);
    for (let i = 1; i <= 3; i++) {
      await log.record([sampleRecord(i)]);
      await sleep(10);
    }
    expect(signs).toBe(1); // failed at 2; without a timer, waits until 4 before retrying
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ code: 'audit_checkpoint_failed' });
    expect(errors[0]!.message).toContain('no active signing key');
    await log.record([sampleRecord(4)]);
    await until(async () => signs === 2);
    await sleep(10);
    expect(errors).toHaveLength(1); // the same failure again is not reported again
    await expect(cp.stop()).rejects.toMatchObject({ code: 'audit_checkpoint_failed' });
  });

  it('a write failing on every tick is reported once, retried each tick, and recovers', async () => {
    const errors: AuditError[] = [];
    let signs = 0;
    const flaky = {
      signer: () => {
        if (++signs <= 5) throw new Error('the key store is unavailable');
        return keys.signer();
      },
    } as unknown as SigningKeys;
    const cp = new Checkpointer(store, flaky, { every: 1, intervalSeconds: 0.02, onError: (e) => errors.push(e) });
    const log = new DecisionLog(store, cp);
    cp.start();
    for (let i = 1; i <= 10; i++) await log.record([sampleRecord(i)]);
    await until(async () => ((await store.listCheckpoints()).at(-1)?.seq ?? 0) === 10);
    await cp.stop();
    expect(signs).toBeGreaterThan(5);
    expect(errors.map((e) => e.message)).toEqual(['cannot write an audit checkpoint: the key store is unavailable']);
    expect((await verifyAuditLog(store, await storeKeys(store))).ok).toBe(true);
  });

  it('verifies checkpoints signed before and after a key rotation', async () => {
    const cp = new Checkpointer(store, keys, { every: 1000, intervalSeconds: 0 });
    const log = new DecisionLog(store, cp);
    await log.record(Array.from({ length: 10 }, (_, i) => sampleRecord(i + 1)));
    const first = (await cp.checkpointNow())!;
    // A day and a bit later the old key has retired (and left the JWKS), a new one signs.
    const later = Date.now() + (KEY_OPTIONS.rotation + KEY_OPTIONS.overlap + 60) * 1000;
    expect(await keys.rotateIfDue(later)).toBe(true);
    await log.record(Array.from({ length: 10 }, (_, i) => sampleRecord(i + 11)));
    const second = (await cp.checkpointNow())!;
    expect(second.kid).not.toBe(first.kid);
    expect(keys.jwks().keys.map((k) => k.kid)).not.toContain(first.kid);
    const r = await verifyAuditLog(store, keys.allPublicKeys());
    expect(r).toMatchObject({ ok: true, checkpoints: 2, validCheckpoints: 2, lastCheckpointSeq: 20 });
    // Verifying against only the currently published keys would fail the old checkpoint.
    const published = new Map(keys.jwks().keys.map((k) => [k.kid!, k]));
    expect((await verifyAuditLog(store, published)).firstBad).toMatchObject({ seq: 10, problem: 'unknown_key' });
  });

  it('DecisionLog.record of nothing appends nothing', async () => {
    expect(await new DecisionLog(store).record([])).toEqual([]);
    expect(await store.lastDecision()).toBeUndefined();
  });

  it('rejects unusable options', () => {
    expect(() => new Checkpointer(store, keys, { every: 0, intervalSeconds: 1 })).toThrow(/positive integer/);
    expect(() => new Checkpointer(store, keys, { every: 1, intervalSeconds: -1 })).toThrow(/0 or more/);
  });
});
