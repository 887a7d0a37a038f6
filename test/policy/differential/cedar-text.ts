/**
 * Writing Cedar source text for generated policies: string literals, `like` patterns and
 * entity literals (https://docs.cedarpolicy.com/policies/syntax-operators.html#operator-like).
 * A pattern is kept as segments (literal text and `*` wildcards) so the request
 * generator can produce strings that match it, just miss it, or match it by another route.
 */
import type { Rng } from './rng.js';

export type PatternSegment = { kind: 'text'; text: string } | { kind: 'star' };
export type Pattern = readonly PatternSegment[];

/**
 * Escapes for a Cedar string literal (Cedar uses Rust's escapes: `\\`, `\"`, `\n`, `\t`,
 * `\r`, `\0`, `\u{…}`). `style` 'unicode' writes every non-ASCII character as `\u{…}`;
 * 'raw' keeps it as UTF-8 text — both must mean the same string.
 */
export function escapeChars(text: string, inPattern: boolean, style: 'raw' | 'unicode'): string {
  let out = '';
  for (const ch of text) {
    const cp = ch.codePointAt(0) as number;
    if (ch === '\\') out += '\\\\';
    else if (ch === '"') out += '\\"';
    else if (ch === '*' && inPattern) out += '\\*';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (cp < 0x20 || cp === 0x7f) out += `\\u{${cp.toString(16)}}`;
    else if (cp > 0x7e && style === 'unicode') out += `\\u{${cp.toString(16)}}`;
    else out += ch;
  }
  return out;
}

export function stringLiteral(text: string, style: 'raw' | 'unicode' = 'raw'): string {
  return `"${escapeChars(text, false, style)}"`;
}

export function patternLiteral(pattern: Pattern, style: 'raw' | 'unicode' = 'raw'): string {
  return `"${pattern.map((s) => (s.kind === 'star' ? '*' : escapeChars(s.text, true, style))).join('')}"`;
}

export function entityLiteral(type: string, id: string, style: 'raw' | 'unicode' = 'raw'): string {
  return `Port::${type}::${stringLiteral(id, style)}`;
}

/** A readable rendering for failure reports: `release/*` with literal stars as `\*`. */
export function showPattern(pattern: Pattern): string {
  return pattern.map((s) => (s.kind === 'star' ? '*' : s.text.replace(/\\/g, '\\\\').replace(/\*/g, '\\*'))).join('');
}

/** The pattern that matches exactly `text` (a `*` in it is literal). */
export function exact(text: string): Pattern {
  return text === '' ? [] : [{ kind: 'text', text }];
}

/**
 * A pattern derived from `base`: itself, a prefix/suffix/infix with wildcards, a pattern
 * with a wildcard in the middle, or one of the degenerate ones (`""`, `*`, `**`).
 */
export function patternFrom(base: string, rng: Rng): Pattern {
  const chars = [...base];
  const cut = (): number => rng.int(chars.length + 1);
  const text = (from: number, to?: number): PatternSegment[] => {
    const t = chars.slice(from, to).join('');
    return t === '' ? [] : [{ kind: 'text', text: t }];
  };
  const star: PatternSegment = { kind: 'star' };
  switch (rng.int(10)) {
    case 0:
      return exact(base);
    case 1:
    case 2:
      return [...text(0, cut()), star];
    case 3:
      return [star, ...text(cut())];
    case 4: {
      const a = cut();
      const b = a + rng.int(chars.length - a + 1);
      return [...text(0, a), star, ...text(b)];
    }
    case 5: {
      const a = cut();
      const b = a + rng.int(chars.length - a + 1);
      return [star, ...text(a, b), star];
    }
    case 6:
      return rng.pick<Pattern>([[], [star], [star, star], [star, { kind: 'text', text: '*' }, star], [{ kind: 'text', text: '\\' }, star]]);
    case 7: {
      // Several wildcards: every other character kept.
      const out: PatternSegment[] = [];
      chars.forEach((c, i) => out.push(i % 2 === 0 ? { kind: 'text', text: c } : star));
      return merge(out);
    }
    default:
      return [...text(0, cut()), star, ...text(cut())];
  }
}

/** Adjacent text segments joined (a pattern's meaning does not depend on it; its rendering is shorter). */
function merge(segments: PatternSegment[]): PatternSegment[] {
  const out: PatternSegment[] = [];
  for (const s of segments) {
    const last = out[out.length - 1];
    if (s.kind === 'text' && last?.kind === 'text') out[out.length - 1] = { kind: 'text', text: last.text + s.text };
    else out.push(s);
  }
  return out;
}

const FILLERS = ['', 'x', '/', 'ab/cd', '*', 'ü', '\\', '🚀', 'main', '-', '.', 'é', '\n', '?', '$'];

/** A string the pattern matches: each wildcard replaced by some filler. */
export function instantiate(pattern: Pattern, rng: Rng): string {
  return pattern.map((s) => (s.kind === 'text' ? s.text : rng.chance(0.3) ? '' : rng.pick(FILLERS) + (rng.chance(0.3) ? rng.pick(FILLERS) : ''))).join('');
}

/** A string close to one the pattern matches, which may or may not match: one character changed. */
export function nearMiss(text: string, rng: Rng): string {
  const chars = [...text];
  const at = rng.int(chars.length + 1);
  switch (rng.int(6)) {
    case 0:
      return chars.slice(0, -1).join('');
    case 1:
      return chars.slice(1).join('');
    case 2:
      return `${text}${rng.pick(['x', '/', '*', ' ', '\u0301'])}`;
    case 3:
      return `${rng.pick(['x', '/', '*', ' '])}${text}`;
    case 4:
      return text.normalize(text.normalize('NFC') === text ? 'NFD' : 'NFC');
    default:
      return [...chars.slice(0, at), rng.pick(['X', '\\', '*', 'é', '.', '\n']), ...chars.slice(at + 1)].join('');
  }
}
