/**
 * What a policy set can read of a request: the attribute names it names (and how it uses
 * the values under them), the entities it names as literals, whether it reads `context` or
 * entity tags whole. Read off Cedar's JSON policy format (`policyToJson`,
 * https://docs.cedarpolicy.com/policies/json-format.html), so it sees the policies exactly as
 * Cedar parsed them.
 *
 * The decision memo (decision-memo.ts) keys decisions by the projection of a request onto
 * these reads (request-projection.ts): two requests that agree on everything the policies
 * can observe get the same answer from Cedar. The analysis is conservative: a value used in
 * any way it does not model is read whole ("raw"), and an expression form it does not know
 * makes the whole set unanalysable, so every decision goes to Cedar.
 */
import type { PolicyJson } from './cedar.js';

/** One element of a `like` pattern as Cedar's JSON gives it: a literal character or `*`. */
export type LikeElement = { Literal: string } | 'Wildcard';

/** A `like` pattern, literal runs joined: `["/a/", WILDCARD, ".tgz"]`. */
export type LikePattern = readonly (string | typeof WILDCARD)[];

export const WILDCARD: unique symbol = Symbol('like wildcard');

/** How the policies use the values stored under one attribute name (any entity's, any record's). */
export interface AttributeUse {
  /** Used whole somewhere (compared with a non-literal, in a set, passed to a function…): the value is part of the key as it is. */
  raw: boolean;
  /** Read through (`.name.other`, `has name.other`): a record or entity value is projected in turn. */
  container: boolean;
  /** `like` patterns the value is tested against. */
  patterns: LikePattern[];
  /** String literals the value is compared with (`==`, `!=`). */
  equals: string[];
  /** Long literals the value is ordered against, the attribute on the left (`x < 5`, `5 < x` as `x > 5`). */
  bounds: Bound[];
  /** `patterns`, indexed by their leading literal text: which could match a given string (see `matchingPatterns`). */
  patternIndex: PatternIndex;
  /** `equals` by value: a string equals at most one of them. */
  equalsIndex: ReadonlyMap<string, number>;
}

/**
 * `like` patterns by their leading literal: a string can only match patterns whose leading
 * literal it starts with, so hundreds of patterns cost a walk down the string's first few
 * characters, not hundreds of matches.
 */
export interface PatternIndex {
  /** Patterns that begin with `*` (or are empty): always tried. */
  floating: number[];
  root: PrefixNode;
}

interface PrefixNode {
  next: Map<string, PrefixNode>;
  /** Patterns whose leading literal ends here. */
  ends: number[];
}

export interface Bound {
  op: '<' | '<=' | '>' | '>=';
  value: number;
}

/** `5 < x` is `x > 5`. */
const FLIPPED = { '<': '>', '<=': '>=', '>': '<', '>=': '<=' } as const;

export interface PolicyReads {
  /** False when a policy uses an expression this analysis does not model: no memo for this set. */
  analysable: boolean;
  attributes: ReadonlyMap<string, AttributeUse>;
  /** Entities the policies name (`Type::"id"` keys, see `uidKey`), in scopes and in expressions. */
  literals: ReadonlySet<string>;
  /** `context` used other than by reading its attributes (compared whole, say). */
  contextWhole: boolean;
  /** Entity tags read (`getTag`/`hasTag`): tags are then part of the key whole. */
  tags: boolean;
}

/**
 * The key of an entity uid, the same for a policy's literal and a request's entity. Entity
 * type names are Cedar identifiers joined by `::` (no NUL), so the first NUL ends the type.
 */
export function uidKey(type: string, id: string): string {
  return `${type}\u0000${id}`;
}

type Expr = Record<string, unknown>;

/** What the parent does with an expression's value. */
type Use = { kind: 'raw' } | { kind: 'container' } | { kind: 'like'; pattern: LikePattern } | { kind: 'equals'; literal: string } | { kind: 'bound'; bound: Bound };

const RAW: Use = { kind: 'raw' };
const CONTAINER: Use = { kind: 'container' };

/** Binary operators whose operands are plain values (https://docs.cedarpolicy.com/policies/json-format.html#json-expr-binary). */
const BINARY = new Set(['in', '&&', '||', '+', '-', '*', 'contains', 'containsAll', 'containsAny']);
const UNARY = new Set(['!', 'neg', 'isEmpty']);
/** Extension functions and methods (ipaddr, decimal, datetime, duration): their arguments are read whole. */
const EXTENSION_CALLS = new Set([
  'ip', 'isIpv4', 'isIpv6', 'isLoopback', 'isMulticast', 'isInRange',
  'decimal', 'lessThan', 'lessThanOrEqual', 'greaterThan', 'greaterThanOrEqual',
  'datetime', 'duration', 'offset', 'durationSince', 'toDate', 'toTime',
  'toMilliseconds', 'toSeconds', 'toMinutes', 'toHours', 'toDays',
]);

class Unanalysable extends Error {}

/** Reads a policy set; never throws (an unknown form gives `analysable: false`). */
export function policyReads(policies: readonly PolicyJson[]): PolicyReads {
  const attributes = new Map<string, AttributeUse>();
  const literals = new Set<string>();
  const state = { contextWhole: false, tags: false };

  const use = (name: string): AttributeUse => {
    let u = attributes.get(name);
    if (u === undefined) {
      u = { raw: false, container: false, patterns: [], equals: [], bounds: [], patternIndex: indexPatterns([]), equalsIndex: new Map() };
      attributes.set(name, u);
    }
    return u;
  };

  const noteValue = (v: unknown): void => {
    if (Array.isArray(v)) {
      for (const x of v) noteValue(x);
    } else if (typeof v === 'object' && v !== null) {
      const o = v as Record<string, unknown>;
      const entity = o.__entity as { type?: unknown; id?: unknown } | undefined;
      if (entity !== undefined && typeof entity.type === 'string' && typeof entity.id === 'string') literals.add(uidKey(entity.type, entity.id));
      else if (typeof o.type === 'string' && typeof o.id === 'string') literals.add(uidKey(o.type, o.id));
      for (const x of Object.values(o)) noteValue(x);
    }
  };

  const visit = (e: unknown, how: Use): void => {
    if (typeof e !== 'object' || e === null || Array.isArray(e)) throw new Unanalysable();
    const keys = Object.keys(e);
    if (keys.length !== 1) throw new Unanalysable();
    const op = keys[0] as string;
    const body = (e as Expr)[op];
    switch (op) {
      case 'Value':
        noteValue(body);
        return;
      case 'Var':
        if (body === 'context' && how.kind !== 'container') state.contextWhole = true;
        if (body !== 'principal' && body !== 'action' && body !== 'resource' && body !== 'context') throw new Unanalysable();
        return;
      case '.': {
        const { left, attr } = body as { left: unknown; attr: unknown };
        if (typeof attr !== 'string') throw new Unanalysable();
        const u = use(attr);
        if (how.kind === 'raw') u.raw = true;
        else if (how.kind === 'container') u.container = true;
        else if (how.kind === 'like') u.patterns.push(how.pattern);
        else if (how.kind === 'equals') u.equals.push(how.literal);
        else u.bounds.push(how.bound);
        visit(left, CONTAINER);
        return;
      }
      case 'has': {
        // `e has a.b.c` (Cedar 4) reads `a` and `a.b` through, then tests `c`'s presence.
        const { left, attr } = body as { left: unknown; attr: unknown };
        const path = typeof attr === 'string' ? [attr] : attr;
        if (!Array.isArray(path) || path.length === 0 || !path.every((a) => typeof a === 'string')) throw new Unanalysable();
        path.forEach((name: string, i) => {
          const u = use(name);
          if (i < path.length - 1) u.container = true;
        });
        visit(left, CONTAINER);
        return;
      }
      case 'like': {
        const { left, pattern } = body as { left: unknown; pattern: unknown };
        const p = likePattern(pattern);
        visit(left, isAttribute(left) ? { kind: 'like', pattern: p } : RAW);
        return;
      }
      case '==':
      case '!=': {
        const { left, right } = body as { left: unknown; right: unknown };
        const rightLiteral = stringValue(right);
        const leftLiteral = stringValue(left);
        if (rightLiteral !== undefined && isAttribute(left)) {
          visit(left, { kind: 'equals', literal: rightLiteral });
          visit(right, RAW);
        } else if (leftLiteral !== undefined && isAttribute(right)) {
          visit(right, { kind: 'equals', literal: leftLiteral });
          visit(left, RAW);
        } else {
          visit(left, RAW);
          visit(right, RAW);
        }
        return;
      }
      case '<':
      case '<=':
      case '>':
      case '>=': {
        const { left, right } = body as { left: unknown; right: unknown };
        const rightLong = longValue(right);
        const leftLong = longValue(left);
        if (rightLong !== undefined && isAttribute(left)) {
          visit(left, { kind: 'bound', bound: { op, value: rightLong } });
        } else if (leftLong !== undefined && isAttribute(right)) {
          visit(right, { kind: 'bound', bound: { op: FLIPPED[op], value: leftLong } });
        } else {
          visit(left, RAW);
          visit(right, RAW);
        }
        return;
      }
      case 'getTag':
      case 'hasTag': {
        state.tags = true;
        const { left, right } = body as { left: unknown; right: unknown };
        visit(left, RAW);
        visit(right, RAW);
        return;
      }
      case 'is': {
        const { left, in: inside } = body as { left: unknown; in?: unknown };
        visit(left, RAW);
        if (inside !== undefined) visit(inside, RAW);
        return;
      }
      case 'if-then-else': {
        const b = body as { if: unknown; then: unknown; else: unknown };
        visit(b.if, RAW);
        // The branches' values flow to the parent, which this analysis does not follow: read whole.
        visit(b.then, RAW);
        visit(b.else, RAW);
        return;
      }
      case 'Set':
        if (!Array.isArray(body)) throw new Unanalysable();
        for (const x of body) visit(x, RAW);
        return;
      case 'Record':
        if (typeof body !== 'object' || body === null) throw new Unanalysable();
        for (const x of Object.values(body)) visit(x, RAW);
        return;
      default:
        if (BINARY.has(op)) {
          const { left, right } = body as { left: unknown; right: unknown };
          visit(left, RAW);
          visit(right, RAW);
          return;
        }
        if (UNARY.has(op)) {
          visit((body as { arg: unknown }).arg, RAW);
          return;
        }
        if (EXTENSION_CALLS.has(op) && Array.isArray(body)) {
          for (const x of body) visit(x, RAW);
          return;
        }
        // Slots (templates), unknowns (partial evaluation) and anything newer than this code.
        throw new Unanalysable();
    }
  };

  try {
    for (const p of policies) {
      scopeLiterals(p, literals);
      for (const c of p.conditions) visit(c.body, RAW);
    }
  } catch (err) {
    if (!(err instanceof Unanalysable)) throw err;
    return { analysable: false, attributes: new Map(), literals: new Set(), contextWhole: true, tags: true };
  }
  // A test written in many policies is one bit of the key.
  for (const u of attributes.values()) {
    u.patterns = unique(u.patterns, (p) => JSON.stringify(p.map((el) => (el === WILDCARD ? null : el))));
    u.equals = unique(u.equals, (s) => s);
    u.bounds = unique(u.bounds, (b) => `${b.op}${b.value}`);
    u.patternIndex = indexPatterns(u.patterns);
    u.equalsIndex = new Map(u.equals.map((v, i) => [v, i]));
  }
  return { analysable: true, attributes, literals, contextWhole: state.contextWhole, tags: state.tags };
}

function indexPatterns(patterns: readonly LikePattern[]): PatternIndex {
  const index: PatternIndex = { floating: [], root: { next: new Map(), ends: [] } };
  patterns.forEach((p, i) => {
    const lead = p[0];
    if (typeof lead !== 'string') {
      index.floating.push(i);
      return;
    }
    let node = index.root;
    for (const unit of lead) {
      let child = node.next.get(unit);
      if (child === undefined) {
        child = { next: new Map(), ends: [] };
        node.next.set(unit, child);
      }
      node = child;
    }
    node.ends.push(i);
  });
  return index;
}

/** The indices of the patterns `value` matches, ascending. */
export function matchingPatterns(value: string, patterns: readonly LikePattern[], index: PatternIndex): number[] {
  const candidates = [...index.floating];
  let node: PrefixNode | undefined = index.root;
  // Code points, as the index was built (for…of over a string yields code points).
  for (const unit of value) {
    node = node.next.get(unit);
    if (node === undefined) break;
    candidates.push(...node.ends);
  }
  return candidates.filter((i) => likeMatches(value, patterns[i] as LikePattern)).sort((a, b) => a - b);
}

function unique<T>(items: T[], key: (item: T) => string): T[] {
  const seen = new Map<string, T>();
  for (const item of items) if (!seen.has(key(item))) seen.set(key(item), item);
  return [...seen.values()];
}

function isAttribute(e: unknown): boolean {
  return typeof e === 'object' && e !== null && '.' in e && Object.keys(e).length === 1;
}

function longValue(e: unknown): number | undefined {
  if (typeof e !== 'object' || e === null || Object.keys(e).length !== 1) return undefined;
  const v = (e as { Value?: unknown }).Value;
  return typeof v === 'number' && Number.isSafeInteger(v) ? v : undefined;
}

function stringValue(e: unknown): string | undefined {
  if (typeof e !== 'object' || e === null || Object.keys(e).length !== 1) return undefined;
  const v = (e as { Value?: unknown }).Value;
  return typeof v === 'string' ? v : undefined;
}

/** Joins Cedar's one-character literals into runs; anything else in a pattern is not understood. */
function likePattern(raw: unknown): LikePattern {
  if (!Array.isArray(raw)) throw new Unanalysable();
  const out: (string | typeof WILDCARD)[] = [];
  for (const el of raw as unknown[]) {
    if (el === 'Wildcard') {
      if (out[out.length - 1] !== WILDCARD) out.push(WILDCARD);
    } else if (typeof el === 'object' && el !== null && typeof (el as { Literal?: unknown }).Literal === 'string') {
      const ch = (el as { Literal: string }).Literal;
      const last = out[out.length - 1];
      if (typeof last === 'string') out[out.length - 1] = last + ch;
      else out.push(ch);
    } else {
      throw new Unanalysable();
    }
  }
  return out;
}

/** Entities named in the policy's principal, action and resource scopes. */
function scopeLiterals(p: PolicyJson, literals: Set<string>): void {
  const scopes = [p.principal, p.action, p.resource] as unknown[];
  for (const s of scopes) {
    const scope = s as { op: string; entity?: unknown; entities?: unknown; slot?: unknown; in?: { entity?: unknown; slot?: unknown } };
    if (scope.slot !== undefined || scope.in?.slot !== undefined) throw new Unanalysable();
    for (const ref of [scope.entity, ...(Array.isArray(scope.entities) ? scope.entities : []), scope.in?.entity]) {
      const r = ref as { type?: unknown; id?: unknown } | undefined;
      if (r !== undefined && typeof r.type === 'string' && typeof r.id === 'string') literals.add(uidKey(r.type, r.id));
    }
  }
}

/**
 * Cedar's `like` (https://docs.cedarpolicy.com/policies/syntax-operators.html#operator-like):
 * the whole string must match; `*` matches any run of characters, including none. Matching
 * UTF-16 code units is the same as matching characters here: a literal run never begins or
 * ends inside a surrogate pair, and the projection hands only well-formed strings to it.
 */
export function likeMatches(value: string, pattern: LikePattern): boolean {
  let vi = 0;
  let pi = 0;
  // Backtracking point: the last wildcard's pattern index and the value index it was tried at.
  let starP = -1;
  let starV = 0;
  while (vi < value.length || pi < pattern.length) {
    const el = pattern[pi];
    if (el === WILDCARD) {
      starP = pi++;
      starV = vi;
      continue;
    }
    if (el !== undefined && value.startsWith(el, vi)) {
      vi += el.length;
      pi++;
      continue;
    }
    if (starP < 0 || starV >= value.length) return false;
    // Let the last wildcard swallow one more code unit and retry what follows it.
    pi = starP + 1;
    vi = ++starV;
  }
  return true;
}
