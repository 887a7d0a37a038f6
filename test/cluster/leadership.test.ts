import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Leadership, LEADER_LEASE } from '../../src/cluster/leadership.js';
import type { LeaseStore } from '../../src/store/store.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';

let dir: string;
let stores: SqliteStore[];
let t: number;
const now = () => t;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'port-leader-'));
  stores = [0, 1, 2].map(() => SqliteStore.open(join(dir, 'port.db')));
  t = 1_000_000;
});
afterEach(async () => {
  await Promise.all(stores.map((s) => s.close()));
  rmSync(dir, { recursive: true, force: true });
});

const leaders = (all: Leadership[]) => all.filter((l) => l.isLeader()).length;

describe('Leadership', () => {
  it('of three processes on one store exactly one leads; a clean stop hands over at once', async () => {
    const all = stores.map((s, i) => new Leadership(s.leases, { owner: `p${i}`, ttlMs: 15_000, now }));
    await Promise.all(all.map((l) => l.start()));
    expect(leaders(all)).toBe(1);
    const leader = all.find((l) => l.isLeader())!;
    await leader.stop();
    expect(leader.isLeader()).toBe(false);
    expect(await stores[0]!.leases.holder(LEADER_LEASE, t)).toBeUndefined();
    const rest = all.filter((l) => l !== leader);
    // The next renewal round (every third of the TTL) of the others takes it.
    await Promise.all(rest.map((l) => (l as unknown as { renew(): Promise<void> }).renew()));
    expect(leaders(rest)).toBe(1);
    await Promise.all(all.map((l) => l.stop()));
  });

  it('a dead leader is replaced once its lease lapses; a leader that can no longer renew steps down a third of the TTL early', async () => {
    let broken = false;
    const flaky: LeaseStore = {
      acquire: (...a) => (broken ? Promise.reject(new Error('database unreachable')) : stores[0]!.leases.acquire(...a)),
      release: (...a) => stores[0]!.leases.release(...a),
      holder: (...a) => stores[0]!.leases.holder(...a),
    };
    const errors: unknown[] = [];
    const changes: boolean[] = [];
    const first = new Leadership(flaky, { owner: 'first', ttlMs: 15_000, now, onError: (e) => errors.push(e), onChange: (l) => changes.push(l) });
    const second = new Leadership(stores[1]!.leases, { owner: 'second', ttlMs: 15_000, now });
    await first.start();
    await second.start();
    expect([first.isLeader(), second.isLeader()]).toEqual([true, false]);
    broken = true;
    const renew = (l: Leadership) => (l as unknown as { renew(): Promise<void> }).renew();
    t += 5_000;
    await renew(first);
    await renew(first);
    expect(errors).toHaveLength(1); // once per failing stretch
    expect(first.isLeader()).toBe(true); // 10 s left of 15: still more than a third
    t += 5_001;
    expect(first.isLeader()).toBe(false); // under a third left: it stops before anyone may take over
    await renew(second);
    expect(second.isLeader()).toBe(false); // the lease itself has not lapsed yet
    t += 5_000;
    await renew(second);
    expect(second.isLeader()).toBe(true);
    expect(changes).toEqual([true, false]);
    await Promise.all([first.stop(), second.stop()]);
  });

  it('repeat runs a task only on the leader, never twice at once, and reports a failing stretch once', async () => {
    const a = new Leadership(stores[0]!.leases, { owner: 'a', ttlMs: 15_000 });
    const b = new Leadership(stores[1]!.leases, { owner: 'b', ttlMs: 15_000 });
    await a.start();
    await b.start();
    const runs = { a: 0, b: 0 };
    const errors: unknown[] = [];
    let fail = true;
    let active = 0;
    let maxActive = 0;
    a.repeat(5, async () => {
      runs.a++;
      if (fail) throw new Error('down');
      maxActive = Math.max(maxActive, ++active);
      await new Promise((r) => setTimeout(r, 30));
      active--;
    }, (e) => errors.push(e));
    b.repeat(5, async () => void runs.b++, (e) => errors.push(e));
    await expect.poll(() => runs.a, { timeout: 5000 }).toBeGreaterThan(5);
    expect(errors).toHaveLength(1);
    fail = false;
    const before = runs.a;
    await expect.poll(() => runs.a - before, { timeout: 5000 }).toBeGreaterThan(3);
    // Runs take 30 ms and the timer ticks every 5 ms: they never overlapped.
    expect(maxActive).toBe(1);
    expect(runs.b).toBe(0);
    await Promise.all([a.stop(), b.stop()]);
  });
});
