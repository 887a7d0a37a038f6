import type { LeaseRecord, LeaseStore } from '../repositories/leases.js';
import type { PgDatabase } from './pg-database.js';

/**
 * The `leases` table on PostgreSQL. `INSERT … ON CONFLICT DO UPDATE … WHERE` locks the
 * conflicting row and re-checks the condition, so concurrent acquires from several
 * replicas serialise on that row and exactly one wins
 * (https://www.postgresql.org/docs/current/sql-insert.html#SQL-ON-CONFLICT).
 */
export class PostgresLeases implements LeaseStore {
  constructor(private readonly db: PgDatabase) {}

  async acquire(name: string, owner: string, now: number, ttlMs: number): Promise<boolean> {
    const r = await this.db.write(
      `INSERT INTO leases (name, owner, until) VALUES ($1, $2, $3)
       ON CONFLICT (name) DO UPDATE SET owner = EXCLUDED.owner, until = EXCLUDED.until
       WHERE leases.until <= $4 OR leases.owner = EXCLUDED.owner`,
      [name, owner, now + ttlMs, now],
    );
    return r.rowCount === 1;
  }

  async release(name: string, owner: string): Promise<void> {
    await this.db.write('DELETE FROM leases WHERE name = $1 AND owner = $2', [name, owner]);
  }

  async holder(name: string, now: number): Promise<LeaseRecord | undefined> {
    const r = await this.db.query<{ name: string; owner: string; until: string }>('SELECT name, owner, until FROM leases WHERE name = $1 AND until > $2', [name, now]);
    const row = r.rows[0];
    // bigint arrives as a string (node-postgres keeps 64-bit integers exact); ms times fit a double.
    return row && { name: row.name, owner: row.owner, until: Number(row.until) };
  }
}
