import type { RevocationRecord, RevocationStore } from '../repositories/revocations.js';
import { revocationFromRow, type RevocationRow } from '../revocation-rows.js';
import { recordChanges } from './change-feed.js';
import type { PgDatabase } from './pg-database.js';


/**
 * The revocation list on PostgreSQL (`revocations`), one row per revocation or lift.
 * Each write also records a change (same transaction) and notifies listeners at commit,
 * so every replica's in-memory list hears of it (src/store/postgres/change-feed.ts).
 */
export class PostgresRevocations implements RevocationStore {
  constructor(private readonly db: PgDatabase) {}

  async add(r: RevocationRecord): Promise<void> {
    await this.db.transaction(async (tx) => {
      await tx.query(
        `INSERT INTO revocations (id, kind, scope, target, origin, revoked_at, expires_at, reason, subject) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (id) DO UPDATE SET revoked_at = greatest(revocations.revoked_at, EXCLUDED.revoked_at),
           expires_at = greatest(revocations.expires_at, EXCLUDED.expires_at),
           reason = CASE WHEN EXCLUDED.revoked_at >= revocations.revoked_at THEN EXCLUDED.reason ELSE revocations.reason END`,
        [r.id, r.kind, r.scope, r.target, r.origin, r.revokedAt, r.expiresAt, r.reason, r.subject ?? null],
      );
      await recordChanges(tx, 'revocations', [r.id]);
    });
  }

  async listActive(now: number): Promise<RevocationRecord[]> {
    return (await this.db.query<RevocationRow>('SELECT * FROM revocations WHERE expires_at > $1', [now])).rows.map(revocationFromRow);
  }

  async byIds(ids: readonly string[]): Promise<RevocationRecord[]> {
    return (await this.db.query<RevocationRow>('SELECT * FROM revocations WHERE id = ANY($1::text[])', [[...ids]])).rows.map(revocationFromRow);
  }
}
