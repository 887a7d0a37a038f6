import {
  ScimConflictError,
  ScimUnknownMemberError,
  type ScimAccessChange,
  type ScimGroupQuery,
  type ScimGroupRecord,
  type ScimPage,
  type ScimStore,
  type ScimUserQuery,
  type ScimUserRecord,
  type ScimWriteResult,
} from '../repositories/scim.js';
import { accessChange, derivePortUser, foldKey, SCIM_CONFLICT, touchedEmails, uniqueMembers, type ScimPerson } from '../scim-derive.js';
import { num, type PgDatabase, type Queryable } from './pg-database.js';
import { lockPeople, putUsers } from './user-tables.js';

/**
 * SCIM users and groups on PostgreSQL (`scim_users`, `scim_groups`, `scim_members`).
 * Every write is one transaction that also re-derives the Port UserRecord of each person
 * it touches (src/store/scim-derive.ts), so the SCIM change and its effect on access
 * commit together or not at all.
 *
 * Replicas write at once, so each write takes its locks in one order before it reads
 * what it derives from: the group's row, then the rows of the SCIM users it touches (by
 * id), then the people (src/store/postgres/user-tables.ts `lockPeople`, by e-mail). Two
 * writes touching one person therefore run one after the other, and the second derives
 * from what the first committed (READ COMMITTED: each statement sees the commits made
 * before it, https://www.postgresql.org/docs/current/transaction-iso.html#XACT-READ-COMMITTED).
 * Uniqueness is the UNIQUE constraints' (a concurrent insert of the same key waits for
 * the first to commit, then fails), mapped to the same ScimConflictError as on SQLite.
 */
export class PostgresScim implements ScimStore {
  constructor(private readonly db: PgDatabase) {}

  createUser(u: ScimUserRecord): Promise<ScimWriteResult> {
    return this.db.transaction(async (tx) => {
      await unique(
        tx.query('INSERT INTO scim_users (id, user_name_key, external_id, email, created_at, version, record) VALUES ($1, $2, $3, $4, $5, $6, $7)', [
          u.id,
          foldKey(u.userName),
          u.externalId ?? null,
          u.email ?? null,
          u.created,
          u.version,
          JSON.stringify(u),
        ]),
      );
      return { changes: await rederive(tx, [u.email], u.lastModified) };
    });
  }

  replaceUser(u: ScimUserRecord, expectedVersion: number): Promise<ScimWriteResult | 'conflict' | 'not_found'> {
    return this.db.transaction(async (tx) => {
      const before = await lockedUser(tx, u.id);
      if (!before) return 'not_found';
      // Compare-and-set on the ETag's version (RFC 7644 §3.14), under the row lock.
      if (before.version !== expectedVersion) return 'conflict';
      await unique(
        tx.query('UPDATE scim_users SET user_name_key = $1, external_id = $2, email = $3, version = $4, record = $5 WHERE id = $6', [
          foldKey(u.userName),
          u.externalId ?? null,
          u.email ?? null,
          u.version,
          JSON.stringify(u),
          u.id,
        ]),
      );
      return { changes: await rederive(tx, [before.email, u.email], u.lastModified) };
    });
  }

  deleteUser(id: string): Promise<ScimWriteResult | 'not_found'> {
    return this.db.transaction(async (tx) => {
      const before = await lockedUser(tx, id);
      if (!before) return 'not_found';
      await tx.query('DELETE FROM scim_users WHERE id = $1', [id]); // memberships go with it (ON DELETE CASCADE)
      return { changes: await rederive(tx, [before.email], Date.now()) };
    });
  }

  async getUser(id: string): Promise<ScimUserRecord | undefined> {
    const r = await this.db.query<{ record: string }>('SELECT record FROM scim_users WHERE id = $1', [id]);
    const row = r.rows[0];
    return row && (JSON.parse(row.record) as ScimUserRecord);
  }

  async listUsers(q: ScimUserQuery): Promise<ScimPage<ScimUserRecord>> {
    const filter = new Filter();
    if (q.id !== undefined) filter.equals('id', q.id);
    if (q.userName !== undefined) filter.equals('user_name_key', foldKey(q.userName));
    if (q.externalId !== undefined) filter.equals('external_id', q.externalId);
    if (q.email !== undefined) filter.equals('email', q.email.toLowerCase());
    const rows = await page<{ record: string }>(this.db, 'scim_users', filter, q, '');
    return { total: rows.total, items: rows.items.map((r) => JSON.parse(r.record) as ScimUserRecord) };
  }

  createGroup(g: ScimGroupRecord): Promise<ScimWriteResult> {
    const members = uniqueMembers(g.members);
    return this.db.transaction(async (tx) => {
      await unique(
        tx.query('INSERT INTO scim_groups (id, display_name, display_name_key, external_id, created_at, version, record) VALUES ($1, $2, $3, $4, $5, $6, $7)', [
          g.id,
          g.displayName,
          foldKey(g.displayName),
          g.externalId ?? null,
          g.created,
          g.version,
          JSON.stringify({ ...g, members }),
        ]),
      );
      const emails = await setMembers(tx, g.id, [], members);
      return { changes: await rederive(tx, emails, g.lastModified) };
    });
  }

  replaceGroup(g: ScimGroupRecord, expectedVersion: number): Promise<ScimWriteResult | 'conflict' | 'not_found'> {
    const members = uniqueMembers(g.members);
    return this.db.transaction(async (tx) => {
      const before = await lockedGroup(tx, g.id);
      if (!before) return 'not_found';
      if (before.version !== expectedVersion) return 'conflict';
      await unique(
        tx.query('UPDATE scim_groups SET display_name = $1, display_name_key = $2, external_id = $3, version = $4, record = $5 WHERE id = $6', [
          g.displayName,
          foldKey(g.displayName),
          g.externalId ?? null,
          g.version,
          JSON.stringify({ ...g, members }),
          g.id,
        ]),
      );
      // Everyone who was or is a member: a rename changes the groups of those who stay.
      const emails = await setMembers(tx, g.id, before.members, members);
      return { changes: await rederive(tx, emails, g.lastModified) };
    });
  }

  deleteGroup(id: string): Promise<ScimWriteResult | 'not_found'> {
    return this.db.transaction(async (tx) => {
      const before = await lockedGroup(tx, id);
      if (!before) return 'not_found';
      const emails = [...(await lockScimUsers(tx, before.members)).values()];
      await tx.query('DELETE FROM scim_groups WHERE id = $1', [id]); // memberships go with it (ON DELETE CASCADE)
      return { changes: await rederive(tx, emails, Date.now()) };
    });
  }

  async getGroup(id: string): Promise<ScimGroupRecord | undefined> {
    const r = await this.db.query<GroupRow>(`SELECT g.record, ${membersOf('g')} AS members FROM scim_groups g WHERE g.id = $1`, [id]);
    const row = r.rows[0];
    return row && toGroup(row);
  }

  async listGroups(q: ScimGroupQuery): Promise<ScimPage<ScimGroupRecord>> {
    const filter = new Filter();
    if (q.id !== undefined) filter.equals('id', q.id);
    if (q.displayName !== undefined) filter.equals('display_name_key', foldKey(q.displayName));
    if (q.externalId !== undefined) filter.equals('external_id', q.externalId);
    if (q.member !== undefined) filter.add(q.member, (p) => `id IN (SELECT group_id FROM scim_members WHERE user_id = ${p})`);
    const rows = await page<GroupRow>(this.db, 'scim_groups', filter, q, `, ${membersOf('r')} AS members`);
    return { total: rows.total, items: rows.items.map(toGroup) };
  }
}

/**
 * A group as stored: its record keeps the member list as last written, which gives the
 * members' order (SCIM clients see them as they sent them, as on SQLite); `members` are
 * the memberships that still exist (deleting a user deletes theirs).
 */
interface GroupRow {
  record: string;
  members: string[];
}

/** The member ids of the group row aliased `alias`, as an array (empty when it has none). */
const membersOf = (alias: string): string => `ARRAY(SELECT m.user_id FROM scim_members m WHERE m.group_id = ${alias}.id)`;

function toGroup(row: GroupRow): ScimGroupRecord {
  const record = JSON.parse(row.record) as ScimGroupRecord;
  return { ...record, members: inRecordOrder(record.members, row.members) };
}

/** `present` in the order of `recorded`, anything not recorded after it in id order. */
function inRecordOrder(recorded: readonly string[], present: readonly string[]): string[] {
  const have = new Set(present);
  const ordered = recorded.filter((id) => have.has(id));
  const known = new Set(ordered);
  return [...ordered, ...present.filter((id) => !known.has(id)).sort()];
}

/** The SCIM user, locked against other writers until the transaction ends. */
async function lockedUser(tx: Queryable, id: string): Promise<ScimUserRecord | undefined> {
  const r = await tx.query<{ record: string }>('SELECT record FROM scim_users WHERE id = $1 FOR UPDATE', [id]);
  const row = r.rows[0];
  return row && (JSON.parse(row.record) as ScimUserRecord);
}

/**
 * The group and its members, locked: only writes of this group change its memberships
 * (besides user deletions, which `lockScimUsers` waits for).
 */
async function lockedGroup(tx: Queryable, id: string): Promise<ScimGroupRecord | undefined> {
  const r = await tx.query<{ record: string }>('SELECT record FROM scim_groups WHERE id = $1 FOR UPDATE', [id]);
  const row = r.rows[0];
  if (!row) return undefined;
  const members = await tx.query<{ user_id: string }>('SELECT user_id FROM scim_members WHERE group_id = $1', [id]);
  return toGroup({ record: row.record, members: members.rows.map((m) => m.user_id) });
}

/**
 * Locks the SCIM users with these ids, in id order (the locking clause applies after
 * ORDER BY, https://www.postgresql.org/docs/current/sql-select.html#SQL-FOR-UPDATE-SHARE),
 * and returns the e-mail of each that exists: held, the e-mails can't change (or the
 * user go) before this transaction re-derives their people. A user deleted meanwhile is
 * simply absent (its deletion re-derived its person).
 */
async function lockScimUsers(tx: Queryable, ids: readonly string[]): Promise<Map<string, string | undefined>> {
  const found = new Map<string, string | undefined>();
  if (ids.length === 0) return found;
  const r = await tx.query<{ id: string; email: string | null }>(
    'SELECT id, email FROM scim_users WHERE id = ANY($1::text[]) ORDER BY id COLLATE "C" FOR UPDATE',
    [[...new Set(ids)]],
  );
  for (const row of r.rows) found.set(row.id, row.email ?? undefined);
  return found;
}

/**
 * Replaces a group's memberships (`before` → `after`, both without repeats) and returns
 * the e-mails of everyone who was or is a member. A member that is not a provisioned
 * user is refused (RFC 7644 §3.12 `invalidValue`; there are no nested groups), the first
 * one listed, as on SQLite.
 */
async function setMembers(tx: Queryable, groupId: string, before: readonly string[], after: readonly string[]): Promise<(string | undefined)[]> {
  const users = await lockScimUsers(tx, [...before, ...after]);
  const unknown = after.find((id) => !users.has(id));
  if (unknown !== undefined) throw new ScimUnknownMemberError(unknown);
  if (before.length > 0) await tx.query('DELETE FROM scim_members WHERE group_id = $1', [groupId]);
  if (after.length > 0) await tx.query('INSERT INTO scim_members (group_id, user_id) SELECT $1, unnest($2::text[])', [groupId, after]);
  return [...before, ...after].map((id) => users.get(id));
}

/**
 * Re-derives the Port user of each e-mail from the SCIM tables as this transaction sees
 * them, after taking those people's locks, and stores the result.
 */
async function rederive(tx: Queryable, emails: readonly (string | undefined)[], at: number): Promise<ScimAccessChange[]> {
  const list = touchedEmails(emails);
  if (list.length === 0) return [];
  const before = await lockPeople(tx, list);
  const scim = await scimPeople(tx, list);
  const changes: ScimAccessChange[] = [];
  for (const email of list) {
    const after = derivePortUser(email, before.get(email), scim.get(email), at);
    if (after) changes.push(accessChange(email, before.get(email), after));
  }
  await putUsers(tx, changes.map((c) => c.after));
  return changes;
}

/** The SCIM user of each e-mail that has one, with its groups' displayNames in byte order (as SQLite's BINARY collation sorts). */
async function scimPeople(tx: Queryable, emails: readonly string[]): Promise<Map<string, ScimPerson>> {
  const r = await tx.query<{ email: string; record: string; groups: string[] }>(
    `SELECT u.email, u.record,
            ARRAY(SELECT g.display_name FROM scim_members m JOIN scim_groups g ON g.id = m.group_id
                  WHERE m.user_id = u.id ORDER BY g.display_name COLLATE "C") AS groups
       FROM scim_users u WHERE u.email = ANY($1::text[])`,
    [emails],
  );
  return new Map(r.rows.map((row) => [row.email, { user: JSON.parse(row.record) as ScimUserRecord, groups: row.groups }]));
}

/**
 * The UNIQUE constraints behind each SCIM uniqueness rule (PostgreSQL's default names,
 * `<table>_<column>_key`). A user taking both another's userName and e-mail hears of the
 * userName, as on SQLite: a row's unique indexes are checked in creation order, and the
 * schema creates user_name_key's before email's.
 */
const CONFLICTS: ReadonlyMap<string, string> = new Map([
  ['scim_users_user_name_key_key', SCIM_CONFLICT.userName],
  ['scim_users_email_key', SCIM_CONFLICT.email],
  ['scim_groups_display_name_key_key', SCIM_CONFLICT.displayName],
]);

/**
 * Runs a write that may break a SCIM uniqueness rule: unique_violation (SQLSTATE 23505,
 * https://www.postgresql.org/docs/current/errcodes-appendix.html) on one of those
 * constraints becomes ScimConflictError (409); anything else is left as it is.
 */
async function unique<T>(write: Promise<T>): Promise<T> {
  try {
    return await write;
  } catch (err) {
    const { code, constraint } = err as { code?: unknown; constraint?: unknown };
    const message = code === '23505' && typeof constraint === 'string' ? CONFLICTS.get(constraint) : undefined;
    throw message === undefined ? err : new ScimConflictError(message);
  }
}

/** Conditions on one parameter each, ANDed (column names are ours, never input). */
class Filter {
  readonly where: string[] = [];
  readonly values: unknown[] = [];

  add(value: unknown, condition: (param: string) => string): void {
    this.values.push(value);
    this.where.push(condition(`$${this.values.length}`));
  }

  equals(column: string, value: unknown): void {
    this.add(value, (p) => `${column} = ${p}`);
  }
}

/**
 * One page of a table's matching rows by creation (id breaks ties, in byte order as on
 * SQLite) and how many match in all, from one statement — one snapshot — so the total
 * and the page agree (RFC 7644 §3.4.2.4 `totalResults`). `extra` adds columns computed
 * from the row aliased `r`. A page past the end, or of size 0, is the total alone.
 */
async function page<R extends { record: string }>(
  db: PgDatabase,
  table: 'scim_users' | 'scim_groups',
  filter: Filter,
  at: { offset: number; limit: number },
  extra: string,
): Promise<{ total: number; items: R[] }> {
  const where = filter.where.length ? ` WHERE ${filter.where.join(' AND ')}` : '';
  const n = filter.values.length;
  const r = await db.query<{ total: string } & (R | { [K in keyof R]: null })>(
    `WITH matched AS (SELECT * FROM ${table}${where})
     SELECT t.total, p.* FROM (SELECT count(*) AS total FROM matched) t
     LEFT JOIN LATERAL (
       SELECT r.record${extra} FROM matched r ORDER BY r.created_at, r.id COLLATE "C" LIMIT $${n + 1} OFFSET $${n + 2}
     ) p ON true`,
    // SQLite reads a negative offset as 0 (and the stores' callers a size of 0 or less as none); PostgreSQL refuses negatives.
    [...filter.values, Math.max(0, at.limit), Math.max(0, at.offset)],
  );
  const items = r.rows.filter((row): row is { total: string } & R => row.record !== null);
  return { total: num(r.rows[0]?.total ?? 0), items };
}
