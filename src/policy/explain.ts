/**
 * `port policy explain`: why a request is allowed or denied, for a person. Besides the
 * determining policies (Cedar's `diagnostics.reason`, https://docs.cedarpolicy.com/auth/authorization.html) it lists, on a
 * default deny, the permits written for this action that did not match — Cedar has no
 * notion of "almost matched", so these are where to look.
 */
import type { PolicyEngine } from './engine.js';
import type { AuthzRequest, CedarEntity, CedarValue, Decision, EntityRef, PolicyInfo } from './types.js';
import { permitsFor, relevantPermits } from './unmatched-permits.js';

export interface Explanation {
  decision: Decision;
  text: string;
}

export function explain(engine: PolicyEngine, req: AuthzRequest): Explanation {
  const decision = engine.decide(req);
  const lines: string[] = [];
  lines.push(`${decision.decision === 'allow' ? 'ALLOW' : 'DENY'}: ${req.action} on ${ref(req.resource)} by ${ref(req.principal)}`);
  const principal = req.entities.find((e) => e.uid.type === req.principal.type && e.uid.id === req.principal.id);
  if (principal !== undefined) lines.push(`  principal: ${attributes(principal)}`);
  if (req.context !== undefined && Object.keys(req.context).length > 0) lines.push(`  context: ${value(req.context)}`);
  lines.push(`Reason: ${decision.reason}`);

  if (decision.determining.length > 0) {
    lines.push(decision.decision === 'allow' ? 'Allowed by:' : 'Forbidden by:');
    for (const p of decision.determining) lines.push(`  ${policyLine(p)}`);
  }
  if (decision.errors.length > 0) {
    lines.push('Errors (any error denies; fix the policy or the request):');
    for (const e of decision.errors) {
      const where = e.policyId !== undefined ? engine.policy(e.policyId) : undefined;
      const label = e.policyId === undefined ? 'request' : where ? `${e.policyId} (${where.file}:${where.line})` : e.policyId;
      lines.push(`  ${label}: ${e.message}`);
    }
  }
  if (decision.decision === 'deny' && decision.determining.length === 0) {
    // The same permits a refusal names (src/policy/unmatched-permits.ts): written for this
    // action and this resource. Erroring ones are listed above instead.
    const erroring = new Set(decision.errors.map((e) => e.policyId));
    const forAction = permitsFor(engine.policies, req.action).filter((p) => !erroring.has(p.id));
    const candidates = relevantPermits(forAction, req);
    if (forAction.length === 0) {
      lines.push(`No permit policy names the action ${req.action}; add one to allow this.`);
    } else if (candidates.length === 0) {
      lines.push(`No permit policy for ${req.action} applies to ${ref(req.resource)}; add one to allow this.`);
    } else {
      lines.push(`Permit policies for ${req.action} that did not match this request:`);
      for (const p of candidates) lines.push(`  ${policyLine(p)}`);
    }
  }
  lines.push(`Policy set revision: ${decision.revision}`);
  return { decision, text: lines.join('\n') };
}

function policyLine(p: Pick<PolicyInfo, 'id' | 'reason' | 'file' | 'line'>): string {
  return `${p.id} (${p.file}:${p.line})${p.reason !== undefined ? ` — ${p.reason}` : ''}`;
}

function ref(r: EntityRef): string {
  return `${r.type}::${JSON.stringify(r.id)}`;
}

function attributes(e: CedarEntity): string {
  return Object.entries(e.attrs)
    .map(([k, v]) => `${k}=${value(v)}`)
    .join(' ');
}

function value(v: CedarValue | Record<string, CedarValue>): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v !== 'object') return String(v);
  if (Array.isArray(v)) return `[${v.map(value).join(', ')}]`;
  if ('__entity' in v && typeof v.__entity === 'object' && v.__entity !== null && 'type' in v.__entity) {
    return ref(v.__entity as EntityRef);
  }
  return `{${Object.entries(v as Record<string, CedarValue>)
    .map(([k, x]) => `${k}: ${value(x)}`)
    .join(', ')}}`;
}
