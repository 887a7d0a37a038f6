import { describe, expect, it } from 'vitest';
import type { SessionRecord, UserRecord } from '../../src/store/records/approvals.js';
import { ScimConflictError, ScimUnknownMemberError, type ScimGroupRecord, type ScimStore, type ScimUserRecord, type ScimWriteResult } from '../../src/store/repositories/scim.js';
import type { SessionStore, UserStore } from '../../src/store/repositories/users.js';

/** One handle on the directory repositories. */
export interface DirectoryHandle {
  users: UserStore;
  sessions: SessionStore;
  scim: ScimStore;
}

/**
 * What `open` gives each test: an empty directory, and optionally a second handle on the
 * same data (another replica's pool, another process on the SQLite file) for the
 * concurrency cases; without one they race on the first handle.
 */
export interface OpenedDirectory extends DirectoryHandle {
  replica?: DirectoryHandle;
  cleanup(): Promise<void>;
}

const T = 1_800_000_000_000;

function scimUser(id: string, email: string | undefined, extra: Partial<ScimUserRecord> = {}): ScimUserRecord {
  return { id, userName: email ?? id, ...(email ? { email } : {}), active: true, attributes: { userName: email ?? id }, created: T, lastModified: T, version: 1, ...extra };
}

function scimGroup(id: string, displayName: string, members: string[], extra: Partial<ScimGroupRecord> = {}): ScimGroupRecord {
  return { id, displayName, members, created: T, lastModified: T, version: 1, ...extra };
}

function session(idHash: string, email: string, expiresAt: number): SessionRecord {
  return { idHash, email, groups: ['platform'], csrfToken: `csrf-${idHash}`, createdAt: T, expiresAt };
}

/** A write's changes by e-mail (a write touching several people lists them in no promised order). */
function byEmail(result: ScimWriteResult | 'conflict' | 'not_found'): Record<string, { before?: UserRecord; after: UserRecord }> {
  if (typeof result !== 'object') throw new Error(`expected a write result, got ${result}`);
  return Object.fromEntries(result.changes.map(({ email, ...rest }) => [email, rest]));
}

/** What `ScimStore.createUser` and friends reject with, as a value to match. */
async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => {
      throw new Error('expected the write to be refused');
    },
    (err: unknown) => err,
  );
}

/**
 * The directory repositories (users, sessions, SCIM provisioning) as every backend must
 * behave: the SQLite code is the reference, PostgreSQL must give the same results and
 * errors, including under concurrent writes from two replicas.
 */
export function describeDirectoryContract(name: string, open: () => Promise<OpenedDirectory>): void {
  describe(`Directory contract: ${name}`, () => {
    const withDirectory = (fn: (d: OpenedDirectory, replica: DirectoryHandle) => Promise<void>) => async () => {
      const d = await open();
      try {
        await fn(d, d.replica ?? d);
      } finally {
        await d.cleanup();
      }
    };

    describe('users', () => {
      it(
        'are kept under their lower-cased e-mail, and an upsert replaces the whole record',
        withDirectory(async ({ users }) => {
          await users.upsert({ email: 'Ana@Acme.TEST', name: 'Ana', active: true, groups: ['platform'], updatedAt: 1, source: 'sso' });
          expect(await users.get('ana@acme.test')).toEqual({ email: 'ana@acme.test', name: 'Ana', active: true, groups: ['platform'], updatedAt: 1, source: 'sso' });
          expect(await users.get('ANA@ACME.test')).toMatchObject({ email: 'ana@acme.test' });
          await users.upsert({ email: 'ana@acme.test', active: false, groups: [], updatedAt: 2 });
          expect(await users.get('ana@acme.test')).toEqual({ email: 'ana@acme.test', active: false, groups: [], updatedAt: 2 });
          expect(await users.get('nobody@acme.test')).toBeUndefined();
        }),
      );

      it(
        'update is a read-modify-write that creates, changes, or leaves a record as it is',
        withDirectory(async ({ users }) => {
          const seen: (UserRecord | undefined)[] = [];
          const created = await users.update('New@Acme.test', (current) => {
            seen.push(current);
            return { email: 'whatever@else.test', active: true, groups: ['a'], updatedAt: 1, name: undefined };
          });
          // Stored under the e-mail asked for, as JSON stores it (no undefined fields).
          expect(created).toEqual({ email: 'new@acme.test', active: true, groups: ['a'], updatedAt: 1 });
          expect(Object.keys(created!)).not.toContain('name');
          expect(await users.get('new@acme.test')).toEqual(created);
          const changed = await users.update('NEW@acme.test', (current) => {
            seen.push(current);
            return current && { ...current, groups: [...current.groups, 'b'], updatedAt: 2 };
          });
          expect(changed).toEqual({ email: 'new@acme.test', active: true, groups: ['a', 'b'], updatedAt: 2 });
          expect(seen).toEqual([undefined, created]);
          // undefined leaves it: resolves to the record as it is, and creates nothing.
          expect(await users.update('new@acme.test', () => undefined)).toEqual(changed);
          expect(await users.update('ghost@acme.test', () => undefined)).toBeUndefined();
          expect(await users.get('ghost@acme.test')).toBeUndefined();
        }),
      );

      it(
        'twenty concurrent updates of a person not yet known, from two handles, each adding a group: none is lost',
        withDirectory(async ({ users }, replica) => {
          const groups = Array.from({ length: 20 }, (_, i) => `g${String(i).padStart(2, '0')}`);
          const results = await Promise.all(
            groups.map((g, i) =>
              (i % 2 ? replica.users : users).update(i % 3 ? 'race@acme.test' : 'RACE@acme.test', (current) => ({
                email: 'race@acme.test',
                active: true,
                groups: [...(current?.groups ?? []), g],
                updatedAt: i,
              })),
            ),
          );
          const stored = (await users.get('race@acme.test'))!;
          expect([...stored.groups].sort()).toEqual(groups);
          // They ran one after the other: each saw all the ones before it.
          expect(results.map((r) => r!.groups.length).sort((a, b) => a - b)).toEqual(groups.map((_, i) => i + 1));
        }),
      );
    });

    describe('sessions', () => {
      it(
        'are found by their hash until they expire, under the lower-cased e-mail',
        withDirectory(async ({ sessions }, replica) => {
          const later = Date.now() + 60_000;
          await sessions.create(session('h1', 'Pat@Acme.test', later));
          await sessions.create(session('gone', 'pat@acme.test', Date.now() - 1));
          expect(await replica.sessions.get('h1')).toEqual({ ...session('h1', 'pat@acme.test', later) });
          expect(await sessions.get('gone')).toBeUndefined();
          expect(await sessions.get('never')).toBeUndefined();
          // A hash is one session: a second create with it is refused, the first kept.
          await expect(sessions.create(session('h1', 'sam@acme.test', later))).rejects.toBeDefined();
          expect(await sessions.get('h1')).toMatchObject({ email: 'pat@acme.test' });
        }),
      );

      it(
        'delete ends one session; deleteAllOf ends every session of one person and counts them',
        withDirectory(async ({ sessions }, replica) => {
          const later = Date.now() + 60_000;
          await sessions.create(session('p1', 'pat@acme.test', later));
          await sessions.create(session('p2', 'PAT@acme.test', later));
          await sessions.create(session('p3', 'pat@acme.test', Date.now() - 1)); // expired, still a row until purged
          await sessions.create(session('s1', 'sam@acme.test', later));
          await sessions.create(session('s2', 'sam@acme.test', later));
          await replica.sessions.delete('s1');
          await sessions.delete('no-such-session');
          expect(await sessions.get('s1')).toBeUndefined();
          expect(await sessions.get('s2')).toBeDefined();
          expect(await sessions.deleteAllOf('Pat@Acme.Test')).toBe(3);
          expect(await sessions.get('p1')).toBeUndefined();
          expect(await sessions.get('p2')).toBeUndefined();
          expect(await sessions.deleteAllOf('pat@acme.test')).toBe(0);
          expect(await sessions.deleteAllOf('nobody@acme.test')).toBe(0);
          expect(await sessions.get('s2')).toMatchObject({ email: 'sam@acme.test' });
        }),
      );
    });

    describe('SCIM users', () => {
      it(
        'creating one provisions its person (source scim, active, no groups), keeping a name Port knew',
        withDirectory(async ({ scim, users }) => {
          const fresh = await scim.createUser(scimUser('u1', 'new@acme.test', { name: 'New Person' }));
          expect(fresh.changes).toEqual([
            { email: 'new@acme.test', after: { email: 'new@acme.test', name: 'New Person', active: true, groups: [], updatedAt: T, source: 'scim' } },
          ]);
          expect(await users.get('new@acme.test')).toEqual(fresh.changes[0]!.after);
          expect(await scim.getUser('u1')).toEqual(scimUser('u1', 'new@acme.test', { name: 'New Person' }));

          // A person who signed in before: SCIM takes over active and groups, keeps the name.
          const sso: UserRecord = { email: 'known@acme.test', name: 'Known', active: true, groups: ['from-token'], updatedAt: 5, source: 'sso' };
          await users.upsert(sso);
          const known = await scim.createUser(scimUser('u2', 'known@acme.test', { active: false, lastModified: T + 1 }));
          expect(known.changes).toEqual([
            { email: 'known@acme.test', before: sso, after: { email: 'known@acme.test', name: 'Known', active: false, groups: [], updatedAt: T + 1, source: 'scim' } },
          ]);

          // A user without an e-mail has no Port identity: nothing to derive.
          expect((await scim.createUser(scimUser('u3', undefined))).changes).toEqual([]);
          expect(await scim.getUser('u3')).toEqual(scimUser('u3', undefined));
          expect(await scim.getUser('nope')).toBeUndefined();
        }),
      );

      it(
        'userName is unique case-insensitively (and across Unicode normal forms), e-mail exactly; a refused write changes nothing',
        withDirectory(async ({ scim, users }) => {
          await scim.createUser(scimUser('u1', 'ana@acme.test', { userName: 'Ana.Ångström' }));
          const sameName = await rejection(scim.createUser(scimUser('u2', 'other@acme.test', { userName: 'ANA.A\u030Angström' })));
          expect(sameName).toBeInstanceOf(ScimConflictError);
          expect(sameName).toMatchObject({ code: 'uniqueness', status: 409, message: 'Another user already has this userName (compared case-insensitively).' });
          const sameEmail = await rejection(scim.createUser(scimUser('u2', 'ana@acme.test', { userName: 'someone-else' })));
          expect(sameEmail).toMatchObject({ code: 'uniqueness', status: 409, message: 'Another user already has this e-mail address, which is their Port identity.' });
          // Both taken: the userName is named, as on every backend.
          const both = await rejection(scim.createUser(scimUser('u2', 'ana@acme.test', { userName: 'ana.ångström' })));
          expect(both).toMatchObject({ message: 'Another user already has this userName (compared case-insensitively).' });
          expect(await scim.getUser('u2')).toBeUndefined();
          expect(await users.get('other@acme.test')).toBeUndefined();
          expect((await scim.listUsers({ offset: 0, limit: 10 })).total).toBe(1);

          // A replace may keep its own userName and e-mail, but not take another's.
          await scim.createUser(scimUser('u2', 'bo@acme.test'));
          const bo = (await scim.getUser('u2'))!;
          expect(await rejection(scim.replaceUser({ ...bo, email: 'ana@acme.test', version: 2 }, 1))).toBeInstanceOf(ScimConflictError);
          expect(await rejection(scim.replaceUser({ ...bo, userName: 'ANA.ÅNGSTRÖM', version: 2 }, 1))).toMatchObject({ code: 'uniqueness' });
          expect(await scim.getUser('u2')).toEqual(bo);
          expect(byEmail(await scim.replaceUser({ ...bo, userName: 'BO@ACME.TEST', version: 2 }, 1))).toMatchObject({ 'bo@acme.test': { after: { active: true } } });
          // Once u1 lets the e-mail go, u2 may have it.
          const ana = (await scim.getUser('u1'))!;
          await scim.replaceUser({ ...ana, email: 'ana.old@acme.test', version: 2 }, 1);
          await scim.replaceUser({ ...bo, email: 'ana@acme.test', version: 3 }, 2);
          expect((await scim.listUsers({ email: 'ana@acme.test', offset: 0, limit: 10 })).items.map((u) => u.id)).toEqual(['u2']);
        }),
      );

      it(
        'replace is compare-and-set on the version, and moving a user to another e-mail deprovisions the old one',
        withDirectory(async ({ scim, users }) => {
          await scim.createUser(scimUser('u1', 'old@acme.test', { name: 'Kim' }));
          await scim.createUser(scimUser('u9', 'nine@acme.test'));
          await scim.createGroup(scimGroup('g1', 'deployers', ['u1']));
          const v1 = (await scim.getUser('u1'))!;
          expect(await scim.replaceUser({ ...v1, version: 2 }, 7)).toBe('conflict');
          expect(await scim.replaceUser(scimUser('ghost', 'ghost@acme.test', { version: 2 }), 1)).toBe('not_found');
          expect(await users.get('ghost@acme.test')).toBeUndefined();

          const moved = byEmail(await scim.replaceUser({ ...v1, email: 'new@acme.test', name: undefined, version: 2, lastModified: T + 2 }, 1));
          expect(moved).toEqual({
            'old@acme.test': {
              before: { email: 'old@acme.test', name: 'Kim', active: true, groups: ['deployers'], updatedAt: T, source: 'scim' },
              after: { email: 'old@acme.test', name: 'Kim', active: false, groups: [], updatedAt: T + 2, source: 'scim' },
            },
            'new@acme.test': { after: { email: 'new@acme.test', active: true, groups: ['deployers'], updatedAt: T + 2, source: 'scim' } },
          });
          expect(await users.get('old@acme.test')).toMatchObject({ active: false, groups: [] });
          expect(await users.get('new@acme.test')).toMatchObject({ active: true, groups: ['deployers'] });
          // The version moved on: the old one no longer matches.
          expect(await scim.replaceUser({ ...v1, version: 2 }, 1)).toBe('conflict');
          expect((await scim.getUser('u1'))!.version).toBe(2);

          // Deactivating leaves the person in no group, though the membership stays.
          const inactive = byEmail(await scim.replaceUser({ ...(await scim.getUser('u1'))!, active: false, version: 3, lastModified: T + 3 }, 2));
          expect(inactive['new@acme.test']!.after).toMatchObject({ active: false, groups: [] });
          expect((await scim.getGroup('g1'))!.members).toEqual(['u1']);
          const back = byEmail(await scim.replaceUser({ ...(await scim.getUser('u1'))!, active: true, version: 4, lastModified: T + 4 }, 3));
          expect(back['new@acme.test']!.after).toMatchObject({ active: true, groups: ['deployers'] });
          expect(await users.get('nine@acme.test')).toMatchObject({ updatedAt: T });
        }),
      );

      it(
        'delete removes the user and its memberships and deprovisions its person; a second delete finds nothing',
        withDirectory(async ({ scim, users }) => {
          await scim.createUser(scimUser('u1', 'del@acme.test'));
          await scim.createUser(scimUser('u2', 'stay@acme.test'));
          await scim.createGroup(scimGroup('g1', 'deployers', ['u2', 'u1']));
          const before = Date.now();
          const gone = byEmail(await scim.deleteUser('u1'));
          expect(Object.keys(gone)).toEqual(['del@acme.test']);
          expect(gone['del@acme.test']).toMatchObject({ before: { active: true, groups: ['deployers'] }, after: { active: false, groups: [], source: 'scim' } });
          expect(gone['del@acme.test']!.after.updatedAt).toBeGreaterThanOrEqual(before);
          expect(await scim.getUser('u1')).toBeUndefined();
          expect((await scim.getGroup('g1'))!.members).toEqual(['u2']);
          expect((await scim.listGroups({ member: 'u1', offset: 0, limit: 10 })).total).toBe(0);
          expect(await users.get('del@acme.test')).toMatchObject({ active: false, groups: [] });
          expect(await scim.deleteUser('u1')).toBe('not_found');
          // Re-creating the id does not bring its old membership back.
          await scim.createUser(scimUser('u1', 'del@acme.test'));
          expect((await scim.getGroup('g1'))!.members).toEqual(['u2']);
          expect(await users.get('del@acme.test')).toMatchObject({ active: true, groups: [] });
          // A user without an e-mail goes without touching anyone.
          await scim.createUser(scimUser('u3', undefined));
          expect(await scim.deleteUser('u3')).toEqual({ changes: [] });
        }),
      );
    });

    describe('SCIM groups', () => {
      it(
        'members are provisioned users (the first unknown one is named, nothing is written); repeats count once and order is kept',
        withDirectory(async ({ scim, users }) => {
          await scim.createUser(scimUser('u1', 'one@acme.test'));
          await scim.createUser(scimUser('u2', 'two@acme.test'));
          const unknown = await rejection(scim.createGroup(scimGroup('g1', 'deployers', ['u1', 'nope-1', 'nope-2'])));
          expect(unknown).toBeInstanceOf(ScimUnknownMemberError);
          expect(unknown).toMatchObject({ code: 'invalidValue', status: 400, memberId: 'nope-1' });
          expect(await scim.getGroup('g1')).toBeUndefined();
          expect((await users.get('one@acme.test'))!.groups).toEqual([]);

          const created = await scim.createGroup(scimGroup('g1', 'deployers', ['u2', 'u1', 'u2'], { lastModified: T + 1 }));
          expect(byEmail(created)).toEqual({
            'one@acme.test': {
              before: { email: 'one@acme.test', active: true, groups: [], updatedAt: T, source: 'scim' },
              after: { email: 'one@acme.test', active: true, groups: ['deployers'], updatedAt: T + 1, source: 'scim' },
            },
            'two@acme.test': {
              before: { email: 'two@acme.test', active: true, groups: [], updatedAt: T, source: 'scim' },
              after: { email: 'two@acme.test', active: true, groups: ['deployers'], updatedAt: T + 1, source: 'scim' },
            },
          });
          expect(await scim.getGroup('g1')).toEqual(scimGroup('g1', 'deployers', ['u2', 'u1'], { lastModified: T + 1 }));

          // A replace naming an unknown member is refused whole: members and name stay.
          const v1 = (await scim.getGroup('g1'))!;
          expect(await rejection(scim.replaceGroup({ ...v1, displayName: 'renamed', members: ['ghost'], version: 2 }, 1))).toMatchObject({ memberId: 'ghost' });
          expect(await scim.getGroup('g1')).toEqual(v1);
          expect((await users.get('two@acme.test'))!.groups).toEqual(['deployers']);
        }),
      );

      it(
        'displayName is unique case-insensitively; a group with no members touches no one',
        withDirectory(async ({ scim }) => {
          expect(await scim.createGroup(scimGroup('g1', 'Deployers', [], { externalId: 'okta-1' }))).toEqual({ changes: [] });
          const taken = await rejection(scim.createGroup(scimGroup('g2', 'DEPLOYERS', [])));
          expect(taken).toBeInstanceOf(ScimConflictError);
          expect(taken).toMatchObject({
            code: 'uniqueness',
            status: 409,
            message: 'Another group already has this displayName (compared case-insensitively); it is the Cedar Group id.',
          });
          // The uniqueness refusal comes before the unknown member.
          expect(await rejection(scim.createGroup(scimGroup('g2', 'deployers', ['nobody'])))).toBeInstanceOf(ScimConflictError);
          await scim.createGroup(scimGroup('g2', 'auditors', []));
          const g2 = (await scim.getGroup('g2'))!;
          expect(await rejection(scim.replaceGroup({ ...g2, displayName: 'deployERS', version: 2 }, 1))).toBeInstanceOf(ScimConflictError);
          // Its own name in another case is fine.
          expect(await scim.replaceGroup({ ...g2, displayName: 'Auditors', version: 2 }, 1)).toEqual({ changes: [] });
          expect((await scim.getGroup('g2'))!.displayName).toBe('Auditors');
        }),
      );

      it(
        'replace is compare-and-set; it re-derives everyone who was or is a member, and a rename renames their group',
        withDirectory(async ({ scim, users }) => {
          for (const [id, email] of [
            ['u1', 'one@acme.test'],
            ['u2', 'two@acme.test'],
            ['u3', 'three@acme.test'],
          ] as const) {
            await scim.createUser(scimUser(id, email));
          }
          await scim.createGroup(scimGroup('g1', 'deployers', ['u1', 'u2']));
          await scim.createGroup(scimGroup('g2', 'Zeta', ['u2']));
          expect(await scim.replaceGroup(scimGroup('g1', 'deployers', [], { version: 2 }), 2)).toBe('conflict');
          expect(await scim.replaceGroup(scimGroup('nope', 'nope', [], { version: 2 }), 1)).toBe('not_found');
          expect((await scim.getGroup('g1'))!.members).toEqual(['u1', 'u2']);

          const replaced = byEmail(await scim.replaceGroup(scimGroup('g1', 'release-managers', ['u3', 'u2'], { version: 2, lastModified: T + 5 }), 1));
          expect(Object.keys(replaced).sort()).toEqual(['one@acme.test', 'three@acme.test', 'two@acme.test']);
          expect(replaced['one@acme.test']).toMatchObject({ before: { groups: ['deployers'] }, after: { groups: [], updatedAt: T + 5 } });
          // Groups are listed in byte order, uppercase first (as SQLite's BINARY collation sorts).
          expect(replaced['two@acme.test']).toMatchObject({ before: { groups: ['Zeta', 'deployers'] }, after: { groups: ['Zeta', 'release-managers'] } });
          expect(replaced['three@acme.test']).toMatchObject({ before: { groups: [] }, after: { groups: ['release-managers'] } });
          expect(await users.get('two@acme.test')).toMatchObject({ groups: ['Zeta', 'release-managers'] });
          expect(await scim.getGroup('g1')).toEqual(scimGroup('g1', 'release-managers', ['u3', 'u2'], { version: 2, lastModified: T + 5 }));
          expect(await scim.replaceGroup(scimGroup('g1', 'x', [], { version: 3 }), 1)).toBe('conflict');
        }),
      );

      it(
        'delete drops the group from its members; a second delete finds nothing',
        withDirectory(async ({ scim, users }) => {
          await scim.createUser(scimUser('u1', 'one@acme.test'));
          await scim.createUser(scimUser('u2', undefined));
          await scim.createGroup(scimGroup('g1', 'deployers', ['u1', 'u2']));
          await scim.createGroup(scimGroup('g2', 'auditors', ['u1']));
          const deleted = byEmail(await scim.deleteGroup('g1'));
          expect(deleted).toMatchObject({ 'one@acme.test': { before: { groups: ['auditors', 'deployers'] }, after: { groups: ['auditors'], source: 'scim' } } });
          expect(Object.keys(deleted)).toEqual(['one@acme.test']);
          expect(await scim.getGroup('g1')).toBeUndefined();
          expect(await scim.deleteGroup('g1')).toBe('not_found');
          expect(await users.get('one@acme.test')).toMatchObject({ groups: ['auditors'] });
          // Its name is free again.
          await scim.createGroup(scimGroup('g3', 'Deployers', []));
        }),
      );
    });

    describe('SCIM lists', () => {
      it(
        'users: every filter given must match (userName case-insensitively, e-mail lower-cased), by creation then id, with paging',
        withDirectory(async ({ scim }) => {
          await scim.createUser(scimUser('c', 'c@acme.test', { created: T + 1, externalId: 'ext-c' }));
          await scim.createUser(scimUser('b', 'b@acme.test', { created: T }));
          await scim.createUser(scimUser('a', 'a@acme.test', { created: T + 1, externalId: 'ext-a' }));
          await scim.createUser(scimUser('d', undefined, { created: T + 2, userName: 'Dana', externalId: 'ext-a' }));
          const ids = async (q: Partial<Parameters<ScimStore['listUsers']>[0]>) => {
            const page = await scim.listUsers({ offset: 0, limit: 10, ...q });
            return { total: page.total, ids: page.items.map((u) => u.id) };
          };
          expect(await ids({})).toEqual({ total: 4, ids: ['b', 'a', 'c', 'd'] });
          expect(await ids({ offset: 1, limit: 2 })).toEqual({ total: 4, ids: ['a', 'c'] });
          expect(await ids({ offset: 3, limit: 2 })).toEqual({ total: 4, ids: ['d'] });
          expect(await ids({ offset: 9, limit: 2 })).toEqual({ total: 4, ids: [] });
          expect(await ids({ limit: 0 })).toEqual({ total: 4, ids: [] });
          expect(await ids({ userName: 'DANA' })).toEqual({ total: 1, ids: ['d'] });
          expect(await ids({ email: 'C@ACME.test' })).toEqual({ total: 1, ids: ['c'] });
          expect(await ids({ externalId: 'ext-a' })).toEqual({ total: 2, ids: ['a', 'd'] });
          expect(await ids({ externalId: 'EXT-A' })).toEqual({ total: 0, ids: [] });
          expect(await ids({ externalId: 'ext-a', userName: 'a@acme.test' })).toEqual({ total: 1, ids: ['a'] });
          expect(await ids({ id: 'b', email: 'c@acme.test' })).toEqual({ total: 0, ids: [] });
          expect((await scim.listUsers({ id: 'c', offset: 0, limit: 1 })).items).toEqual([scimUser('c', 'c@acme.test', { created: T + 1, externalId: 'ext-c' })]);
        }),
      );

      it(
        'groups: by displayName case-insensitively, externalId, member, with paging and their members',
        withDirectory(async ({ scim }) => {
          await scim.createUser(scimUser('u1', 'one@acme.test'));
          await scim.createUser(scimUser('u2', 'two@acme.test'));
          await scim.createGroup(scimGroup('g2', 'auditors', ['u2', 'u1'], { created: T + 1, externalId: 'x' }));
          await scim.createGroup(scimGroup('g1', 'deployers', ['u1'], { created: T + 1 }));
          await scim.createGroup(scimGroup('g0', 'empty', [], { created: T + 2, externalId: 'x' }));
          const ids = async (q: Partial<Parameters<ScimStore['listGroups']>[0]>) => {
            const page = await scim.listGroups({ offset: 0, limit: 10, ...q });
            return { total: page.total, ids: page.items.map((g) => g.id) };
          };
          expect(await ids({})).toEqual({ total: 3, ids: ['g1', 'g2', 'g0'] });
          expect(await ids({ offset: 1, limit: 1 })).toEqual({ total: 3, ids: ['g2'] });
          expect(await ids({ limit: 0 })).toEqual({ total: 3, ids: [] });
          expect(await ids({ displayName: 'AUDITORS' })).toEqual({ total: 1, ids: ['g2'] });
          expect(await ids({ externalId: 'x' })).toEqual({ total: 2, ids: ['g2', 'g0'] });
          expect(await ids({ member: 'u1' })).toEqual({ total: 2, ids: ['g1', 'g2'] });
          expect(await ids({ member: 'u2', externalId: 'x' })).toEqual({ total: 1, ids: ['g2'] });
          expect(await ids({ member: 'nobody' })).toEqual({ total: 0, ids: [] });
          const listed = await scim.listGroups({ offset: 0, limit: 10 });
          expect(listed.items).toEqual([
            scimGroup('g1', 'deployers', ['u1'], { created: T + 1 }),
            scimGroup('g2', 'auditors', ['u2', 'u1'], { created: T + 1, externalId: 'x' }),
            scimGroup('g0', 'empty', [], { created: T + 2, externalId: 'x' }),
          ]);
        }),
      );
    });

    describe('concurrent writes (two replicas)', () => {
      it(
        'groups added to one person at once, from both handles, all end up in their record',
        withDirectory(async (d, replica) => {
          const { scim, users } = d;
          await scim.createUser(scimUser('u1', 'busy@acme.test'));
          await scim.createUser(scimUser('u2', 'other@acme.test'));
          const names = Array.from({ length: 8 }, (_, i) => `group-${i}`);
          // Members listed in both orders, so the writers' locks overlap both ways.
          const results = await Promise.all(names.map((n, i) => (i % 2 ? replica : d).scim.createGroup(scimGroup(`g${i}`, n, i % 2 ? ['u1', 'u2'] : ['u2', 'u1']))));
          expect(await users.get('busy@acme.test')).toMatchObject({ active: true, groups: names, source: 'scim' });
          expect(await users.get('other@acme.test')).toMatchObject({ groups: names });
          // The writes applied one after the other: each derived on top of those before it.
          const sizes = results.map((r) => byEmail(r)['busy@acme.test']!.after.groups.length).sort((a, b) => a - b);
          expect(sizes).toEqual(names.map((_, i) => i + 1));
        }),
      );

      it(
        'a deactivation racing group changes and a sign-in leaves the person inactive in no group',
        withDirectory(async ({ scim, users }, replica) => {
          await scim.createUser(scimUser('u1', 'leaver@acme.test', { name: 'Lee' }));
          await scim.createGroup(scimGroup('g0', 'deployers', []));
          const u1 = (await scim.getUser('u1'))!;
          await Promise.all([
            replica.scim.createGroup(scimGroup('g1', 'auditors', ['u1'])),
            scim.replaceGroup(scimGroup('g0', 'deployers', ['u1'], { version: 2 }), 1),
            scim.replaceUser({ ...u1, active: false, version: 2 }, 1),
            // A sign-in as src/web/sso.ts makes it: SCIM stays authoritative for active and groups.
            replica.users.update('leaver@acme.test', (current) => (current && !current.active ? undefined : current && { ...current, updatedAt: T + 9 })),
          ]);
          expect(await users.get('leaver@acme.test')).toMatchObject({ email: 'leaver@acme.test', name: 'Lee', active: false, groups: [], source: 'scim' });
          // Re-activated, they are in both groups.
          await replica.scim.replaceUser({ ...u1, version: 3 }, 2);
          expect((await users.get('leaver@acme.test'))!.groups).toEqual(['auditors', 'deployers']);
        }),
      );

      it(
        'an e-mail change racing a group change: the group lands on the new e-mail, the old one is left with none',
        withDirectory(async ({ scim, users }, replica) => {
          await scim.createUser(scimUser('u1', 'before@acme.test'));
          await scim.createGroup(scimGroup('g1', 'deployers', []));
          const u1 = (await scim.getUser('u1'))!;
          const [moved, grouped] = await Promise.all([
            replica.scim.replaceUser({ ...u1, email: 'after@acme.test', version: 2 }, 1),
            scim.replaceGroup(scimGroup('g1', 'deployers', ['u1'], { version: 2 }), 1),
          ]);
          expect(typeof moved).toBe('object');
          expect(typeof grouped).toBe('object');
          expect(await users.get('after@acme.test')).toMatchObject({ active: true, groups: ['deployers'] });
          expect(await users.get('before@acme.test')).toMatchObject({ active: false, groups: [] });
        }),
      );

      it(
        'compare-and-set across replicas: of two replaces from one version exactly one applies',
        withDirectory(async ({ scim, users }, replica) => {
          await scim.createUser(scimUser('u1', 'one@acme.test'));
          await scim.createGroup(scimGroup('g1', 'deployers', []));
          const outcomes = await Promise.all([
            scim.replaceGroup(scimGroup('g1', 'deployers', ['u1'], { version: 2 }), 1),
            replica.scim.replaceGroup(scimGroup('g1', 'auditors', [], { version: 2 }), 1),
          ]);
          expect(outcomes.filter((o) => o === 'conflict')).toHaveLength(1);
          const won = (await scim.getGroup('g1'))!;
          expect(won.version).toBe(2);
          expect((await users.get('one@acme.test'))!.groups).toEqual(won.members.length ? ['deployers'] : []);
        }),
      );

      it(
        'the same userName created on both replicas at once: one is created, the other refused',
        withDirectory(async ({ scim }, replica) => {
          const outcomes = await Promise.allSettled([scim.createUser(scimUser('u1', 'same@acme.test')), replica.scim.createUser(scimUser('u2', 'SAME@acme.test', { email: 'other@acme.test' }))]);
          expect(outcomes.map((o) => o.status).sort()).toEqual(['fulfilled', 'rejected']);
          const refused = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected')!;
          expect(refused.reason).toBeInstanceOf(ScimConflictError);
          expect((await scim.listUsers({ offset: 0, limit: 10 })).total).toBe(1);
        }),
      );
    });
  });
}
