import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Checkpointer } from '../../src/audit/checkpointer.js';
import { DecisionLog } from '../../src/audit/decision-log.js';
import type { DecisionRecord } from '../../src/store/records/decisions.js';
import { entryHash, GENESIS_HASH } from '../../src/store/hash-chain.js';
import { jtiHash } from '../../src/audit/token-hash.js';
import { SigningKeys } from '../../src/issuer/signing-keys.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';

export const KEY_OPTIONS = { algorithm: 'ES256', rotation: 86400, overlap: 3600 } as const;

export function tempDir(): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'port-audit-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export function sampleRecord(i: number): DecisionRecord {
  const deny = i % 3 === 0;
  return {
    id: `dec-${i}`,
    time: new Date(Date.UTC(2025, 0, 1, 0, 0, i)).toISOString(),
    principal: `Port::Job::"job-${i}"`,
    action: i % 2 === 0 ? 'exchange' : 'assume',
    resource: i % 2 === 0 ? 'Port::Organization::"acme"' : 'Port::Credential::"aws-deploy"',
    decision: deny ? 'deny' : 'allow',
    policies: deny ? [{ id: 'main-only', reason: 'deploys only from main' }] : [{ id: 'allow-deploy' }],
    reason: deny ? 'forbidden by main-only' : 'permitted by allow-deploy',
    policyRevision: 'rev-1',
    context: { branch: deny ? 'feature' : 'main', jti_sha256: jtiHash(`jti-${i}`), build_number: i },
  };
}

/** sampleRecord(i), decided at `timeMs`. */
export function sampleRecordAt(i: number, timeMs: number): DecisionRecord {
  return { ...sampleRecord(i), time: new Date(timeMs).toISOString() };
}

export interface TimedLog {
  dbPath: string;
  /** The simulated clock when the last entry was written (ms). */
  end: number;
}

/**
 * A log as a running Port writes it: one entry every `stepSeconds` from `start`, and the
 * real Checkpointer signing the head every `intervalSeconds` of a simulated clock (what
 * its timer does), so checkpoints keep the `checkpoint_interval` promise. Closes the store after.
 */
export async function buildTimedLog(dbPath: string, opts: { entries: number; stepSeconds: number; intervalSeconds: number; start: number }): Promise<TimedLog> {
  const store = SqliteStore.open(dbPath);
  const keys = await SigningKeys.open(store, KEY_OPTIONS);
  let clock = opts.start;
  const checkpointer = new Checkpointer(store, keys, { every: 1_000_000, intervalSeconds: opts.intervalSeconds, now: () => clock });
  const log = new DecisionLog(store);
  let lastTick = clock;
  for (let i = 1; i <= opts.entries; i++) {
    clock = opts.start + i * opts.stepSeconds * 1000;
    await log.record([sampleRecordAt(i, clock)]);
    if (clock - lastTick >= opts.intervalSeconds * 1000) {
      await checkpointer.checkpointNow();
      lastTick = clock;
    }
  }
  await store.close();
  return { dbPath, end: clock };
}

export interface BuiltLog {
  dbPath: string;
  /** Checkpointed seqs, in order. */
  checkpoints: number[];
}

/**
 * Writes `n` records through DecisionLog in batches of `every`, with a checkpoint
 * after each full batch (so checkpoints land on multiples of `every`), then closes
 * the store so the file can be tampered with offline.
 */
export async function buildLog(dbPath: string, n: number, every: number, opts: { finalCheckpoint?: boolean; stepSeconds?: number } = {}): Promise<BuiltLog> {
  const store = SqliteStore.open(dbPath);
  const keys = await SigningKeys.open(store, KEY_OPTIONS);
  // every: huge so only our explicit checkpointNow() calls write checkpoints.
  const checkpointer = new Checkpointer(store, keys, { every: 1_000_000, intervalSeconds: 0 });
  const log = new DecisionLog(store);
  const checkpoints: number[] = [];
  for (let start = 1; start <= n; start += every) {
    const at = (i: number) => (opts.stepSeconds === undefined ? sampleRecord(i) : sampleRecordAt(i, Date.UTC(2025, 0, 1) + i * opts.stepSeconds * 1000));
    const batch = Array.from({ length: Math.min(every, n - start + 1) }, (_, k) => at(start + k));
    await log.record(batch);
    if (batch.length === every || opts.finalCheckpoint) {
      const cp = await checkpointer.checkpointNow();
      if (cp) checkpoints.push(cp.seq);
    }
  }
  await store.close();
  return { dbPath, checkpoints };
}

/** A raw connection for tampering, as an attacker with the file would. */
export function raw(dbPath: string): Database.Database {
  return new Database(dbPath);
}

interface Row {
  seq: number;
  record: string;
  prev_hash: string;
  hash: string;
}

export function readRow(db: Database.Database, seq: number): Row {
  return db.prepare('SELECT seq, record, prev_hash, hash FROM decisions WHERE seq = ?').get(seq) as Row;
}

/** Rewrites every entry from `fromSeq` on so the chain is consistent again (an attacker who knows the hash scheme). */
export function rehashFrom(db: Database.Database, fromSeq: number): void {
  const before = db.prepare('SELECT hash FROM decisions WHERE seq = ?').get(fromSeq - 1) as { hash: string } | undefined;
  let prev = before?.hash ?? GENESIS_HASH;
  const rows = db.prepare('SELECT seq, record FROM decisions WHERE seq >= ? ORDER BY seq').all(fromSeq) as Row[];
  const update = db.prepare('UPDATE decisions SET prev_hash = ?, hash = ? WHERE seq = ?');
  for (const r of rows) {
    const h = entryHash(r.seq, prev, JSON.parse(r.record) as DecisionRecord);
    update.run(prev, h, r.seq);
    prev = h;
  }
}

export function updateRecord(db: Database.Database, seq: number, change: (r: DecisionRecord) => void): void {
  const r = JSON.parse(readRow(db, seq).record) as DecisionRecord;
  change(r);
  db.prepare('UPDATE decisions SET record = ? WHERE seq = ?').run(JSON.stringify(r), seq);
}

/** A minimal port.yaml (and policies folder) pointing at `./port.db` in `dir`. */
export function writeConfig(dir: string, extra = ''): string {
  mkdirSync(join(dir, 'policies'), { recursive: true });
  const file = join(dir, 'port.yaml');
  writeFileSync(
    file,
    ['server: {public_url: "http://127.0.0.1:1"}', 'buildkite: {organization: acme}', 'store: {sqlite: ./port.db}', 'policies: ./policies', extra].join('\n'),
  );
  return file;
}
