import type { DecisionRecord } from '../records/decisions.js';

/** Single-use keys (src/identity): a subject token's jti, a login's state. */
export interface ReplayStore {
  /** Records `key` as used until `expiresAt`; false when it was already used (and is not expired). */
  consume(key: string, expiresAt: number): Promise<boolean>;
  /**
   * In one transaction: consumes `key` and logs `ifFirstUse`, or, when the key was
   * already used, logs the records `ifReplayed` makes instead. One durable write per token
   * exchange, so a token is never answered as exchanged without its decision in the log.
   * `ifReplayed` is called at most once, synchronously; a store may skip it when the key
   * was free (a replay's record is rarely needed, and every exchange would otherwise build
   * it). Resolves to whether this was the first use.
   */
  consumeAndLog(key: string, expiresAt: number, ifFirstUse: DecisionRecord[], ifReplayed: () => DecisionRecord[]): Promise<boolean>;
}
