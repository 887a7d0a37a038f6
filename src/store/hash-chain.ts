import { hash } from 'node:crypto';
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
  return hash('sha256', `${prevHash}\n${canonicalJson({ seq, record })}`, 'hex');
}

/**
 * The same hash from `canonicalJson(record)`, for a store that keeps that text as the
 * record (one encoding instead of two). canonical({seq, record}) is the record's
 * canonical text placed under its key: the keys sort as "record" < "seq".
 */
export function entryHashOfCanonical(seq: number, prevHash: string, canonicalRecord: string): string {
  if (!Number.isSafeInteger(seq)) throw new TypeError('entryHashOfCanonical: seq must be a safe integer');
  // One-shot hash (https://nodejs.org/api/crypto.html#cryptohashalgorithm-data-outputencoding):
  // every decision logged is hashed here, and a Hash object per call costs several times more.
  return hash('sha256', `${prevHash}\n{"record":${canonicalRecord},"seq":${seq}}`, 'hex');
}
