import { describe } from 'vitest';
import { PostgresStore } from '../../src/store/postgres/postgres-store.js';
import { createTestDatabase, postgresUnavailable } from '../helpers/postgres.js';
import { describeStoreContract } from './store-contract.js';

const unavailable = await postgresUnavailable();
describe.skipIf(unavailable !== undefined)('on PostgreSQL', () => {
  describeStoreContract('PostgreSQL', async () => {
    const db = await createTestDatabase();
    return {
      store: await PostgresStore.open({ url: db.url, poolSize: 4 }),
      reopen: () => PostgresStore.open({ url: db.url, poolSize: 4 }),
      cleanup: () => db.drop(),
    };
  });
});
