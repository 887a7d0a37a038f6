import pg from 'pg';
import { afterAll, beforeAll, describe } from 'vitest';
import type { DecisionRecord } from '../../src/store/records/decisions.js';
import { PostgresApprovals } from '../../src/store/postgres/approval-table.js';
import { PostgresIssuedCredentials, PostgresSecretVersions } from '../../src/store/postgres/credential-tables.js';
import { PgDatabase } from '../../src/store/postgres/pg-database.js';
import { PostgresSigningKeys } from '../../src/store/postgres/signing-key-table.js';
import { createMigratedDatabase, postgresUnavailable, type TestDatabase } from '../helpers/postgres.js';
import { sqlitePair } from '../helpers/sqlite-pair.js';
import { describeOperationsContract, type OperationsHandles } from './operations-contract.js';

describeOperationsContract('SQLite (two processes on one file)', async () => {
  const { one, two, cleanup } = sqlitePair('port-operations-');
  return {
    a: one,
    b: two,
    // SQLite seals decisions in the write's own transaction: the log is the record.
    logged: async () => (await one.decisions.read(0, 10_000)).map((e) => e.record),
    cleanup,
  };
});

const unavailable = await postgresUnavailable();
describe.skipIf(unavailable !== undefined)('on PostgreSQL', () => {
  // One database for this file; each test starts from empty tables.
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createMigratedDatabase();
  });
  afterAll(async () => {
    await db?.drop();
  });

  const handles = (database: PgDatabase): OperationsHandles => ({
    keys: new PostgresSigningKeys(database),
    approvals: new PostgresApprovals(database),
    issued: new PostgresIssuedCredentials(database),
    secretVersions: new PostgresSecretVersions(database),
  });

  describeOperationsContract('PostgreSQL (two replicas’ pools on one database)', async () => {
    const pools = [new pg.Pool({ connectionString: db.url, max: 4 }), new pg.Pool({ connectionString: db.url, max: 4 })] as const;
    // An idle client the server ends (another test's FORCE drop or termination on the shared
    // server) is the pool's 'error' event; unhandled it would crash the run, and the contract's
    // own queries fail visibly if it matters.
    for (const p of pools) p.on('error', () => undefined);
    return {
      a: handles(new PgDatabase(pools[0])),
      b: handles(new PgDatabase(pools[1])),
      // Replicas commit decisions to the outbox; the sealer chains them later (not under test here).
      logged: async () => (await pools[0].query<{ record: string }>('SELECT record FROM decision_outbox ORDER BY id')).rows.map((r) => JSON.parse(r.record) as DecisionRecord),
      async cleanup() {
        await pools[0].query('TRUNCATE signing_keys, approval_requests, issued_credentials, secret_versions, decision_outbox');
        await Promise.all(pools.map((p) => p.end()));
      },
    };
  });
});
