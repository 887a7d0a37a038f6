/**
 * What an exchange hands to its decision log keeps one hidden class from request to request.
 *
 * In Node 20's V8 an object literal that begins with a spread gets a map of its own
 * whenever a member follows the spread (src/merge-objects.ts). Each exchange's decision
 * contexts were such objects: every exchange made new maps, which V8 allocates in the old
 * generation, and those kept the exchange's records alive through young collections until a
 * major GC (BENCHMARKS.md measures what that did to the tail at half load).
 *
 * `%HaveSameMap` (V8's natives syntax, turned on for this test process) compares maps.
 */
import { setFlagsFromString } from 'node:v8';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mergeObjects } from '../../src/merge-objects.js';
import type { DecisionRecord } from '../../src/store/records/decisions.js';
import { startHarness, type Harness } from '../helpers/port-harness.js';

setFlagsFromString('--allow-natives-syntax');
// Compiled after the flag is set: the parser accepts `%` calls from here on.
const sameMap = new Function('a', 'b', 'return %HaveSameMap(a, b)') as (a: object, b: object) => boolean;

/** How many distinct maps `objects` have (each compared with one of every map seen so far). */
function mapCount(objects: object[]): number {
  const seen: object[] = [];
  for (const o of objects) if (!seen.some((s) => sameMap(s, o))) seen.push(o);
  return seen.length;
}

const source = () => ({ job: { id: 'j' }, subject_token: { kid: 'k' }, request_id: 'r' });

describe('mergeObjects', () => {
  it('the premise: in this V8 a literal that begins with a spread makes a map per object once a member follows', () => {
    const made = Array.from({ length: 200 }, (_, i) => ({ ...source(), port_token: i }));
    // If this fails, V8 reuses those maps now and mergeObjects could be a spread again.
    expect(mapCount(made)).toBeGreaterThan(100);
  });

  it('makes the same objects with one map', () => {
    const made = Array.from({ length: 200 }, (_, i) => mergeObjects(source(), { port_token: i }));
    expect(mapCount(made)).toBe(1);
    expect(made[7]).toEqual({ ...source(), port_token: 7 });
  });

  it('is a spread: later sources win, in insertion order, symbols copied, getters read once', () => {
    const sym = Symbol('s');
    let reads = 0;
    const withGetter = {
      get b() {
        reads++;
        return 'got';
      },
    };
    const out = mergeObjects({ a: 1, b: 1, [sym]: 'x' }, withGetter, { a: 2 });
    expect(out).toEqual({ a: 2, b: 'got', [sym]: 'x' });
    expect(Object.keys(out)).toEqual(['a', 'b']);
    expect(reads).toBe(1);
    // A getter is copied as its value, as a spread copies it.
    expect(Object.getOwnPropertyDescriptor(out, 'b')).toMatchObject({ value: 'got', writable: true });
  });

  it('defines an own "__proto__" key as a spread does, never setting the prototype', () => {
    const parsed = JSON.parse('{"__proto__": {"polluted": true}, "ok": 1}') as object;
    const out = mergeObjects({ a: 1 }, parsed) as Record<string, unknown>;
    expect(Object.getPrototypeOf(out)).toBe(Object.prototype);
    expect(Object.hasOwn(out, '__proto__')).toBe(true);
    expect((out as { polluted?: unknown }).polluted).toBeUndefined();
    expect(out).toEqual({ ...{ a: 1 }, ...parsed });
  });
});

describe('an exchange over HTTP', () => {
  let h: Harness;
  const logged: DecisionRecord[] = [];

  beforeAll(async () => {
    h = await startHarness();
    h.port.store.decisions.onSealed((head) => logged.push(head.record));
  }, 30_000);
  afterAll(() => h?.close());

  it('logs decision contexts of one map, exchange after exchange', async () => {
    for (let i = 0; i < 40; i++) {
      const job = h.sim.createJob({ pipelineSlug: 'deploy', branch: 'main' });
      const res = await h.exchange(await h.sim.mintToken(job, { audience: h.audience }), { scope: 'deploy-token' });
      expect(res.status).toBe(200);
    }
    const contexts = logged.filter((r) => r.action === 'assume').map((r) => r.context as object);
    expect(contexts).toHaveLength(40);
    // The first few run before V8's inline caches settle; from then on, one map.
    expect(mapCount(contexts.slice(10))).toBe(1);
  });
});
