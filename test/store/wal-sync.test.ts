import { closeSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StoreUnavailableError } from '../../src/store/errors.js';
import {
  INLINE_SYNC_LIMIT_MS,
  LOOP_BUSY_AT_LEAST,
  LOOP_IDLE_BELOW,
  LOOP_WINDOW_MS,
  THREAD_POOL_GROUP_WRITES,
  THREAD_POOL_PERIOD_MS,
  WalSync,
  type EventLoopTime,
} from '../../src/store/sqlite/wal-sync.js';

describe('WalSync: where the log is synced', () => {
  let dir: string;
  let file: string;
  let db: Database.Database;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'port-wal-sync-'));
    file = join(dir, 'port.db');
    // A connection in WAL mode with one commit: the `-wal` file exists and holds a frame to sync.
    db = new Database(file);
    db.pragma('journal_mode = WAL');
    db.exec('CREATE TABLE t (v TEXT); INSERT INTO t VALUES (1)');
  });
  afterEach(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A clock that reads `times` in order, one value per reading (the sync reads it before and after an inline fsync). */
  function clock(times: number[]) {
    let i = 0;
    return () => {
      if (i >= times.length) throw new Error(`the clock was read more than ${times.length} times`);
      return times[i++]!;
    };
  }

  /**
   * An event loop that was busy `shares[i]` of the time before the i-th reading (the first
   * reading is the starting mark). Past the list it stays idle, as the tests' own loop is
   * not the one they describe.
   */
  function loop(shares: number[] = []) {
    const time: EventLoopTime = { active: 0, idle: 0 };
    let readings = 0;
    const read = () => {
      const share = readings === 0 ? 0 : (shares[readings - 1] ?? 0);
      readings++;
      time.active += share * LOOP_WINDOW_MS;
      time.idle += (1 - share) * LOOP_WINDOW_MS;
      return { ...time };
    };
    return Object.assign(read, { readings: () => readings });
  }

  it('syncs on the event loop while syncs are fast: the sync has returned before the promise is even awaited', async () => {
    const wal = new WalSync(file, clock([0, 0.3, 10, 10.2]), loop());
    const p = wal.sync();
    expect(wal.syncs).toEqual({ inline: 1, threadPool: 0 });
    await p;
    await wal.sync();
    expect(wal.syncs).toEqual({ inline: 2, threadPool: 0 });
    wal.close();
  });

  it(`a slow disk moves the syncs to the thread pool once their running average is over ${INLINE_SYNC_LIMIT_MS} ms, and one per ${THREAD_POOL_PERIOD_MS} ms tried inline brings them back when it recovers`, async () => {
    const [P, L] = [THREAD_POOL_PERIOD_MS, INLINE_SYNC_LIMIT_MS];
    // Each inline sync reads the clock at its start and end; one on the thread pool at its start only.
    const wal = new WalSync(
      file,
      clock([
        0, 10 * L, // inline, 10× the limit: the average (1.25× the limit) is over it
        10 * L + 1, // thread pool
        P - 1, // thread pool: the period since the last inline sync is not over
        P, P + 0.1 * L, // a try inline, fast: the average falls to 1.11× the limit, still over
        P + 1, // thread pool
        2 * P, 2 * P + 0.1 * L, // a try inline, fast: 0.98× the limit
        2 * P + 1, 2 * P + 1 + 0.1 * L, // inline again
        2 * P + 2, 2 * P + 2 + 0.1 * L,
      ]),
      loop(),
    );
    const counts: string[] = [];
    for (let i = 0; i < 8; i++) {
      await wal.sync();
      counts.push(`${wal.syncs.inline}/${wal.syncs.threadPool}`);
    }
    expect(counts).toEqual(['1/0', '1/1', '1/2', '2/2', '2/3', '3/3', '4/3', '5/3']);
    wal.close();
  });

  it(`a group of ${THREAD_POOL_GROUP_WRITES} or more writes syncs on the thread pool even while the disk is fast, and so do lone writes among such groups; lone writes one at a time sync on the event loop`, async () => {
    const G = THREAD_POOL_GROUP_WRITES;
    // Inline syncs read the clock at start and end; a thread-pool one at its start only.
    let t = 0;
    const wal = new WalSync(file, () => (t += 0.05), loop());
    const where: string[] = [];
    const sync = async (writes: number) => {
      const before = wal.syncs.inline;
      const p = wal.sync(writes);
      where.push(wal.syncs.inline > before ? 'inline' : 'pool');
      await p;
    };
    await sync(1);
    await sync(G);
    await sync(1); // the average group size (1 + 1/8) is under G: light load
    expect(where).toEqual(['inline', 'pool', 'inline']);
    // Full load: groups of 16. The average climbs past G within a few groups, and a lone
    // write among them goes to the thread pool too.
    where.length = 0;
    for (let i = 0; i < 3; i++) await sync(16);
    await sync(1);
    expect(where).toEqual(['pool', 'pool', 'pool', 'pool']);
    // The load falls: lone writes only. Once the average is back under G they sync inline.
    where.length = 0;
    for (let i = 0; i < 40; i++) await sync(1);
    expect(where.slice(0, 2)).toEqual(['pool', 'pool']);
    expect(where.slice(-10)).toEqual(Array(10).fill('inline'));
    wal.close();
  });

  it('one slow sync among fast ones stays on the event loop, and so does the next', async () => {
    const times: number[] = [];
    const L = INLINE_SYNC_LIMIT_MS;
    for (let i = 0; i < 8; i++) times.push(i, i + 0.3 * L); // 8 fast ones
    times.push(8, 8 + 5 * L); // one 5× the limit: the average rises to ~0.8× the limit
    times.push(14 * L, 14.3 * L);
    const wal = new WalSync(file, clock(times), loop());
    for (let i = 0; i < 10; i++) await wal.sync();
    expect(wal.syncs).toEqual({ inline: 10, threadPool: 0 });
    wal.close();
  });

  it(`lone writes sync on the thread pool while the event loop has been busy ${LOOP_BUSY_AT_LEAST * 100}% of its recent time or more, and come back once it is under ${LOOP_IDLE_BELOW * 100}%`, async () => {
    const W = LOOP_WINDOW_MS;
    // One sync per half window, inline or on the thread pool; the clock stands still during
    // each (an inline sync times as 0 ms, far from the slow-disk limit).
    let t = 0;
    const shares = [
      0.2, // quiet: inline
      LOOP_BUSY_AT_LEAST, // busy: to the thread pool
      LOOP_IDLE_BELOW, // less busy, but not under the lower mark: stays there
      LOOP_IDLE_BELOW - 0.01, // under it: back on the event loop
      LOOP_BUSY_AT_LEAST - 0.01, // between the two marks, coming from quiet: stays inline
    ];
    const eventLoop = loop(shares);
    const wal = new WalSync(file, () => t, eventLoop);
    const where: string[] = [];
    for (let i = 0; i < 2 * (shares.length + 1); i++) {
      t = (i * W) / 2;
      const before = wal.syncs.inline;
      await wal.sync(1);
      where.push(wal.syncs.inline > before ? 'inline' : 'pool');
    }
    // A reading per full window: the syncs of one window share its verdict.
    expect(eventLoop.readings()).toBe(shares.length + 1);
    expect(where).toEqual(['inline', 'inline', 'inline', 'inline', 'pool', 'pool', 'pool', 'pool', 'inline', 'inline', 'inline', 'inline']);
    wal.close();
  });

  it('reads the real event loop by default: a loop kept busy sends lone writes to the thread pool', async () => {
    // The test's clock stands still during a sync, so a slow fsync here can't send the next
    // one to the pool by the slow-disk rule; it jumps past the window after the busy stretch.
    let t = 0;
    const wal = new WalSync(file, () => t);
    await wal.sync(1);
    expect(wal.syncs).toEqual({ inline: 1, threadPool: 0 });
    // Keep the event loop busy for more than a window, in turns (each a few ms of work).
    const until = performance.now() + 2 * LOOP_WINDOW_MS;
    while (performance.now() < until) {
      const spin = performance.now() + 5;
      while (performance.now() < spin);
      await new Promise((resolve) => setImmediate(resolve));
    }
    t = 2 * LOOP_WINDOW_MS;
    await wal.sync(1);
    expect(wal.syncs).toEqual({ inline: 1, threadPool: 1 });
    wal.close();
  });

  it('reads the event loop on syncs the groups decide too: lone writes right after a busy stretch of groups stay on the thread pool', async () => {
    const W = LOOP_WINDOW_MS;
    let t = 0;
    // Busy while the groups come, quiet after.
    const eventLoop = loop([0.9, 0.9, 0.1]);
    const wal = new WalSync(file, () => t, eventLoop);
    const where: string[] = [];
    const sync = async (writes: number) => {
      const before = wal.syncs.inline;
      await wal.sync(writes);
      where.push(wal.syncs.inline > before ? 'inline' : 'pool');
    };
    for (const at of [0, W, 2 * W]) {
      t = at;
      await sync(THREAD_POOL_GROUP_WRITES);
    }
    // Three groups of 2 leave the running average of group sizes under
    // THREAD_POOL_GROUP_WRITES (it starts at 1): this lone write is placed by the busy reading alone.
    t = 2.5 * W;
    await sync(1);
    t = 3 * W;
    await sync(1); // the next reading: quiet
    expect(where).toEqual(['pool', 'pool', 'pool', 'pool', 'inline']);
    expect(eventLoop.readings()).toBe(4);
    wal.close();
  });

  for (const where of ['on the event loop', 'on the thread pool'] as const) {
    it(`a failed sync ${where} rejects as "could not make its commits durable", and every later sync is refused without syncing`, async () => {
      // A first sync opens the log; it is slow (50 ms) in the thread-pool case, so the failing one goes there.
      const wal = new WalSync(file, where === 'on the event loop' ? clock([0, 0.1, 1, 1.1]) : clock([0, 50, 51]), loop());
      await wal.sync();
      // The descriptor the sync uses is gone, as after a dying disk (EBADF).
      closeSync((wal as unknown as { fd: number }).fd);
      const err = await wal.sync().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StoreUnavailableError);
      expect((err as Error).message).toMatch(/could not make its commits durable \(fsync of its log failed: EBADF\); restart Port/);
      expect(wal.failed).toMatch(/EBADF/);
      const before = wal.syncs;
      await expect(wal.sync()).rejects.toBeInstanceOf(StoreUnavailableError);
      expect(wal.syncs).toEqual(before);
      (wal as unknown as { fd: number | undefined }).fd = undefined; // already closed above
    });
  }

  it('a log that cannot be opened fails the sync, not the process', async () => {
    const wal = new WalSync(join(dir, 'absent.db'), clock([]));
    const err = await wal.sync().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreUnavailableError);
    expect((err as Error).message).toMatch(/fsync of its log failed: ENOENT/);
  });
});
