import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { CHANGES_KEPT_MS, PostgresChangeFeed } from '../../src/store/postgres/change-feed.js';
import { PostgresStore } from '../../src/store/postgres/postgres-store.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { createTestDatabase, postgresUnavailable, type TestDatabase } from '../helpers/postgres.js';
import { startTcpProxy } from '../helpers/tcp-proxy.js';
import { describeChangeFeedContract, Heard, person, revocation, until } from './change-feed-contract.js';

describeChangeFeedContract('SQLite (the process that writes is the one that hears)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'port-feed-'));
  const store = SqliteStore.open(join(dir, 'port.db'));
  return {
    writer: store,
    subscriber: store,
    async cleanup() {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

const unavailable = await postgresUnavailable();
describe.skipIf(unavailable !== undefined)('on PostgreSQL', () => {
  describeChangeFeedContract('PostgreSQL (two replicas on one database)', async () => {
    const db = await createTestDatabase();
    const writer = await PostgresStore.open({ url: db.url, poolSize: 4 });
    const subscriber = await PostgresStore.open({ url: db.url, poolSize: 4 });
    return {
      writer,
      subscriber,
      catchUp: () => subscriber.changes.catchUp(),
      async cleanup() {
        await Promise.all([writer.close(), subscriber.close()]);
        await db.drop();
      },
    };
  });

  describe('PostgreSQL change feed between replicas', () => {
    /** A fresh database, a writer replica and what each test makes of it; all closed afterwards. */
    const withDatabase = (fn: (db: TestDatabase, writer: PostgresStore, closeLater: (c: { close(): Promise<void> }) => void) => Promise<void>) => async () => {
      const db = await createTestDatabase();
      const toClose: { close(): Promise<void> }[] = [];
      try {
        const writer = await PostgresStore.open({ url: db.url, poolSize: 4 });
        toClose.push(writer);
        await fn(db, writer, (c) => toClose.push(c));
      } finally {
        await Promise.all(toClose.map((c) => c.close()));
        await db.drop();
      }
    };
    const ids = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-${String(i).padStart(2, '0')}`);

    it(
      'its LISTEN connection killed, the feed reconnects on its timer and delivers what was committed meanwhile, once each, in order',
      withDatabase(async (db, writer, closeLater) => {
        // The subscriber's connections are told apart by application_name (the URL's wins
        // over the store's default, https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-CONNECT-APPLICATION-NAME).
        // pg_stat_activity can't say which backend LISTENs (its `query` is only the last
        // statement, here the feed's catch-up read), so all of this replica's go.
        const name = `port-feed-${randomBytes(4).toString('hex')}`;
        const url = new URL(db.url);
        url.searchParams.set('application_name', name);
        const errors: unknown[] = [];
        const subscriber = await PostgresStore.open({ url: url.toString(), poolSize: 2, feedConfirmEveryMs: 200, onError: (err) => errors.push(err) });
        closeLater(subscriber);
        const heard = new Heard(subscriber.changes);
        // Heard without asking: by notification (or the timer).
        await writer.revocations.add(revocation('before'));
        await until(() => heard.changes.length === 1, 'the first revocation');

        const admin = new pg.Client({ connectionString: db.url });
        await admin.connect();
        try {
          // https://www.postgresql.org/docs/current/functions-admin.html#FUNCTIONS-ADMIN-SIGNAL
          const killed = await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1', [name]);
          expect(killed.rowCount).toBeGreaterThanOrEqual(1);
        } finally {
          await admin.end();
        }
        const during = ids('during', 4);
        for (const id of during) await writer.revocations.add(revocation(id));

        await until(() => heard.changes.length >= 1 + during.length, 'the revocations committed around the kill');
        expect(heard.changes.map((c) => c.key)).toEqual(['before', ...during]);
        expect(errors.length).toBeGreaterThan(0);
        // The new connection LISTENs too.
        await writer.revocations.add(revocation('after'));
        await until(() => heard.changes.length === 2 + during.length, 'a revocation after the reconnect');
        expect(heard.changes.at(-1)).toEqual({ topic: 'revocations', key: 'after' });
      }),
    );

    it(
      'while its network is down the feed is not current and makes one connection attempt at a time; after, it catches up before it says current again',
      withDatabase(async (db, writer, closeLater) => {
        const url = new URL(db.url);
        const proxy = await startTcpProxy({ host: url.hostname, port: Number(url.port || 5432) });
        closeLater(proxy);
        url.hostname = proxy.address.host;
        url.port = String(proxy.address.port);
        const errors: unknown[] = [];
        const subscriber = await PostgresStore.open({ url: url.toString(), poolSize: 2, feedConfirmEveryMs: 50, onError: (err) => errors.push(err) });
        closeLater(subscriber);
        const heard = new Heard(subscriber.changes);
        // Six heartbeats: a healthy feed stays within it, one cut off soon falls behind.
        const maxLagMs = 300;
        await until(() => subscriber.changes.health(maxLagMs).current, 'a current feed');

        proxy.cut();
        await until(() => !subscriber.changes.health(maxLagMs).current, 'the feed to fall behind');
        expect(subscriber.changes.health(maxLagMs).reason).toMatch(/database/);
        // The first changes this database ever has, made while the subscriber can't hear.
        await writer.revocations.add(revocation('r-1'));
        await writer.users.upsert(person('ivy@acme.test'));
        await writer.revocations.add(revocation('r-2'));
        // Its reconnects hang (as behind a dead network) for longer than a heartbeat: still one at a time.
        await until(() => proxy.held > 0, 'a reconnect attempt');
        // Room for several more heartbeats, each of which could start another attempt.
        await new Promise((resolve) => setTimeout(resolve, 300));
        expect(proxy.held).toBeLessThanOrEqual(1);
        expect(heard.changes).toEqual([]);
        expect(subscriber.changes.health(maxLagMs).current).toBe(false);

        proxy.restore();
        await until(() => subscriber.changes.health(maxLagMs).current, 'the feed to be current again');
        // Current means caught up: everything committed while it was away has been delivered.
        expect(heard.changes).toEqual([
          { topic: 'revocations', key: 'r-1' },
          { topic: 'users', key: 'ivy@acme.test' },
          { topic: 'revocations', key: 'r-2' },
        ]);
        // One connection: no attempt from the outage left behind (the pool's were cut and not needed since).
        expect(proxy.forwarded).toBe(1);
        expect(errors.length).toBeGreaterThan(0);
      }),
    );

    it(
      'twenty revocations committed at once from two replicas are each heard exactly once, in version order',
      withDatabase(async (db, writer, closeLater) => {
        const subscriber = await PostgresStore.open({ url: db.url, poolSize: 10, feedConfirmEveryMs: 50 });
        closeLater(subscriber);
        const heard = new Heard(subscriber.changes);
        const all = ids('rev', 20);
        // The subscriber reads over and over while the writes commit: had it read a version
        // before a lower one committed, it would skip that one for good.
        let writing = true;
        const reader = (async () => {
          while (writing) await subscriber.changes.catchUp();
        })();
        await Promise.all(all.map((id, i) => (i % 2 ? writer : subscriber).revocations.add(revocation(id))));
        writing = false;
        await reader;
        await until(() => heard.changes.length >= all.length, 'twenty revocations', () => subscriber.changes.catchUp());
        expect(heard.changes.map((c) => c.key).sort()).toEqual(all);
        const admin = new pg.Client({ connectionString: db.url });
        await admin.connect();
        try {
          const versions = await admin.query<{ key: string }>('SELECT key FROM changes ORDER BY version');
          expect(heard.changes.map((c) => c.key)).toEqual(versions.rows.map((r) => r.key));
        } finally {
          await admin.end();
        }
      }),
    );

    it(
      'back after longer than changes are kept, and changes it never read were purged: it can never vouch again (fail closed until restarted)',
      withDatabase(async (db, writer) => {
        let t = Date.now();
        const feed = new PostgresChangeFeed({ connection: { connectionString: db.url }, confirmEveryMs: 20, now: () => t });
        try {
          await feed.start();
          await writer.revocations.add(revocation('seen'));
          await until(() => feed.health(60_000).current && (feed as unknown as { lastVersion: number }).lastVersion > 0, 'the first change read', () => feed.catchUp());
          // Away: the connection goes (and its timer is held, so it can't come back early),
          // two changes commit, and an hour and more passes — the purge takes the first of
          // them before this process reads it. Then its timer's next tick reconnects.
          const internals = feed as unknown as { client: pg.Client | undefined; timer: NodeJS.Timeout; tick(): Promise<void> };
          clearInterval(internals.timer);
          await internals.client!.end();
          await until(() => internals.client === undefined, 'the connection is gone');
          await writer.revocations.add(revocation('missed'));
          await writer.revocations.add(revocation('kept'));
          t += CHANGES_KEPT_MS + 60_000;
          const admin = new pg.Client({ connectionString: db.url });
          await admin.connect();
          try {
            await admin.query("DELETE FROM changes WHERE key <> 'kept'");
          } finally {
            await admin.end();
          }
          await internals.tick();
          expect(feed.health(60_000)).toEqual({ current: false, reason: expect.stringMatching(/missed changes older than 1 h while disconnected; restart this process/) });
        } finally {
          await feed.close();
        }
      }),
    );
  });
});
