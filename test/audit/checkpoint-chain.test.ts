/**
 * Checkpoints written by Port versions before the chain (no `prev`, payload
 * `{seq, hash, time}`) still verify as the first part of a log that chained ones
 * continue; an unchained checkpoint after chained ones, or a chain that does not link
 * to the last legacy checkpoint, does not.
 */
import { join } from 'node:path';
import { CompactSign } from 'jose';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { canonicalJson } from '../../src/store/canonical-json.js';
import { CHECKPOINT_TYP, checkpointDigest } from '../../src/audit/checkpoint-jws.js';
import { Checkpointer } from '../../src/audit/checkpointer.js';
import { DecisionLog } from '../../src/audit/decision-log.js';
import { verifyAuditLog } from '../../src/audit/verify.js';
import { SigningKeys } from '../../src/issuer/signing-keys.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { KEY_OPTIONS, raw, sampleRecord, tempDir } from './helpers.js';

describe('legacy checkpoints and the checkpoint chain', () => {
  let tmp: ReturnType<typeof tempDir>;
  let dbPath: string;
  let store: SqliteStore;
  let keys: SigningKeys;

  /** Signs `{seq, hash, time}` as Port did before checkpoints were chained, and stores it as the next row without a link. */
  async function legacyCheckpoint(seq: number): Promise<string> {
    const entry = (await store.decisions.read(seq - 1, 1))[0]!;
    const time = new Date(Date.UTC(2024, 11, 31, 0, 0, seq)).toISOString();
    const signer = keys.signer();
    const jws = await new CompactSign(new TextEncoder().encode(canonicalJson({ seq, hash: entry.hash, time })))
      .setProtectedHeader({ alg: signer.alg, kid: signer.kid, typ: CHECKPOINT_TYP })
      .sign(signer.key);
    const db = raw(dbPath);
    const num = ((db.prepare('SELECT max(num) AS n FROM checkpoints').get() as { n: number | null }).n ?? 0) + 1;
    db.prepare('INSERT INTO checkpoints (num, seq, hash, time, kid, jws, prev) VALUES (?, ?, ?, ?, ?, ?, NULL)').run(num, seq, entry.hash, time, signer.kid, jws);
    db.close();
    return jws;
  }

  async function verify() {
    return verifyAuditLog(store, new Map((await store.keys.list()).map((k) => [k.kid, k.publicJwk])), { checkpointInterval: 300 });
  }

  beforeEach(async () => {
    tmp = tempDir();
    dbPath = join(tmp.dir, 'port.db');
    store = SqliteStore.open(dbPath);
    keys = await SigningKeys.open(store, KEY_OPTIONS);
    await store.decisions.append(Array.from({ length: 20 }, (_, i) => sampleRecord(i + 1)));
  });
  afterEach(async () => {
    await store.close().catch(() => undefined);
    tmp.cleanup();
  });

  it('legacy checkpoints verify as the prefix a chained checkpoint continues', async () => {
    await legacyCheckpoint(10);
    const last = await legacyCheckpoint(20);
    const cp = new Checkpointer(store, keys, { every: 1000, intervalSeconds: 300 });
    await new DecisionLog(store).record([sampleRecord(21)]);
    const chained = await cp.checkpointNow();
    expect(chained).toMatchObject({ num: 3, seq: 21, prev: checkpointDigest(last) });
    expect(await verify()).toMatchObject({ ok: true, checkpoints: 3, legacyCheckpoints: 2, lastCheckpointSeq: 21, lastCheckpointNum: 3 });
  });

  it('a legacy-only log verifies', async () => {
    await legacyCheckpoint(10);
    await legacyCheckpoint(20);
    expect(await verify()).toMatchObject({ ok: true, legacyCheckpoints: 2, lastCheckpointSeq: 20 });
  });

  it('an unchained checkpoint after chained ones breaks the chain', async () => {
    const cp = new Checkpointer(store, keys, { every: 1000, intervalSeconds: 300 });
    await cp.checkpointNow();
    await legacyCheckpoint(20);
    const r = await verify();
    expect(r.ok).toBe(false);
    expect(r.firstBad).toMatchObject({ checkpoint: 2, problem: 'checkpoint_chain', message: 'checkpoint 2: chain broken (an unchained (legacy) checkpoint follows chained checkpoint 1)' });
  });

  it('removing the last legacy checkpoint breaks the link of the first chained one', async () => {
    await legacyCheckpoint(10);
    await legacyCheckpoint(15);
    const cp = new Checkpointer(store, keys, { every: 1000, intervalSeconds: 300 });
    await cp.checkpointNow();
    const db = raw(dbPath);
    db.prepare('DELETE FROM checkpoints WHERE num = 2').run();
    db.close();
    const r = await verify();
    expect(r.ok).toBe(false);
    expect(r.problems.map((p) => p.message)).toContain('checkpoint 3: chain broken (checkpoint 2 is missing)');
  });

  it('a chained checkpoint that is not the first Port wrote, with those before it removed, is refused', async () => {
    const cp = new Checkpointer(store, keys, { every: 1000, intervalSeconds: 300 });
    await cp.checkpointNow();
    await new DecisionLog(store).record([sampleRecord(21)]);
    await cp.checkpointNow();
    const db = raw(dbPath);
    db.prepare('DELETE FROM checkpoints WHERE num = 1').run();
    db.close();
    const r = await verify();
    expect(r.firstBad).toMatchObject({ problem: 'checkpoint_chain', message: 'checkpoint 2: chain broken (checkpoint 1 is missing)' });
  });
});
