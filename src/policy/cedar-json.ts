/**
 * Port's request values → Cedar's JSON forms (https://docs.cedarpolicy.com/auth/entities-syntax.html):
 * entity types gain the `Port::` namespace, entity references stay in the explicit
 * `{"__entity": {type, id}}` form. The decision memo's projection (request-projection.ts)
 * reads Port's values through `entityRefIn`, so it sees references exactly as this
 * conversion hands them to Cedar.
 */
import type { CedarValueJson, EntityJson } from './cedar.js';
import { ACTION_TYPE, qualifiedType } from './schema.js';
import type { AuthzRequest, CedarEntity, CedarValue, EntityRef } from './types.js';

export interface TypeAndId {
  type: string;
  id: string;
}

/**
 * A request exactly as it is handed to Cedar: fresh plain objects and arrays, types
 * qualified. The decision memo's key is read from this and nothing else, so what is keyed
 * is what Cedar would decide: a request object with getters or its own iterators is read
 * once, here, never twice.
 */
export interface CedarRequest {
  principal: TypeAndId;
  action: TypeAndId;
  resource: TypeAndId;
  context: Record<string, CedarValueJson>;
  entities: EntityJson[];
}

/** `req` in Cedar's form; `entities`, when given, are its entities already converted (shared-entities.ts). */
export function cedarRequest(req: AuthzRequest, entities: EntityJson[] = req.entities.map(cedarEntity)): CedarRequest {
  return {
    principal: cedarUid(req.principal),
    action: { type: ACTION_TYPE, id: req.action },
    resource: cedarUid(req.resource),
    context: cedarRecord(req.context ?? {}),
    entities,
  };
}

export function cedarUid(ref: EntityRef): { type: string; id: string } {
  return { type: qualifiedType(ref.type), id: ref.id };
}

export function cedarEntity(e: CedarEntity): EntityJson {
  return {
    uid: cedarUid(e.uid),
    attrs: cedarRecord(e.attrs),
    parents: e.parents.map(cedarUid),
    ...(e.tags !== undefined ? { tags: cedarRecord(e.tags) } : {}),
  };
}

export function cedarRecord(record: Record<string, CedarValue>): Record<string, CedarValueJson> {
  const out: Record<string, CedarValueJson> = {};
  for (const k of Object.keys(record)) out[k] = cedarValue(record[k] as CedarValue);
  return out;
}

/** Entity references inside values carry the unqualified type too; qualify them on the way in. */
function cedarValue(value: CedarValue): CedarValueJson {
  if (Array.isArray(value)) return value.map(cedarValue);
  if (typeof value !== 'object' || value === null) return value;
  const ref = entityRefIn(value);
  if (ref !== undefined) return { __entity: cedarUid(ref) };
  return cedarRecord(value as Record<string, CedarValue>);
}

/**
 * The entity a value refers to, when it is a reference as this conversion reads one: an
 * object with an `__entity` member holding a string `type` and `id` (other members are not
 * passed on). Anything else is a record.
 */
export function entityRefIn(value: object): EntityRef | undefined {
  if (!('__entity' in value)) return undefined;
  const v = (value as { __entity: unknown }).__entity;
  return typeof v === 'object' && v !== null && typeof (v as EntityRef).type === 'string' && typeof (v as EntityRef).id === 'string' ? (v as EntityRef) : undefined;
}
