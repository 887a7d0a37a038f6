import type { DecisionEntry } from '../store/records/decisions.js';

/** One JSON line: the chain fields, then the record's own fields. */
export function entryToJsonLine(e: DecisionEntry): string {
  return `${JSON.stringify({ seq: e.seq, hash: e.hash, prevHash: e.prevHash, ...e.record })}\n`;
}

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
