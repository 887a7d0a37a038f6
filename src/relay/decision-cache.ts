import type { Decision } from '../policy/types.js';

interface Cached {
  decision: Decision;
  expiresAt: number;
  /** What the decision was made from besides the key (the creator's record object); compared by identity. */
  basis: object | undefined;
}

/**
 * Short-lived reuse of `proxy` decisions per (token, upstream, method, path), so a
 * client fetching the same object again doesn't pay for Cedar each time. Entries
 * carry the policy revision and their basis (the build creator's directory record):
 * a policy reload or a changed record invalidates them at once. Revocation is
 * checked before the cache, so it takes effect on the next request.
 */
export class DecisionCache {
  private readonly entries = new Map<string, Cached>();

  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries = 50_000,
  ) {}

  get(key: string, revision: string, now: number, basis?: object): Decision | undefined {
    if (this.ttlMs <= 0) return undefined;
    const hit = this.entries.get(key);
    if (!hit) return undefined;
    if (hit.expiresAt <= now || hit.decision.revision !== revision || hit.basis !== basis) {
      this.entries.delete(key);
      return undefined;
    }
    return hit.decision;
  }

  set(key: string, decision: Decision, now: number, basis?: object): void {
    if (this.ttlMs <= 0) return;
    if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(key, { decision, expiresAt: now + this.ttlMs, basis });
  }
}
