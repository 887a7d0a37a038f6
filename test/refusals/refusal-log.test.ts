import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { DecisionEntry, DecisionRecord } from '../../src/store/records/decisions.js';
import { RefusalLog, RefusalThrottledError } from '../../src/audit/refusal-log.js';
import { SourceRateLimiter } from '../../src/audit/source-rate-limit.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';

/**
 * RefusalLog against a real SQLite store, with an injected clock: the first refusal of
 * each kind per window in full, the rest one count per (kind, action, source), written
 * when the window closes (by the next refusal or its timer) and on close; bounded however
 * many sources; decisions about verified callers untouched.
 */
const WINDOW_S = 60;
const T0 = Date.UTC(2026, 0, 1, 12, 0, 0);

function refusal(check: string, source: string | undefined, action = 'exchange'): DecisionRecord {
  return {
    id: randomUUID(),
    time: new Date(T0).toISOString(),
    principal: null,
    action,
    resource: null,
    decision: 'deny',
    policies: [],
    reason: `The subject token was refused (${check}).`,
    context: { check, request_id: randomUUID(), ...(source !== undefined ? { remote_address: source } : {}) },
  };
}

function verifiedDenial(job: string): DecisionRecord {
  return { ...refusal('replayed', '10.0.0.1'), principal: `Port::Job::"${job}"` };
}

describe('RefusalLog', () => {
  let dir: string;
  let store: SqliteStore;
  let now: number;
  let errors: unknown[];
  const open = (opts: { limiter?: SourceRateLimiter; maxAggregates?: number; windowSeconds?: number } = {}) =>
    new RefusalLog({ windowSeconds: WINDOW_S, now: () => now, onError: (e) => errors.push(e), ...opts }, store);
  const all = async (): Promise<DecisionEntry[]> => store.decisions.read(0, 100_000);
  const aggregates = async () => (await all()).filter((e) => e.record.context.aggregated === true);

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'port-refusals-'));
    store = SqliteStore.open(join(dir, 'port.db'));
    now = T0;
    errors = [];
  });
  afterEach(async () => {
    await store.close().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });

  it('logs the first of each kind in full and counts the rest per source until close', async () => {
    const log = open();
    for (let i = 0; i < 100; i++) await log.record([refusal('bad_signature', i % 2 === 0 ? '10.0.0.1' : '10.0.0.2')]);
    for (let i = 0; i < 10; i++) await log.record([refusal('malformed', '10.0.0.1')]);
    await log.record([refusal('malformed', '10.0.0.1', 'assume')]);

    const logged = await all();
    expect(logged.map((e) => [e.record.context.check, e.record.action])).toEqual([
      ['bad_signature', 'exchange'],
      ['malformed', 'exchange'],
      ['malformed', 'assume'],
    ]);

    await log.close();
    const counts = (await aggregates()).map((e) => e.record.context);
    expect(counts).toHaveLength(3);
    expect(counts).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ check: 'bad_signature', remote_address: '10.0.0.1', refusals: 49, throttled: 0 }),
        expect.objectContaining({ check: 'bad_signature', remote_address: '10.0.0.2', refusals: 50, throttled: 0 }),
        expect.objectContaining({ check: 'malformed', remote_address: '10.0.0.1', refusals: 9, throttled: 0 }),
      ]),
    );
    for (const c of counts) expect(c).toMatchObject({ window_start: new Date(T0).toISOString(), window_end: new Date(T0).toISOString() });
    expect(errors).toEqual([]);
  });

  it('a new window writes the last one’s counts and logs the first of each kind in full again', async () => {
    const log = open();
    for (let i = 0; i < 5; i++) await log.record([refusal('expired', '10.0.0.1')]);
    now = T0 + WINDOW_S * 1000 + 1;
    await log.record([refusal('expired', '10.0.0.1')]);
    await log.flush();
    const records = (await all()).map((e) => e.record);
    expect(records.map((r) => [r.context.aggregated ?? false, r.context.refusals])).toEqual([
      [false, undefined],
      [true, 4],
      [false, undefined],
    ]);
    expect(records[1]!.context).toMatchObject({
      window_start: new Date(T0).toISOString(),
      window_end: new Date(T0 + WINDOW_S * 1000).toISOString(),
    });
    await log.close();
  });

  it('the window closes on its own timer when no further refusal comes', async () => {
    // The injected clock stands still; only the window's timer can close it.
    const log = open({ windowSeconds: 0.05 });
    await log.record([refusal('expired', '10.0.0.1')]);
    await log.record([refusal('expired', '10.0.0.1')]);
    expect(await aggregates()).toHaveLength(0);
    // Bounded wait: only "did not hang forever", not a timing assertion.
    for (let i = 0; i < 200 && (await aggregates()).length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect((await aggregates()).map((e) => e.record.context.refusals)).toEqual([1]);
    await log.close();
  });

  it('over the rate limit: RefusalThrottledError (429, Retry-After), nothing written but a count; other sources unaffected', async () => {
    const limiter = new SourceRateLimiter({ burst: 3, perMinute: 6, maxSources: 100 });
    const log = open({ limiter });
    for (let i = 0; i < 3; i++) await log.record([refusal('malformed', '10.0.0.1')]);
    const err = await log.record([refusal('malformed', '10.0.0.1')]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RefusalThrottledError);
    expect(err).toMatchObject({ status: 429, code: 'too_many_requests', retryAfterSeconds: 10 });
    expect((err as Error).message).toBe('Too many invalid tokens came from this address; retry after 10 s with a valid token.');
    // Another address has its own bucket.
    await expect(log.record([refusal('malformed', '10.0.0.2')])).resolves.toBeUndefined();
    // Ten seconds later one refusal has been earned back.
    now += 10_000;
    await expect(log.record([refusal('malformed', '10.0.0.1')])).resolves.toBeUndefined();
    await expect(log.record([refusal('malformed', '10.0.0.1')])).rejects.toBeInstanceOf(RefusalThrottledError);

    await log.close();
    const records = (await all()).map((e) => e.record.context);
    expect(records).toHaveLength(3);
    expect(records).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ check: 'malformed', remote_address: '10.0.0.1' }),
        expect.objectContaining({ aggregated: true, remote_address: '10.0.0.1', refusals: 3, throttled: 2 }),
        expect.objectContaining({ aggregated: true, remote_address: '10.0.0.2', refusals: 1, throttled: 0 }),
      ]),
    );
  });

  it('decisions about verified callers are logged one by one; refusals that are Port’s own failure are never throttled but still counted', async () => {
    const limiter = new SourceRateLimiter({ burst: 1, perMinute: 1, maxSources: 10 });
    const log = open({ limiter });
    await log.record([refusal('malformed', '10.0.0.1')]);
    await expect(log.record([refusal('malformed', '10.0.0.1')])).rejects.toBeInstanceOf(RefusalThrottledError);
    for (let i = 0; i < 4; i++) await log.record([verifiedDenial(`job-${i}`)]);
    // Buildkite's keys out of reach: anyone can provoke this (an unknown kid), so the
    // source over its limit is not throttled, yet only the first is logged in full.
    for (let i = 0; i < 50; i++) await log.record([refusal('jwks_unavailable', '10.0.0.1')]);
    let records = (await all()).map((e) => e.record);
    expect(records.map((r) => r.principal)).toEqual([null, 'Port::Job::"job-0"', 'Port::Job::"job-1"', 'Port::Job::"job-2"', 'Port::Job::"job-3"', null]);
    expect(records[5]!.context.check).toBe('jwks_unavailable');
    await log.close();
    records = (await all()).map((e) => e.record);
    expect(records.map((r) => r.context)).toEqual(
      expect.arrayContaining([expect.objectContaining({ aggregated: true, check: 'jwks_unavailable', refusals: 49, throttled: 0 })]),
    );
  });

  it('stays bounded however many sources: past maxAggregates the rest of the window shares one count per kind', async () => {
    const log = open({ maxAggregates: 5 });
    for (let i = 0; i < 1000; i++) await log.record([refusal('bad_signature', `10.0.${i >> 8}.${i & 255}`)]);
    await log.close();
    const counts = (await aggregates()).map((e) => e.record.context);
    expect(counts).toHaveLength(6);
    expect(counts.reduce((n, c) => n + (c.refusals as number), 0)).toBe(999);
    expect(counts.find((c) => c.remote_address === '*')).toMatchObject({ refusals: 999 - 5 });
  });

  it('a refusal without a remote address is counted as from an unknown source', async () => {
    const log = open();
    await log.record([refusal('malformed', undefined)]);
    await log.record([refusal('malformed', undefined)]);
    await log.close();
    const [agg] = await aggregates();
    expect(agg!.record.context).toMatchObject({ refusals: 1 });
    expect(agg!.record.context).not.toHaveProperty('remote_address');
  });
});

describe('SourceRateLimiter', () => {
  it('refills at its rate up to the burst, and a clock that goes back refills nothing', () => {
    const limiter = new SourceRateLimiter({ burst: 2, perMinute: 60, maxSources: 10 });
    expect(limiter.take('a', 0)).toEqual({ allowed: true });
    expect(limiter.take('a', 0)).toEqual({ allowed: true });
    expect(limiter.take('a', 0)).toEqual({ allowed: false, retryAfterSeconds: 1 });
    expect(limiter.take('a', 1000)).toEqual({ allowed: true });
    expect(limiter.take('a', 500)).toEqual({ allowed: false, retryAfterSeconds: 1 });
    // A long pause refills only up to the burst.
    expect(limiter.take('a', 3_600_000)).toEqual({ allowed: true });
    expect(limiter.take('a', 3_600_000)).toEqual({ allowed: true });
    expect(limiter.take('a', 3_600_000).allowed).toBe(false);
  });

  it('tracks at most maxSources, forgetting the least recently refused', () => {
    const limiter = new SourceRateLimiter({ burst: 1, perMinute: 1, maxSources: 100 });
    limiter.take('keep', 0);
    for (let i = 0; i < 10_000; i++) {
      limiter.take(`s${i}`, 0);
      if (i % 50 === 0) limiter.take('keep', 0);
    }
    expect(limiter.size).toBe(100);
    // Still remembered (recently refused): still over its limit.
    expect(limiter.take('keep', 0).allowed).toBe(false);
    // Forgotten long ago: a fresh bucket.
    expect(limiter.take('s0', 0).allowed).toBe(true);
  });

  it('refuses options that would never allow or never refill', () => {
    expect(() => new SourceRateLimiter({ burst: 0, perMinute: 1, maxSources: 1 })).toThrow(RangeError);
    expect(() => new SourceRateLimiter({ burst: 1, perMinute: 0, maxSources: 1 })).toThrow(RangeError);
    expect(() => new SourceRateLimiter({ burst: 1, perMinute: 1, maxSources: 0 })).toThrow(RangeError);
  });
});
