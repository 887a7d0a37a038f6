import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PgDatabase } from '../../src/store/postgres/pg-database.js';
import { PostgresWebhookWork } from '../../src/store/postgres/webhook-work-table.js';
import { createMigratedDatabase, postgresUnavailable, type TestDatabase } from '../helpers/postgres.js';
import { sqlitePair } from '../helpers/sqlite-pair.js';
import { describeWebhookWorkContract } from './webhook-work-contract.js';

describeWebhookWorkContract('SQLite (two processes on one file)', async () => {
  const { one, two, cleanup } = sqlitePair('port-webhook-work-');
  return { a: one.webhookWork, b: two.webhookWork, cleanup };
});

const unavailable = await postgresUnavailable();
describe.skipIf(unavailable !== undefined)('on PostgreSQL', () => {
  // One database for this file; each test starts from an empty table.
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createMigratedDatabase();
  });
  afterAll(async () => {
    await db?.drop();
  });
  const replicas = () => {
    const pools = [new pg.Pool({ connectionString: db.url, max: 4 }), new pg.Pool({ connectionString: db.url, max: 4 })] as const;
    return {
      pools,
      async cleanup() {
        await pools[0].query('TRUNCATE webhook_work');
        await Promise.all(pools.map((p) => p.end()));
      },
    };
  };

  describeWebhookWorkContract('PostgreSQL (two replicas’ pools on one database)', async () => {
    const { pools, cleanup } = replicas();
    return { a: new PostgresWebhookWork(new PgDatabase(pools[0])), b: new PostgresWebhookWork(new PgDatabase(pools[1])), cleanup };
  });

  it('purge (from the store’s purgeExpired) deletes finished rows whose dedupe period ended, never pending ones', async () => {
    const { pools, cleanup } = replicas();
    try {
      const table = new PostgresWebhookWork(new PgDatabase(pools[0]));
      const T = 1_800_000_000_000;
      const work = (key: string) => ({ key, event: 'build.finished', payload: '{}', createdAt: T });
      for (const key of ['done-old', 'dropped-old', 'done-new', 'pending']) await table.claim(work(key), 'p', T, T + 1000);
      await table.finish('done-old', 'done', T, T + 100);
      await table.finish('dropped-old', 'dropped', T, T + 200);
      await table.finish('done-new', 'done', T, T + 201);
      // A pending row whose lease lapsed long ago stays: it is work not done yet.
      await table.purge(T + 200);
      expect((await table.list()).map((w) => w.key).sort()).toEqual(['done-new', 'pending']);
      // Inside the store's purge transaction.
      const db = new PgDatabase(pools[1]);
      await db.transaction((tx) => table.purge(T + 10_000, tx));
      expect((await table.list()).map((w) => w.key)).toEqual(['pending']);
    } finally {
      await cleanup();
    }
  });
});
