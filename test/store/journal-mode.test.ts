import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { switchToWal } from '../../src/store/sqlite/journal-mode.js';

/** A SqliteError-shaped failure, as better-sqlite3 throws it. */
function sqliteError(code: string): Error {
  return Object.assign(new Error(code === 'SQLITE_BUSY' ? 'database is locked' : 'disk I/O error'), { code });
}

/** A connection whose `journal_mode = WAL` fails with `failures` in turn, then succeeds. */
function scripted(failures: string[]) {
  const calls: string[] = [];
  return {
    calls,
    db: {
      pragma(source: string) {
        calls.push(source);
        const code = failures.shift();
        if (code !== undefined) throw sqliteError(code);
        return 'wal';
      },
    } as unknown as Pick<Database.Database, 'pragma'>,
  };
}

describe('switchToWal: a new file put in WAL mode while other processes do the same', () => {
  it("retries the SQLITE_BUSY that SQLite answers at once when two processes' switches would deadlock", () => {
    const { db, calls } = scripted(['SQLITE_BUSY', 'SQLITE_BUSY', 'SQLITE_BUSY']);
    switchToWal(db);
    expect(calls).toEqual(Array(4).fill('journal_mode = WAL'));
  });

  it('throws any other error at once: only a busy file is worth waiting for', () => {
    const { db, calls } = scripted(['SQLITE_IOERR']);
    expect(() => switchToWal(db)).toThrow(expect.objectContaining({ code: 'SQLITE_IOERR' }));
    expect(calls).toHaveLength(1);
  });

  it('gives up with SQLITE_BUSY once the wait is over', () => {
    let t = 0;
    const { db, calls } = scripted(Array(100).fill('SQLITE_BUSY'));
    // The clock moves 400 ms per reading: the wait ends at 1.4 s, read after the third failure (1.6 s).
    expect(() => switchToWal(db, 1000, () => (t += 400))).toThrow(expect.objectContaining({ code: 'SQLITE_BUSY' }));
    expect(calls.length).toBe(3);
  });

  it('puts a real file in WAL mode', () => {
    const dir = mkdtempSync(join(tmpdir(), 'port-wal-'));
    const db = new Database(join(dir, 'port.db'));
    try {
      switchToWal(db);
      expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    } finally {
      db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
