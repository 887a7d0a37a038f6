/**
 * The projection of a Cedar request onto what a policy set can read (policy-reads.ts), as a
 * string: the decision memo's key. Two requests with the same key get the same answer from
 * Cedar, because the key keeps everything evaluation and request validation can observe:
 *
 * - Entity uids the policies name as literals (and every Action uid) as they are; every other
 *   uid renamed to its type and order of first appearance (`#0:Port::Job`). Cedar has no
 *   operator that reads an entity's id — only `==`, `in` and `is`, which a type-preserving
 *   one-to-one renaming keeps (https://docs.cedarpolicy.com/policies/syntax-operators.html).
 *   The hierarchy (`parents`) is kept, renamed, so `in` answers the same.
 * - Attributes and context keys the policies name, projected by how they are used: whole,
 *   read through (records, entities), or — strings only tested by `like` and `==`/`!=`
 *   against literals — as the outcome of each of those tests.
 * - Of everything else, its shape: names and types (what Cedar's schema-based parsing and
 *   `validateRequest` check), not string contents, integer values or entity ids.
 *
 * Error messages can quote entity ids, so decisions with errors are never memoized
 * (decision-memo.ts); the key only has to agree on whether errors happen, which it does.
 *
 * The entities come first in the key, then (after a newline, which no part of the key
 * contains unescaped) principal, action, resource and context, renamed on from where the
 * entities left off: the decisions of one exchange share their entities, and so the first
 * half of their keys (`projectEntities`, `requestKey`).
 */
import type { CedarValueJson } from './cedar.js';
import { entityRefIn, type CedarRequest, type TypeAndId } from './cedar-json.js';
import { matchingPatterns, uidKey, type AttributeUse, type PolicyReads } from './policy-reads.js';

/** A value the projection does not model (an implicit `{type, id}` reference, `__expr`, `null`…): decide without the memo. */
class NotProjectable extends Error {}

/** The key of `req` under `reads`, or undefined when it cannot be computed safely (decide with Cedar). */
export function projectionKey(req: CedarRequest, reads: PolicyReads): string | undefined {
  const entities = projectEntities(req.entities, reads);
  return entities === undefined ? undefined : requestKey(req, reads, entities);
}

/** The entities' half of a key, and the names it gave their uids: what the decisions on the same entities share. */
export interface ProjectedEntities {
  readonly reads: PolicyReads;
  readonly text: string;
  readonly renamed: ReadonlyMap<string, string>;
}

/** The entities' half of the keys of requests on `entities` under `reads`; undefined when it cannot be computed safely. */
export function projectEntities(entities: CedarRequest['entities'], reads: PolicyReads): ProjectedEntities | undefined {
  if (!reads.analysable) return undefined;
  return projecting(() => {
    const projection = new Projection(reads, new Map());
    return { reads, text: projection.entities(entities), renamed: projection.renamed };
  });
}

/**
 * The key of `req`, whose entities are the ones `entities` projected (under the same
 * reads): that half as it is, then the request's own half, its uids renamed on from there
 * (a copy of the names: the projected entities are shared).
 */
export function requestKey(req: CedarRequest, reads: PolicyReads, entities: ProjectedEntities): string | undefined {
  if (entities.reads !== reads) throw new Error('requestKey: the entities were projected under other reads');
  return projecting(() => `${entities.text}\n${new Projection(reads, new Map(entities.renamed)).request(req)}`);
}

function projecting<T>(project: () => T): T | undefined {
  try {
    return project();
  } catch (err) {
    if (err instanceof NotProjectable) return undefined;
    throw err;
  }
}

class Projection {
  constructor(
    private readonly reads: PolicyReads,
    /** Uid key → its name in the key, in order of first appearance. */
    readonly renamed: Map<string, string>,
  ) {}

  entities(entities: CedarRequest['entities']): string {
    let out = '';
    for (const e of entities) {
      out += `|${this.uid(uidOf(e.uid))}${this.record(e.attrs)}<`;
      for (const p of e.parents) out += `${this.uid(uidOf(p))},`;
      out += '>';
      if (e.tags !== undefined) out += this.reads.tags ? this.raw(e.tags) : this.shape(e.tags);
    }
    return out;
  }

  request(req: CedarRequest): string {
    const out = `${this.uid(req.principal)}|${this.uid(req.action)}|${this.uid(req.resource)}|`;
    return out + (this.reads.contextWhole ? this.raw(req.context) : this.record(req.context));
  }

  private uid(ref: TypeAndId): string {
    const { type, id } = ref;
    if (typeof type !== 'string' || typeof id !== 'string' || !typeName(type)) throw new NotProjectable();
    const key = uidKey(type, id);
    // Ids that are not well-formed UTF-16 keep themselves: how Cedar receives them is not modelled.
    if (this.reads.literals.has(key) || type.endsWith('::Action') || !wellFormed(id)) return `L${type}::${JSON.stringify(id)}`;
    let name = this.renamed.get(key);
    if (name === undefined) {
      name = `#${this.renamed.size}:${type}`;
      this.renamed.set(key, name);
    }
    return name;
  }

  /**
   * A record whose keys are attribute names (the context, an entity's attributes, a record
   * read through). Keys in the order given: the same record built another way is a miss, not an error.
   */
  private record(rec: Record<string, CedarValueJson>): string {
    let out = '{';
    for (const k of Object.keys(rec)) out += `${JSON.stringify(k)}:${this.attribute(k, rec[k] as CedarValueJson)},`;
    return `${out}}`;
  }

  private attribute(name: string, v: CedarValueJson): string {
    const use = this.reads.attributes.get(name);
    if (use === undefined) return this.shape(v);
    if (use.raw) return this.raw(v);
    const tested = use.patterns.length > 0 || use.equals.length > 0 || use.bounds.length > 0;
    // Outcome bits only where every test is well-typed for the value (no errors to tell apart).
    if (typeof v === 'string') {
      if (use.container || use.bounds.length > 0 || !wellFormed(v)) return this.raw(v);
      return tested ? `P${outcomes(v, use)}` : this.shape(v);
    }
    if (typeof v === 'number' && tested) {
      if (use.container || use.patterns.length > 0 || !Number.isSafeInteger(v)) return this.raw(v);
      return `N${bounds(v, use)}`;
    }
    if (tested) return this.raw(v);
    if (use.container && isRecord(v)) return `C${this.record(v)}`;
    return use.container ? this.raw(v) : this.shape(v);
  }

  /** The whole value; entity references renamed. */
  private raw(v: CedarValueJson): string {
    return this.walk(v, rawScalar);
  }

  /** What validation sees of a value no policy reads: names and types — no string contents, integers or ids' identity beyond renaming. */
  private shape(v: CedarValueJson): string {
    return this.walk(v, shapeScalar);
  }

  /** Sets and records element by element, entity references renamed, scalars by `scalar`. */
  private walk(v: CedarValueJson, scalar: (v: string | number | boolean) => string): string {
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return scalar(v);
    if (typeof v !== 'object' || v === null) throw new NotProjectable();
    if (Array.isArray(v)) {
      let out = '[';
      for (const x of v) out += `${this.walk(x, scalar)},`;
      return `${out}]`;
    }
    const ref = entityRefIn(v);
    if (ref !== undefined) return `E${this.uid(ref)}`;
    assertPlain(v);
    let out = '{';
    for (const k of Object.keys(v)) out += `${JSON.stringify(k)}:${this.walk((v as Record<string, CedarValueJson>)[k] as CedarValueJson, scalar)},`;
    return `${out}}`;
  }
}

function rawScalar(v: string | number | boolean): string {
  if (typeof v === 'string') return JSON.stringify(v);
  return typeof v === 'number' ? `n${v}` : String(v);
}

function shapeScalar(v: string | number | boolean): string {
  if (typeof v === 'string') return wellFormed(v) ? 's' : 'S';
  // Any safe integer is a valid Long (i64); anything else is kept, for the parser to judge.
  if (typeof v === 'number') return Number.isSafeInteger(v) ? 'i' : `n${v}`;
  return 'b';
}

/** Types seen to be plain Cedar names (identifiers joined by `::`); Port has a dozen. */
const TYPE_NAMES = new Set<string>();
const TYPE_NAME = /^[A-Za-z_][A-Za-z0-9_]*(::[A-Za-z_][A-Za-z0-9_]*)*$/;

/** Whether `type` is a Cedar entity type name (https://docs.cedarpolicy.com/policies/syntax-grammar.html#grammar-path); only these are keyed. */
function typeName(type: string): boolean {
  if (TYPE_NAMES.has(type)) return true;
  if (!TYPE_NAME.test(type)) return false;
  if (TYPE_NAMES.size < 1024) TYPE_NAMES.add(type);
  return true;
}

/** No lone surrogates (String.prototype.isWellFormed, ES2024; Node 20 has it, TypeScript's lib here doesn't). */
function wellFormed(s: string): boolean {
  return (s as string & { isWellFormed(): boolean }).isWellFormed();
}

/** Which `like` patterns hold and which literal the string equals: all its uses can tell about it. */
function outcomes(v: string, use: AttributeUse): string {
  const matched = matchingPatterns(v, use.patterns, use.patternIndex);
  const equal = use.equalsIndex.get(v) ?? -1;
  return `${matched.join(',')}/${equal}`;
}

/** One bit per ordering test; a Long never equals a string literal (Cedar's `==` across types is false, not an error). */
function bounds(v: number, use: AttributeUse): string {
  let bits = '';
  for (const b of use.bounds) {
    const holds = b.op === '<' ? v < b.value : b.op === '<=' ? v <= b.value : b.op === '>' ? v > b.value : v >= b.value;
    bits += holds ? '1' : '0';
  }
  return `${bits}/${use.equals.length}`;
}

/** A uid as the conversion writes it (`{type, id}`); the explicit `__entity` form is read too. */
function uidOf(ref: unknown): TypeAndId {
  const inner = typeof ref === 'object' && ref !== null && '__entity' in ref ? (ref as { __entity: unknown }).__entity : ref;
  if (typeof inner !== 'object' || inner === null) throw new NotProjectable();
  return inner as TypeAndId;
}

function isRecord(v: CedarValueJson): v is Record<string, CedarValueJson> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && entityRefIn(v) === undefined;
}

/**
 * With a schema, Cedar reads `{type, id}` as an entity reference where one is expected;
 * `__extn` and `__expr` are its escapes, and an `__entity` member that is not a reference
 * reaches Cedar as written: the projection can't tell these from records, so it gives up.
 */
function assertPlain(v: object): void {
  if ('__expr' in v || '__extn' in v || '__entity' in v || ('type' in v && 'id' in v)) throw new NotProjectable();
}
