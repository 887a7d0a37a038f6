/**
 * Which policies can apply to a request, by scope: those whose action scope names the
 * request's action (or any action) and whose resource scope is not `==` another entity.
 * Cedar evaluates a policy as its scope constraints `&&` its conditions, and scope
 * constraints (`==`, `in`, `is` on entities; the action list) never error
 * (https://docs.cedarpolicy.com/policies/syntax-policy.html#term-parc-resource), so a policy
 * whose scope does not hold is neither satisfied nor erroring: leaving it out changes
 * neither the decision nor its reasons nor its errors. Handing Cedar only the slice makes a
 * decision cost what the policies for that action and resource cost, not the whole set.
 *
 * Each slice is preparsed once, on first use, under an id of its own; the number of slices
 * is bounded and the least recently used slice's id is reused (re-preparsing an id replaces
 * the set: cedar-wasm has no way to drop one).
 */
import { uidKey } from './policy-reads.js';
import type { PolicyInfo } from './types.js';

interface ActionIndex {
  /** Policies for this action whose resource scope is not `==` (all, `in`, `is`, unknown). */
  general: PolicyInfo[];
  /** `resource == E` policies for this action, by E's key. */
  byResource: Map<string, PolicyInfo[]>;
}

export interface SlicePreparer {
  /** Preparses `policies` under `id`; throws when Cedar refuses (not expected: the whole set parsed). */
  (id: string, policies: readonly PolicyInfo[]): void;
}

/** Enough for every hot (action, resource with its own policies) pair of a large organization. */
const MAX_SLICES = 256;

export class PolicySlices {
  private readonly index = new Map<string, ActionIndex>();
  /** Slice key → preparsed id, in least-recently-used order (first = oldest). */
  private readonly prepared = new Map<string, string>();
  private nextSlot = 0;

  constructor(
    policies: readonly PolicyInfo[],
    actions: readonly string[],
    private readonly idPrefix: string,
    private readonly preparse: SlicePreparer,
    private readonly maxSlices = MAX_SLICES,
  ) {
    for (const action of actions) this.index.set(action, { general: [], byResource: new Map() });
    for (const p of policies) {
      for (const action of p.actions ?? actions) {
        const at = this.index.get(action);
        if (at === undefined) continue;
        const scope = p.resourceScope;
        if (scope?.op === '==') {
          const k = uidKey(scope.entity.type, scope.entity.id);
          const list = at.byResource.get(k);
          if (list === undefined) at.byResource.set(k, [p]);
          else list.push(p);
        } else {
          at.general.push(p);
        }
      }
    }
  }

  /** The preparsed id of the slice for this action and (qualified) resource; undefined for an action the index doesn't know (use the whole set). */
  setFor(action: string, resourceType: string, resourceId: string): string | undefined {
    const at = this.index.get(action);
    if (at === undefined) return undefined;
    const resource = uidKey(resourceType, resourceId);
    const own = at.byResource.get(resource);
    const key = own === undefined ? action : `${action}\n${resource}`;
    const id = this.prepared.get(key);
    if (id !== undefined) {
      // Most recently used goes last.
      this.prepared.delete(key);
      this.prepared.set(key, id);
      return id;
    }
    return this.prepare(key, own === undefined ? at.general : [...at.general, ...own]);
  }

  private prepare(key: string, policies: readonly PolicyInfo[]): string | undefined {
    let id: string;
    if (this.prepared.size < this.maxSlices) {
      id = `${this.idPrefix}-s${this.nextSlot++}`;
    } else {
      const [oldest, oldId] = this.prepared.entries().next().value as [string, string];
      this.prepared.delete(oldest);
      id = oldId;
    }
    try {
      this.preparse(id, policies);
    } catch {
      // Not expected (the whole set parsed); the whole set decides the same, only slower.
      return undefined;
    }
    this.prepared.set(key, id);
    return id;
  }
}
