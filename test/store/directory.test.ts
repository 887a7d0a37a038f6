import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { PgDatabase } from '../../src/store/postgres/pg-database.js';
import { PostgresScim } from '../../src/store/postgres/scim-tables.js';
import { PostgresSessions, PostgresUsers } from '../../src/store/postgres/user-tables.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { createMigratedDatabase, postgresUnavailable, type TestDatabase } from '../helpers/postgres.js';
import { sqlitePair } from '../helpers/sqlite-pair.js';
import { describeDirectoryContract, type DirectoryHandle } from './directory-contract.js';

function byEmailOf(result: unknown): string[] {
  return (result as { changes: { email: string }[] }).changes.map((c) => c.email);
}

/** Resolves once `n` backends of the test database wait on a lock (not a timing assumption: it polls until they do). */
async function waiters(pool: pg.Pool, n: number): Promise<void> {
  for (;;) {
    const r = await pool.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
    );
    if (r.rows[0]!.n >= n) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describeDirectoryContract('SQLite (two processes on one file)', async () => {
  const { one, two, cleanup } = sqlitePair('port-directory-');
  const handle = (s: SqliteStore): DirectoryHandle => ({ users: s.users, sessions: s.sessions, scim: s.scim });
  return { ...handle(one), replica: handle(two), cleanup };
});

const unavailable = await postgresUnavailable();
describe.skipIf(unavailable !== undefined)('on PostgreSQL', () => {
  // One database for the file, migrated once; each test starts from empty tables.
  let database: Promise<TestDatabase> | undefined;
  const migrated = (): Promise<TestDatabase> =>
    (database ??= createMigratedDatabase());
  afterAll(async () => {
    await (await database)?.drop();
  });

  describeDirectoryContract('PostgreSQL (two replicas’ pools on one database)', async () => {
    const db = await migrated();
    const pools = [new pg.Pool({ connectionString: db.url, max: 4 }), new pg.Pool({ connectionString: db.url, max: 4 })] as const;
    await pools[0].query('TRUNCATE users, sessions, scim_members, scim_groups, scim_users');
    const handle = (pool: pg.Pool): DirectoryHandle => {
      const pgdb = new PgDatabase(pool);
      return { users: new PostgresUsers(pgdb), sessions: new PostgresSessions(pgdb), scim: new PostgresScim(pgdb) };
    };
    return {
      ...handle(pools[0]),
      replica: handle(pools[1]),
      async cleanup() {
        await Promise.all(pools.map((p) => p.end()));
      },
    };
  });

  it('a group write and an e-mail change forced to interleave: the group still lands on the new e-mail', async () => {
    // The e-mail change commits while the group write is under way; the group write must
    // then derive the person under the e-mail the change left, not the one it first saw.
    const db = await migrated();
    const pools = [0, 1, 2].map(() => new pg.Pool({ connectionString: db.url, max: 2 }));
    const [a, b, observer] = pools as [pg.Pool, pg.Pool, pg.Pool];
    const blocker = await observer.connect();
    try {
      await a.query('TRUNCATE users, sessions, scim_members, scim_groups, scim_users');
      const [scimA, scimB] = [new PostgresScim(new PgDatabase(a)), new PostgresScim(new PgDatabase(b))];
      const users = new PostgresUsers(new PgDatabase(a));
      const u1 = { id: 'u1', userName: 'kim', email: 'before@acme.test', active: true, attributes: {}, created: 1, lastModified: 1, version: 1 };
      await scimA.createUser(u1);
      await scimA.createGroup({ id: 'g1', displayName: 'deployers', members: [], created: 1, lastModified: 1, version: 1 });
      // Hold the person the e-mail change must lock after updating the SCIM user.
      await blocker.query('BEGIN');
      await blocker.query("SELECT 1 FROM users WHERE email = 'before@acme.test' FOR UPDATE");
      const moved = scimA.replaceUser({ ...u1, email: 'after@acme.test', version: 2, lastModified: 2 }, 1);
      await waiters(observer, 1);
      const grouped = scimB.replaceGroup({ id: 'g1', displayName: 'deployers', members: ['u1'], created: 1, lastModified: 3, version: 2 }, 1);
      await waiters(observer, 2);
      await blocker.query('ROLLBACK');
      expect(await moved).toMatchObject({ changes: [{ email: 'before@acme.test' }, { email: 'after@acme.test' }] });
      expect(byEmailOf(await grouped)).toEqual(['after@acme.test']);
      expect(await users.get('after@acme.test')).toMatchObject({ active: true, groups: ['deployers'] });
      expect(await users.get('before@acme.test')).toMatchObject({ active: false, groups: [] });
    } finally {
      blocker.release();
      await Promise.all(pools.map((p) => p.end()));
    }
  });
});
