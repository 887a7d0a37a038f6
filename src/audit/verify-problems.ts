export type AuditProblemKind =
  /** The entry's contents no longer match its hash, or were rewritten with it. */
  | 'changed'
  /** An entry is missing from the middle of the chain (a gap in seq). */
  | 'removed'
  /** Entries are out of place: contents moved to another seq, or seq repeats. */
  | 'reordered'
  /** The stored record is not JSON; verification stops there. */
  | 'unreadable'
  /** Entries a signed checkpoint covers were deleted from the end of the log. */
  | 'truncated'
  /** A valid checkpoint no longer matches the chain, or its row differs from what it signs. */
  | 'checkpoint_mismatch'
  /** A checkpoint's signature does not verify. */
  | 'bad_signature'
  /** A checkpoint names a key Port does not have. */
  | 'unknown_key'
  /** The checkpoints no longer form one chain: one removed from the middle, rewritten, or a link that does not match. */
  | 'checkpoint_chain'
  /** Entries after the last checkpoint are older than `checkpoint_interval` plus slack: the checkpoints covering them are gone. */
  | 'unsigned_tail'
  /** Entries spanning more than one interval, and no checkpoint at all. */
  | 'no_checkpoint'
  /** `--max-age`: the newest checkpoint is older than the verifier accepts for a live log. */
  | 'stale_checkpoint'
  /** `--anchor`: a checkpoint kept outside is no longer in the log. */
  | 'anchor_missing'
  /** `--anchor`: a checkpoint kept outside differs from the log's, or does not verify. */
  | 'anchor_mismatch';

export interface AuditProblem {
  /** The first entry the problem concerns. */
  seq: number;
  /** The checkpoint (its number) the problem concerns, for checkpoint problems. */
  checkpoint?: number;
  problem: AuditProblemKind;
  /** One line naming the entry or checkpoint: `entry 42: changed (hash does not match its contents)`. */
  message: string;
}
