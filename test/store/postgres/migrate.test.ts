/**
 * Migrations on start: several replicas starting at once against one real
 * PostgreSQL apply each migration exactly once (an advisory lock), a failing migration
 * leaves the schema at the previous version, and a database newer than this Port is refused.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MigrationError, migrate, type PostgresMigration } from '../../../src/store/postgres/migrate.js';
import { StoreTooNewError } from '../../../src/store/errors.js';
import { createTestDatabase, postgresUnavailable, type TestDatabase } from '../../helpers/postgres.js';

const unavailable = await postgresUnavailable();

/** Migrations that make a race visible: each appends to a log table, and the second is slow. */
const MIGRATIONS: PostgresMigration[] = [
  { version: 1, name: 'log table', sql: 'CREATE TABLE applied_log (version integer NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp()); INSERT INTO applied_log (version) VALUES (1);' },
  { version: 2, name: 'slow change', sql: 'SELECT pg_sleep(0.3); CREATE TABLE widgets (id text PRIMARY KEY); INSERT INTO applied_log (version) VALUES (2);' },
  { version: 3, name: 'index', sql: 'CREATE INDEX widgets_id ON widgets (id); INSERT INTO applied_log (version) VALUES (3);' },
];

describe.skipIf(unavailable !== undefined)('PostgreSQL schema migrations', () => {
  let db: TestDatabase;
  const pools: pg.Pool[] = [];
  const pool = () => {
    const p = new pg.Pool({ connectionString: db.url, max: 2 });
    pools.push(p);
    return p;
  };
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await Promise.all(pools.map((p) => p.end()));
    await db?.drop();
  });

  it('three replicas starting at once apply each migration exactly once, in order', async () => {
    const replicas = [pool(), pool(), pool()];
    const results = await Promise.all(replicas.map((p) => migrate(p, MIGRATIONS)));
    // One replica did the work; the others waited on the lock and found nothing pending.
    expect(results.map((r) => r.applied.length).sort()).toEqual([0, 0, 3]);
    expect(results.every((r) => r.version === 3)).toBe(true);
    const log = (await replicas[0]!.query<{ version: number }>('SELECT version FROM applied_log ORDER BY at')).rows.map((r) => r.version);
    expect(log).toEqual([1, 2, 3]);
    const history = (await replicas[0]!.query<{ version: number; name: string }>('SELECT version, name FROM port_schema_migrations ORDER BY version')).rows;
    expect(history).toEqual(MIGRATIONS.map(({ version, name }) => ({ version, name })));
    // A later start applies nothing.
    expect(await migrate(pool(), MIGRATIONS)).toEqual({ applied: [], version: 3 });
  });

  it('a failing migration is rolled back whole and named; the schema stays at the previous version', async () => {
    const p = pool();
    const broken: PostgresMigration = { version: 4, name: 'broken', sql: 'CREATE TABLE gadgets (id text); ALTER TABLE no_such_table ADD COLUMN x integer;' };
    const err = await migrate(p, [...MIGRATIONS, broken]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MigrationError);
    expect((err as MigrationError).code).toBe('store_migration_failed');
    expect((err as Error).message).toMatch(/^schema migration 4 \(broken\) failed and was rolled back: relation "no_such_table" does not exist$/);
    // Its first statement did not stick either.
    expect((await p.query("SELECT to_regclass('gadgets') AS t")).rows[0].t).toBeNull();
    expect((await p.query('SELECT max(version) AS v FROM port_schema_migrations')).rows[0].v).toBe(3);
    // The lock was released: a fixed migration applies.
    const fixed: PostgresMigration = { ...broken, sql: 'CREATE TABLE gadgets (id text);' };
    expect(await migrate(p, [...MIGRATIONS, fixed])).toEqual({ applied: [4], version: 4 });
  });

  it('refuses a database whose schema is newer than this Port knows, changing nothing', async () => {
    const err = await migrate(pool(), MIGRATIONS).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreTooNewError);
    expect((err as Error).message).toBe(
      "the database's schema is at version 4, newer than this Port knows (3); run the newer Port, or restore the database it was made for",
    );
  });

  it('refuses a list that is not numbered 1, 2, 3… before touching the database', async () => {
    await expect(migrate(pool(), [MIGRATIONS[0]!, MIGRATIONS[2]!])).rejects.toThrow('schema migrations must be numbered 1, 2, 3… in order; found 3 at position 2');
  });
});
