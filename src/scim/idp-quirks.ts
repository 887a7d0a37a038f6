/**
 * What identity providers actually send, made into what RFC 7644 says, before SCIMMY
 * sees it. Each rewrite is narrow and names the IdP behaviour it absorbs:
 *
 * - Entra ID sends booleans as strings (`"active": "False"`) in PATCH values (Microsoft
 *   Learn, "Known issues and resolutions with SCIM 2.0 protocol compliance…"): strings
 *   `true`/`false` (any case) become booleans wherever the schema says boolean.
 * - Entra ID sends path-less PATCH values with dotted or URN-qualified keys
 *   (`{"name.givenName": …}`, `{"urn:…:enterprise:2.0:User:department": …}`): each such
 *   key becomes its own operation with that path (RFC 7644 §3.5.2: a path-less value's
 *   keys are attribute names).
 * - Entra ID sends `manager` as a bare id string; a single-valued complex attribute
 *   with a `value` sub-attribute given a string becomes `{value}`.
 * - Entra ID removes members with `[{"$ref": null, "value": "…"}]`: null members of an
 *   object are dropped (RFC 7643 §2.5: null is unassigned) and member values are
 *   matched by `value` alone.
 * - Entra ID adds its own schema URN to `schemas` (…/ADSCIM/2.0/Group): schema URNs Port
 *   does not serve are dropped (their attributes were never understood anyway).
 */
import type { SCIMMY } from 'scimmy';
import { ScimError } from './errors.js';
import { PATCH_OP } from './scimmy.js';

type Definition = SCIMMY.Types.SchemaDefinition;
type Attribute = SCIMMY.Types.Attribute;
type Node = Attribute | Definition;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A resource body (POST/PUT) as SCIMMY should see it. */
export function normaliseResource(body: unknown, definition: Definition, knownSchemas: readonly string[]): Record<string, unknown> {
  if (!isObject(body)) throw new ScimError(400, 'invalidSyntax', 'The request body must be a JSON object (a SCIM resource).');
  // RFC 7643 §3: `schemas` is required and names the resource's core schema.
  if (!Array.isArray(body.schemas) || !body.schemas.includes(knownSchemas[0])) {
    throw new ScimError(400, 'invalidSyntax', `The resource's schemas must include ${knownSchemas[0]}.`);
  }
  const out = fixNode(dropNulls(body), definition) as Record<string, unknown>;
  if (Array.isArray(out.schemas)) out.schemas = out.schemas.filter((s) => typeof s !== 'string' || knownSchemas.includes(s));
  return out;
}

export interface PatchOperation {
  op: string;
  path?: string;
  value?: unknown;
}

/** A PatchOp body (RFC 7644 §3.5.2) as SCIMMY should see it. */
export function normalisePatch(body: unknown, definition: Definition): { schemas: string[]; Operations: PatchOperation[] } {
  if (!isObject(body)) throw new ScimError(400, 'invalidSyntax', 'The request body must be a JSON object (a PatchOp message).');
  const { schemas, Operations } = body;
  if (!Array.isArray(schemas) || schemas.length !== 1 || schemas[0] !== PATCH_OP) {
    throw new ScimError(400, 'invalidSyntax', `A PATCH body must have schemas ["${PATCH_OP}"].`);
  }
  if (!Array.isArray(Operations) || Operations.length === 0) {
    throw new ScimError(400, 'invalidValue', 'A PATCH body must have at least one operation in Operations.');
  }
  if (Operations.length > 1000) throw new ScimError(400, 'tooMany', 'A PATCH body may have at most 1000 operations.');
  const ops: PatchOperation[] = [];
  for (const raw of Operations) {
    if (!isObject(raw) || typeof raw.op !== 'string') throw new ScimError(400, 'invalidSyntax', 'Every PATCH operation must be an object with an "op".');
    if (raw.path !== undefined && typeof raw.path !== 'string') throw new ScimError(400, 'invalidPath', 'A PATCH operation\'s "path" must be a string.');
    const op = raw.op.toLowerCase();
    const value = raw.value === null ? undefined : dropNulls(raw.value);
    if (raw.path === undefined && isObject(value)) {
      const plain: Record<string, unknown> = {};
      for (const [key, v] of Object.entries(value)) {
        if (key.includes('.') || key.includes(':')) ops.push(withPath(op, key, v, definition));
        else plain[key] = v;
      }
      if (Object.keys(plain).length > 0) ops.push({ op, value: fixNode(plain, definition) });
      continue;
    }
    ops.push(raw.path === undefined ? { op, ...(value !== undefined ? { value } : {}) } : withPath(op, raw.path, value, definition));
  }
  return { schemas: [PATCH_OP], Operations: ops };
}

function withPath(op: string, path: string, value: unknown, definition: Definition): PatchOperation {
  const target = lookup(definition, path.replace(/\[[^\]]*\]/g, ''));
  let v = value;
  if (target && v !== undefined) {
    v = fixNode(v, target);
    // Members are matched by `value` alone (RFC 7643 §4.2 members: value is the id).
    if (op === 'remove' && /^members$/i.test(path) && Array.isArray(v)) v = v.map((m) => (isObject(m) ? { value: m.value } : m));
  }
  return { op, path, ...(v !== undefined ? { value: v } : {}) };
}

/** Schema-directed fixes: string booleans, bare-string complex values. */
function fixNode(value: unknown, node: Node): unknown {
  if (isDefinition(node)) {
    if (!isObject(value)) return value;
    const out: Record<string, unknown> = {};
    for (const [key, v] of Object.entries(value)) {
      const child = lookup(node, key);
      out[key] = child ? fixNode(v, child) : v;
    }
    return out;
  }
  if (node.config?.multiValued && Array.isArray(value)) return value.map((v) => fixElement(v, node));
  return fixElement(value, node);
}

function fixElement(value: unknown, attr: Attribute): unknown {
  const type = String(attr.type);
  if (type === 'boolean' && typeof value === 'string' && /^(true|false)$/i.test(value)) return value.toLowerCase() === 'true';
  if (type === 'complex') {
    const subs = attr.subAttributes ?? [];
    if (typeof value === 'string' && !attr.config?.multiValued && subs.some((s) => s.name === 'value')) return { value };
    if (isObject(value)) {
      const out: Record<string, unknown> = {};
      for (const [key, v] of Object.entries(value)) {
        const sub = subs.find((s) => s.name.toLowerCase() === key.toLowerCase());
        out[key] = sub ? fixElement(v, sub) : v;
      }
      return out;
    }
  }
  return value;
}

function isDefinition(node: Node): node is Definition {
  return Array.isArray((node as Definition).attributes) && typeof (node as Definition).id === 'string';
}

function lookup(definition: Definition, name: string): Node | undefined {
  try {
    return definition.attribute<Node>(name) ?? undefined;
  } catch {
    return undefined;
  }
}

/** RFC 7643 §2.5: null means unassigned; drop nulls inside objects (and null array items). */
function dropNulls(value: unknown): unknown {
  if (Array.isArray(value)) return value.filter((v) => v !== null).map(dropNulls);
  if (!isObject(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) if (v !== null) out[k] = dropNulls(v);
  return out;
}
