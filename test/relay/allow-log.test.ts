import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { DecisionEntry } from '../../src/store/records/decisions.js';
import { type AllowedRequest, AllowLog } from '../../src/relay/allow-log.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';

const request: AllowedRequest = {
  principal: 'Job::"j1"',
  resource: 'Upstream::"api"',
  upstream: 'api',
  method: 'GET',
  token: 'jti-1',
  policies: [{ id: 'allow-api' }],
  reason: 'allowed by allow-api',
  revision: 'r1',
  context: {},
};

/** Requests counted by the log's entries: the sum of `context.requests`. */
async function logged(store: SqliteStore): Promise<{ requests: number; recovered: number }> {
  const entries: DecisionEntry[] = await store.decisions.read(0, 1000);
  const counts = entries.map((e) => ({ n: Number(e.record.context?.requests ?? 0), recovered: e.record.context?.recovered === true }));
  return { requests: counts.reduce((a, c) => a + c.n, 0), recovered: counts.filter((c) => c.recovered).length };
}

describe('relay AllowLog durability', () => {
  let dir: string;
  let store: SqliteStore;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'port-allow-'));
    store = SqliteStore.open(join(dir, 'port.db'));
  });
  afterEach(async () => {
    await store.close().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });

  it('a process whose saves failed for longer than the stale bound never recovers (and double-counts) its own rows', async () => {
    let failing = false;
    const errors: string[] = [];
    const log = new AllowLog({
      store: {
        allowCounts: {
          save: (...a) => (failing ? Promise.reject(new Error('disk is full')) : store.allowCounts.save(...a)),
          commitWindow: (...a) => store.allowCounts.commitWindow(...a),
          recover: (...a) => store.allowCounts.recover(...a),
        },
      },
      windowSeconds: 3600,
      syncMs: 10,
      onError: (_err, msg) => errors.push(msg),
    });
    for (let i = 0; i < 5; i++) log.count(request);
    await log.sync();
    failing = true;
    for (let i = 0; i < 7; i++) log.count(request);
    // Well past 5 syncs without a save: the rows look like a dead process's, but they are ours.
    await sleep(150);
    failing = false;
    await log.close();
    expect(errors).toContain('relay allow counts could not be saved');
    expect(await logged(store)).toEqual({ requests: 12, recovered: 0 });
  });

  it("another process's stale rows (a crash) are recovered once, marked recovered", async () => {
    const dead = new AllowLog({ store, windowSeconds: 3600, syncMs: 10, onError: () => undefined });
    for (let i = 0; i < 4; i++) dead.count(request);
    await dead.sync();
    // The process dies: its timers stop, nothing else is written.
    (dead as unknown as { timers: NodeJS.Timeout[] }).timers.forEach(clearInterval);
    await sleep(80);
    const live = new AllowLog({ store, windowSeconds: 3600, syncMs: 10, onError: () => undefined });
    await sleep(120);
    await live.close();
    expect(await logged(store)).toEqual({ requests: 4, recovered: 1 });
  });
});
