/**
 * The reference: cedar-wasm asked about the WHOLE policy set, with Port's request turned
 * into Cedar's JSON by this file's own conversion (not the engine's), and Cedar's answer
 * read with Port's documented semantics (src/policy/decision.ts's contract, restated
 * here): any Cedar error or failure denies, with the errors; otherwise Cedar's decision;
 * `determining` = Cedar's reason ids sorted — on an error deny, the satisfied forbids if
 * Cedar's own decision was deny, else none.
 *
 * Two ways to ask: the plain stateless `isAuthorized` (policies and schema parsed on
 * every call: 3–20 ms, https://github.com/cedar-policy/cedar/tree/main/cedar-wasm) and
 * the same set preparsed once by this file (`statefulIsAuthorized` over all policies, no
 * memo, no slicing: a fraction of a millisecond). The corpus uses the second for speed
 * and checks a sample of its answers against the first, so both reference paths agree.
 */
import {
  isAuthorized,
  preparsePolicySet,
  preparseSchema,
  statefulIsAuthorized,
  type AuthorizationAnswer,
  type CedarValueJson,
  type EntityJson,
} from '@cedar-policy/cedar-wasm/nodejs';
import { PORT_SCHEMA } from '../../../src/policy/schema.js';
import type { AuthzRequest, CedarEntity, CedarValue, EntityRef } from '../../../src/policy/types.js';

/** What a decision says, in the terms the differential compares. */
export interface Outcome {
  decision: 'allow' | 'deny';
  /** Policy ids, in the order given (the engine's must be sorted). */
  determining: string[];
  errors: { policyId?: string; message: string }[];
}

export interface ReferenceAnswer {
  outcome: Outcome;
  /** cedar-wasm's raw answer, or the message it threw. */
  raw: AuthorizationAnswer | { thrown: string };
  kind: 'ok' | 'policy-error' | 'failure' | 'thrown';
}

/** The Cedar request (without policies and schema), as JSON values. */
export interface CedarRequest {
  principal: { type: string; id: string };
  action: { type: string; id: string };
  resource: { type: string; id: string };
  context: Record<string, CedarValueJson>;
  entities: EntityJson[];
}

const NAMESPACE = 'Port';
const SCHEMA_NAME = 'differential-reference-schema';
let schemaReady = false;
let preparsedCount = 0;

/** `Job` → `Port::Job`; the action is `Port::Action::"<name>"` (schema.ts: namespace Port). */
function uid(ref: EntityRef): { type: string; id: string } {
  return { type: `${NAMESPACE}::${ref.type}`, id: ref.id };
}

function value(v: CedarValue): CedarValueJson {
  if (Array.isArray(v)) return v.map(value);
  if (v === null || typeof v !== 'object') return v;
  const maybe = (v as { __entity?: unknown }).__entity;
  if (Object.keys(v).length === 1 && isRef(maybe)) return { __entity: uid(maybe) };
  return record(v as Record<string, CedarValue>);
}

function isRef(v: unknown): v is EntityRef {
  return typeof v === 'object' && v !== null && typeof (v as { type?: unknown }).type === 'string' && typeof (v as { id?: unknown }).id === 'string';
}

function record(r: Record<string, CedarValue>): Record<string, CedarValueJson> {
  const out: Record<string, CedarValueJson> = {};
  for (const [k, v] of Object.entries(r)) out[k] = value(v);
  return out;
}

function entity(e: CedarEntity): EntityJson {
  const json: EntityJson = { uid: uid(e.uid), attrs: record(e.attrs), parents: e.parents.map(uid) };
  if (e.tags !== undefined) json.tags = record(e.tags);
  return json;
}

export function toCedar(req: AuthzRequest): CedarRequest {
  return {
    principal: uid(req.principal),
    action: { type: `${NAMESPACE}::Action`, id: req.action },
    resource: uid(req.resource),
    context: record(req.context ?? {}),
    entities: req.entities.map(entity),
  };
}

/** One policy set as the reference sees it: every policy, by id. */
export class ReferenceSet {
  private readonly psetId: string;
  private readonly cache = new Map<string, ReferenceAnswer>();
  statefulCalls = 0;
  statelessCalls = 0;
  cacheHits = 0;

  constructor(readonly policies: Readonly<Record<string, string>>) {
    if (!schemaReady) {
      const s = preparseSchema(SCHEMA_NAME, PORT_SCHEMA);
      if (s.type === 'failure') throw new Error(`schema: ${s.errors[0]?.message ?? ''}`);
      schemaReady = true;
    }
    this.psetId = `differential-reference-${++preparsedCount}`;
    const answer = preparsePolicySet(this.psetId, { staticPolicies: { ...policies } });
    if (answer.type === 'failure') throw new Error(`reference cannot parse the set: ${answer.errors.map((e) => e.message).join('; ')}`);
  }

  /**
   * The answer over the preparsed set, memoized by the exact request (the reference is a
   * pure function of set and request; repeats in the corpus would otherwise cost twice).
   */
  answer(cedar: CedarRequest, key: string): ReferenceAnswer {
    const known = this.cache.get(key);
    if (known !== undefined) {
      this.cacheHits++;
      return known;
    }
    this.statefulCalls++;
    const fresh = interpret(() => statefulIsAuthorized({ ...cedar, preparsedPolicySetId: this.psetId, preparsedSchemaName: SCHEMA_NAME, validateRequest: true }));
    this.cache.set(key, fresh);
    return fresh;
  }

  /** The plain stateless call: policies and schema as text, parsed by this very call. */
  stateless(cedar: CedarRequest): ReferenceAnswer {
    this.statelessCalls++;
    return interpret(() => isAuthorized({ ...cedar, policies: { staticPolicies: { ...this.policies } }, schema: PORT_SCHEMA, validateRequest: true }));
  }
}

/** Runs a cedar-wasm call and reads its answer with Port's semantics. */
function interpret(call: () => AuthorizationAnswer): ReferenceAnswer {
  let raw: AuthorizationAnswer;
  try {
    raw = call();
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    return { raw: { thrown: message }, kind: 'thrown', outcome: { decision: 'deny', determining: [], errors: [{ message: clip(message) }] } };
  }
  if (raw.type === 'failure') {
    return { raw, kind: 'failure', outcome: { decision: 'deny', determining: [], errors: raw.errors.map((e) => ({ message: clip(e.message) })) } };
  }
  const { decision, diagnostics } = raw.response;
  const reasons = [...diagnostics.reason].sort();
  if (diagnostics.errors.length > 0) {
    const errors = diagnostics.errors
      .map((e) => ({ policyId: e.policyId, message: clip(e.error.message) }))
      .sort((a, b) => (a.policyId < b.policyId ? -1 : a.policyId > b.policyId ? 1 : 0));
    return { raw, kind: 'policy-error', outcome: { decision: 'deny', determining: decision === 'deny' ? reasons : [], errors } };
  }
  return { raw, kind: 'ok', outcome: { decision, determining: reasons, errors: [] } };
}

/** Port keeps messages to one line of at most 300 characters (decision.ts). */
export function clip(message: string, max = 300): string {
  const oneLine = message.replace(/\s+/g, ' ').trim();
  return oneLine.length > max ? `${oneLine.slice(0, max - 1)}…` : oneLine;
}

/**
 * A thrown message names a position in cedar-wasm's serialization of the call ("at line
 * 1 column 179"), which depends on how the call was laid out, not on what it says.
 */
export function withoutPosition(message: string): string {
  return message.replace(/ at line \d+ column \d+/g, ' at <position>');
}
