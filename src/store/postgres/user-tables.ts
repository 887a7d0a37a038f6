import { createHash } from 'node:crypto';
import type { SessionRecord, UserRecord } from '../records/approvals.js';
import type { SessionStore, UserStore } from '../repositories/users.js';
import { recordChanges } from './change-feed.js';
import type { PgDatabase, Queryable } from './pg-database.js';

/**
 * The `users` and `sessions` tables on PostgreSQL: each record as JSON under its
 * lower-cased e-mail (users) or cookie hash (sessions).
 *
 * A person's UserRecord is written by SSO sign-ins (`update`, `upsert`) and by SCIM
 * writes re-deriving it (src/store/postgres/scim-tables.ts), possibly on several replicas
 * at once. Every one of them first takes the person's lock with `lockPeople` and reads
 * the record only then, so they apply one after the other and none overwrites another
 * with a stale read.
 */
export class PostgresUsers implements UserStore {
  constructor(private readonly db: PgDatabase) {}

  async upsert(user: UserRecord): Promise<void> {
    const email = user.email.toLowerCase();
    // Locked like any other write of the record, so a blind write lands wholly before or
    // after a concurrent read-modify-write rather than in the middle of one.
    await this.db.transaction(async (tx) => {
      await lockPeople(tx, [email]);
      await putUsers(tx, [{ ...user, email }]);
    });
  }

  async get(email: string): Promise<UserRecord | undefined> {
    const r = await this.db.query<{ record: string }>('SELECT record FROM users WHERE email = $1', [email.toLowerCase()]);
    return parseUser(r.rows[0]?.record);
  }

  /**
   * `change` may run more than once: a transaction that hit a deadlock is run again
   * (PgDatabase.transaction), so it must only compute the next record.
   */
  update(email: string, change: (current: UserRecord | undefined) => UserRecord | undefined): Promise<UserRecord | undefined> {
    const key = email.toLowerCase();
    return this.db.transaction(async (tx) => {
      const current = (await lockPeople(tx, [key])).get(key);
      const next = change(current);
      if (next === undefined) return current;
      const stored = { ...next, email: key };
      await putUsers(tx, [stored]);
      // The record as stored (JSON drops undefined fields), as a later get() returns it.
      return parseUser(JSON.stringify(stored));
    });
  }
}

export class PostgresSessions implements SessionStore {
  constructor(private readonly db: PgDatabase) {}

  async create(session: SessionRecord): Promise<void> {
    const email = session.email.toLowerCase();
    await this.db.write('INSERT INTO sessions (id_hash, email, expires_at, record) VALUES ($1, $2, $3, $4)', [
      session.idHash,
      email,
      session.expiresAt,
      JSON.stringify({ ...session, email }),
    ]);
  }

  async get(idHash: string): Promise<SessionRecord | undefined> {
    // Expired rows linger until Store.purgeExpired; they are never handed out.
    const r = await this.db.query<{ record: string }>('SELECT record FROM sessions WHERE id_hash = $1 AND expires_at > $2', [idHash, Date.now()]);
    const row = r.rows[0];
    return row && (JSON.parse(row.record) as SessionRecord);
  }

  async delete(idHash: string): Promise<void> {
    await this.db.write('DELETE FROM sessions WHERE id_hash = $1', [idHash]);
  }

  async deleteAllOf(email: string): Promise<number> {
    const r = await this.db.write('DELETE FROM sessions WHERE email = $1', [email.toLowerCase()]);
    return r.rowCount ?? 0;
  }
}

/**
 * Takes the write lock of each person (lower-cased e-mail) until the transaction ends
 * and returns their UserRecords as they are now (absent: Port does not know them yet).
 *
 * A known person's lock is their `users` row, taken with `SELECT … FOR UPDATE`: a row
 * lock costs no shared memory, so a write touching every member of a large group can
 * take thousands. A person with no row yet has nothing to lock, and two writers would
 * both insert one, so their lock is a transaction-level advisory lock on a key derived
 * from the e-mail (https://www.postgresql.org/docs/current/explicit-locking.html#ADVISORY-LOCKS);
 * every insert into `users` happens under it, and once it is held the row is read again
 * in case the previous holder inserted it.
 *
 * Rows are locked in one statement in e-mail order (the locking clause applies after
 * ORDER BY, https://www.postgresql.org/docs/current/sql-select.html#SQL-FOR-UPDATE-SHARE),
 * and advisory keys in key order, so writers touching the same people queue rather than
 * deadlock; the rare deadlock left (two writers creating overlapping people while others
 * lock their rows) is detected by PostgreSQL and the transaction run again.
 * Under READ COMMITTED each later statement sees what the previous lock holder committed
 * (https://www.postgresql.org/docs/current/transaction-iso.html#XACT-READ-COMMITTED).
 */
export async function lockPeople(tx: Queryable, emails: readonly string[]): Promise<Map<string, UserRecord>> {
  const wanted = [...new Set(emails)];
  const people = new Map<string, UserRecord>();
  if (wanted.length === 0) return people;
  const read = async (list: string[]) => {
    // COLLATE "C": one byte order on every replica, whatever the database's collation.
    const r = await tx.query<{ email: string; record: string }>(
      'SELECT email, record FROM users WHERE email = ANY($1::text[]) ORDER BY email COLLATE "C" FOR UPDATE',
      [list],
    );
    for (const row of r.rows) people.set(row.email, JSON.parse(row.record) as UserRecord);
  };
  await read(wanted);
  const unknown = wanted.filter((e) => !people.has(e));
  if (unknown.length > 0) {
    const keys = [...new Set(unknown.map(personLockKey))].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    // unnest reads the array out in order (https://www.postgresql.org/docs/current/functions-array.html),
    // so the locks are taken in key order.
    await tx.query('SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS k', [keys.map(String)]);
    await read(unknown);
  }
  return people;
}

/** Writes UserRecords (distinct, lower-cased e-mails) whose people the transaction holds with `lockPeople`. */
export async function putUsers(tx: Queryable, users: readonly UserRecord[]): Promise<void> {
  if (users.length === 0) return;
  await tx.query(
    `INSERT INTO users (email, record) SELECT * FROM unnest($1::text[], $2::text[])
     ON CONFLICT (email) DO UPDATE SET record = EXCLUDED.record`,
    [users.map((u) => u.email), users.map((u) => JSON.stringify(u))],
  );
  // Every replica's caches of these people (the relay's creator directory) hear of it.
  await recordChanges(tx, 'users', users.map((u) => u.email));
}

/**
 * The advisory lock key of a person not yet in `users`: the first 8 bytes of
 * SHA-256("port-user:" + e-mail) as a signed bigint (as the migration lock key is made).
 * Two e-mails sharing a key only wait for each other.
 */
function personLockKey(email: string): bigint {
  return createHash('sha256').update(`port-user:${email}`).digest().readBigInt64BE(0);
}

function parseUser(record: string | undefined): UserRecord | undefined {
  return record === undefined ? undefined : (JSON.parse(record) as UserRecord);
}
