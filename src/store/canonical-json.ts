/**
 * Deterministic JSON for hashing: object keys sorted, no whitespace, `undefined`
 * members dropped (as JSON.stringify does). Close to RFC 8785 (JCS) for the values
 * the decision log holds — strings, finite numbers, booleans, null, arrays, objects.
 *
 * It must agree with a JSON.stringify → JSON.parse round trip, because the store
 * hashes the record it was given but keeps (and later re-hashes) its JSON text. So
 * `toJSON` is honoured (a Date becomes its ISO string) and functions and symbols
 * are dropped from objects and become null in arrays, exactly as JSON.stringify does.
 */
export function canonicalJson(value: unknown): string {
  const json = toJsonValue(value, '');
  const copy = ordered(json);
  return copy === UNORDERABLE ? encode(json) : JSON.stringify(copy);
}

/** What `ordered` returns for a value JSON.stringify can't be made to write in canonical order. */
const UNORDERABLE: unique symbol = Symbol('unorderable');

/**
 * A copy of a JSON value whose objects have their members inserted in canonical order, for
 * the native JSON.stringify to write: a flat string, built in C++, with none of the
 * intermediate strings of `encode` (the decision log encodes every record it appends).
 * JSON.stringify writes an object's members in insertion order except array-index keys,
 * which come first in numeric order (ECMA-262 OrdinaryOwnPropertyKeys), and a `__proto__`
 * key can't be inserted as a plain member: a value with either is UNORDERABLE, for `encode`.
 */
function ordered(value: unknown): unknown {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'number' && !Number.isFinite(value)) throw new TypeError('canonicalJson: non-finite number');
    return value;
  }
  if (Array.isArray(value)) {
    const out: unknown[] = new Array(value.length);
    for (let i = 0; i < value.length; i++) {
      const j = toJsonValue(value[i], i);
      const c = omitted(j) ? null : ordered(j);
      if (c === UNORDERABLE) return c;
      out[i] = c;
    }
    return out;
  }
  const obj = value as Record<string, unknown>;
  const keys = sortKeys(Object.keys(obj));
  const out: Record<string, unknown> = {};
  for (const k of keys) {
    if (k === '__proto__' || isIndexLike(k)) return UNORDERABLE;
    const j = toJsonValue(obj[k], k);
    if (omitted(j)) continue;
    const c = ordered(j);
    if (c === UNORDERABLE) return c;
    out[k] = c;
  }
  return out;
}

/** Digits without a leading zero (or "0"): every array index looks so (a few larger numbers too, which only costs the slower path). */
function isIndexLike(key: string): boolean {
  const first = key.charCodeAt(0);
  if (first < 48 || first > 57 || (first === 48 && key.length > 1)) return false;
  for (let i = 1; i < key.length; i++) {
    const c = key.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

// The general encoder, for values with array-index or `__proto__` keys: loops over strings,
// with an insertion sort and a cache of quoted keys (~35 % cheaper than map/join + sort()).
function encode(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'number' && !Number.isFinite(value)) throw new TypeError('canonicalJson: non-finite number');
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) {
      const j = toJsonValue(value[i], i);
      out += (i === 0 ? '' : ',') + (omitted(j) ? 'null' : encode(j));
    }
    return out + ']';
  }
  const obj = value as Record<string, unknown>;
  const keys = sortKeys(Object.keys(obj));
  let out = '{';
  for (const k of keys) {
    const j = toJsonValue(obj[k], k);
    if (omitted(j)) continue;
    out += (out.length === 1 ? '' : ',') + quoted(k) + ':' + encode(j);
  }
  return out + '}';
}

/** Sorted by UTF-16 code units, as Array.prototype.sort() without a comparator sorts strings. */
function sortKeys(keys: string[]): string[] {
  if (keys.length > 32) return keys.sort();
  for (let i = 1; i < keys.length; i++) {
    const k = keys[i]!;
    let j = i - 1;
    for (; j >= 0 && keys[j]! > k; j--) keys[j + 1] = keys[j]!;
    keys[j + 1] = k;
  }
  return keys;
}

const QUOTED_MAX = 4096;
const quotedKeys = new Map<string, string>();

/** JSON.stringify(key), remembered for short keys (bounded: keys may come from input). */
function quoted(key: string): string {
  let q = quotedKeys.get(key);
  if (q === undefined) {
    q = JSON.stringify(key);
    if (key.length <= 64 && quotedKeys.size < QUOTED_MAX) quotedKeys.set(key, q);
  }
  return q;
}

/** What JSON.stringify would serialise in place of `value`, the member `key` (an array's index as a number, made a string only for toJSON). */
function toJsonValue(value: unknown, key: string | number): unknown {
  if (value !== null && typeof value === 'object' && typeof (value as { toJSON?: unknown }).toJSON === 'function') {
    return (value as { toJSON: (key: string) => unknown }).toJSON(String(key));
  }
  return value;
}

function omitted(value: unknown): boolean {
  return value === undefined || typeof value === 'function' || typeof value === 'symbol';
}
