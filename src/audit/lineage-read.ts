import type { Store } from '../store/store.js';
import type { DecisionEntry } from '../store/records/decisions.js';
import { arrangeLineage, LineageTracker, type Lineage, type LineageSelector } from './lineage.js';

export interface LineageRead {
  lineage: Lineage;
  /** The highest seq read; the chain covers entries 1..lastSeq (later ones are left for the next run). */
  lastSeq: number;
}

const PAGE = 1000;

/**
 * Reads the lineage of `selector` from the store in pages, as `port audit export` does:
 * one pass to learn what links to the selection, a second (up to the same entry, so a
 * log Port is still writing gives one consistent answer) to keep what matches. Memory
 * holds the matching entries and the ids that link them, never the whole log.
 */
export async function readLineage(store: Store, selector: LineageSelector, pageSize = PAGE): Promise<LineageRead> {
  const tracker = new LineageTracker(selector);
  const lastSeq = await forEachEntry(store, Number.MAX_SAFE_INTEGER, pageSize, (e) => void tracker.offer(e));
  const matching: DecisionEntry[] = [];
  await forEachEntry(store, lastSeq, pageSize, (e) => {
    if (tracker.offer(e)) matching.push(e);
  });
  return { lineage: arrangeLineage(tracker, matching), lastSeq };
}

/** Visits entries 1..upTo in seq order; returns the last seq visited. */
async function forEachEntry(store: Store, upTo: number, pageSize: number, visit: (e: DecisionEntry) => void): Promise<number> {
  let after = 0;
  for (;;) {
    const page = await store.decisions.read(after, pageSize);
    let progressed = false;
    for (const e of page) {
      // Out of order (a store fault `port audit verify` reports): skipped, so we never loop.
      if (e.seq <= after) continue;
      if (e.seq > upTo) return after;
      visit(e);
      after = e.seq;
      progressed = true;
    }
    if (page.length < pageSize || !progressed) return after;
  }
}
