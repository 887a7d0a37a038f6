import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { canonicalJson } from '../../src/store/canonical-json.js';
import { entryHash, entryHashOfCanonical, GENESIS_HASH } from '../../src/store/hash-chain.js';
import { DecisionLog } from '../../src/audit/decision-log.js';
import { verifyAuditLog } from '../../src/audit/verify.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { sampleRecord, tempDir } from './helpers.js';

describe('canonicalJson', () => {
  it('sorts keys and drops undefined members', () => {
    expect(canonicalJson({ b: 1, a: [true, null, undefined], c: undefined, d: { z: 'x', y: 2 } })).toBe('{"a":[true,null,null],"b":1,"d":{"y":2,"z":"x"}}');
  });

  it('agrees with a JSON.stringify → JSON.parse round trip (what the store keeps)', () => {
    const value = { when: new Date(0), fn: () => 1, list: [undefined, () => 1, new Date(1)], nested: { toJSON: () => 'x' } };
    expect(canonicalJson(value)).toBe(canonicalJson(JSON.parse(JSON.stringify(value))));
    expect(canonicalJson(value)).toBe('{"list":[null,null,"1970-01-01T00:00:00.001Z"],"nested":"x","when":"1970-01-01T00:00:00.000Z"}');
  });

  it('matches a plain sort-and-join reference over generated values (key order by UTF-16 code units, repeated and unusual keys)', () => {
    // The reference: keys sorted by Array.prototype.sort(), members joined — the definition the fast encoder must keep.
    const reference = (v: unknown): string => {
      if (v !== null && typeof v === 'object' && typeof (v as { toJSON?: unknown }).toJSON === 'function') v = (v as { toJSON: () => unknown }).toJSON();
      if (v === null || typeof v !== 'object') return JSON.stringify(v);
      if (Array.isArray(v)) return `[${v.map((x) => (x === undefined || typeof x === 'function' ? 'null' : reference(x))).join(',')}]`;
      const o = v as Record<string, unknown>;
      return `{${Object.keys(o)
        .sort()
        .filter((k) => o[k] !== undefined && typeof o[k] !== 'function')
        .map((k) => `${JSON.stringify(k)}:${reference(o[k])}`)
        .join(',')}}`;
    };
    let seed = 7;
    // xorshift32: deterministic, and its low bits vary (an LCG's don't).
    const rand = (n: number) => ((seed ^= seed << 13), (seed ^= seed >>> 17), (seed ^= seed << 5), (seed >>> 0) % n);
    // With array-index keys ('10', '9', '0') values take the general encoder; without them, JSON.stringify of an ordered copy.
    const withIndexKeys = ['a', 'b', 'B', '10', '9', '0', '', ' ', '!x', 'é', 'Z', '\ud83d\ude00', '\ud800', 'a\u0000b', '__proto__x', 'job_id', 'k'.repeat(70), '"q"', 'aa', 'a_'];
    const withoutIndexKeys = withIndexKeys.filter((k) => !/^\d+$/.test(k)).concat(['01', '1a', '-1', '1.5']);
    let keyPool = withIndexKeys;
    const gen = (depth: number): unknown => {
      const t = rand(depth > 3 ? 5 : 8);
      if (t === 0) return rand(1000) - 500;
      if (t === 1) return `s${rand(50)}\u2028"\\`;
      if (t === 2) return rand(2) === 0;
      if (t === 3) return null;
      if (t === 4) return rand(3) === 0 ? undefined : 1.5e-7 * rand(9);
      if (t === 5) return Array.from({ length: rand(5) }, () => gen(depth + 1));
      if (t === 6) return new Date(rand(1e9));
      const o: Record<string, unknown> = {};
      for (let i = rand(40); i > 0; i--) o[keyPool[rand(keyPool.length)]! + (rand(4) === 0 ? String(rand(40)) : '')] = gen(depth + 1);
      return o;
    };
    for (const pool of [withIndexKeys, withoutIndexKeys]) {
      keyPool = pool;
      for (let i = 0; i < 2000; i++) {
        const v = gen(0);
        expect(canonicalJson(v)).toBe(reference(v));
      }
    }
  });

  it('writes an own `__proto__` member (as JSON.parse makes one) in its place, and array-index keys in code-unit order', () => {
    const parsed = JSON.parse('{"b":1,"__proto__":{"x":[2]},"a":{"__proto__":null}}') as unknown;
    expect(canonicalJson(parsed)).toBe('{"__proto__":{"x":[2]},"a":{"__proto__":null},"b":1}');
    expect(canonicalJson({ b: { 9: 'nine', 10: 'ten', x: 1 }, a: [{ 2: 0, 1: 0 }] })).toBe('{"a":[{"1":0,"2":0}],"b":{"10":"ten","9":"nine","x":1}}');
  });

  it('the hash from a record\'s canonical text (what SQLite keeps) is the chain\'s entry hash', () => {
    for (let seq = 1; seq <= 3; seq++) {
      const r = { ...sampleRecord(seq), context: { z: [1, { b: 2, a: '\u2028' }], a: null, '10': 1, '9': 2 } };
      expect(entryHashOfCanonical(seq, GENESIS_HASH, canonicalJson(r))).toBe(entryHash(seq, GENESIS_HASH, r));
      expect(entryHashOfCanonical(seq, GENESIS_HASH, canonicalJson(r))).not.toBe(entryHash(seq + 1, GENESIS_HASH, r));
    }
    expect(() => entryHashOfCanonical(1.5, GENESIS_HASH, '{}')).toThrow(TypeError);
  });

  it('refuses non-finite numbers', () => {
    expect(() => canonicalJson({ n: Number.NaN })).toThrow(/non-finite/);
  });

  it('keeps a record with a Date in its context verifiable after storage', async () => {
    const tmp = tempDir();
    try {
      const store = SqliteStore.open(join(tmp.dir, 'port.db'));
      await new DecisionLog(store).record([{ ...sampleRecord(1), context: { checkedAt: new Date(0) } }]);
      const r = await verifyAuditLog(store, new Map());
      await store.close();
      expect(r).toMatchObject({ ok: true, entries: 1 });
    } finally {
      tmp.cleanup();
    }
  });
});
