import { randomUUID } from 'node:crypto';
import { qualifiedType } from '../policy/schema.js';
import type { Decision, EntityRef } from '../policy/types.js';
import type { DecisionRecord } from '../store/records/decisions.js';

/** `Port::Job::"…"`: how entities appear in the decision log. */
export function entityString(ref: EntityRef): string {
  return `${qualifiedType(ref.type)}::${JSON.stringify(ref.id)}`;
}

/** The determining policies as the log records them: id, and `@reason` when there is one. */
export function determiningPolicies(d: Decision): { id: string; reason?: string }[] {
  return d.determining.map((p) => (p.reason === undefined ? { id: p.id } : { id: p.id, reason: p.reason }));
}

/** A decision log entry for a policy decision. */
export function decisionRecord(
  d: Decision,
  principal: EntityRef,
  action: string,
  resource: EntityRef,
  context: Record<string, unknown>,
  time = Date.now(),
): DecisionRecord {
  return {
    id: randomUUID(),
    time: new Date(time).toISOString(),
    principal: entityString(principal),
    action,
    resource: entityString(resource),
    decision: d.decision,
    policies: determiningPolicies(d),
    reason: d.reason,
    ...(d.errors.length > 0 ? { errors: d.errors.map((e) => ({ policyId: e.policyId ?? '', message: e.message })) } : {}),
    policyRevision: d.revision,
    context,
  };
}
