import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { canonicalJson } from '../../src/store/canonical-json.js';
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
