/**
 * Cedar's answers, remembered by the projection of the request (request-projection.ts),
 * for one policy set: the engine keeps one memo per loaded set, so a reload starts empty
 * and no answer outlives the policies that gave it. Entities travel in the request (and so
 * in the key), and revocation is checked before any decision, so nothing else can make an
 * entry stale.
 *
 * Only clean answers are kept: a deny with errors or a failure quotes the request in its
 * messages, and is cheap to recompute next to the cost of being wrong.
 */
import type { Decision } from './types.js';

export interface MemoStats {
  hits: number;
  misses: number;
  /** Decisions that could not use the memo: no key (unanalysable set or request) or an answer with errors. */
  uncacheable: number;
}

/** Default bound: enough for every (pipeline, branch, step, upstream, path class) an organization has in play at once. */
export const DEFAULT_MEMO_ENTRIES = 4096;

export class DecisionMemo {
  private readonly entries = new Map<string, Decision>();

  constructor(
    private readonly maxEntries: number,
    private readonly stats: MemoStats,
  ) {}

  /** False when the bound is 0: no key is worth computing. */
  get enabled(): boolean {
    return this.maxEntries > 0;
  }

  get(key: string): Decision | undefined {
    const hit = this.entries.get(key);
    if (hit === undefined) {
      this.stats.misses++;
      return undefined;
    }
    this.stats.hits++;
    return hit;
  }

  /** Keeps `decision` under `key` when it is clean; the least recently inserted entry goes first. */
  set(key: string, decision: Decision): void {
    if (this.maxEntries <= 0) return;
    if (decision.errors.length > 0) {
      this.stats.uncacheable++;
      return;
    }
    if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value as string);
    this.entries.set(key, freeze(decision));
  }
}

/** Memoized decisions are handed to many callers: none may change what the next one reads. */
function freeze(d: Decision): Decision {
  for (const p of d.determining) Object.freeze(p);
  Object.freeze(d.determining);
  Object.freeze(d.errors);
  return Object.freeze(d);
}
