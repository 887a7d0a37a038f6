import { checkpointDigest, GENESIS_CHECKPOINT } from './checkpoint-jws.js';
import type { Checkpoint } from '../store/records/decisions.js';
import type { AuditProblem } from './verify-problems.js';

/**
 * Checks that the stored checkpoints still form the chain Port wrote: numbered 1…n
 * without a gap, each chained one linking (`prev`) to the SHA-256 of the JWS before it
 * (the first to 64 zeros), never covering fewer entries or an earlier time than the one
 * before. Legacy checkpoints (written before the chain, no `prev`) may only come first.
 *
 * Signatures are checked elsewhere (checkpoint-jws.ts); since a valid signature covers
 * `num` and `prev`, removing a checkpoint from the middle, or replacing one, breaks a
 * link that nobody without Port's key can mend. Cutting off the newest checkpoints does
 * not: that is what the timing rules, `--max-age` and `--anchor` are for.
 *
 * `checkpoints` must be ordered by `num`.
 */
export function checkCheckpointChain(checkpoints: readonly Checkpoint[]): AuditProblem[] {
  const problems: AuditProblem[] = [];
  const broken = (c: Checkpoint, why: string): void => {
    problems.push({ seq: c.seq, checkpoint: c.num, problem: 'checkpoint_chain', message: `checkpoint ${c.num}: chain broken (${why})` });
  };
  let before: Checkpoint | undefined;
  for (const c of checkpoints) {
    const expectedNum = (before?.num ?? 0) + 1;
    if (c.num !== expectedNum) {
      const range = c.num - 1 === expectedNum ? `checkpoint ${expectedNum} is missing` : `checkpoints ${expectedNum}–${c.num - 1} are missing`;
      broken(c, c.num > expectedNum ? range : `its number repeats or goes back after checkpoint ${before?.num ?? 0}`);
    } else if (c.prev === undefined) {
      if (before?.prev !== undefined) broken(c, `an unchained (legacy) checkpoint follows chained checkpoint ${before.num}`);
    } else {
      const expectedPrev = before ? checkpointDigest(before.jws) : GENESIS_CHECKPOINT;
      if (c.prev !== expectedPrev) {
        broken(c, before ? `it does not link to checkpoint ${before.num}: a checkpoint between them was removed or rewritten` : 'it is not the first checkpoint Port wrote: the ones before it were removed');
      }
    }
    if (before && c.seq < before.seq) broken(c, `it covers entries up to ${c.seq}, fewer than checkpoint ${before.num} (${before.seq})`);
    else if (before && Date.parse(c.time) < Date.parse(before.time)) broken(c, `it was signed at ${c.time}, before checkpoint ${before.num} (${before.time})`);
    before = c;
  }
  return problems;
}
