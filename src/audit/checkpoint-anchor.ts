import type { JWK } from 'jose';
import { checkCheckpointSignature } from './checkpoint-jws.js';
import { parseCheckpointLine } from './checkpoint-line.js';
import type { Checkpoint } from '../store/records/decisions.js';
import { AuditError } from './errors.js';
import type { AuditProblem } from './verify-problems.js';

/**
 * Reads an anchor: checkpoints kept outside Port's database, as JSON lines (the output
 * of `port audit checkpoints export`, or a file checkpoint sink). Blank lines are
 * skipped; anything else that is not a checkpoint is refused, naming the line.
 */
export function parseAnchor(text: string, name: string): Checkpoint[] {
  const anchored: Checkpoint[] = [];
  const lines = text.split('\n');
  for (const [i, line] of lines.entries()) {
    if (line.trim() === '') continue;
    const parsed = parseCheckpointLine(line);
    if (typeof parsed === 'string') throw new AuditError('audit_invalid_option', `${name} line ${i + 1}: not an exported checkpoint (${parsed})`);
    anchored.push(parsed);
  }
  if (anchored.length === 0) throw new AuditError('audit_invalid_option', `${name} holds no checkpoints; export some with port audit checkpoints export`);
  return anchored;
}

/**
 * Every anchored checkpoint must still be in the store, byte for byte: a log cut back
 * to before it — entries and checkpoints alike, which the database alone cannot show —
 * or a checkpoint replaced, fails here. An anchored checkpoint that does not verify
 * under the keys in use is reported too (a forged anchor proves nothing).
 */
export async function anchorProblems(anchored: readonly Checkpoint[], stored: readonly Checkpoint[], publicKeys: Map<string, JWK>): Promise<AuditProblem[]> {
  const byJws = new Set(stored.map((c) => c.jws));
  const byNum = new Map(stored.map((c) => [c.num, c]));
  const lastNum = stored.at(-1)?.num ?? 0;
  const problems: AuditProblem[] = [];
  for (const a of anchored) {
    const sig = await checkCheckpointSignature(a, publicKeys);
    if (!sig.ok) {
      problems.push({ seq: a.seq, checkpoint: a.num, problem: 'anchor_mismatch', message: `anchored checkpoint ${a.num}: does not verify (it ${sig.reason})` });
      continue;
    }
    if (byJws.has(a.jws)) continue;
    const same = byNum.get(a.num);
    if (same && a.prev !== undefined) {
      problems.push({
        seq: a.seq,
        checkpoint: a.num,
        problem: 'anchor_mismatch',
        message: `anchored checkpoint ${a.num}: differs from the log's (the anchor covers entries up to ${a.seq} signed at ${a.time}; the log's checkpoint ${a.num} covers ${same.seq} signed at ${same.time}: the log was rewritten)`,
      });
    } else {
      const why = a.num > lastNum ? `the log's checkpoints end at ${lastNum}: the log was cut back to before it` : 'it was removed from the log';
      problems.push({
        seq: a.seq,
        checkpoint: a.num,
        problem: 'anchor_missing',
        message: `anchored checkpoint ${a.num}: missing (it covers entries up to ${a.seq}, signed at ${a.time}, but ${why})`,
      });
    }
  }
  return problems;
}
