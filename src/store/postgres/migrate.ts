import type { Pool, PoolClient } from 'pg';
import { PortError } from '../../errors.js';
import { StoreTooNewError } from '../errors.js';

/** One schema change: applied once, in order of `version`, inside its own transaction. */
export interface PostgresMigration {
  /** 1, 2, 3…: gap-free and increasing; never renumbered once released. */
  version: number;
  /** A few words for the log and the history table ("decision log", "webhook work"). */
  name: string;
  /** The DDL (several statements are fine: it runs as one simple query). */
  sql: string;
}

/** A migration failed (rolled back: the schema is as the previous version left it), or the list is inconsistent. */
export class MigrationError extends PortError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('store_migration_failed', message, 500, options);
  }
}

export interface MigrateResult {
  /** Versions this call applied (empty when another replica had already applied them). */
  applied: number[];
  /** The schema version after the call. */
  version: number;
}

/**
 * Session-level advisory lock key shared by every Port replica migrating one database:
 * the first 8 bytes of SHA-256("buildkite-port schema migrations"), as a signed bigint.
 * Any constant works as long as no other application on the database uses it.
 */
export const MIGRATION_LOCK_KEY = '3172269410220172586';

const HISTORY_TABLE = 'port_schema_migrations';

/**
 * Brings the database to the newest schema. Safe when several replicas start at once:
 * each takes the same session-level advisory lock (`pg_advisory_lock`,
 * https://www.postgresql.org/docs/current/explicit-locking.html#ADVISORY-LOCKS) before
 * reading the history, so one applies what is pending while the others wait and then find
 * nothing to do. Each migration runs in its own transaction together with its history
 * row (PostgreSQL's DDL is transactional), so a failure leaves the schema at the previous
 * version, never half-applied. A database newer than this Port (a history row it does not
 * know) is refused: an older replica must not run against a schema it does not understand.
 */
export async function migrate(pool: Pool, migrations: readonly PostgresMigration[]): Promise<MigrateResult> {
  checkList(migrations);
  const client = await pool.connect();
  // A dropped connection fails the query in flight; unheard, its 'error' event would crash the process.
  let broken = false;
  const onError = (): void => {
    broken = true;
  };
  client.on('error', onError);
  let locked = false;
  try {
    await client.query('SELECT pg_advisory_lock($1::bigint)', [MIGRATION_LOCK_KEY]);
    locked = true;
    // Created only when missing: a read-only role (`port audit`, `port agents audit`) may
    // not CREATE in the schema even when the table is there.
    const history = await client.query<{ t: string | null }>('SELECT to_regclass($1) AS t', [HISTORY_TABLE]);
    if (history.rows[0]?.t == null) {
      await client.query(
        `CREATE TABLE IF NOT EXISTS ${HISTORY_TABLE} (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
      );
    }
    const done = (await client.query<{ version: number }>(`SELECT version FROM ${HISTORY_TABLE} ORDER BY version`)).rows.map((r) => r.version);
    const newest = migrations.at(-1)?.version ?? 0;
    const unknown = done.filter((v) => v > newest);
    if (unknown.length > 0) {
      throw new StoreTooNewError(
        `the database's schema is at version ${Math.max(...unknown)}, newer than this Port knows (${newest}); run the newer Port, or restore the database it was made for`,
      );
    }
    const applied: number[] = [];
    for (const m of migrations) {
      if (done.includes(m.version)) continue;
      await applyOne(client, m);
      applied.push(m.version);
    }
    return { applied, version: newest };
  } finally {
    if (locked && !broken) await client.query('SELECT pg_advisory_unlock($1::bigint)', [MIGRATION_LOCK_KEY]).catch(() => undefined);
    client.off('error', onError);
    client.release(broken ? true : undefined);
  }
}

async function applyOne(client: PoolClient, m: PostgresMigration): Promise<void> {
  try {
    await client.query('BEGIN');
    await client.query(m.sql);
    await client.query(`INSERT INTO ${HISTORY_TABLE} (version, name) VALUES ($1, $2)`, [m.version, m.name]);
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    const detail = err instanceof Error ? err.message : String(err);
    throw new MigrationError(`schema migration ${m.version} (${m.name}) failed and was rolled back: ${detail}`, { cause: err });
  }
}

function checkList(migrations: readonly PostgresMigration[]): void {
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) throw new MigrationError(`schema migrations must be numbered 1, 2, 3… in order; found ${m.version} at position ${i + 1}`);
  });
}
