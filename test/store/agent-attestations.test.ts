import pg from 'pg';
import { afterAll, beforeAll, describe } from 'vitest';
import { PostgresStore } from '../../src/store/postgres/postgres-store.js';
import { createMigratedDatabase, postgresUnavailable, type TestDatabase } from '../helpers/postgres.js';
import { sqlitePair } from '../helpers/sqlite-pair.js';
import { describeAgentAttestationContract } from './agent-attestation-contract.js';

describeAgentAttestationContract('SQLite (two processes on one file)', async () => {
  const { one, two, cleanup } = sqlitePair('port-attestations-');
  return { a: one, b: two, cleanup };
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

  describeAgentAttestationContract('PostgreSQL (two replicas on one database)', async () => {
    const [a, b] = await Promise.all([PostgresStore.open({ url: db.url, poolSize: 4 }), PostgresStore.open({ url: db.url, poolSize: 4 })]);
    return {
      a,
      b,
      async cleanup() {
        await Promise.all([a.close(), b.close()]);
        const admin = new pg.Client({ connectionString: db.url });
        await admin.connect();
        try {
          await admin.query('TRUNCATE agent_attestations, instance_keys');
        } finally {
          await admin.end();
        }
      },
    };
  });
});
