import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FileIdentity } from '../../src/store/sqlite/file-identity.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { BACKSTOP_AUTOCHECKPOINT_FRAMES, CHECKPOINT_WRITES, DEFAULT_AUTOCHECKPOINT_FRAMES, WalCheckpointer } from '../../src/store/sqlite/wal-checkpointer.js';

/** A WAL frame: its 24-byte header and one page (https://www.sqlite.org/fileformat2.html#walformat). */
const FRAME_BYTES = 24 + 4096;

describe('WalCheckpointer: the write-ahead log checkpointed off the event loop', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'port-wal-checkpoint-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('a busy store: the thread checkpoints every few hundred writes and the log starts over, instead of growing to the backstop', async () => {
    const file = join(dir, 'port.db');
    const rounds = 16;
    const writes = rounds * CHECKPOINT_WRITES;
    const store = SqliteStore.open(file);
    const db = new Database(file, { readonly: true });
    try {
      // Two writes at a time, each awaited: commits keep landing while the thread copies the log.
      for (let i = 0; i < writes; i += 2) {
        await Promise.all([store.replay.consume(`key-${i}`, Date.now() + 3_600_000), store.replay.consume(`key-${i + 1}`, Date.now() + 3_600_000)]);
      }
      await vi.waitFor(() => expect(store.walCheckpoints!.runs).toBeGreaterThanOrEqual(rounds - 1), { timeout: 10_000 });
      const stats = store.walCheckpoints!;
      expect(stats.failure).toBeUndefined();
      // Each of these writes adds a frame or two (the key's table and index pages): the log
      // that never starts over holds them all, ~7,000 frames; one that starts over after every
      // checkpoint never holds much more than one round's writes (~450–800 frames here).
      const highWater = statSync(`${file}-wal`).size / FRAME_BYTES;
      expect(stats.logFrames).toBeGreaterThan(0);
      expect(highWater).toBeLessThan(2_000);
      // Everything written is in the database, whichever side of a checkpoint it was committed on.
      expect((db.prepare('SELECT count(*) AS n FROM replay_cache').get() as { n: number }).n).toBe(writes);
    } finally {
      db.close();
      await store.close();
    }
    // Closed: the last connection to close checkpoints the log and removes it.
    expect(existsSync(`${file}-wal`)).toBe(false);
    const reopened = SqliteStore.open(file, { create: false });
    try {
      // Single use survives the checkpoints and the restart: every key is still consumed.
      expect(await reopened.replay.consume('key-0', Date.now() + 3_600_000)).toBe(false);
      expect(await reopened.replay.consume(`key-${writes - 1}`, Date.now() + 3_600_000)).toBe(false);
    } finally {
      await reopened.close();
    }
  });

  it('a process that never closes its store still exits once its writes are done, and none of its writes is cut off by a held tail', async () => {
    // The compiled store (dist/, built by `npm test`), in a process of its own: what keeps
    // Node running is the point. An idle thread must not keep it alive; a write held for a
    // checkpoint's tail must (without it Node exits 13, a top-level await unsettled).
    const storeModule = new URL('../../dist/store/sqlite/sqlite-store.js', import.meta.url).pathname;
    const script = `
      const { SqliteStore } = await import(${JSON.stringify(storeModule)});
      const store = SqliteStore.open(process.env.FILE);
      // Reported as the process exits: a checkpoint still running kept it alive until now.
      process.on('exit', () => console.log(JSON.stringify(store.walCheckpoints)));
      for (let i = 0; i < 4 * ${CHECKPOINT_WRITES}; i += 2) {
        await Promise.all([store.replay.consume('a' + i, Date.now() + 60000), store.replay.consume('b' + i, Date.now() + 60000)]);
      }`;
    const { code, stdout } = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
      const child = execFile(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, FILE: join(dir, 'port.db') }, timeout: 60_000 }, (_err, out) =>
        resolve({ code: child.exitCode, stdout: out }),
      );
    });
    expect(code).toBe(0);
    expect(JSON.parse(stdout).runs).toBeGreaterThanOrEqual(1);
  }, 90_000);

  it('a store that writes little starts no thread', async () => {
    const store = SqliteStore.open(join(dir, 'port.db'));
    try {
      for (let i = 0; i < CHECKPOINT_WRITES - 1; i++) await store.replay.consume(`key-${i}`, Date.now() + 60_000);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(store.walCheckpoints).toEqual({ runs: 0, logFrames: 0, partial: 0 });
    } finally {
      await store.close();
    }
  });

  it('a thread that fails gives the event loop connection SQLite\'s own checkpoints back, and holds no write', async () => {
    const file = join(dir, 'port.db');
    const db = new Database(file);
    db.pragma('journal_mode = WAL');
    try {
      // The thread opens the file by path: a path with nothing there makes it fail at once.
      const checkpointer = new WalCheckpointer(db, join(dir, 'missing', 'port.db'), undefined, 1);
      expect(db.pragma('wal_autocheckpoint', { simple: true })).toBe(BACKSTOP_AUTOCHECKPOINT_FRAMES);
      checkpointer.wrote(1);
      await vi.waitFor(() => expect(checkpointer.stats.failure).toMatch(/the checkpoint thread (failed|exited)/), { timeout: 10_000 });
      expect(db.pragma('wal_autocheckpoint', { simple: true })).toBe(DEFAULT_AUTOCHECKPOINT_FRAMES);
      expect(checkpointer.hold()).toBeUndefined();
      // Later writes start nothing more; closing a failed checkpointer returns at once.
      checkpointer.wrote(10);
      expect(checkpointer.stats.runs).toBe(0);
      await checkpointer.close();
    } finally {
      db.close();
    }
  });

  it('a thread that finds another file at the path refuses it, and the event loop connection checkpoints its own file', async () => {
    const file = join(dir, 'port.db');
    const db = new Database(file);
    db.pragma('journal_mode = WAL');
    // By the time the thread opens the path, it names another SQLite file (swapped in by a restore, say).
    const other = join(dir, 'other.db');
    new Database(other).close();
    try {
      const checkpointer = new WalCheckpointer(db, other, new FileIdentity(file), 1);
      checkpointer.wrote(1);
      await vi.waitFor(() => expect(checkpointer.stats.failure).toMatch(/its path names another file than the one the store opened/), { timeout: 10_000 });
      expect(checkpointer.stats.runs).toBe(0);
      expect(db.pragma('wal_autocheckpoint', { simple: true })).toBe(DEFAULT_AUTOCHECKPOINT_FRAMES);
      await checkpointer.close();
    } finally {
      db.close();
    }
  });
});
