import { describe, expect, it } from 'vitest';
import type { NewWebhookWork, WebhookWorkRecord, WebhookWorkStore } from '../../src/store/repositories/webhook-work.js';

/**
 * What every WebhookWorkStore must do, whatever its backend: `open` gives two handles on
 * one store (two Port processes on one SQLite file, or two replicas' pools on one
 * database). Times are explicit (ms since the epoch), so a lease lapses exactly when a
 * test says; nothing here depends on how fast anything runs.
 */
export function describeWebhookWorkContract(
  name: string,
  open: () => Promise<{ a: WebhookWorkStore; b: WebhookWorkStore; cleanup: () => Promise<void> }>,
): void {
  describe(`WebhookWorkStore contract: ${name}`, () => {
    const T = 1_800_000_000_000;
    const MINUTE = 60_000;
    const DAY = 86_400_000;
    const PAYLOAD = JSON.stringify({ build: { number: 7, state: 'blocked' } });
    const work = (key: string, extra: Partial<NewWebhookWork> = {}): NewWebhookWork => ({ key, event: 'build.finished', payload: PAYLOAD, createdAt: T - 5, ...extra });
    const withStores = (fn: (a: WebhookWorkStore, b: WebhookWorkStore) => Promise<void>) => async () => {
      const { a, b, cleanup } = await open();
      try {
        await fn(a, b);
      } finally {
        await cleanup();
      }
    };
    /** Records `key` and hands it back at once, due at `dueAt` (a failed first attempt). */
    const due = async (s: WebhookWorkStore, key: string, dueAt: number, createdAt = T - 5) => {
      expect((await s.claim(work(key, { createdAt }), 'recorder', T, T + MINUTE)).outcome).toBe('claimed');
      expect(await s.release(key, 'recorder', { nextAttemptAt: dueAt, lastError: 'Buildkite answered 503', now: T })).toBe(true);
    };

    it(
      'a new key is recorded pending and leased to its claimer; the other replica sees it and is told busy while the lease holds',
      withStores(async (a, b) => {
        const claimed = await a.claim(work('k1'), 'port-a', T, T + MINUTE);
        const expected: WebhookWorkRecord = {
          key: 'k1',
          event: 'build.finished',
          payload: PAYLOAD,
          createdAt: T - 5,
          status: 'pending',
          attempts: 0,
          nextAttemptAt: T,
          leaseOwner: 'port-a',
          leaseUntil: T + MINUTE,
          lastError: null,
          updatedAt: T,
          expiresAt: null,
        };
        expect(claimed).toEqual({ outcome: 'claimed', fresh: true, work: expected });
        expect(await b.get('k1')).toEqual(expected);
        expect(await b.claim(work('k1'), 'port-b', T + MINUTE - 1, T + 2 * MINUTE)).toEqual({ outcome: 'busy' });
        expect(await b.get('k1')).toEqual(expected);
        expect(await b.get('unknown')).toBeUndefined();
      }),
    );

    it(
      'a lapsed lease is taken over by the next claim, keeping the work as first recorded; the old holder can then neither renew nor release it',
      withStores(async (a, b) => {
        await a.claim(work('k2'), 'port-a', T, T + 1000);
        // The lease lapses at leaseUntil itself.
        const again = await b.claim(work('k2', { payload: '{"other":true}', createdAt: T + 999 }), 'port-b', T + 1000, T + MINUTE);
        expect(again).toEqual({
          outcome: 'claimed',
          fresh: false,
          work: expect.objectContaining({ payload: PAYLOAD, createdAt: T - 5, attempts: 0, nextAttemptAt: T, leaseOwner: 'port-b', leaseUntil: T + MINUTE, updatedAt: T + 1000 }),
        });
        expect(await a.renew('k2', 'port-a', T + 1001, T + 2 * MINUTE)).toBe(false);
        expect(await a.release('k2', 'port-a', { nextAttemptAt: T, lastError: 'late', now: T + 1001 })).toBe(false);
        expect(await a.get('k2')).toMatchObject({ leaseOwner: 'port-b', leaseUntil: T + MINUTE, attempts: 0, lastError: null });
      }),
    );

    it(
      'the holder renews its lease while it holds it; not once it lapsed, and no one else can',
      withStores(async (a, b) => {
        await a.claim(work('k3'), 'port-a', T, T + 1000);
        expect(await b.renew('k3', 'port-b', T + 10, T + 5000)).toBe(false);
        expect(await a.renew('k3', 'port-a', T + 500, T + 2000)).toBe(true);
        expect(await b.get('k3')).toMatchObject({ leaseOwner: 'port-a', leaseUntil: T + 2000, updatedAt: T + 500 });
        // Renewed past the first lease's end: still busy for the other replica.
        expect(await b.claim(work('k3'), 'port-b', T + 1500, T + 9000)).toEqual({ outcome: 'busy' });
        expect(await a.renew('k3', 'port-a', T + 2000, T + 3000)).toBe(false);
        expect(await a.get('k3')).toMatchObject({ leaseUntil: T + 2000 });
        expect(await a.renew('unknown', 'port-a', T, T + 1000)).toBe(false);
      }),
    );

    it(
      'release hands the work back (one attempt more, due at nextAttemptAt, its error kept, no lease); only the holder can, once',
      withStores(async (a, b) => {
        await a.claim(work('k4'), 'port-a', T, T + MINUTE);
        expect(await b.release('k4', 'port-b', { nextAttemptAt: T + 5000, lastError: 'not mine', now: T + 1 })).toBe(false);
        expect(await a.release('k4', 'port-a', { nextAttemptAt: T + 5000, lastError: 'Buildkite answered 503', now: T + 2 })).toBe(true);
        expect(await b.get('k4')).toMatchObject({
          status: 'pending',
          attempts: 1,
          nextAttemptAt: T + 5000,
          lastError: 'Buildkite answered 503',
          leaseOwner: null,
          leaseUntil: 0,
          updatedAt: T + 2,
        });
        expect(await a.release('k4', 'port-a', { nextAttemptAt: T + 6000, lastError: 'twice', now: T + 3 })).toBe(false);
        // A re-sent delivery takes it at once, before it is due: its lease is free.
        const resent = await b.claim(work('k4'), 'port-b', T + 3, T + MINUTE);
        expect(resent).toMatchObject({ outcome: 'claimed', fresh: false, work: { attempts: 1, lastError: 'Buildkite answered 503', leaseOwner: 'port-b' } });
        expect(await b.release('k4', 'port-b', { nextAttemptAt: T + 9000, lastError: 'again', now: T + 4 })).toBe(true);
        expect(await a.get('k4')).toMatchObject({ attempts: 2, nextAttemptAt: T + 9000, lastError: 'again' });
      }),
    );

    it(
      'finished work is the dedupe key until keepUntil, then a claim is new work from scratch',
      withStores(async (a, b) => {
        await a.claim(work('k5'), 'port-a', T, T + 1000);
        await a.release('k5', 'port-a', { nextAttemptAt: T + 100, lastError: 'first try failed', now: T + 1 });
        await b.claim(work('k5'), 'port-b', T + 200, T + MINUTE);
        expect(await a.finish('k5', 'done', T + 300, T + DAY)).toBe(true);
        expect(await b.get('k5')).toMatchObject({ status: 'done', attempts: 1, leaseOwner: null, leaseUntil: 0, updatedAt: T + 300, expiresAt: T + DAY });
        expect(await b.finish('k5', 'dropped', T + 301, T + 2 * DAY)).toBe(false);
        expect(await b.release('k5', 'port-b', { nextAttemptAt: T, lastError: 'late', now: T + 302 })).toBe(false);
        expect(await b.renew('k5', 'port-b', T + 302, T + MINUTE)).toBe(false);
        expect(await a.claim(work('k5'), 'port-a', T + DAY - 1, T + DAY + MINUTE)).toEqual({ outcome: 'finished', status: 'done' });
        expect(await a.claimDue('port-a', T + DAY - 1, T + DAY + MINUTE, 10)).toEqual([]);

        const later = await b.claim(work('k5', { payload: '{"n":2}', createdAt: T + DAY }), 'port-b', T + DAY, T + DAY + MINUTE);
        expect(later).toEqual({
          outcome: 'claimed',
          fresh: true,
          work: {
            key: 'k5',
            event: 'build.finished',
            payload: '{"n":2}',
            createdAt: T + DAY,
            status: 'pending',
            attempts: 0,
            nextAttemptAt: T + DAY,
            leaseOwner: 'port-b',
            leaseUntil: T + DAY + MINUTE,
            lastError: null,
            updatedAt: T + DAY,
            expiresAt: null,
          },
        });

        // Dropped work is a dedupe key alike; finish needs no lease (a moot item is dropped by whoever finds it so).
        await a.claim(work('k6'), 'port-a', T, T + 1000);
        expect(await b.finish('k6', 'dropped', T + 10, T + DAY)).toBe(true);
        expect(await a.claim(work('k6'), 'port-a', T + 20, T + MINUTE)).toEqual({ outcome: 'finished', status: 'dropped' });
        expect(await a.finish('unknown', 'done', T, T + DAY)).toBe(false);
      }),
    );

    it(
      'claimDue leases pending rows that are due and free, soonest first, at most `limit`, and none twice while leased',
      withStores(async (a, b) => {
        await due(a, 'd1', T + 100);
        await due(b, 'd2', T + 50);
        await due(a, 'd3', T + 1000);
        await due(b, 'd6', T + 300);
        await a.claim(work('d4'), 'port-held', T, T + MINUTE); // due (next attempt T) but leased
        await a.claim(work('d5'), 'port-a', T, T + MINUTE);
        await a.finish('d5', 'done', T, T + DAY);

        const first = await a.claimDue('port-a', T + 500, T + 10_000, 2);
        expect(first.map((w) => w.key)).toEqual(['d2', 'd1']);
        for (const w of first) {
          expect(w).toMatchObject({ status: 'pending', leaseOwner: 'port-a', leaseUntil: T + 10_000, updatedAt: T + 500, attempts: 1, lastError: 'Buildkite answered 503' });
          expect(await b.get(w.key)).toEqual(w);
        }
        expect((await b.claimDue('port-b', T + 500, T + 10_000, 10)).map((w) => w.key)).toEqual(['d6']);
        expect(await a.claimDue('port-a', T + 500, T + 10_000, 10)).toEqual([]);
        // d2, d1, d6 lapse at T+10s; d3 is due by then; d4 is still held.
        const lapsed = await b.claimDue('port-b', T + 10_000, T + 2 * MINUTE, 10);
        expect(lapsed.map((w) => [w.key, w.nextAttemptAt])).toEqual([
          ['d2', T + 50],
          ['d1', T + 100],
          ['d6', T + 300],
          ['d3', T + 1000],
        ]);
        expect(lapsed.every((w) => w.leaseOwner === 'port-b')).toBe(true);
        expect(await a.get('d4')).toMatchObject({ leaseOwner: 'port-held', leaseUntil: T + MINUTE });
        expect(await a.claimDue('port-a', T + MINUTE, T + 3 * MINUTE, 10)).toMatchObject([{ key: 'd4', leaseOwner: 'port-a' }]);
      }),
    );

    it(
      'list filters by status in the order work was received; delete forgets a row, so a re-send is new work',
      withStores(async (a, b) => {
        await a.claim(work('l3', { createdAt: T - 1 }), 'port-a', T, T + MINUTE);
        await b.claim(work('l1', { createdAt: T - 3 }), 'port-b', T, T + MINUTE);
        await a.claim(work('l2', { createdAt: T - 2 }), 'port-a', T, T + MINUTE);
        await b.claim(work('l4', { createdAt: T }), 'port-b', T, T + MINUTE);
        await a.finish('l2', 'done', T + 1, T + DAY);
        await b.finish('l4', 'dropped', T + 1, T + DAY);
        expect((await b.list()).map((w) => w.key)).toEqual(['l1', 'l2', 'l3', 'l4']);
        expect((await b.list('pending')).map((w) => w.key)).toEqual(['l1', 'l3']);
        expect((await a.list('done')).map((w) => w.key)).toEqual(['l2']);
        expect((await a.list('dropped')).map((w) => w.key)).toEqual(['l4']);
        expect(await a.list()).toEqual(await b.list());

        await b.delete('l3');
        await b.delete('unknown');
        expect(await a.get('l3')).toBeUndefined();
        expect((await a.list('pending')).map((w) => w.key)).toEqual(['l1']);
        expect(await a.claim(work('l3'), 'port-a', T + 2, T + MINUTE)).toMatchObject({ outcome: 'claimed', fresh: true });
        await a.delete('l2');
        expect(await b.claim(work('l2'), 'port-b', T + 2, T + MINUTE)).toMatchObject({ outcome: 'claimed', fresh: true });
      }),
    );

    it(
      'many replicas racing to claim one new key: exactly one gets it, the others are told busy; likewise once its lease lapsed',
      withStores(async (a, b) => {
        const race = (now: number) =>
          Promise.all(Array.from({ length: 16 }, (_, i) => (i % 2 ? a : b).claim(work('race'), `port-${i}`, now, now + MINUTE).then((c) => ({ owner: `port-${i}`, c }))));
        const first = await race(T);
        const winners = first.filter((r) => r.c.outcome === 'claimed');
        expect(winners).toHaveLength(1);
        expect(winners[0]!.c).toMatchObject({ outcome: 'claimed', fresh: true });
        expect(first.filter((r) => r.c.outcome === 'busy')).toHaveLength(15);
        expect(await a.get('race')).toMatchObject({ leaseOwner: winners[0]!.owner });

        const second = await race(T + MINUTE);
        const takers = second.filter((r) => r.c.outcome === 'claimed');
        expect(takers).toHaveLength(1);
        expect(takers[0]!.c).toMatchObject({ outcome: 'claimed', fresh: false });
        expect(await b.get('race')).toMatchObject({ leaseOwner: takers[0]!.owner, leaseUntil: T + 2 * MINUTE });
      }),
    );

    it(
      'many replicas racing claimDue over many due rows: each row goes to exactly one owner, and all of them are taken',
      withStores(async (a, b) => {
        const keys = Array.from({ length: 40 }, (_, i) => `due-${String(i).padStart(2, '0')}`);
        for (const [i, key] of keys.entries()) await due(i % 2 ? a : b, key, T + i);
        const got = new Map<string, string[]>();
        const worker = async (s: WebhookWorkStore, owner: string) => {
          for (;;) {
            const claimed = await s.claimDue(owner, T + MINUTE, T + 2 * MINUTE, 3);
            if (claimed.length === 0) return;
            for (const w of claimed) {
              expect(w.leaseOwner).toBe(owner);
              got.set(w.key, [...(got.get(w.key) ?? []), owner]);
            }
          }
        };
        await Promise.all(Array.from({ length: 8 }, (_, i) => worker(i % 2 ? a : b, `port-${i}`)));
        expect([...got.keys()].sort()).toEqual(keys);
        for (const [key, owners] of got) {
          expect(owners).toHaveLength(1);
          expect(await a.get(key)).toMatchObject({ leaseOwner: owners[0], leaseUntil: T + 2 * MINUTE });
        }
        expect(await b.claimDue('port-late', T + MINUTE, T + 2 * MINUTE, 100)).toEqual([]);
      }),
    );

    it(
      'a claim (a re-send) and a claimDue (the reconciler) racing for one lapsed row on two replicas: exactly one gets it',
      withStores(async (a, b) => {
        for (let i = 0; i < 8; i++) {
          const key = `both-${i}`;
          await due(a, key, T);
          const [claim, dueRows] = await Promise.all([a.claim(work(key), 'port-a', T + 1, T + MINUTE), b.claimDue('port-b', T + 1, T + MINUTE, 10)]);
          const byClaim = claim.outcome === 'claimed';
          const byDue = dueRows.some((w) => w.key === key);
          expect([byClaim, byDue].filter(Boolean)).toHaveLength(1);
          expect(await b.get(key)).toMatchObject({ leaseOwner: byClaim ? 'port-a' : 'port-b' });
          if (!byClaim) expect(claim).toEqual({ outcome: 'busy' });
          await a.finish(key, 'done', T + 2, T + DAY);
        }
      }),
    );
  });
}
