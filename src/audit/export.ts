import type { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Store } from '../store/store.js';
import type { DecisionEntry } from '../store/records/decisions.js';
import { AuditError } from './errors.js';
import { entryToJsonLine, entryToTextLine } from './format.js';
import { writeOut } from './write-out.js';

const PAGE = 1000;

export interface ExportOptions {
  /** Only entries with seq > afterSeq. */
  afterSeq?: number;
  /** Only records whose `time` is at or after this… */
  since?: Date;
  /** …and before this. */
  until?: Date;
}

export interface OutputSummary {
  /** Lines written. */
  count: number;
  /** Highest seq read (afterSeq when none). */
  lastSeq: number;
}

/**
 * Writes entries as JSON lines (`{seq, hash, prevHash, ...record}`), in seq order,
 * waiting whenever `out` is full. Filters by the record's own time; since decisions
 * are appended in batches, time is nearly but not strictly ordered by seq, so the
 * whole log is scanned rather than stopping at the first entry past `until`.
 */
export async function exportDecisions(store: Store, out: Writable, opts: ExportOptions = {}): Promise<OutputSummary> {
  const since = checkDate(opts.since, 'since');
  const until = checkDate(opts.until, 'until');
  const inRange = (e: DecisionEntry): boolean => {
    if (since === undefined && until === undefined) return true;
    const t = Date.parse(e.record.time);
    return !Number.isNaN(t) && (since === undefined || t >= since) && (until === undefined || t < until);
  };
  let count = 0;
  const lastSeq = await forEachPage(store, opts.afterSeq ?? 0, async (page) => {
    const lines = page.filter(inRange).map(entryToJsonLine);
    count += lines.length;
    if (lines.length > 0) await writeOut(out, lines.join(''));
  });
  return { count, lastSeq };
}

export interface TailOptions {
  /** Start after this seq instead of printing the last `lines` entries. */
  afterSeq?: number;
  /** How many of the latest entries to print first; default 10. */
  lines?: number;
  /** Keep polling for new entries until `signal` aborts. */
  follow: boolean;
  /** Poll period when following; default 1000 ms. */
  pollMs?: number;
  signal?: AbortSignal;
  /** JSON lines instead of the one-line human format. */
  json?: boolean;
}

/**
 * Prints the last `lines` entries, then (with `follow`) polls the store for new
 * ones until `signal` aborts. Polling needs nothing from the store but reads, so it
 * works against a log another process (`port serve`) is writing. Resolves on abort.
 */
export async function tailDecisions(store: Store, out: Writable, opts: TailOptions): Promise<OutputSummary> {
  const lines = opts.lines ?? 10;
  if (!Number.isInteger(lines) || lines < 0) throw new AuditError('audit_invalid_option', 'lines must be a whole number of 0 or more');
  const pollMs = opts.pollMs ?? 1000;
  if (!(pollMs > 0)) throw new AuditError('audit_invalid_option', 'pollMs must be more than 0');
  const format = opts.json === true ? entryToJsonLine : entryToTextLine;

  let after = opts.afterSeq;
  if (after === undefined) after = Math.max(0, ((await store.decisions.last())?.seq ?? 0) - lines);
  let count = 0;
  const drain = async (): Promise<void> => {
    after = await forEachPage(store, after!, async (page) => {
      count += page.length;
      await writeOut(out, page.map(format).join(''));
    });
  };

  await drain();
  while (opts.follow && !opts.signal?.aborted) {
    try {
      await sleep(pollMs, undefined, { signal: opts.signal });
    } catch (err) {
      if (opts.signal?.aborted) break;
      throw err;
    }
    await drain();
  }
  return { count, lastSeq: after };
}

/** Reads every entry after `afterSeq` in pages; returns the last seq seen. */
async function forEachPage(store: Store, afterSeq: number, each: (page: DecisionEntry[]) => Promise<void>): Promise<number> {
  let after = afterSeq;
  for (;;) {
    const page = await store.decisions.read(after, PAGE);
    if (page.length === 0) return after;
    await each(page);
    const last = page.at(-1)!.seq;
    // A store that hands back entries out of order must not loop us forever.
    if (last <= after || page.length < PAGE) return Math.max(after, last);
    after = last;
  }
}

function checkDate(d: Date | undefined, name: string): number | undefined {
  if (d === undefined) return undefined;
  const t = d.getTime();
  if (Number.isNaN(t)) throw new AuditError('audit_invalid_option', `${name} is not a valid time`);
  return t;
}
