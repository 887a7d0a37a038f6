import { describe, expect, it } from 'vitest';
import type { LeaseStore } from '../../src/store/repositories/leases.js';

/**
 * What every LeaseStore must do, whatever its backend: `open` gives two handles on one
 * store (two Port processes on one SQLite file, or two replicas' pools on one database).
 */
export function describeLeaseContract(name: string, open: () => Promise<{ a: LeaseStore; b: LeaseStore; cleanup: () => Promise<void> }>): void {
  describe(`LeaseStore contract: ${name}`, () => {
    const T = 1_800_000_000_000;
    const withStores = (fn: (a: LeaseStore, b: LeaseStore) => Promise<void>) => async () => {
      const { a, b, cleanup } = await open();
      try {
        await fn(a, b);
      } finally {
        await cleanup();
      }
    };

    it(
      'a free lease is taken; while it holds, another owner is refused and the holder can renew',
      withStores(async (a, b) => {
        expect(await a.holder('rotation', T)).toBeUndefined();
        expect(await a.acquire('rotation', 'port-a', T, 30_000)).toBe(true);
        expect(await b.holder('rotation', T + 1)).toEqual({ name: 'rotation', owner: 'port-a', until: T + 30_000 });
        expect(await b.acquire('rotation', 'port-b', T + 29_999, 30_000)).toBe(false);
        expect(await a.acquire('rotation', 'port-a', T + 10_000, 30_000)).toBe(true);
        expect(await b.holder('rotation', T + 10_001)).toMatchObject({ owner: 'port-a', until: T + 40_000 });
        // Names are independent.
        expect(await b.acquire('sweep', 'port-b', T, 30_000)).toBe(true);
      }),
    );

    it(
      'a lapsed lease (its holder died) is taken over; the old holder then can no longer renew it',
      withStores(async (a, b) => {
        expect(await a.acquire('checkpoints', 'port-a', T, 30_000)).toBe(true);
        expect(await b.holder('checkpoints', T + 30_000)).toBeUndefined();
        expect(await b.acquire('checkpoints', 'port-b', T + 30_000, 30_000)).toBe(true);
        expect(await a.acquire('checkpoints', 'port-a', T + 31_000, 30_000)).toBe(false);
        expect(await a.holder('checkpoints', T + 31_000)).toMatchObject({ owner: 'port-b' });
      }),
    );

    it(
      'release frees it at once, and only its holder can release it',
      withStores(async (a, b) => {
        expect(await a.acquire('expiry', 'port-a', T, 30_000)).toBe(true);
        await b.release('expiry', 'port-b');
        expect(await b.acquire('expiry', 'port-b', T + 1, 30_000)).toBe(false);
        await a.release('expiry', 'port-a');
        expect(await b.acquire('expiry', 'port-b', T + 2, 30_000)).toBe(true);
      }),
    );

    it(
      'many owners racing for one free lease on two handles: exactly one wins',
      withStores(async (a, b) => {
        const tries = Array.from({ length: 16 }, (_, i) => (i % 2 ? a : b).acquire('race', `port-${i}`, T, 30_000));
        const won = (await Promise.all(tries)).map((ok, i) => (ok ? `port-${i}` : undefined)).filter(Boolean);
        expect(won).toHaveLength(1);
        expect(await a.holder('race', T + 1)).toMatchObject({ owner: won[0] });
      }),
    );
  });
}
