/**
 * The entities each policy names, for `port config check` and `port policy lint`: a
 * policy that names a credential, upstream, pool, autoscaler or group the config does not
 * have can never match it, and a credential no permit can reach is dead configuration.
 * Every entity type is collected (`Credential`, `Upstream`, `Pool`, `Autoscaler`,
 * `Group`, …), in scopes (`principal in Port::Group::"g"`) and conditions alike. Read
 * from Cedar's JSON form of each policy
 * (https://docs.cedarpolicy.com/policies/json-format.html): scope constraints carry
 * `{type, id}`, entity literals in conditions `{"__entity": {type, id}}`.
 *
 * Each file is parsed on its own and policies that do not parse are skipped (the loader
 * reports those), so references are found even while another file is broken.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { policySetTextToParts, policyToJson, type PolicyJson } from './cedar.js';
import { actionsOf } from './loader.js';
import { SCHEMA_NAMESPACE } from './schema.js';
import { locatePolicies, SourceText } from './source-text.js';
import type { PortAction } from './types.js';

/** One entity literal in a policy, located in its file. */
export interface EntityReference {
  /** The type without the namespace (`Credential`). */
  type: string;
  id: string;
  line: number;
  column: number;
}

/** How a policy's resource scope limits the resources it applies to. */
export type ResourceReach =
  | { kind: 'any' }
  /** `resource is T` (any entity of type T). */
  | { kind: 'type'; type: string }
  /** `resource == E` or `resource in E` (or `is T in E`). */
  | { kind: 'entity'; type: string; id: string };

export interface PolicyReferences {
  file: string;
  line: number;
  column: number;
  /** The `@id`, when the policy has one. */
  id?: string;
  /** The `@reason`, when the policy has a non-empty one. */
  reason?: string;
  effect: 'permit' | 'forbid';
  /** The actions its scope names; undefined: every action. */
  actions?: PortAction[];
  resource: ResourceReach;
  /** Every entity literal in the scope and the conditions (actions excluded). */
  references: EntityReference[];
}

/** The references of every policy in the `*.cedar` files directly inside `dir` (as the loader reads them). */
export async function policyReferencesInDir(dir: string): Promise<PolicyReferences[]> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => n.endsWith('.cedar') && !n.startsWith('.')).sort();
  } catch {
    return [];
  }
  const out: PolicyReferences[] = [];
  for (const name of names) {
    const file = path.join(dir, name);
    try {
      if (!(await stat(file)).isFile()) continue;
      out.push(...policyReferences(file, await readFile(file, 'utf8')));
    } catch {
      // Unreadable: the loader reports it.
    }
  }
  return out;
}

/** The references of each policy in one file's text. */
export function policyReferences(file: string, text: string): PolicyReferences[] {
  const split = policySetTextToParts(text);
  if (split.type === 'failure') return [];
  const starts = locatePolicies(text, split.policies);
  if (starts === undefined) return [];
  const source = new SourceText(text);
  const out: PolicyReferences[] = [];
  split.policies.forEach((policyText, i) => {
    const start = starts[i] ?? 0;
    const parsed = policyToJson(policyText);
    if (parsed.type === 'failure') return;
    const json = parsed.json;
    const id = json.annotations?.id;
    const reason = json.annotations?.reason;
    const at = source.positionOfIndex(start);
    const references = collect([json.principal, json.resource, json.conditions]).map((r) => ({
      ...r,
      ...source.positionOfIndex(start + indexOfLiteral(policyText, r.type, r.id)),
    }));
    const actions = actionsOf(json);
    out.push({
      file,
      ...at,
      ...(typeof id === 'string' && id !== '' ? { id } : {}),
      ...(typeof reason === 'string' && reason.trim() !== '' ? { reason } : {}),
      effect: json.effect,
      ...(actions !== undefined ? { actions } : {}),
      resource: resourceReach(json),
      references,
    });
  });
  return out.sort((a, b) => a.line - b.line || a.column - b.column);
}

/** `Port::Credential` → `Credential`; a bare name stays as it is. */
function bare(type: string): string {
  return type.startsWith(`${SCHEMA_NAMESPACE}::`) ? type.slice(SCHEMA_NAMESPACE.length + 2) : type;
}

/** Every `{type, id}` scope entity and `{__entity: {type, id}}` literal below `node`. */
function collect(node: unknown, found: { type: string; id: string }[] = []): { type: string; id: string }[] {
  if (Array.isArray(node)) {
    for (const item of node) collect(item, found);
    return found;
  }
  if (typeof node !== 'object' || node === null) return found;
  const o = node as Record<string, unknown>;
  const literal = typeof o.__entity === 'object' && o.__entity !== null ? (o.__entity as Record<string, unknown>) : o;
  if (typeof literal.type === 'string' && typeof literal.id === 'string' && (literal === o.__entity || Object.keys(o).length === 2)) {
    found.push({ type: bare(literal.type), id: literal.id });
    return found;
  }
  for (const value of Object.values(o)) collect(value, found);
  return found;
}

/** UTF-16 index in the policy text of `Type::"id"`, else 0 (the policy's start). */
function indexOfLiteral(policyText: string, type: string, id: string): number {
  const quoted = JSON.stringify(id).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const m = new RegExp(`(?:${SCHEMA_NAMESPACE}\\s*::\\s*)?${type}\\s*::\\s*${quoted}`).exec(policyText);
  return m?.index ?? 0;
}

function resourceReach(json: PolicyJson): ResourceReach {
  const c = json.resource;
  const entity = (e: unknown): ResourceReach => {
    const [ref] = collect(e);
    return ref === undefined ? { kind: 'any' } : { kind: 'entity', type: ref.type, id: ref.id };
  };
  switch (c.op) {
    case '==':
    case 'in':
      return 'entity' in c ? entity(c.entity) : { kind: 'any' };
    case 'is':
      return c.in !== undefined && 'entity' in c.in ? entity(c.in.entity) : { kind: 'type', type: bare(c.entity_type) };
    default:
      return { kind: 'any' };
  }
}
