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

function encode(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'number' && !Number.isFinite(value)) throw new TypeError('canonicalJson: non-finite number');
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) {
    return `[${value.map((v, i) => {
      const j = toJsonValue(v, String(i));
      return omitted(j) ? 'null' : encode(j);
    }).join(',')}]`;
  }
  const obj = value as Record<string, unknown>;
  const members: string[] = [];
  for (const k of Object.keys(obj).sort()) {
    const j = toJsonValue(obj[k], k);
    if (!omitted(j)) members.push(`${JSON.stringify(k)}:${encode(j)}`);
  }
  return `{${members.join(',')}}`;
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
