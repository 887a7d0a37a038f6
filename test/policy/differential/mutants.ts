/**
 * Deliberately wrong fast paths around a real engine, for the differential's self-test:
 * each makes a mistake a projection memo could make, and the differential must catch it
 * (else a green run would prove nothing).
 */
import type { PolicyEngine } from '../../../src/policy/engine.js';
import type { AuthzRequest, Decision } from '../../../src/policy/types.js';
import type { Decider } from './harness.js';

/** Remembers errorless decisions by `key(req)`; the key decides what the memo can tell apart. */
class KeyedMemo implements Decider {
  private readonly memo = new Map<string, Decision>();

  constructor(
    private readonly engine: PolicyEngine,
    private readonly key: (req: AuthzRequest, revision: string) => string,
  ) {}

  get revision(): string {
    return this.engine.revision;
  }

  decide(req: AuthzRequest): Decision {
    const key = this.key(req, this.engine.revision);
    const hit = this.memo.get(key);
    if (hit !== undefined) return hit;
    const d = this.engine.decide(req);
    if (d.errors.length === 0) this.memo.set(key, d);
    return d;
  }
}

/** Keys on what policies could read and forgets that Cedar validates the rest: unknown attributes and context keys. */
export function memoBlindToValidation(engine: PolicyEngine): Decider {
  return new KeyedMemo(engine, (req, revision) =>
    JSON.stringify([
      revision,
      { ...req, context: Object.fromEntries(Object.entries(req.context ?? {}).filter(([k]) => k !== 'unexpected')) },
      req.entities.map((e) => ({ ...e, attrs: Object.fromEntries(Object.entries(e.attrs).filter(([k]) => k !== 'zzz_unknown')) })),
    ]),
  );
}

/** Keys on the request only, not on the policy set: answers from before a reload. */
export function memoWithoutRevision(engine: PolicyEngine): Decider {
  return new KeyedMemo(engine, (req) => JSON.stringify(req));
}

/** Drops a policy's evaluation errors from the decision (Port must report them). */
export function errorSwallower(engine: PolicyEngine): Decider {
  return {
    get revision() {
      return engine.revision;
    },
    decide(req) {
      const d = engine.decide(req);
      return d.errors.some((e) => e.policyId !== undefined) ? { ...d, errors: [] } : d;
    },
  };
}
