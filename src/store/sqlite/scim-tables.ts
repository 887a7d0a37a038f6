import type Database from 'better-sqlite3';
import type { UserRecord } from '../records/approvals.js';
import {
  ScimConflictError,
  ScimUnknownMemberError,
  type ScimAccessChange,
  type ScimGroupQuery,
  type ScimGroupRecord,
  type ScimPage,
  type ScimUserQuery,
  type ScimUserRecord,
  type ScimStore,
  type ScimWriteResult,
} from '../repositories/scim.js';
import { accessChange, derivePortUser, foldKey, SCIM_CONFLICT, touchedEmails, uniqueMembers, withoutMembers, type ScimPerson } from '../scim-derive.js';
import type { SqliteChangeFeed } from './change-feed.js';
import type { WriteBatcher } from './write-batcher.js';

type GroupRow = Omit<ScimGroupRecord, 'members'>;

/**
 * The SCIM tables of the SQLite store. Every method runs synchronously inside the
 * store's write transaction (the caller wraps it in the WriteBatcher), so the SCIM
 * change and the Port users it derives (src/store/scim-derive.ts) commit together.
 */
export class SqliteScimTables {
  private readonly s;

  constructor(private readonly db: Database.Database) {
    this.s = {
      insertUser: db.prepare(
        'INSERT INTO scim_users (id, user_name_key, external_id, email, created_at, version, record) VALUES (?, ?, ?, ?, ?, ?, ?)',
      ),
      updateUser: db.prepare(
        'UPDATE scim_users SET user_name_key = ?, external_id = ?, email = ?, version = ?, record = ? WHERE id = ? AND version = ?',
      ),
      deleteUser: db.prepare('DELETE FROM scim_users WHERE id = ?'),
      userById: db.prepare('SELECT record FROM scim_users WHERE id = ?'),
      userByEmail: db.prepare('SELECT record FROM scim_users WHERE email = ?'),
      userNameTaken: db.prepare('SELECT id FROM scim_users WHERE user_name_key = ? AND id != ?'),
      emailTaken: db.prepare('SELECT id FROM scim_users WHERE email = ? AND id != ?'),
      insertGroup: db.prepare(
        'INSERT INTO scim_groups (id, display_name, display_name_key, external_id, created_at, version, record) VALUES (?, ?, ?, ?, ?, ?, ?)',
      ),
      updateGroup: db.prepare(
        'UPDATE scim_groups SET display_name = ?, display_name_key = ?, external_id = ?, version = ?, record = ? WHERE id = ? AND version = ?',
      ),
      deleteGroup: db.prepare('DELETE FROM scim_groups WHERE id = ?'),
      groupById: db.prepare('SELECT record FROM scim_groups WHERE id = ?'),
      groupNameTaken: db.prepare('SELECT id FROM scim_groups WHERE display_name_key = ? AND id != ?'),
      membersOf: db.prepare('SELECT user_id FROM scim_members WHERE group_id = ? ORDER BY rowid'),
      clearMembers: db.prepare('DELETE FROM scim_members WHERE group_id = ?'),
      addMember: db.prepare('INSERT OR IGNORE INTO scim_members (group_id, user_id) VALUES (?, ?)'),
      userExists: db.prepare('SELECT 1 FROM scim_users WHERE id = ?'),
      groupNamesOfUser: db.prepare(
        'SELECT g.display_name AS name FROM scim_members m JOIN scim_groups g ON g.id = m.group_id WHERE m.user_id = ? ORDER BY g.display_name',
      ),
      emailsOfMembers: db.prepare(
        'SELECT u.email AS email FROM scim_members m JOIN scim_users u ON u.id = m.user_id WHERE m.group_id = ? AND u.email IS NOT NULL',
      ),
      getPortUser: db.prepare('SELECT record FROM users WHERE email = ?'),
      putPortUser: db.prepare('INSERT INTO users (email, record) VALUES (?, ?) ON CONFLICT(email) DO UPDATE SET record = excluded.record'),
    };
  }

  createUser(u: ScimUserRecord): ScimWriteResult {
    this.checkUserUnique(u);
    this.s.insertUser.run(u.id, foldKey(u.userName), u.externalId ?? null, u.email ?? null, u.created, u.version, JSON.stringify(u));
    return { changes: this.refresh([u.email], u.lastModified) };
  }

  replaceUser(u: ScimUserRecord, expectedVersion: number): ScimWriteResult | 'conflict' | 'not_found' {
    const before = this.getUser(u.id);
    if (!before) return 'not_found';
    if (before.version !== expectedVersion) return 'conflict';
    this.checkUserUnique(u);
    this.s.updateUser.run(foldKey(u.userName), u.externalId ?? null, u.email ?? null, u.version, JSON.stringify(u), u.id, expectedVersion);
    return { changes: this.refresh([before.email, u.email], u.lastModified) };
  }

  deleteUser(id: string, at: number): ScimWriteResult | 'not_found' {
    const before = this.getUser(id);
    if (!before) return 'not_found';
    this.s.deleteUser.run(id); // memberships go with it (ON DELETE CASCADE)
    return { changes: this.refresh([before.email], at) };
  }

  getUser(id: string): ScimUserRecord | undefined {
    const row = this.s.userById.get(id) as { record: string } | undefined;
    return row && (JSON.parse(row.record) as ScimUserRecord);
  }

  listUsers(q: ScimUserQuery): ScimPage<ScimUserRecord> {
    const where: string[] = [];
    const args: (string | number)[] = [];
    if (q.id !== undefined) (where.push('id = ?'), args.push(q.id));
    if (q.userName !== undefined) (where.push('user_name_key = ?'), args.push(foldKey(q.userName)));
    if (q.externalId !== undefined) (where.push('external_id = ?'), args.push(q.externalId));
    if (q.email !== undefined) (where.push('email = ?'), args.push(q.email.toLowerCase()));
    return this.page('scim_users', where, args, q.offset, q.limit, (r) => JSON.parse(r) as ScimUserRecord);
  }

  createGroup(g: ScimGroupRecord): ScimWriteResult {
    this.checkGroupUnique(g);
    this.s.insertGroup.run(g.id, g.displayName, foldKey(g.displayName), g.externalId ?? null, g.created, g.version, JSON.stringify(withoutMembers(g)));
    this.setMembers(g);
    return { changes: this.refresh(this.memberEmails(g.id), g.lastModified) };
  }

  replaceGroup(g: ScimGroupRecord, expectedVersion: number): ScimWriteResult | 'conflict' | 'not_found' {
    const before = this.getGroup(g.id);
    if (!before) return 'not_found';
    if (before.version !== expectedVersion) return 'conflict';
    this.checkGroupUnique(g);
    const emailsBefore = this.memberEmails(g.id);
    this.s.updateGroup.run(g.displayName, foldKey(g.displayName), g.externalId ?? null, g.version, JSON.stringify(withoutMembers(g)), g.id, expectedVersion);
    this.s.clearMembers.run(g.id);
    this.setMembers(g);
    return { changes: this.refresh([...emailsBefore, ...this.memberEmails(g.id)], g.lastModified) };
  }

  deleteGroup(id: string, at: number): ScimWriteResult | 'not_found' {
    if (!this.getGroup(id)) return 'not_found';
    const emails = this.memberEmails(id);
    this.s.deleteGroup.run(id);
    return { changes: this.refresh(emails, at) };
  }

  getGroup(id: string): ScimGroupRecord | undefined {
    const row = this.s.groupById.get(id) as { record: string } | undefined;
    return row && this.withMembers(JSON.parse(row.record) as GroupRow);
  }

  listGroups(q: ScimGroupQuery): ScimPage<ScimGroupRecord> {
    const where: string[] = [];
    const args: (string | number)[] = [];
    if (q.id !== undefined) (where.push('id = ?'), args.push(q.id));
    if (q.displayName !== undefined) (where.push('display_name_key = ?'), args.push(foldKey(q.displayName)));
    if (q.externalId !== undefined) (where.push('external_id = ?'), args.push(q.externalId));
    if (q.member !== undefined) (where.push('id IN (SELECT group_id FROM scim_members WHERE user_id = ?)'), args.push(q.member));
    return this.page('scim_groups', where, args, q.offset, q.limit, (r) => this.withMembers(JSON.parse(r) as GroupRow));
  }

  updatePortUser(email: string, change: (current: UserRecord | undefined) => UserRecord | undefined): UserRecord | undefined {
    const key = email.toLowerCase();
    const current = this.portUser(key);
    const next = change(current);
    if (next === undefined) return current;
    this.putPortUser({ ...next, email: key });
    return this.portUser(key);
  }

  private page<T>(table: string, where: string[], args: (string | number)[], offset: number, limit: number, parse: (record: string) => T): ScimPage<T> {
    const clause = where.length ? ` WHERE ${where.join(' AND ')}` : '';
    const total = (this.db.prepare(`SELECT count(*) AS n FROM ${table}${clause}`).get(...args) as { n: number }).n;
    const rows =
      limit <= 0
        ? []
        : (this.db.prepare(`SELECT record FROM ${table}${clause} ORDER BY created_at, id LIMIT ? OFFSET ?`).all(...args, limit, offset) as { record: string }[]);
    return { total, items: rows.map((r) => parse(r.record)) };
  }

  private checkUserUnique(u: ScimUserRecord): void {
    if (this.s.userNameTaken.get(foldKey(u.userName), u.id)) throw new ScimConflictError(SCIM_CONFLICT.userName);
    if (u.email !== undefined && this.s.emailTaken.get(u.email, u.id)) throw new ScimConflictError(SCIM_CONFLICT.email);
  }

  private checkGroupUnique(g: ScimGroupRecord): void {
    if (this.s.groupNameTaken.get(foldKey(g.displayName), g.id)) throw new ScimConflictError(SCIM_CONFLICT.displayName);
  }

  private setMembers(g: ScimGroupRecord): void {
    for (const userId of uniqueMembers(g.members)) {
      if (!this.s.userExists.get(userId)) throw new ScimUnknownMemberError(userId);
      this.s.addMember.run(g.id, userId);
    }
  }

  private withMembers(row: GroupRow): ScimGroupRecord {
    return { ...row, members: (this.s.membersOf.all(row.id) as { user_id: string }[]).map((m) => m.user_id) };
  }

  private memberEmails(groupId: string): string[] {
    return (this.s.emailsOfMembers.all(groupId) as { email: string }[]).map((r) => r.email);
  }

  private portUser(email: string): UserRecord | undefined {
    const row = this.s.getPortUser.get(email) as { record: string } | undefined;
    return row && (JSON.parse(row.record) as UserRecord);
  }

  private putPortUser(user: UserRecord): void {
    this.s.putPortUser.run(user.email, JSON.stringify(user));
  }

  /** Re-derives and stores the Port user of each e-mail from the SCIM tables as this transaction sees them. */
  private refresh(emails: (string | undefined)[], at: number): ScimAccessChange[] {
    const changes: ScimAccessChange[] = [];
    for (const email of touchedEmails(emails)) {
      const before = this.portUser(email);
      const after = derivePortUser(email, before, this.scimPerson(email), at);
      if (after === undefined) continue;
      this.putPortUser(after);
      changes.push(accessChange(email, before, after));
    }
    return changes;
  }

  /** The SCIM user an e-mail maps to, with its groups' displayNames in BINARY (byte) order. */
  private scimPerson(email: string): ScimPerson | undefined {
    const row = this.s.userByEmail.get(email) as { record: string } | undefined;
    if (!row) return undefined;
    const user = JSON.parse(row.record) as ScimUserRecord;
    return { user, groups: (this.s.groupNamesOfUser.all(user.id) as { name: string }[]).map((g) => g.name) };
  }
}

/** The ScimStore on SQLite: writes run in the batch transaction, reads directly. */
export class SqliteScim implements ScimStore {
  constructor(
    private readonly tables: SqliteScimTables,
    private readonly batcher: WriteBatcher,
    private readonly feed: SqliteChangeFeed,
  ) {}

  /** Runs a SCIM write and tells the change feed whose UserRecords it changed. */
  private async written<T extends ScimWriteResult | 'conflict' | 'not_found'>(write: () => T): Promise<T> {
    const result = await this.batcher.write(() => {
      const r = write();
      if (typeof r === 'object') this.feed.record('users', r.changes.map((c) => c.email.toLowerCase()));
      return r;
    });
    this.feed.catchUpNow();
    return result;
  }

  createUser(user: ScimUserRecord): Promise<ScimWriteResult> {
    return this.written(() => this.tables.createUser(user));
  }

  replaceUser(user: ScimUserRecord, expectedVersion: number): Promise<ScimWriteResult | 'conflict' | 'not_found'> {
    return this.written(() => this.tables.replaceUser(user, expectedVersion));
  }

  deleteUser(id: string): Promise<ScimWriteResult | 'not_found'> {
    return this.written(() => this.tables.deleteUser(id, Date.now()));
  }

  async getUser(id: string): Promise<ScimUserRecord | undefined> {
    return this.tables.getUser(id);
  }

  async listUsers(query: ScimUserQuery): Promise<ScimPage<ScimUserRecord>> {
    return this.tables.listUsers(query);
  }

  createGroup(group: ScimGroupRecord): Promise<ScimWriteResult> {
    return this.written(() => this.tables.createGroup(group));
  }

  replaceGroup(group: ScimGroupRecord, expectedVersion: number): Promise<ScimWriteResult | 'conflict' | 'not_found'> {
    return this.written(() => this.tables.replaceGroup(group, expectedVersion));
  }

  deleteGroup(id: string): Promise<ScimWriteResult | 'not_found'> {
    return this.written(() => this.tables.deleteGroup(id, Date.now()));
  }

  async getGroup(id: string): Promise<ScimGroupRecord | undefined> {
    return this.tables.getGroup(id);
  }

  async listGroups(query: ScimGroupQuery): Promise<ScimPage<ScimGroupRecord>> {
    return this.tables.listGroups(query);
  }
}
