/**
 * Edge-case mutations of a built request. The valid ones probe what a projection might
 * blur (a missing or dangling entity, a duplicated one, very long or odd strings, ids that
 * equal policy literals or each other, extreme Longs); the invalid ones make Cedar refuse
 * the request (unknown attribute, wrong types, extra or missing context keys, a lone
 * surrogate cedar-wasm cannot even read) — Port must deny those, with Cedar's errors, even
 * when a request with the same projection was allowed a moment ago.
 */
import type { AuthzRequest, CedarEntity, CedarValue, EntityRef } from '../../../src/policy/types.js';
import type { PortEntityType } from '../../../src/policy/schema.js';
import { Rng } from './rng.js';
import { EDGE_STRINGS, GROUPS, LITERAL_AGENTS, LITERAL_JOBS, type SetVocabulary } from './vocabulary.js';

export const MUTATIONS = [
  // valid requests
  'drop-agent',
  'dangling-creator',
  'dup-entity',
  'long-string',
  'edge-string',
  'edge-string',
  'pool-mismatch',
  'no-tags',
  'literal-ids',
  'same-id-other-type',
  'extreme-long',
  'creator-inactive',
  'groups-changed',
  'extra-parent',
  'parent-renamed',
  'odd-number',
  // requests Cedar refuses (or cannot read)
  'unknown-attr',
  'wrong-attr-type',
  'missing-attr',
  'ctx-extra',
  'ctx-missing',
  'ctx-wrong-type',
  'lone-surrogate',
  'fractional-long',
  'bad-parent',
  'tag-not-string',
  'tags-on-untagged',
  'wrong-principal-type',
  'conflicting-dup',
  'wrong-ref-type',
  'resource-type',
  'implicit-ref',
] as const;
export type MutationKind = (typeof MUTATIONS)[number];

const LONG_STRINGS = [`/api/v1/${'x'.repeat(5000)}`, '*'.repeat(3000), '\u00e9'.repeat(4000), `release/${'a'.repeat(10000)}`, `${'\\'.repeat(2000)}*`];

/** `req` changed by `kind` (deterministic for a seed). `req` is the caller's fresh copy. */
export function applyMutation(req: AuthzRequest, kind: MutationKind, seed: number, vocab: SetVocabulary): AuthzRequest {
  const rng = new Rng(seed, 7);
  const principal = find(req, req.principal.type, req.principal.id);
  const agent = req.entities.find((e) => e.uid.type === 'Agent');
  const context = req.context ?? {};
  req.context = context;
  switch (kind) {
    case 'drop-agent':
      req.entities = req.entities.filter((e) => e.uid.type !== 'Agent' || rng.chance(0.2));
      return req;
    case 'dangling-creator': {
      const holder = req.entities.find((e) => e.attrs.creator !== undefined);
      if (holder !== undefined) req.entities = req.entities.filter((e) => e.uid.type !== 'User' || e.uid.id === req.principal.id);
      else if (principal !== undefined && (principal.uid.type === 'Job' || principal.uid.type === 'Build')) principal.attrs.creator = ref('User', 'ghost@acme.test');
      return req;
    }
    case 'dup-entity':
      if (req.entities.length > 0) req.entities.push(structuredClone(rng.pick(req.entities)));
      return req;
    case 'long-string':
      return setSomeString(req, rng.pick(LONG_STRINGS), rng);
    case 'edge-string':
      return setSomeString(req, rng.pick(EDGE_STRINGS), rng);
    case 'pool-mismatch':
      if (agent !== undefined) agent.parents = rng.chance(0.5) ? [] : [{ type: 'Pool', id: rng.pick(['prod/deploy', 'dev/default', 'gpu*/arm64']) }];
      return req;
    case 'no-tags':
      for (const e of req.entities) {
        if (e.tags === undefined) continue;
        if (rng.chance(0.5)) delete e.tags;
        else e.tags = {};
      }
      return req;
    case 'literal-ids': {
      const type = req.principal.type;
      const literal = vocab.literalIds(type);
      const fallback: readonly string[] = type === 'Job' ? LITERAL_JOBS : [];
      const pool = literal.length > 0 ? literal : fallback;
      if (pool.length > 0) rename(req, type, req.principal.id, rng.pick(pool));
      if (agent !== undefined) rename(req, 'Agent', agent.uid.id, rng.pick(vocab.literalIds('Agent').length > 0 ? vocab.literalIds('Agent') : LITERAL_AGENTS));
      return req;
    }
    case 'same-id-other-type': {
      // Two entities of different types with one id: equal ids must not make them one.
      if (agent !== undefined) rename(req, 'Agent', agent.uid.id, req.principal.id);
      else if (req.resource.type !== req.principal.type) rename(req, req.resource.type, req.resource.id, req.principal.id);
      return req;
    }
    case 'extreme-long': {
      const v = rng.pick([9007199254740991, -9007199254740991, 0, -1, 2, 3, 9]);
      if (principal?.attrs.build_number !== undefined) principal.attrs.build_number = v;
      else if (principal?.attrs.number !== undefined) principal.attrs.number = v;
      else if (context.desired !== undefined) context[rng.pick(['desired', 'current'])] = v;
      else if (context.hour !== undefined) context.hour = v;
      return req;
    }
    case 'creator-inactive':
      for (const e of req.entities) if (e.uid.type === 'User') e.attrs.active = !e.attrs.active;
      return req;
    case 'groups-changed':
      for (const e of req.entities) if (e.uid.type === 'User') e.parents = rng.subset(GROUPS, 2).map((g) => ({ type: 'Group', id: g }));
      return req;
    case 'extra-parent':
      principal?.parents.push(principal.uid.type === 'User' ? { type: 'Group', id: rng.pick(GROUPS) } : { type: 'Organization', id: rng.pick(['acme', 'globex']) });
      return req;
    case 'odd-number': {
      // Numbers JSON and Cedar's Long see differently: beyond 2^53, -0, NaN, Infinity, 1e21.
      const v = rng.pick([2 ** 53, 2 ** 53 + 2, 2 ** 63, -(2 ** 63), -0, Number.NaN, Number.POSITIVE_INFINITY, 1e21, 0.1 + 0.2]);
      if (principal?.attrs.build_number !== undefined) principal.attrs.build_number = v;
      else if (principal?.attrs.number !== undefined) principal.attrs.number = v;
      else if (context.desired !== undefined) context[rng.pick(['desired', 'current'])] = v;
      else if (context.hour !== undefined) context.weekday = v;
      else context.unexpected = v;
      return req;
    }
    case 'parent-renamed': {
      // An ancestor no longer shared: `resource in principal`, `principal.agent in Pool` change.
      const withParents = req.entities.filter((e) => e.parents.length > 0);
      if (withParents.length === 0) return req;
      const e = rng.pick(withParents);
      const k = rng.int(e.parents.length);
      const parent = e.parents[k] as EntityRef;
      e.parents[k] = { type: parent.type, id: `${parent.id}-other` };
      return req;
    }

    case 'unknown-attr': {
      const target = principal ?? agent ?? req.entities[0];
      if (target === undefined) context.unexpected = 'x';
      else target.attrs.zzz_unknown = 'x';
      return req;
    }
    case 'wrong-attr-type': {
      const target = principal ?? agent;
      if (target === undefined) return wrongContext(req, rng);
      const key = Object.keys(target.attrs).find((k) => ['build_number', 'number', 'active', 'branch'].includes(k));
      if (key === undefined) return wrongContext(req, rng);
      const v = target.attrs[key];
      target.attrs[key] = typeof v === 'number' ? String(v) : typeof v === 'boolean' ? 'true' : 42;
      return req;
    }
    case 'missing-attr': {
      const target = principal;
      const key = target === undefined ? undefined : Object.keys(target.attrs).find((k) => ['branch', 'active', 'number', 'commit'].includes(k));
      if (target !== undefined && key !== undefined) delete target.attrs[key];
      else return wrongContext(req, rng);
      return req;
    }
    case 'ctx-extra':
      context.unexpected = rng.pick(['x', 1, true]);
      return req;
    case 'ctx-missing': {
      const keys = Object.keys(context);
      if (keys.length === 0) context.unexpected = 'x';
      else delete context[rng.pick(keys)];
      return req;
    }
    case 'ctx-wrong-type':
      return wrongContext(req, rng);
    case 'lone-surrogate':
      return setSomeString(req, rng.pick(['/a\uD800', '\uDC00', 'main\uD83D', '\uD800\uD800x']), rng);
    case 'fractional-long':
      if (principal?.attrs.build_number !== undefined) principal.attrs.build_number = 1.5;
      else if (principal?.attrs.number !== undefined) principal.attrs.number = 2.5;
      else if (context.desired !== undefined) context.desired = 0.5;
      else if (context.hour !== undefined) context.hour = 9.25;
      else context.unexpected = 1.5;
      return req;
    case 'bad-parent':
      (agent ?? principal ?? req.entities[0])?.parents.push({ type: 'Credential', id: 'npm-token' });
      return req;
    case 'tag-not-string':
      if (agent !== undefined) agent.tags = { ...(agent.tags ?? {}), queue: 5 };
      else {
        const step = req.entities.find((e) => e.uid.type === 'BlockStep');
        if (step !== undefined) step.tags = { ...(step.tags ?? {}), env: true };
        else context.unexpected = 'x';
      }
      return req;
    case 'tags-on-untagged':
      if (principal !== undefined) principal.tags = { queue: 'deploy' };
      else req.entities.push({ uid: req.resource, attrs: {}, parents: [], tags: { a: 'b' } });
      return req;
    case 'wrong-principal-type': {
      const swap: Record<string, PortEntityType> = { Job: 'User', Build: 'Job', User: 'Build', Autoscaler: 'Agent' };
      req.principal = { type: swap[req.principal.type] ?? 'Job', id: req.principal.id };
      return req;
    }
    case 'conflicting-dup': {
      const e = principal ?? agent ?? req.entities[0];
      if (e === undefined) return wrongContext(req, rng);
      const copy = structuredClone(e);
      copy.parents = [];
      req.entities.push(copy);
      return req;
    }
    case 'wrong-ref-type': {
      const holder = req.entities.find((e) => e.attrs.agent !== undefined || e.attrs.creator !== undefined);
      if (holder === undefined) return wrongContext(req, rng);
      const key = holder.attrs.agent !== undefined ? 'agent' : 'creator';
      holder.attrs[key] = ref(key === 'agent' ? 'User' : 'Agent', 'someone');
      return req;
    }
    case 'implicit-ref': {
      // `{type, id}` without `__entity`: a record in Port's form, an entity reference to Cedar's schema-based parser.
      const holder = req.entities.find((e) => e.attrs.agent !== undefined || e.attrs.creator !== undefined);
      if (holder === undefined) return wrongContext(req, rng);
      const key = holder.attrs.agent !== undefined ? 'agent' : 'creator';
      const target = holder.attrs[key] as { __entity: EntityRef };
      holder.attrs[key] = { type: rng.chance(0.5) ? target.__entity.type : `Port::${target.__entity.type}`, id: target.__entity.id };
      return req;
    }
    case 'resource-type': {
      const swap: Record<string, PortEntityType> = { Credential: 'Upstream', Upstream: 'Credential', Organization: 'Pipeline', Pool: 'Agent', BlockStep: 'Build' };
      req.resource = { type: swap[req.resource.type] ?? 'Credential', id: req.resource.id };
      return req;
    }
  }
}

function ref(type: PortEntityType, id: string): CedarValue {
  return { __entity: { type, id } };
}

function find(req: AuthzRequest, type: PortEntityType, id: string): CedarEntity | undefined {
  return req.entities.find((e) => e.uid.type === type && e.uid.id === id);
}

/** A string the request carries (an attribute, tag or context value) set to `value`. */
function setSomeString(req: AuthzRequest, value: string, rng: Rng): AuthzRequest {
  const slots: ((v: string) => void)[] = [];
  const context = req.context ?? {};
  for (const key of Object.keys(context)) if (typeof context[key] === 'string') slots.push((v) => (context[key] = v));
  for (const e of req.entities) {
    for (const key of Object.keys(e.attrs)) if (typeof e.attrs[key] === 'string') slots.push((v) => (e.attrs[key] = v));
    const tags = e.tags;
    if (tags !== undefined) for (const key of Object.keys(tags)) slots.push((v) => (tags[key] = v));
  }
  if (slots.length > 0) rng.pick(slots)(value);
  return req;
}

/** A context key given a value of the wrong type (or an unexpected key when there is none). */
function wrongContext(req: AuthzRequest, rng: Rng): AuthzRequest {
  const context = req.context ?? {};
  req.context = context;
  const keys = Object.keys(context);
  if (keys.length === 0) {
    context.unexpected = 1;
    return req;
  }
  const key = rng.pick(keys);
  const v = context[key];
  context[key] = typeof v === 'string' ? 42 : typeof v === 'number' ? String(v) : typeof v === 'boolean' ? 'yes' : Array.isArray(v) ? 'not-a-set' : 0;
  return req;
}

/** Renames an entity everywhere the request names it (uid, parents, references, principal, resource). */
function rename(req: AuthzRequest, type: PortEntityType, from: string, to: string): void {
  const fix = (r: EntityRef): EntityRef => (r.type === type && r.id === from ? { type, id: to } : r);
  const fixValue = (v: CedarValue): CedarValue => {
    if (Array.isArray(v)) return v.map(fixValue);
    if (v === null || typeof v !== 'object') return v;
    const inner = (v as { __entity?: unknown }).__entity;
    if (inner !== undefined && typeof inner === 'object' && inner !== null) return { __entity: fix(inner as EntityRef) };
    const out: Record<string, CedarValue> = {};
    for (const [k, x] of Object.entries(v)) out[k] = fixValue(x);
    return out;
  };
  req.principal = fix(req.principal);
  req.resource = fix(req.resource);
  for (const e of req.entities) {
    e.uid = fix(e.uid);
    e.parents = e.parents.map(fix);
    for (const [k, v] of Object.entries(e.attrs)) e.attrs[k] = fixValue(v);
  }
}
