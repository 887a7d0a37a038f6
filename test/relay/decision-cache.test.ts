import { describe, expect, it } from 'vitest';
import { DecisionCache } from '../../src/relay/decision-cache.js';
import type { Decision } from '../../src/policy/types.js';

const decision = (revision: string, d: 'allow' | 'deny' = 'allow'): Decision => ({ decision: d, determining: [], errors: [], reason: `${d} ${revision}`, revision });

describe('DecisionCache', () => {
  it('answers within its ttl, for the same policy revision and the same basis object only', () => {
    const cache = new DecisionCache(5_000);
    const creator = { email: 'dev@acme.test' };
    cache.set('k', decision('r1'), 1_000, creator);
    expect(cache.get('k', 'r1', 1_000, creator)?.reason).toBe('allow r1');
    expect(cache.get('k', 'r1', 4_999, creator)).toBeDefined();
    expect(cache.get('k', 'r2', 1_001, creator)).toBeUndefined(); // a reload
    cache.set('k', decision('r1'), 1_000, creator);
    expect(cache.get('k', 'r1', 1_001, { email: 'dev@acme.test' })).toBeUndefined(); // the record changed (another object)
    cache.set('k', decision('r1'), 1_000, creator);
    expect(cache.get('k', 'r1', 6_000, creator)).toBeUndefined(); // expired
    expect(cache.get('other', 'r1', 1_000, creator)).toBeUndefined();
  });

  it('an entry that stopped answering is gone, not revived by a later matching lookup', () => {
    const cache = new DecisionCache(5_000);
    cache.set('k', decision('r1'), 1_000);
    expect(cache.get('k', 'r2', 1_001)).toBeUndefined();
    expect(cache.get('k', 'r1', 1_002)).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it('with a ttl of 0 it keeps nothing', () => {
    const cache = new DecisionCache(0);
    cache.set('k', decision('r1'), 1_000);
    expect(cache.get('k', 'r1', 1_000)).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it('never holds more than its bound, however many new keys come (a new path on every request)', () => {
    const cache = new DecisionCache(60_000, 100);
    for (let i = 0; i < 10_000; i++) {
      cache.set(`path-${i}`, decision('r1'), 1_000);
      expect(cache.size).toBeLessThanOrEqual(100);
    }
    // The newest keys answer; the oldest were dropped.
    expect(cache.get('path-9999', 'r1', 1_000)).toBeDefined();
    expect(cache.get('path-9950', 'r1', 1_000)).toBeDefined();
    expect(cache.get('path-0', 'r1', 1_000)).toBeUndefined();
  });

  it('a key in use survives the churn of new keys; one not used again is dropped', () => {
    const cache = new DecisionCache(60_000, 100);
    cache.set('hot', decision('r1'), 1_000);
    cache.set('cold', decision('r1'), 1_000);
    for (let i = 0; i < 1_000; i++) {
      cache.set(`path-${i}`, decision('r1'), 1_000);
      if (i % 20 === 0) expect(cache.get('hot', 'r1', 1_000)).toBeDefined();
    }
    expect(cache.get('hot', 'r1', 1_000)).toBeDefined();
    expect(cache.get('cold', 'r1', 1_000)).toBeUndefined();
    expect(cache.size).toBeLessThanOrEqual(100);
  });

  it('setting a key again replaces its entry (one entry per key)', () => {
    const cache = new DecisionCache(60_000, 10);
    for (let i = 0; i < 6; i++) cache.set(`k${i}`, decision('r1'), 1_000); // k0..k4 rotated to the previous generation
    cache.set('k0', decision('r2', 'deny'), 1_000);
    expect(cache.get('k0', 'r2', 1_000)?.decision).toBe('deny');
    expect(cache.size).toBe(6);
  });
});
