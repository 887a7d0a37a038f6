/**
 * One decision log entry: who asked to do
 * what to which resource, the outcome, the policies that determined it and why, and
 * the identity context. Never a token value, a body or a secret: a token appears
 * only as the SHA-256 of its `jti`.
 */
export interface DecisionRecord {
  /** Decision id, also returned to the caller so a refusal can be found in the log. */
  id: string;
  /** RFC 3339 time the decision was made. */
  time: string;
  /** Cedar principal, e.g. `Port::Job::"0190…"`; null when the caller could not be identified. */
  principal: string | null;
  /** Cedar action name (`exchange`, `assume`, …) or a refusal step (`verify_token`). */
  action: string;
  /** Cedar resource, e.g. `Port::Organization::"acme"`. */
  resource: string | null;
  decision: 'allow' | 'deny';
  /** The determining policies (all satisfied forbids on deny, permits on allow). */
  policies: { id: string; reason?: string }[];
  /** One sentence saying why. */
  reason: string;
  /** Policies that failed to evaluate (each makes the decision a deny). */
  errors?: { policyId: string; message: string }[];
  /** Revision of the policy set that decided. */
  policyRevision?: string;
  /** Identity and request context: claims, hashes, codes — never secrets. */
  context: Record<string, unknown>;
}

/** A record as stored: its place in the hash chain. */
export interface DecisionEntry {
  seq: number;
  prevHash: string;
  hash: string;
  record: DecisionRecord;
}

/**
 * A signed statement that the chain up to `seq` ended in `hash` at `time`. Checkpoints
 * form a chain of their own: each signs the SHA-256 of the previous checkpoint's JWS
 * (`prev`), so one removed from the middle, or rewritten, breaks every link after it.
 * Port also writes one every `audit.checkpoint_interval` when nothing was logged (a
 * heartbeat, same `seq` as the one before), so checkpoints are numbered on their own.
 */
export interface Checkpoint {
  /** The checkpoint's own number, 1, 2, 3… in the order written. */
  num: number;
  seq: number;
  hash: string;
  time: string;
  kid: string;
  /**
   * SHA-256 (hex) of the previous checkpoint's compact JWS, or 64 zeros for the first.
   * Absent on checkpoints written by Port versions before the chain (legacy), which
   * signed only `{seq, hash, time}` and may only precede chained ones.
   */
  prev?: string;
  /** Compact JWS over `{num, seq, hash, time, prev}` (legacy: `{seq, hash, time}`) made with Port's signing key `kid`. */
  jws: string;
}
