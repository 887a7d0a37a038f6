import type { DecisionRecord } from '../records/decisions.js';
import type { Queryable } from './pg-database.js';

/**
 * Adds decision records to the outbox inside the caller's transaction, in order. Replicas
 * never contend here: each row takes the next `id` from a sequence and nothing else is
 * locked. The sealer (decision-log.ts) numbers and chains outbox rows later, in `id`
 * order, so the log's order is the order records reached the outbox.
 */
export async function addToOutbox(tx: Queryable, records: DecisionRecord[], now = Date.now()): Promise<void> {
  if (records.length === 0) return;
  // The exact JSON text is kept: the sealer hashes what a reader will later re-hash.
  await tx.query(
    `INSERT INTO decision_outbox (record, created_at)
     SELECT r, $2 FROM unnest($1::text[]) WITH ORDINALITY AS t(r, n) ORDER BY n`,
    [records.map((r) => JSON.stringify(r)), now],
  );
}
