import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StoreCommitUnknownError, StoreUnavailableError } from '../../src/store/errors.js';
import { WriteBatcher } from '../../src/store/sqlite/write-batcher.js';

/** SQLite's own error for a full disk, as better-sqlite3 raises it. */
function diskFull(): Error {
  return Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
}

describe('WriteBatcher (group commit)', () => {
  let db: Database.Database;
  const rows = () => (db.prepare('SELECT v FROM t ORDER BY v').all() as { v: string }[]).map((r) => r.v);
  beforeEach(() => {
    db = new Database(':memory:');
    db.exec('CREATE TABLE t (v TEXT)');
  });
  afterEach(() => db.close());

  const insert = (v: string) => () => void db.prepare('INSERT INTO t (v) VALUES (?)').run(v);

  it('one failing write is undone alone: the others of its batch commit and are acknowledged', async () => {
    const batcher = new WriteBatcher(db);
    const results = await Promise.allSettled([
      batcher.write(insert('a')),
      batcher.write(() => {
        insert('b')();
        throw new Error('constraint');
      }),
      batcher.write(insert('c')),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(rows()).toEqual(['a', 'c']);
  });

  it('a storage failure that rolled back the whole transaction fails the whole batch, and nothing of it stays written', async () => {
    const failures: (string | undefined)[] = [];
    const batcher = new WriteBatcher(db, 512, { outcome: (f) => failures.push(f) });
    const results = await Promise.allSettled([
      batcher.write(insert('a')),
      batcher.write(() => {
        // What SQLite does on SQLITE_FULL or IOERR mid-transaction: it may roll back all of it.
        db.exec('ROLLBACK');
        throw diskFull();
      }),
      batcher.write(insert('c')),
    ]);
    // Writes after the failure must not run on their own (autocommitted) while being reported failed.
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
    for (const r of results) expect((r as PromiseRejectedResult).reason).toBeInstanceOf(StoreUnavailableError);
    expect(rows()).toEqual([]);
    expect(failures).toEqual(['the disk is full']);
    // The next batch commits normally.
    await batcher.write(insert('d'));
    expect(rows()).toEqual(['d']);
  });

  it('after the commit, only a moved file unacknowledges it; the before-check refuses the batch unrun', async () => {
    let before: string | undefined = 'the SQLite file was deleted or moved while Port was running';
    let after: string | undefined;
    const batcher = new WriteBatcher(db, 512, { check: (phase) => (phase === 'before' ? before : after) });
    await expect(batcher.write(insert('a'))).rejects.toBeInstanceOf(StoreUnavailableError);
    expect(rows()).toEqual([]);
    before = undefined;
    after = 'the SQLite file was replaced by another file while Port was running';
    await expect(batcher.write(insert('b'))).rejects.toThrow(/replaced/);
  });

  describe('with a sync step (the log fsync run off the event loop)', () => {
    /** A sync hook the test settles by hand, recording what was committed when each sync started. */
    function manualSync() {
      const calls: { committed: string[]; writes: number; resolve: () => void; reject: (e: unknown) => void }[] = [];
      const sync = (writes: number) => new Promise<void>((resolve, reject) => void calls.push({ committed: rows(), writes, resolve, reject }));
      return { calls, sync };
    }
    const settled = async (p: Promise<unknown>) => {
      let done = false;
      void p.then(() => (done = true), () => (done = true));
      await new Promise((r) => setImmediate(r));
      await new Promise((r) => setImmediate(r));
      return done;
    };

    it('acknowledges a write only after a sync that started after its commit has returned', async () => {
      const { calls, sync } = manualSync();
      const batcher = new WriteBatcher(db, 512, { sync });
      const a = batcher.write(insert('a'));
      expect(await settled(a)).toBe(false);
      expect(calls).toHaveLength(1);
      expect(calls[0]!.committed).toEqual(['a']); // committed (visible), not yet acknowledged
      expect(calls[0]!.writes).toBe(1);
      calls[0]!.resolve();
      await expect(a).resolves.toBeUndefined();
    });

    it('writes arriving during a sync wait and go in one transaction with one more sync', async () => {
      const { calls, sync } = manualSync();
      const batcher = new WriteBatcher(db, 512, { sync });
      const a = batcher.write(insert('a'));
      await settled(a);
      const later = ['b', 'c', 'd'].map((v) => batcher.write(insert(v)));
      expect(await settled(Promise.all(later))).toBe(false);
      // Not committed while the first sync runs: they form the next group.
      expect(rows()).toEqual(['a']);
      expect(calls).toHaveLength(1);
      calls[0]!.resolve();
      await a;
      await settled(Promise.all(later));
      expect(calls).toHaveLength(2);
      expect(calls[1]!.committed).toEqual(['a', 'b', 'c', 'd']);
      expect(calls[1]!.writes).toBe(3); // the sync is told the group's size (WalSync puts groups on the thread pool)
      expect(await settled(Promise.all(later))).toBe(false);
      calls[1]!.resolve();
      await Promise.all(later);
    });

    it('a failed sync fails every write it covered as "may or may not have been recorded", and the outcome is reported', async () => {
      const { calls, sync } = manualSync();
      const failures: (string | undefined)[] = [];
      const batcher = new WriteBatcher(db, 512, { sync, outcome: (f) => failures.push(f) });
      const writes = [batcher.write(insert('a')), batcher.write(insert('b'))];
      await settled(Promise.all(writes));
      calls[0]!.reject(new StoreUnavailableError('the store could not make its commits durable (fsync of its log failed: EIO); restart Port'));
      const results = await Promise.allSettled(writes);
      for (const r of results) {
        expect(r.status).toBe('rejected');
        expect((r as PromiseRejectedResult).reason).toBeInstanceOf(StoreCommitUnknownError);
        expect((r as PromiseRejectedResult).reason.message).toMatch(/may or may not have been recorded/);
      }
      expect(failures).toEqual([expect.stringMatching(/fsync of its log failed: EIO/)]);
    });

    it('a write that failed inside a synced batch is still rejected, and only after the sync', async () => {
      const { calls, sync } = manualSync();
      const batcher = new WriteBatcher(db, 512, { sync });
      const ok = batcher.write(insert('a'));
      const bad = batcher.write(() => {
        throw new Error('constraint');
      });
      expect(await settled(bad)).toBe(false);
      calls[0]!.resolve();
      await expect(ok).resolves.toBeUndefined();
      await expect(bad).rejects.toThrow('constraint');
    });

    it('a hold keeps the next transaction from starting while the event loop goes on; the writes queued meanwhile commit together after it', async () => {
      const { calls, sync } = manualSync();
      let release!: () => void;
      let hold: Promise<void> | undefined = new Promise<void>((resolve) => (release = resolve));
      const batcher = new WriteBatcher(db, 512, { sync, hold: () => hold });
      const a = batcher.write(insert('a'));
      const b = batcher.write(insert('b'));
      // Turns of the event loop pass (the flush ran): nothing committed, no sync started.
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(rows()).toEqual([]);
      expect(calls).toHaveLength(0);
      const c = batcher.write(insert('c'));
      hold = undefined;
      release();
      await settled(a);
      expect(calls).toHaveLength(1);
      expect(calls[0]!.committed).toEqual(['a', 'b', 'c']);
      expect(calls[0]!.writes).toBe(3);
      calls[0]!.resolve();
      await expect(Promise.all([a, b, c])).resolves.toEqual([undefined, undefined, undefined]);
    });

    it('the after-check runs once the commits are durable and refuses to acknowledge a moved file', async () => {
      const { calls, sync } = manualSync();
      let after: string | undefined;
      const batcher = new WriteBatcher(db, 512, { sync, check: (phase) => (phase === 'after' ? after : undefined) });
      const a = batcher.write(insert('a'));
      await settled(a);
      after = 'the SQLite file was deleted or moved while Port was running';
      calls[0]!.resolve();
      await expect(a).rejects.toThrow(/deleted or moved/);
    });
  });
});
