/**
 * The checkpointer with two Port processes on one SQLite file —
 * here two stores opened on the same path, each with its own Checkpointer — share one
 * checkpoint chain. Neither collides with the other's checkpoints nor logs errors on
 * every tick; each reads the newest checkpoint from the store, and a write that loses
 * the compare-and-set re-reads and moves on.
 */
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Checkpointer } from '../../src/audit/checkpointer.js';
import { DecisionLog } from '../../src/audit/decision-log.js';
import type { AuditError } from '../../src/audit/errors.js';
import { verifyAuditLog } from '../../src/audit/verify.js';
import { SigningKeys } from '../../src/issuer/signing-keys.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { KEY_OPTIONS, sampleRecord, tempDir } from './helpers.js';

async function until(check: () => Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await sleep(5);
  }
}

describe('two checkpointers on one SQLite file', () => {
  let tmp: ReturnType<typeof tempDir>;
  let a: SqliteStore;
  let b: SqliteStore;
  let keysA: SigningKeys;
  let keysB: SigningKeys;
  const errors: AuditError[] = [];

  beforeEach(async () => {
    tmp = tempDir();
    const path = join(tmp.dir, 'port.db');
    a = SqliteStore.open(path);
    keysA = await SigningKeys.open(a, KEY_OPTIONS);
    b = SqliteStore.open(path);
    keysB = await SigningKeys.open(b, KEY_OPTIONS);
    errors.length = 0;
  });
  afterEach(async () => {
    await a.close().catch(() => undefined);
    await b.close().catch(() => undefined);
    tmp.cleanup();
  });

  async function verify() {
    return verifyAuditLog(a, new Map((await a.keys.list()).map((k) => [k.kid, k.publicJwk])));
  }

  it('signing the same head at the same time: one wins, the other re-reads; no error, one unbroken chain', async () => {
    const cpA = new Checkpointer(a, keysA, { every: 1_000_000, intervalSeconds: 0, onError: (e) => errors.push(e) });
    const cpB = new Checkpointer(b, keysB, { every: 1_000_000, intervalSeconds: 0, onError: (e) => errors.push(e) });
    const logA = new DecisionLog(a);
    const logB = new DecisionLog(b);
    for (let round = 0; round < 8; round++) {
      await Promise.all([logA.record([sampleRecord(2 * round + 1)]), logB.record([sampleRecord(2 * round + 2)])]);
      const results = await Promise.allSettled([cpA.checkpointNow(), cpB.checkpointNow()]);
      expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
    }
    expect(errors).toEqual([]);
    const cps = await a.decisions.listCheckpoints();
    // Every head signed once: no duplicate checkpoint for the same entry.
    expect(cps.map((c) => c.seq)).toEqual([2, 4, 6, 8, 10, 12, 14, 16]);
    expect(await verify()).toMatchObject({ ok: true, entries: 16, checkpoints: 8, lastCheckpointSeq: 16 });
  });

  it('count-triggered checkpoints from both writers under concurrent load stay one chain without errors', async () => {
    const cpA = new Checkpointer(a, keysA, { every: 3, intervalSeconds: 0, onError: (e) => errors.push(e) });
    const cpB = new Checkpointer(b, keysB, { every: 3, intervalSeconds: 0, onError: (e) => errors.push(e) });
    const logA = new DecisionLog(a);
    const logB = new DecisionLog(b);
    await Promise.all(Array.from({ length: 60 }, (_, i) => (i % 2 ? logA : logB).record([sampleRecord(i + 1)])));
    await Promise.all([cpA.stop(), cpB.stop()]);
    expect(errors).toEqual([]);
    const r = await verify();
    expect(r).toMatchObject({ ok: true, entries: 60, lastCheckpointSeq: 60 });
    expect((await a.decisions.listCheckpoints()).map((c) => c.num)).toEqual(Array.from({ length: r.checkpoints }, (_, i) => i + 1));
  });

  it('timers on both: the one that is behind does not error on every tick', async () => {
    const cpA = new Checkpointer(a, keysA, { every: 1_000_000, intervalSeconds: 0.02, onError: (e) => errors.push(e) });
    const cpB = new Checkpointer(b, keysB, { every: 1_000_000, intervalSeconds: 0.02, onError: (e) => errors.push(e) });
    cpA.start();
    cpB.start();
    const logA = new DecisionLog(a);
    for (let i = 1; i <= 5; i++) {
      await logA.record([sampleRecord(i)]);
      // Wait until some checkpoint covers it, whichever process wrote it.
      await until(async () => ((await a.decisions.listCheckpoints()).at(-1)?.seq ?? 0) >= i);
    }
    const count = (await a.decisions.listCheckpoints()).length;
    // Several more ticks of each while idle: heartbeats at most, never an error.
    await until(async () => (await a.decisions.listCheckpoints()).length >= count + 3);
    await Promise.all([cpA.stop(), cpB.stop()]);
    expect(errors).toEqual([]);
    expect(await verify()).toMatchObject({ ok: true, entries: 5 });
  });

  it('heartbeats: when both tick on the same interval, one checkpoint is written per interval', async () => {
    let now = Date.UTC(2025, 0, 1);
    const cpA = new Checkpointer(a, keysA, { every: 1_000_000, intervalSeconds: 300, now: () => now, onError: (e) => errors.push(e) });
    const cpB = new Checkpointer(b, keysB, { every: 1_000_000, intervalSeconds: 300, now: () => now, onError: (e) => errors.push(e) });
    for (let i = 0; i < 4; i++) {
      await Promise.all([cpA.tick(), cpB.tick()]);
      now += 300_000;
    }
    const cps = await a.decisions.listCheckpoints();
    expect(cps.map((c) => [c.num, c.seq])).toEqual([
      [1, 0],
      [2, 0],
      [3, 0],
      [4, 0],
    ]);
    expect(errors).toEqual([]);
    expect((await verify()).ok).toBe(true);
  });
});
