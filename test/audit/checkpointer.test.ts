import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Checkpointer } from '../../src/audit/checkpointer.js';
import { DecisionLog } from '../../src/audit/decision-log.js';
import type { AuditError } from '../../src/audit/errors.js';
import { verifyAuditLog } from '../../src/audit/verify.js';
import { SigningKeys } from '../../src/issuer/signing-keys.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { buildLog, KEY_OPTIONS, sampleRecord, sampleRecordAt, tempDir } from './helpers.js';

async function storeKeys(store: SqliteStore) {
  return new Map((await store.keys.list()).map((k) => [k.kid, k.publicJwk]));
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
    const log = new DecisionLog(store);
    // Appended one at a time, and each checkpoint allowed to land before the next entry,
    // the count trigger fires exactly at every 5th entry (entries appended while a
    // checkpoint is being signed would legitimately widen the gap, so none are here).
    for (let i = 1; i <= 23; i++) {
      await log.record([sampleRecord(i)]);
      if (i % 5 === 0) await until(async () => ((await store.decisions.listCheckpoints()).at(-1)?.seq ?? 0) >= i);
    }
    await sleep(50);
    // The 3 entries past the last multiple of 5 stay unsigned: fewer than `every`.
    expect((await store.decisions.listCheckpoints()).map((c) => c.seq)).toEqual([5, 10, 15, 20]);
    expect(errors).toEqual([]);
    expect((await verifyAuditLog(store, await storeKeys(store))).ok).toBe(true);
  });

  it('keeps up with concurrent writers sharing a group commit', async () => {
    const cp = new Checkpointer(store, keys, { every: 10, intervalSeconds: 0 });
    const log = new DecisionLog(store);
    await Promise.all(Array.from({ length: 100 }, (_, i) => log.record([sampleRecord(i + 1)])));
    expect((await store.decisions.read(0, 1000)).map((e) => e.seq)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    await until(async () => ((await store.decisions.listCheckpoints()).at(-1)?.seq ?? 0) > 90);
    await cp.stop();
    const r = await verifyAuditLog(store, await storeKeys(store));
    expect(r).toMatchObject({ ok: true, entries: 100, lastCheckpointSeq: 100, unsignedEntries: 0 });
  });

  it('writes one checkpoint covering a large batch', async () => {
    const cp = new Checkpointer(store, keys, { every: 5, intervalSeconds: 0 });
    await new DecisionLog(store).record(Array.from({ length: 12 }, (_, i) => sampleRecord(i + 1)));
    await until(async () => (await store.decisions.listCheckpoints()).length > 0);
    await sleep(20);
    expect((await store.decisions.listCheckpoints()).map((c) => c.seq)).toEqual([12]);
  });

  it('checkpointNow signs the head once, and nothing for an empty log', async () => {
    const cp = new Checkpointer(store, keys, { every: 1000, intervalSeconds: 0 });
    expect(await cp.checkpointNow()).toBeUndefined();
    const log = new DecisionLog(store);
    await log.record([sampleRecord(1), sampleRecord(2)]);
    const last = await store.decisions.last();
    const c = await cp.checkpointNow();
    expect(c).toMatchObject({ seq: 2, hash: last!.hash, kid: keys.signer().kid });
    expect(c!.jws.split('.')).toHaveLength(3);
    expect(await cp.checkpointNow()).toBeUndefined();
  });

  it('signs with an explicit checkpoint type and the canonical payload', async () => {
    const cp = new Checkpointer(store, keys, { every: 1000, intervalSeconds: 0, now: () => Date.UTC(2025, 0, 2) });
    await new DecisionLog(store).record([sampleRecord(1)]);
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
    const log = new DecisionLog(store);
    await log.record([sampleRecord(14)]);
    await sleep(30);
    expect((await store.decisions.listCheckpoints()).map((c) => c.seq)).toEqual([10]);
    await log.record([sampleRecord(15)]);
    await until(async () => (await store.decisions.listCheckpoints()).length === 2);
    expect((await store.decisions.listCheckpoints()).map((c) => c.seq)).toEqual([10, 15]);
  });

  it('start() signs what an earlier run left unsigned', async () => {
    const cp = new Checkpointer(store, keys, { every: 1000, intervalSeconds: 3600 });
    const log = new DecisionLog(store);
    await log.record([sampleRecord(1), sampleRecord(2)]);
    cp.start();
    await until(async () => (await store.decisions.listCheckpoints()).length === 1);
    expect((await store.decisions.listCheckpoints()).map((c) => c.seq)).toEqual([2]);
    await cp.stop();
  });

  it('a tick signs the head once the newest checkpoint is about an interval old: new entries, or a heartbeat', async () => {
    let now = Date.UTC(2025, 0, 1);
    const cp = new Checkpointer(store, keys, { every: 1000, intervalSeconds: 300, now: () => now });
    const log = new DecisionLog(store);
    // An empty, idle log still gets a heartbeat: a verifier can demand a recent checkpoint.
    expect(await cp.tick()).toMatchObject({ num: 1, seq: 0 });
    now += 100_000;
    await log.record([sampleRecordAt(1, now)]);
    expect(await cp.tick()).toBeUndefined(); // the newest checkpoint is 100 s old: entry 1 waits
    now += 170_000; // 270 s: 0.9 of the interval tolerates timer jitter
    expect(await cp.tick()).toMatchObject({ num: 2, seq: 1 });
    now += 270_000;
    expect(await cp.tick()).toMatchObject({ num: 3, seq: 1 }); // nothing new: a heartbeat
    const cps = await store.decisions.listCheckpoints();
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
    const log = new DecisionLog(store);
    await log.record([sampleRecord(1), sampleRecord(2), sampleRecord(3)]);
    await cp.stop();
    expect((await store.decisions.listCheckpoints()).at(-1)?.seq).toBe(3);
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
    const log = new DecisionLog(store);
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

  it('checkpoints written off the timer phase (count trigger, restart) never leave a gap verify rejects', async () => {
    // The real timer, on a simulated clock: bursts trip the count trigger at any phase and
    // a restart starts a new timer off the old one's phase. A verifier running at any
    // moment, with the interval, finds every entry signed in time and a recent checkpoint.
    const start = Date.UTC(2025, 0, 1);
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'Date'], now: start });
    try {
      const opts = { every: 4, intervalSeconds: 300 };
      let cp = new Checkpointer(store, keys, opts);
      let log = new DecisionLog(store);
      cp.start();
      let seq = 0;
      let rng = 7;
      let nextBusy = 0;
      const random = () => (rng = (rng * 48271) % 2147483647) / 2147483647;
      for (let step = 1; step <= 300; step++) {
        await vi.advanceTimersByTimeAsync(step === 150 ? 5_000 : 10_000);
        await cp.settled();
        if (step === 150) {
          await cp.stop(); // a restart, off the old timer's phase
          cp = new Checkpointer(store, keys, opts);
          log = new DecisionLog(store);
          cp.start();
        }
        // Quiet stretches of up to ~8 min, each ended by a burst that trips the count trigger or a single entry.
        const burst = step === nextBusy ? (random() < 0.5 ? 4 : 1) : 0;
        if (step >= nextBusy) nextBusy = step + 1 + Math.floor(random() * 50);
        for (let i = 0; i < burst; i++) await log.record([sampleRecordAt(++seq, Date.now())]);
        // The count trigger settles: fewer than `every` entries left unsigned.
        await until(async () => ((await store.decisions.listCheckpoints()).at(-1)?.seq ?? 0) > seq - 4);
        await cp.settled();
        const r = await verifyAuditLog(store, await storeKeys(store), { checkpointInterval: 300, maxAgeSeconds: 330, now: Date.now });
        expect(r.problems, `at step ${step}`).toEqual([]);
      }
      await cp.stop();
      const times = (await store.decisions.listCheckpoints()).map((c) => Date.parse(c.time));
      expect(Math.max(...times.slice(1).map((t, i) => t - times[i]!))).toBeLessThanOrEqual(300_000);
    } finally {
      vi.useRealTimers();
    }
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
    const log = new DecisionLog(store);
    cp.start();
    for (let i = 1; i <= 10; i++) await log.record([sampleRecord(i)]);
    await until(async () => ((await store.decisions.listCheckpoints()).at(-1)?.seq ?? 0) === 10);
    await cp.stop();
    expect(signs).toBeGreaterThan(5);
    expect(errors.map((e) => e.message)).toEqual(['cannot write an audit checkpoint: the key store is unavailable']);
    expect((await verifyAuditLog(store, await storeKeys(store))).ok).toBe(true);
  });

  it('verifies checkpoints signed before and after a key rotation', async () => {
    const cp = new Checkpointer(store, keys, { every: 1000, intervalSeconds: 0 });
    const log = new DecisionLog(store);
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
    await new DecisionLog(store).record([]);
    expect(await store.decisions.last()).toBeUndefined();
  });

  it('rejects unusable options', () => {
    expect(() => new Checkpointer(store, keys, { every: 0, intervalSeconds: 1 })).toThrow(/positive integer/);
    expect(() => new Checkpointer(store, keys, { every: 1, intervalSeconds: -1 })).toThrow(/0 or more/);
  });
});
