import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { migrate } from '../../src/store/postgres/migrate.js';
import { POSTGRES_MIGRATIONS } from '../../src/store/postgres/migrations.js';

/**
 * A real PostgreSQL for tests: the server at PORT_TEST_POSTGRES_URL (default the local
 * one, trust auth), a fresh database per test file, dropped afterwards. When the server
 * can't be reached, tests skip with the reason printed — except in CI (CI=true), where
 * they fail: `.ci/run` starts PostgreSQL, so its absence there is a broken run.
 */
export const POSTGRES_ADMIN_URL = process.env.PORT_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export interface TestDatabase {
  url: string;
  name: string;
  drop(): Promise<void>;
}

/** Why PostgreSQL can't be used here, or undefined when it can. */
export async function postgresUnavailable(): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: POSTGRES_ADMIN_URL, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return undefined;
  } catch (err) {
    const why = `PostgreSQL at ${new URL(POSTGRES_ADMIN_URL).host} is not reachable (${(err as Error).message})`;
    if (process.env.CI === 'true') throw new Error(`${why}; CI must run the PostgreSQL tests (.ci/run starts the server)`);
    console.warn(`SKIPPED PostgreSQL tests: ${why}. Start it (e.g. \`service postgresql start\`) or set PORT_TEST_POSTGRES_URL.`);
    return why;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Creates an empty database for one test file. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `port_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: POSTGRES_ADMIN_URL });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(POSTGRES_ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    async drop() {
      const c = new pg.Client({ connectionString: POSTGRES_ADMIN_URL });
      await c.connect();
      try {
        // A pool's end() resolves once its clients have *sent* Terminate, not once they are
        // gone: a backend FORCE kills meanwhile answers the closing client with FATAL 57P01
        // ("terminating connection due to administrator command"), an unhandled error in
        // the test run. So wait (up to 2 s) for the database's connections to leave first.
        for (const deadline = Date.now() + 2000; Date.now() < deadline; ) {
          const { rows } = await c.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1', [name]);
          if (rows[0]!.n === 0) break;
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}

/** A fresh database with Port's schema (POSTGRES_MIGRATIONS) applied. */
export async function createMigratedDatabase(): Promise<TestDatabase> {
  const db = await createTestDatabase();
  const pool = new pg.Pool({ connectionString: db.url, max: 1 });
  try {
    await migrate(pool, POSTGRES_MIGRATIONS);
  } finally {
    await pool.end();
  }
  return db;
}
