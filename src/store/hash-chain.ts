import { createHash } from 'node:crypto';
import { canonicalJson } from './canonical-json.js';
import type { DecisionRecord } from './records/decisions.js';

/** The `prevHash` of the first entry. */
export const GENESIS_HASH = '0'.repeat(64);

/**
 * hash(n) = SHA-256(prevHash ‖ "\n" ‖ canonical({seq, record})). Binding `seq` and
 * the previous hash into each entry makes any change, removal or reordering of an
 * entry break every hash after it.
 */
export function entryHash(seq: number, prevHash: string, record: DecisionRecord): string {
  return createHash('sha256').update(prevHash).update('\n').update(canonicalJson({ seq, record })).digest('hex');
}
