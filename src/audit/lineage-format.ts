import { escapeControls } from './format.js';
import type { Lineage, LineageGroup, LineageSelector, LineageStep } from './lineage.js';
import type { AuditVerifyReport } from './verify.js';

/**
 * The chain as text: a heading per job (or build, or user), then one line per entry:
 * `time decision action resource — reason | key=value …`. Values come from tokens and
 * webhooks (branch names, labels), so control and bidi characters are escaped.
 */
export function lineageToText(l: Lineage): string {
  const lines: string[] = [`Lineage of ${selectorText(l.selector)}: ${plural(l.entries.length, 'entry', 'entries')}${groupsText(l)}.`];
  for (const g of l.groups) {
    lines.push('', `${g.kind} ${g.id}${g.title.length > 0 ? `  ${factsText(g.title)}` : ''}`);
    for (const s of g.steps) lines.push(`  ${stepText(s)}`);
  }
  return `${lines.map(escapeControls).join('\n')}\n`;
}

/** One line saying what was read and whether the chain it came from verifies. */
export function verificationText(report: AuditVerifyReport, lastSeqRead: number): string {
  const range = lastSeqRead > 0 ? `entries 1–${lastSeqRead}` : 'no entries';
  if (!report.ok) {
    return `Decision log: read ${range}; it DOES NOT VERIFY (${plural(report.problemCount, 'problem')}; the first is ${report.firstBad?.message ?? 'unknown'}): run port audit verify.`;
  }
  const signed =
    report.lastCheckpointSeq > 0 ? `signed by checkpoints up to entry ${report.lastCheckpointSeq}` : 'not yet signed by any checkpoint';
  const unsigned = report.unsignedEntries > 0 ? `; ${plural(report.unsignedEntries, 'later entry', 'later entries')} only hash-chained` : '';
  return `Decision log: read ${range}; the hash chain verifies, ${signed}${unsigned}.`;
}

export function selectorText(s: LineageSelector): string {
  return `${s.kind} ${s.id}`;
}

function groupsText(l: Lineage): string {
  if (l.selector.kind === 'job') return '';
  const jobs = l.groups.filter((g) => g.kind === 'job').length;
  return jobs > 0 ? ` in ${plural(jobs, 'job')}` : '';
}

function stepText(s: LineageStep): string {
  const r = s.entry.record;
  const action =
    s.stage === 'credential'
      ? `assume (credential ${r.decision === 'allow' ? 'issued' : 'refused'})`
      : s.stage === 'grant'
        ? 'assume (granted at exchange)'
        : r.action;
  // Policy reasons are in the decision's reason already; list ids only when they are not.
  const unnamed = r.policies.filter((p) => !r.reason.includes(p.id)).map((p) => (p.reason !== undefined ? `${p.id}: ${p.reason}` : p.id));
  const why = `${r.reason}${unnamed.length > 0 ? ` [${unnamed.join('; ')}]` : ''}`;
  return `${s.at} ${r.decision.padEnd(5)} ${action} ${r.resource ?? '-'} — ${why}${s.facts.length > 0 ? ` | ${factsText(s.facts)}` : ''}`;
}

function factsText(facts: [string, string][]): string {
  return facts.map(([k, v]) => `${k}=${/[\s"|=]/.test(v) || v === '' ? JSON.stringify(v) : v}`).join(' ');
}

function plural(n: number, word: string, words = `${word}s`): string {
  return `${n} ${n === 1 ? word : words}`;
}
