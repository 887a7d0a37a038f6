import { describe, expect, it } from 'vitest';
import { decodeJsonPart, hasDuplicateMembers } from '../../src/identity/json-duplicates.js';

/**
 * A generated JSON text and whether some object in it names a member twice, known from how
 * it was written (not from the scanner under test): member names are written plainly or
 * with escapes (`\u0061`, `\"`, `\\`, `\/`), strings carry the scanner's delimiters, and
 * objects nest in arrays and objects.
 */
interface Generated {
  text: string;
  duplicate: boolean;
}

/** Deterministic PRNG (mulberry32), so a failure names a reproducible case. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const NAMES = ['a', 'b', 'a"b', 'c\\d', '{', '}', ',', ':', '[', 'é', '😀', 'x/y'];
const STRINGS = ['', 'plain', '{"a":1}', '[,]', 'quote " inside', 'back\\slash', 'ends with backslash\\', '\\"', 'é😀'];

/** One way of writing `s` as a JSON string: JSON.stringify, or every character escaped as \uXXXX, or `/` escaped. */
function writeString(s: string, rnd: () => number): string {
  const form = Math.floor(rnd() * 3);
  if (form === 0) return JSON.stringify(s);
  if (form === 1) return `"${escapeAll(s)}"`;
  return JSON.stringify(s).replaceAll('/', '\\/');
}

function escapeAll(s: string): string {
  let out = '';
  for (let i = 0; i < s.length; i++) out += `\\u${s.charCodeAt(i).toString(16).padStart(4, '0')}`;
  return out;
}

function generate(rnd: () => number, depth: number): Generated {
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rnd() * xs.length)]!;
  const r = rnd();
  if (depth <= 0 || r < 0.3) {
    const scalar = pick(['string', 'number', 'true', 'null'] as const);
    if (scalar === 'string') return { text: writeString(pick(STRINGS), rnd), duplicate: false };
    return { text: scalar === 'number' ? String(Math.floor(rnd() * 1e6) - 5e5) : scalar, duplicate: false };
  }
  if (r < 0.5) {
    const items = Array.from({ length: Math.floor(rnd() * 4) }, () => generate(rnd, depth - 1));
    return { text: `[${items.map((x) => x.text).join(', ')}]`, duplicate: items.some((x) => x.duplicate) };
  }
  const names = Array.from({ length: Math.floor(rnd() * 5) }, () => pick(NAMES));
  const values = names.map(() => generate(rnd, depth - 1));
  const members = names.map((n, i) => `${writeString(n, rnd)} : ${values[i]!.text}`);
  return {
    text: `{${members.join(' ,\n')}}`,
    duplicate: new Set(names).size < names.length || values.some((v) => v.duplicate),
  };
}

describe('hasDuplicateMembers', () => {
  it.each([
    ['{"a":1,"b":2}', false],
    ['{"a":1,"a":2}', true],
    ['{"a":1,"\\u0061":2}', true],
    ['{"a\\"":1,"a\\u0022":2}', true],
    ['{"a":{"a":1},"b":{"a":2}}', false],
    ['{"a":[{"b":1},{"b":2}]}', false],
    ['{"a":[{"b":1,"b":2}]}', true],
    ['[{"x":1},{"x":1}]', false],
    ['{"s":"\\\\","s":1}', true],
    ['{"s":"\\\\\\"}{","t":1}', false],
    ['{"k":"a,\\"k\\":1"}', false],
    ['{}', false],
    ['"{\\"a\\":1,\\"a\\":2}"', false],
  ])('%s → %s', (text, expected) => {
    JSON.parse(text); // the scanner assumes parsed JSON
    expect(hasDuplicateMembers(text)).toBe(expected);
  });

  it('agrees with how 5,000 generated texts were written', () => {
    const rnd = prng(0x5eed);
    let duplicates = 0;
    for (let n = 0; n < 5000; n++) {
      const g = generate(rnd, 4);
      JSON.parse(g.text);
      expect(hasDuplicateMembers(g.text), g.text).toBe(g.duplicate);
      if (g.duplicate) duplicates++;
    }
    // Both answers are exercised, each often.
    expect(duplicates).toBeGreaterThan(500);
    expect(duplicates).toBeLessThan(4500);
  });

  it('ends on text that is not JSON (an unterminated string) instead of scanning forever', () => {
    expect(hasDuplicateMembers('{"a":1,"b')).toBe(false);
    expect(hasDuplicateMembers('{"a":"x\\"')).toBe(false);
  });

  it('is what decodeJsonPart reports for a JWS part', () => {
    const part = (s: string) => Buffer.from(s).toString('base64url');
    expect(decodeJsonPart(part('{"alg":"RS256","alg":"none"}'))).toEqual({ problem: 'duplicate_member' });
    expect(decodeJsonPart(part('{"alg":"RS256","\\u0061lg":"none"}'))).toEqual({ problem: 'duplicate_member' });
    expect(decodeJsonPart(part('{"alg":"RS256","kid":"k"}'))).toEqual({ value: { alg: 'RS256', kid: 'k' } });
  });
});
