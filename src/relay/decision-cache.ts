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
  /**
   * Two generations instead of one Map evicting its oldest key: with a new path on every
   * request the cache is always full, and evicting through `keys().next()` walks the deleted
   * slots V8 keeps at the front of a Map until it rehashes — it cost more than the decision
   * it saved (bench/relay, "a new path every request"). When `current` holds half the
   * bound it becomes `previous` and the old `previous` is dropped whole; a hit in `previous`
   * moves back to `current`. At most `maxEntries` entries in all.
   */
  private current = new Map<string, Cached>();
  private previous = new Map<string, Cached>();
  private readonly half: number;

  constructor(
    private readonly ttlMs: number,
    maxEntries = 50_000,
  ) {
    this.half = Math.max(1, Math.floor(maxEntries / 2));
  }

  get(key: string, revision: string, now: number, basis?: object): Decision | undefined {
    if (this.ttlMs <= 0) return undefined;
    let hit = this.current.get(key);
    const fromPrevious = hit === undefined;
    if (fromPrevious) hit = this.previous.get(key);
    if (hit === undefined) return undefined;
    if (hit.expiresAt <= now || hit.decision.revision !== revision || hit.basis !== basis) {
      (fromPrevious ? this.previous : this.current).delete(key);
      return undefined;
    }
    if (fromPrevious) {
      this.previous.delete(key);
      this.put(key, hit);
    }
    return hit.decision;
  }

  set(key: string, decision: Decision, now: number, basis?: object): void {
    if (this.ttlMs <= 0) return;
    this.previous.delete(key);
    this.put(key, { decision, expiresAt: now + this.ttlMs, basis });
  }

  /** How many entries are kept (both generations). */
  get size(): number {
    return this.current.size + this.previous.size;
  }

  private put(key: string, entry: Cached): void {
    if (!this.current.has(key) && this.current.size >= this.half) {
      this.previous = this.current;
      this.current = new Map();
    }
    this.current.set(key, entry);
  }
}
