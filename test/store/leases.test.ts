import pg from 'pg';
import { describe } from 'vitest';
import { PostgresLeases } from '../../src/store/postgres/lease-table.js';
import { PgDatabase } from '../../src/store/postgres/pg-database.js';
import { migrate } from '../../src/store/postgres/migrate.js';
import { POSTGRES_MIGRATIONS } from '../../src/store/postgres/migrations.js';
import { createTestDatabase, postgresUnavailable } from '../helpers/postgres.js';
import { sqlitePair } from '../helpers/sqlite-pair.js';
import { describeLeaseContract } from './lease-contract.js';

describeLeaseContract('SQLite (two processes on one file)', async () => {
  const { one, two, cleanup } = sqlitePair('port-leases-');
  return { a: one.leases, b: two.leases, cleanup };
});

const unavailable = await postgresUnavailable();
describe.skipIf(unavailable !== undefined)('on PostgreSQL', () => {
  describeLeaseContract('PostgreSQL (two replicas’ pools on one database)', async () => {
    const db = await createTestDatabase();
    const pools = [new pg.Pool({ connectionString: db.url, max: 4 }), new pg.Pool({ connectionString: db.url, max: 4 })] as const;
    // An idle client the server ends (another test's FORCE drop or termination on the shared
    // server) is the pool's 'error' event; unhandled it would crash the run, and the contract's
    // own queries fail visibly if it matters.
    for (const p of pools) p.on('error', () => undefined);
    await migrate(pools[0], POSTGRES_MIGRATIONS);
    return {
      a: new PostgresLeases(new PgDatabase(pools[0])),
      b: new PostgresLeases(new PgDatabase(pools[1])),
      async cleanup() {
        await Promise.all(pools.map((p) => p.end()));
        await db.drop();
      },
    };
  });
});
