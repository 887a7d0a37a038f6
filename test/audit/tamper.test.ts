/**
 * The attacks on the decision log that `port audit verify` once let through
 * — the tail deleted together with the checkpoints that covered it, entries rewritten and
 * re-hashed with their checkpoints removed — each run against a real SQLite file and
 * verified through the CLI as an auditor would, with and without an external anchor.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Checkpointer } from '../../src/audit/checkpointer.js';
import { SigningKeys } from '../../src/issuer/signing-keys.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { portAudit } from './cli-runner.js';
import { buildLog, buildTimedLog, KEY_OPTIONS, raw, rehashFrom, tempDir, updateRecord, writeConfig } from './helpers.js';

const MINUTE = 60_000;

/** Deletes entries after `keep` and every checkpoint that covers any of them: the attacker's cut. */
function cutBack(dbPath: string, keep: number): void {
  const db = raw(dbPath);
  db.prepare('DELETE FROM decisions WHERE seq > ?').run(keep);
  db.prepare('DELETE FROM checkpoints WHERE seq > ?').run(keep);
  db.close();
}

describe('an attacker with the database file', () => {
  let tmp: ReturnType<typeof tempDir>;
  let dbPath: string;
  let config: string;

  beforeEach(() => {
    tmp = tempDir();
    dbPath = join(tmp.dir, 'port.db');
    config = writeConfig(tmp.dir, 'audit: {checkpoint_interval: 5m}');
  });
  afterEach(() => tmp.cleanup());

  describe('a log checkpointed every 10 entries, one entry a minute', () => {
    beforeEach(async () => {
      // Checkpoints at 10, 20, … 50; entries 51–55 (4 minutes) not yet signed.
      await buildLog(dbPath, 55, 10, { stepSeconds: 60 });
    });

    it('verifies as it was written', async () => {
      const r = await portAudit('verify', '-c', config);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('Timing: every entry must be checkpointed within audit.checkpoint_interval 5m plus 30s slack.');
    });

    it('fails when the last entries are deleted with the checkpoint that covered them', async () => {
      const db = raw(dbPath);
      db.prepare('DELETE FROM decisions WHERE seq >= 48').run();
      db.prepare('DELETE FROM checkpoints WHERE seq = 50').run();
      db.close();
      const r = await portAudit('verify', '-c', config);
      expect(r.code).toBe(1);
      // Entries 41–47 span 6 minutes past the last checkpoint (40): one was due.
      expect(r.stderr).toBe(
        'port audit verify: FAILED: entry 41: not checkpointed in time (entries 41–47 follow the last checkpoint, but entry 41 was written 6 min before entry 47, ' +
          'more than checkpoint_interval 5 min plus 30 s slack: the checkpoints covering them were removed, or checkpointing failed)\n',
      );
      const json = JSON.parse((await portAudit('verify', '-c', config, '--json')).stdout) as { ok: boolean; problems: { problem: string }[] };
      expect(json.ok).toBe(false);
      expect(json.problems.map((p) => p.problem)).toEqual(['unsigned_tail']);
    });

    it('fails when a log spanning more than an interval has no checkpoint at all', async () => {
      const db = raw(dbPath);
      db.prepare('DELETE FROM checkpoints').run();
      db.close();
      const r = await portAudit('verify', '-c', config);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^port audit verify: FAILED: entry 1: no checkpoint \(entries 1–55 span 54 min, more than checkpoint_interval 5 min plus 30 s slack/);
    });

    it('fails when a checkpoint is removed from the middle of the chain', async () => {
      const db = raw(dbPath);
      db.prepare('DELETE FROM checkpoints WHERE seq = 30').run();
      db.close();
      const r = await portAudit('verify', '-c', config);
      expect(r.code).toBe(1);
      expect(r.stdout).toContain('checkpoint 4: chain broken (checkpoint 3 is missing)');
    });

    it('fails when the chain is renumbered around a removed checkpoint', async () => {
      const db = raw(dbPath);
      db.prepare('DELETE FROM checkpoints WHERE num = 3').run();
      db.prepare('UPDATE checkpoints SET num = num - 1 WHERE num > 3').run();
      db.close();
      const r = await portAudit('verify', '-c', config, '--json');
      expect(r.code).toBe(1);
      const problems = (JSON.parse(r.stdout) as { problems: { problem: string; checkpoint?: number }[] }).problems;
      // Numbers and links are signed: the shifted rows no longer match what they sign.
      expect(problems.map((p) => p.problem)).toEqual(expect.arrayContaining(['checkpoint_mismatch', 'checkpoint_chain']));
    });

    it('fails when a checkpoint row is replaced by a copy of another', async () => {
      const db = raw(dbPath);
      const other = db.prepare('SELECT seq, hash, time, kid, jws, prev FROM checkpoints WHERE num = 2').get() as Record<string, unknown>;
      db.prepare('UPDATE checkpoints SET seq = ?, hash = ?, time = ?, kid = ?, jws = ?, prev = ? WHERE num = 3').run(
        other.seq,
        other.hash,
        other.time,
        other.kid,
        other.jws,
        other.prev,
      );
      db.close();
      const r = await portAudit('verify', '-c', config);
      expect(r.code).toBe(1);
      expect(r.stdout).toMatch(/checkpoint 3: chain broken|checkpoint mismatch/);
    });
  });

  describe('a log written by a running Port: one entry a minute for an hour, checkpoints every 5 minutes', () => {
    let end: number;

    beforeEach(async () => {
      // Ending a minute ago, so --max-age judges it as a live log would be judged.
      const start = Date.now() - 61 * MINUTE;
      ({ end } = await buildTimedLog(dbPath, { entries: 60, stepSeconds: 60, intervalSeconds: 300, start }));
    });

    it('verifies as it was written, also with --max-age', async () => {
      const r = await portAudit('verify', '-c', config, '--max-age', '15m');
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(end).toBeLessThan(Date.now());
    });

    it('fails when entries are rewritten and re-hashed from some point on, with the checkpoints covering them removed', async () => {
      const db = raw(dbPath);
      updateRecord(db, 20, (rec) => void (rec.decision = 'allow'));
      rehashFrom(db, 20);
      db.prepare('DELETE FROM checkpoints WHERE seq >= 20').run();
      db.close();
      const r = await portAudit('verify', '-c', config);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^port audit verify: FAILED: entry 16: not checkpointed in time \(entries 16–60 follow the last checkpoint, but entry 16 was written 44 min before entry 60/);
    });

    it('a tail cut back exactly at a checkpoint passes on the database alone, and fails with --max-age', async () => {
      cutBack(dbPath, 40);
      // Nothing in the file shows it: the log looks like one whose Port stopped 20 minutes earlier.
      expect((await portAudit('verify', '-c', config)).code).toBe(0);
      const r = await portAudit('verify', '-c', config, '--max-age', '15m');
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^port audit verify: FAILED: checkpoint \d+: too old \(the newest valid checkpoint was signed at .*, 2\d min ago, more than --max-age 15 min/);
    });

    it('with --anchor: the whole tail cut back, checkpoints and all, to before the anchor', async () => {
      const anchor = join(tmp.dir, 'anchor.jsonl');
      const exported = await portAudit('checkpoints', 'export', '-c', config, '--out', anchor);
      expect(exported.code).toBe(0);
      expect(exported.stderr).toMatch(/^wrote 12 checkpoints to .*anchor\.jsonl \(the last, 12, covers entries up to 60, signed at /);
      expect((await portAudit('verify', '-c', config, '--anchor', anchor)).code).toBe(0);

      cutBack(dbPath, 40);
      expect((await portAudit('verify', '-c', config)).code).toBe(0);
      const r = await portAudit('verify', '-c', config, '--anchor', anchor);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^port audit verify: FAILED: anchored checkpoint 9: missing \(it covers entries up to 45, signed at .*, but the log's checkpoints end at 8: the log was cut back to before it\)/);
      const problems = (JSON.parse((await portAudit('verify', '-c', config, '--anchor', anchor, '--json')).stdout) as { problems: { problem: string }[] }).problems;
      expect(problems.map((p) => p.problem)).toEqual(['anchor_missing', 'anchor_missing', 'anchor_missing', 'anchor_missing']);
    });

    it('with --anchor: the tail cut back and rewritten (re-hashed, fresh-looking times), its checkpoints removed', async () => {
      const anchor = join(tmp.dir, 'anchor.jsonl');
      writeFileSync(anchor, (await portAudit('checkpoints', 'export', '-c', config)).stdout);
      const db = raw(dbPath);
      // Keep 41–43 as if nothing came after them, each rewritten; their times stay within an interval.
      db.prepare('DELETE FROM decisions WHERE seq > 43').run();
      db.prepare('DELETE FROM checkpoints WHERE seq > 40').run();
      for (const seq of [41, 42, 43]) updateRecord(db, seq, (rec) => void (rec.reason = 'nothing to see here'));
      rehashFrom(db, 41);
      db.close();
      expect((await portAudit('verify', '-c', config)).code).toBe(0);
      const r = await portAudit('verify', '-c', config, '--anchor', anchor);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('anchored checkpoint 9: missing');

      // Port carries on over the rewritten tail and signs it: a checkpoint 9 again, but not the anchored one.
      const store = SqliteStore.open(dbPath);
      const cp = new Checkpointer(store, await SigningKeys.open(store, KEY_OPTIONS), { every: 1000, intervalSeconds: 300 });
      expect(await cp.checkpointNow()).toMatchObject({ num: 9, seq: 43 });
      await store.close();
      expect((await portAudit('verify', '-c', config)).code).toBe(0);
      const again = await portAudit('verify', '-c', config, '--anchor', anchor);
      expect(again.code).toBe(1);
      expect(again.stderr).toMatch(/^port audit verify: FAILED: anchored checkpoint 9: differs from the log's \(the anchor covers entries up to 45 signed at .*; the log's checkpoint 9 covers 43 signed at .*: the log was rewritten\)/);
    });

    it('with --anchor: an edited anchor line does not verify', async () => {
      const anchor = join(tmp.dir, 'anchor.jsonl');
      await portAudit('checkpoints', 'export', '-c', config, '--out', anchor);
      const lines = readFileSync(anchor, 'utf8').trimEnd().split('\n');
      const edited = JSON.parse(lines[4]!) as { seq: number };
      edited.seq = 1;
      writeFileSync(join(tmp.dir, 'edited.jsonl'), `${JSON.stringify(edited)}\n`);
      const r = await portAudit('verify', '-c', config, '--anchor', join(tmp.dir, 'edited.jsonl'));
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/anchored checkpoint 5: does not verify/);
    });

    it('refuses an unusable --anchor or --max-age with exit 2 and one sentence', async () => {
      const bad = join(tmp.dir, 'bad.jsonl');
      writeFileSync(bad, '{"num": 1}\n');
      const r1 = await portAudit('verify', '-c', config, '--anchor', bad);
      expect(r1).toMatchObject({ code: 2, stdout: '' });
      expect(r1.stderr).toBe(`port audit: --anchor ${bad} line 1: not an exported checkpoint ("seq" is not a whole number)\n`);
      writeFileSync(bad, '\n');
      expect((await portAudit('verify', '-c', config, '--anchor', bad)).stderr).toContain('holds no checkpoints');
      expect((await portAudit('verify', '-c', config, '--anchor', join(tmp.dir, 'none.jsonl'))).stderr).toContain('cannot be read (ENOENT)');
      const r2 = await portAudit('verify', '-c', config, '--max-age', 'soon');
      expect(r2).toMatchObject({ code: 2, stderr: 'port audit: --max-age soon: not a duration; write e.g. 90s, 15m or 2h\n' });
    });
  });
});
