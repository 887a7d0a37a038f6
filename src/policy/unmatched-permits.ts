/**
 * On a default deny, the permits a request was written against but did not satisfy —
 * what `port policy explain` lists and what a refusal names. Cedar has
 * no notion of "almost matched" (its answer names only determining policies), so this is by scope: a permit
 * counts when its action scope names the request's action and its resource scope holds
 * for the request's resource (`==`, `in`, `is`, `is … in`, evaluated as Cedar does over
 * the request's entities: https://docs.cedarpolicy.com/policies/syntax-policy.html#term-parc-resource).
 * The principal scope is not tested: a permit for another pipeline is exactly what a
 * refused job should be told about.
 *
 * Only ever called on a deny: nothing here runs on the allow path.
 */
import { qualifiedType, SCHEMA_NAMESPACE } from './schema.js';
import type { AuthzRequest, Decision, PolicyInfo, PortAction, ScopeEntity, UnmatchedPermit } from './types.js';

/** A decision-log record lists at most this many (the reason names fewer); the rest are counted. */
export const LOGGED_UNMATCHED = 10;

/** The permits whose action scope covers `action` (any-action permits included), in file order. */
export function permitsFor(policies: readonly PolicyInfo[], action: PortAction): PolicyInfo[] {
  return policies.filter((p) => p.effect === 'permit' && (p.actions === undefined || p.actions.includes(action)));
}

/** Of `candidates` (permits for the request's action), those whose resource scope holds for its resource. */
export function relevantPermits(candidates: readonly PolicyInfo[], req: Pick<AuthzRequest, 'resource' | 'entities'>): PolicyInfo[] {
  let ancestors: Set<string> | undefined;
  const resourceType = qualifiedType(req.resource.type);
  const isResource = (e: ScopeEntity): boolean => sameType(e.type, resourceType) && e.id === req.resource.id;
  const inResource = (e: ScopeEntity): boolean => {
    if (isResource(e)) return true;
    ancestors ??= ancestorsOf(req);
    return ancestors.has(key(qualified(e.type), e.id));
  };
  return candidates.filter((p) => {
    const scope = p.resourceScope;
    if (scope === undefined) return true;
    switch (scope.op) {
      case 'all':
        return true;
      case '==':
        return isResource(scope.entity);
      case 'in':
        return inResource(scope.entity);
      case 'is':
        return sameType(scope.entityType, resourceType) && (scope.in === undefined || inResource(scope.in));
    }
  });
}

/** The unmatched permits of a default deny, as decisions and logs carry them. */
export function asUnmatched(policies: readonly PolicyInfo[]): UnmatchedPermit[] {
  return policies.map((p) => (p.reason === undefined ? { id: p.id } : { id: p.id, reason: p.reason }));
}

/**
 * The decision-log context for a default deny: `unmatched_permits: [{id, reason}]` (at
 * most LOGGED_UNMATCHED, then `unmatched_permits_more: N`); `{}` for any other decision.
 * Ids and reasons are authored policy text, never request values or secrets.
 */
export function unmatchedPermitsContext(d: Pick<Decision, 'unmatched'>): Record<string, unknown> {
  const all = d.unmatched ?? [];
  if (all.length === 0) return {};
  const more = all.length - LOGGED_UNMATCHED;
  return { unmatched_permits: all.slice(0, LOGGED_UNMATCHED), ...(more > 0 ? { unmatched_permits_more: more } : {}) };
}

/** Every entity the resource is `in`, transitively, by the parents the request supplies. */
function ancestorsOf(req: Pick<AuthzRequest, 'resource' | 'entities'>): Set<string> {
  const parents = new Map(req.entities.map((e) => [key(qualifiedType(e.uid.type), e.uid.id), e.parents]));
  const seen = new Set<string>();
  const queue = [...(parents.get(key(qualifiedType(req.resource.type), req.resource.id)) ?? [])];
  while (queue.length > 0) {
    const next = queue.pop()!;
    const k = key(qualifiedType(next.type), next.id);
    if (seen.has(k)) continue;
    seen.add(k);
    queue.push(...(parents.get(k) ?? []));
  }
  return seen;
}

/** Policies name types with the namespace (`Port::Credential`); accept the bare name too. */
function qualified(type: string): string {
  return type.includes('::') ? type : `${SCHEMA_NAMESPACE}::${type}`;
}

function sameType(a: string, qualifiedB: string): boolean {
  return qualified(a) === qualifiedB;
}

function key(type: string, id: string): string {
  return `${type}\0${id}`;
}
