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
  return encode(toJsonValue(value, ''));
}

// Written as loops over strings, with an insertion sort and a cache of quoted keys: the
// decision log hashes every record it appends, so this runs several times per exchange,
// on small objects whose keys repeat (measured ~35 % cheaper than map/join + sort()).
function encode(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'number' && !Number.isFinite(value)) throw new TypeError('canonicalJson: non-finite number');
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) {
      const j = toJsonValue(value[i], String(i));
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

/** What JSON.stringify would serialise in place of `value`. */
function toJsonValue(value: unknown, key: string): unknown {
  if (value !== null && typeof value === 'object' && typeof (value as { toJSON?: unknown }).toJSON === 'function') {
    return (value as { toJSON: (key: string) => unknown }).toJSON(key);
  }
  return value;
}

function omitted(value: unknown): boolean {
  return value === undefined || typeof value === 'function' || typeof value === 'symbol';
}
