import type { DecisionEntry } from '../store/records/decisions.js';

/** One JSON line: the chain fields, then the record's own fields. */
export function entryToJsonLine(e: DecisionEntry): string {
  const record = e.record as unknown as Record<string, unknown>;
  const line: Record<string, unknown> = { seq: e.seq, hash: e.hash, prevHash: e.prevHash };
  for (const k of RECORD_FIELDS) if (record[k] !== undefined) line[k] = record[k];
  for (const k of Object.keys(record)) if (!(k in line)) line[k] = record[k];
  return `${JSON.stringify(line)}\n`;
}

/**
 * A record's fields in the order DecisionRecord documents them: stores keep the text in
 * their own key order (SQLite its canonical, sorted form; PostgreSQL jsonb's), and an
 * export reads the same from either.
 */
const RECORD_FIELDS = ['id', 'time', 'principal', 'action', 'resource', 'decision', 'policies', 'reason', 'errors', 'policyRevision', 'context'] as const;

/**
 * One human-readable line: `time decision action principal → resource: reason [policies]`.
 * Principals, reasons and policy ids can carry text from tokens (branch names…), so
 * control and bidi characters are escaped: a record cannot forge lines or recolour a terminal.
 */
export function entryToTextLine(e: DecisionEntry): string {
  const r = e.record;
  const policies = r.policies.map((p) => p.id).join(', ');
  const text = `${r.time} ${r.decision.padEnd(5)} ${r.action} ${r.principal ?? '-'} → ${r.resource ?? '-'}: ${r.reason} [${policies}]`;
  return `${escapeControls(text)}\n`;
}

// C0, DEL, C1, and the Unicode bidi overrides/isolates.
// eslint-disable-next-line no-control-regex
const CONTROLS = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

export function escapeControls(s: string): string {
  return s.replace(CONTROLS, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
