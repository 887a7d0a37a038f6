import { join } from 'node:path';
import { generateKeyPair } from 'jose';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { signCheckpoint } from '../../src/audit/checkpoint-jws.js';
import type { Checkpoint } from '../../src/store/records/decisions.js';
import { verifyAuditLog, type AuditVerifyReport } from '../../src/audit/verify.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { buildLog, raw, readRow, rehashFrom, sampleRecord, tempDir, updateRecord } from './helpers.js';

/** Opens the file as `port audit verify` would and verifies it against the keys stored in it. */
async function verifyFile(dbPath: string): Promise<AuditVerifyReport> {
  const store = SqliteStore.open(dbPath);
  try {
    const keys = new Map((await store.keys.list()).map((k) => [k.kid, k.publicJwk]));
    return await verifyAuditLog(store, keys);
  } finally {
    await store.close();
  }
}

// 55 entries; checkpoints at 10, 20, 30, 40, 50; entries 51–55 only hash-chained.
const N = 55;
const EVERY = 10;

describe('verifyAuditLog on a real SQLite file', () => {
  let tmp: ReturnType<typeof tempDir>;
  let dbPath: string;

  beforeEach(async () => {
    tmp = tempDir();
    dbPath = join(tmp.dir, 'port.db');
    const built = await buildLog(dbPath, N, EVERY);
    expect(built.checkpoints).toEqual([10, 20, 30, 40, 50]);
  });
  afterEach(() => tmp.cleanup());

  it('verifies an untouched log and reports the unsigned tail', async () => {
    const r = await verifyFile(dbPath);
    expect(r).toMatchObject({
      ok: true,
      entries: 55,
      checkpoints: 5,
      validCheckpoints: 5,
      lastSeq: 55,
      lastCheckpointSeq: 50,
      unsignedEntries: 5,
      complete: true,
      problems: [],
      problemCount: 0,
    });
    expect(r.firstBad).toBeUndefined();
  });

  it('names an entry whose record was changed', async () => {
    const db = raw(dbPath);
    updateRecord(db, 42, (r) => void (r.decision = r.decision === 'allow' ? 'deny' : 'allow'));
    db.close();
    const r = await verifyFile(dbPath);
    expect(r.ok).toBe(false);
    expect(r.firstBad).toEqual({ seq: 42, problem: 'changed', message: 'entry 42: changed (hash does not match its contents)' });
    expect(r.problemCount).toBe(1);
  });

  it('names an entry whose record was changed and its own hash recomputed', async () => {
    const db = raw(dbPath);
    updateRecord(db, 42, (r) => void (r.reason = 'nothing to see here'));
    const row = readRow(db, 42);
    const { entryHash } = await import('../../src/store/hash-chain.js');
    db.prepare('UPDATE decisions SET hash = ? WHERE seq = 42').run(entryHash(42, row.prev_hash, JSON.parse(row.record)));
    db.close();
    const r = await verifyFile(dbPath);
    expect(r.firstBad?.seq).toBe(42);
    expect(r.firstBad?.problem).toBe('changed');
    expect(r.firstBad?.message).toMatch(/^entry 42: changed \(its hash was recomputed/);
  });

  it('catches a consistently re-hashed chain at the next checkpoint', async () => {
    const db = raw(dbPath);
    updateRecord(db, 42, (r) => void (r.decision = 'allow'));
    rehashFrom(db, 42);
    db.close();
    const r = await verifyFile(dbPath);
    expect(r.ok).toBe(false);
    // The chain itself is consistent again; only the signed head at 50 gives it away.
    expect(r.firstBad).toMatchObject({ seq: 50, problem: 'checkpoint_mismatch' });
    expect(r.firstBad?.message).toContain('entries 41–50 were rewritten');
    expect(r.lastCheckpointSeq).toBe(40);
    expect(r.problemCount).toBe(1);
  });

  it('catches a re-hashed chain even when the checkpoint rows are edited to match', async () => {
    const db = raw(dbPath);
    updateRecord(db, 42, (r) => void (r.decision = 'allow'));
    rehashFrom(db, 42);
    db.prepare('UPDATE checkpoints SET hash = (SELECT hash FROM decisions WHERE decisions.seq = checkpoints.seq)').run();
    db.close();
    const r = await verifyFile(dbPath);
    expect(r.firstBad).toMatchObject({ seq: 50, problem: 'checkpoint_mismatch' });
    expect(r.firstBad?.message).toContain('differ from what was signed');
  });

  it('names the first entry of a gap when an entry is deleted', async () => {
    const db = raw(dbPath);
    db.prepare('DELETE FROM decisions WHERE seq = 42').run();
    db.close();
    const r = await verifyFile(dbPath);
    expect(r.firstBad).toEqual({ seq: 42, problem: 'removed', message: 'entry 42: removed (entry 42 is missing)' });
    expect(r.problemCount).toBe(1);
  });

  it('names a deleted run of entries by its first seq', async () => {
    const db = raw(dbPath);
    db.prepare('DELETE FROM decisions WHERE seq BETWEEN 12 AND 14').run();
    db.close();
    const r = await verifyFile(dbPath);
    expect(r.firstBad).toEqual({ seq: 12, problem: 'removed', message: 'entry 12: removed (entries 12–14 are missing)' });
  });

  it('recognises two entries whose records were swapped', async () => {
    const db = raw(dbPath);
    const a = readRow(db, 42);
    const b = readRow(db, 45);
    db.prepare('UPDATE decisions SET record = ? WHERE seq = ?').run(b.record, 42);
    db.prepare('UPDATE decisions SET record = ? WHERE seq = ?').run(a.record, 45);
    db.close();
    const r = await verifyFile(dbPath);
    expect(r.firstBad).toEqual({ seq: 42, problem: 'reordered', message: 'entry 42: reordered (its contents are now at entry 45)' });
    expect(r.problems.map((p) => [p.seq, p.problem])).toEqual([
      [42, 'reordered'],
      [45, 'reordered'],
    ]);
  });

  it('recognises two whole rows that traded places', async () => {
    const db = raw(dbPath);
    const a = readRow(db, 42);
    const b = readRow(db, 43);
    const put = db.prepare('UPDATE decisions SET record = ?, prev_hash = ?, hash = ? WHERE seq = ?');
    put.run(b.record, b.prev_hash, b.hash, 42);
    put.run(a.record, a.prev_hash, a.hash, 43);
    db.close();
    const r = await verifyFile(dbPath);
    expect(r.firstBad).toMatchObject({ seq: 42, problem: 'reordered' });
    expect(r.problems.every((p) => p.problem === 'reordered')).toBe(true);
  });

  it('detects entries deleted from the end when a checkpoint covers them', async () => {
    const db = raw(dbPath);
    db.prepare('DELETE FROM decisions WHERE seq >= 48').run();
    db.close();
    const r = await verifyFile(dbPath);
    expect(r.firstBad).toEqual({
      seq: 48,
      problem: 'truncated',
      message: 'entry 48: removed (a signed checkpoint covers entries up to 50, but the log ends at 47)',
    });
  });

  it('cannot detect entries deleted after the last checkpoint (documented limit)', async () => {
    // Entries after the last checkpoint are only hash-chained: dropping the tail leaves a
    // valid, shorter chain. The report says how many entries are exposed this way; the
    // checkpoint interval bounds the window.
    const db = raw(dbPath);
    db.prepare('DELETE FROM decisions WHERE seq > 50').run();
    db.close();
    const r = await verifyFile(dbPath);
    expect(r).toMatchObject({ ok: true, lastSeq: 50, lastCheckpointSeq: 50, unsignedEntries: 0 });
  });

  it('cannot detect a rewrite when the checkpoints after it are deleted too, but warns (documented limit)', async () => {
    const db = raw(dbPath);
    updateRecord(db, 42, (r) => void (r.decision = 'allow'));
    rehashFrom(db, 42);
    db.prepare('DELETE FROM checkpoints WHERE seq > 20').run();
    db.close();
    const store = SqliteStore.open(dbPath);
    const keys = new Map((await store.keys.list()).map((k) => [k.kid, k.publicJwk]));
    const quiet = await verifyAuditLog(store, keys, { checkpointEvery: EVERY });
    await store.close();
    expect(quiet).toMatchObject({ ok: true, lastCheckpointSeq: 20, unsignedEntries: 35 });
    expect(quiet.warnings).toEqual([
      'entries 21–55 (35) follow the last checkpoint, though one is written every 10: checkpoints may have been deleted, or checkpointing is failing',
    ]);
  });

  it('has no warnings for a log checkpointed at its configured cadence', async () => {
    const store = SqliteStore.open(dbPath);
    const keys = new Map((await store.keys.list()).map((k) => [k.kid, k.publicJwk]));
    const r = await verifyAuditLog(store, keys, { checkpointEvery: EVERY });
    await store.close();
    expect(r.warnings).toEqual([]);
  });

  it('rejects a checkpoint whose signature was forged under a real kid', async () => {
    const db = raw(dbPath);
    const cp = db.prepare('SELECT * FROM checkpoints WHERE seq = 30').get() as Checkpoint;
    const forger = await generateKeyPair('ES256');
    const forged = await signCheckpoint({ seq: cp.seq, hash: cp.hash }, { kid: cp.kid, alg: 'ES256', key: forger.privateKey }, cp.time, { num: cp.num, prev: cp.prev! });
    db.prepare('UPDATE checkpoints SET jws = ? WHERE seq = 30').run(forged.jws);
    db.close();
    const r = await verifyFile(dbPath);
    expect(r.firstBad).toMatchObject({ seq: 30, problem: 'bad_signature' });
    expect(r.firstBad?.message).toMatch(/^entry 30: bad signature \(the checkpoint at this entry has a signature that does not verify under key /);
    expect(r.lastCheckpointSeq).toBe(50);
  });

  it('rejects a checkpoint whose signature bytes were altered', async () => {
    const db = raw(dbPath);
    const { jws } = db.prepare('SELECT jws FROM checkpoints WHERE seq = 20').get() as { jws: string };
    const flipped = jws.slice(0, -2) + (jws.at(-2) === 'A' ? 'B' : 'A') + jws.at(-1);
    db.prepare('UPDATE checkpoints SET jws = ? WHERE seq = 20').run(flipped);
    db.close();
    const r = await verifyFile(dbPath);
    expect(r.firstBad).toMatchObject({ seq: 20, problem: 'bad_signature' });
  });

  it('rejects a checkpoint signed with a key Port never had', async () => {
    const db = raw(dbPath);
    const cp = db.prepare('SELECT * FROM checkpoints WHERE seq = 20').get() as Checkpoint;
    const attacker = await generateKeyPair('ES256');
    const forged = await signCheckpoint({ seq: cp.seq, hash: cp.hash }, { kid: 'attacker-key', alg: 'ES256', key: attacker.privateKey }, cp.time, { num: cp.num, prev: cp.prev! });
    db.prepare('UPDATE checkpoints SET kid = ?, jws = ? WHERE seq = 20').run(forged.kid, forged.jws);
    db.close();
    const r = await verifyFile(dbPath);
    expect(r.firstBad).toEqual({
      seq: 20,
      checkpoint: 2,
      problem: 'unknown_key',
      message: "entry 20: unknown key (the checkpoint at this entry was signed with key attacker-key, which is not one of Port's signing keys)",
    });
  });

  it('stops at a record that is not JSON and names it', async () => {
    const db = raw(dbPath);
    db.prepare("UPDATE decisions SET record = '{not json' WHERE seq = 42").run();
    db.close();
    const r = await verifyFile(dbPath);
    expect(r.firstBad).toMatchObject({ seq: 42, problem: 'unreadable' });
    expect(r.complete).toBe(false);
    expect(r.lastSeq).toBe(41);
    expect(r.ok).toBe(false);
  });

  it('reports the earliest of several problems first, and all of them', async () => {
    const db = raw(dbPath);
    updateRecord(db, 33, (r) => void (r.principal = 'Port::Job::"someone-else"'));
    db.prepare('DELETE FROM decisions WHERE seq = 17').run();
    db.close();
    const r = await verifyFile(dbPath);
    expect(r.problems.map((p) => [p.seq, p.problem])).toEqual([
      [17, 'removed'],
      [33, 'changed'],
    ]);
    expect(r.firstBad?.seq).toBe(17);
  });
});

describe('verifyAuditLog edge cases', () => {
  it('keeps one chain when two store connections append to the same file', async () => {
    // Regression: SqliteStore cached the chain head, so after another connection appended,
    // every later append collided on seq.
    const tmp = tempDir();
    try {
      const dbPath = join(tmp.dir, 'port.db');
      const a = SqliteStore.open(dbPath);
      await a.decisions.append([sampleRecord(1)]);
      const b = SqliteStore.open(dbPath);
      await b.decisions.append([sampleRecord(2)]);
      await a.decisions.append([sampleRecord(3)]);
      await b.decisions.append([sampleRecord(4)]);
      const r = await verifyAuditLog(a, new Map());
      await Promise.all([a.close(), b.close()]);
      expect(r).toMatchObject({ ok: true, entries: 4, lastSeq: 4 });
    } finally {
      tmp.cleanup();
    }
  });


  it('verifies an empty log', async () => {
    const tmp = tempDir();
    try {
      const store = SqliteStore.open(join(tmp.dir, 'port.db'));
      const r = await verifyAuditLog(store, new Map());
      await store.close();
      expect(r).toMatchObject({ ok: true, entries: 0, checkpoints: 0, lastSeq: 0, lastCheckpointSeq: 0, unsignedEntries: 0 });
    } finally {
      tmp.cleanup();
    }
  });

  it('reads in pages smaller than the log', async () => {
    const tmp = tempDir();
    try {
      const dbPath = join(tmp.dir, 'port.db');
      await buildLog(dbPath, 25, 10);
      const db = raw(dbPath);
      updateRecord(db, 21, (r) => void (r.reason = 'edited'));
      db.close();
      const store = SqliteStore.open(dbPath);
      const keys = new Map((await store.keys.list()).map((k) => [k.kid, k.publicJwk]));
      const r = await verifyAuditLog(store, keys, { pageSize: 4 });
      await store.close();
      expect(r).toMatchObject({ entries: 25, lastSeq: 25, firstBad: { seq: 21, problem: 'changed' } });
    } finally {
      tmp.cleanup();
    }
  });
});
