import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StoreUnavailableError } from '../../src/store/errors.js';
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
});
