import { describe, expect, it } from 'vitest';
import type { UserRecord } from '../../src/store/records/approvals.js';
import type { Change, ChangeFeed } from '../../src/store/repositories/changes.js';
import type { RevocationRecord } from '../../src/store/repositories/revocations.js';
import { ScimConflictError, type ScimGroupRecord, type ScimUserRecord } from '../../src/store/repositories/scim.js';
import type { SigningKeyRecord } from '../../src/store/repositories/signing-keys.js';
import type { Store } from '../../src/store/store.js';

/**
 * Two handles on one store: `writer` writes, `subscriber` hears. For PostgreSQL they are
 * two replicas (two PostgresStores on one database); for SQLite, whose feed only carries
 * what this process writes, they are the same store.
 */
export interface FeedReplicas {
  writer: Store;
  subscriber: Store;
  /**
   * Asks the subscriber's feed to read what is new now, where delivery is asynchronous
   * (PostgreSQL), so the tests need not wait for its timer. Absent where a write's
   * listeners have run by the time it resolves (SQLite).
   */
  catchUp?: () => Promise<void>;
  cleanup(): Promise<void>;
}

const T = 1_800_000_000_000;
/** Far enough ahead that no row of these tests expires while they run. */
const LATER = Date.now() + 86_400_000;

export function revocation(id: string): RevocationRecord {
  return { id, kind: 'revocation', scope: 'token', target: `jti-${id}`, origin: 'admin', revokedAt: T, expiresAt: LATER, reason: 'test' };
}

export function signingKey(kid: string): SigningKeyRecord {
  return { kid, alg: 'ES256', publicJwk: { kty: 'EC', crv: 'P-256', x: 'x', y: 'y', kid }, privateKey: 'sealed', createdAt: T, retiresAt: T + 1, expiresAt: T + 2 };
}

export function person(email: string): UserRecord {
  return { email, active: true, groups: [], updatedAt: T, source: 'sso' };
}

function scimUser(id: string, email: string | undefined, extra: Partial<ScimUserRecord> = {}): ScimUserRecord {
  return { id, userName: email ?? id, ...(email ? { email } : {}), active: true, attributes: {}, created: T, lastModified: T, version: 1, ...extra };
}

function scimGroup(id: string, displayName: string, members: string[], extra: Partial<ScimGroupRecord> = {}): ScimGroupRecord {
  return { id, displayName, members, created: T, lastModified: T, version: 1, ...extra };
}

/** Everything a listener heard, in the order heard. */
export class Heard {
  readonly changes: Change[] = [];
  readonly unsubscribe: () => void;

  constructor(feed: ChangeFeed) {
    this.unsubscribe = feed.subscribe((changes) => this.changes.push(...changes));
  }

  /** What was heard after the first `mark` changes. */
  since(mark: number): Change[] {
    return this.changes.slice(mark);
  }
}

/**
 * Resolves once `condition` holds, polling (and asking `catchUp`, when given, to read
 * first); fails after a deadline far beyond any healthy delivery, so a slow machine
 * only makes the test slower, never wrong.
 */
export async function until(condition: () => boolean, what: string, catchUp?: () => Promise<void>): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    // A feed that can't read just now (reconnecting) is what some tests wait out.
    await catchUp?.().catch(() => undefined);
    if (condition()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const c = (topic: Change['topic'], key: string): Change => ({ topic, key });
const revoked = (id: string) => c('revocations', id);
const userChange = (email: string) => c('users', email);
const keyChange = (kid: string) => c('signing_keys', kid);
const byKey = (changes: Change[]) => [...changes].sort((a, b) => `${a.topic} ${a.key}`.localeCompare(`${b.topic} ${b.key}`));

/**
 * What every store's change feed must do: a subscriber hears each committed change to a
 * revocation (row id), a person (lower-cased e-mail) or a signing key (kid), in commit
 * order, wherever it was written; nothing of a write that failed; nothing once
 * unsubscribed; and a healthy feed vouches for being current.
 */
export function describeChangeFeedContract(name: string, open: () => Promise<FeedReplicas>): void {
  describe(`ChangeFeed contract: ${name}`, () => {
    const withReplicas = (fn: (r: FeedReplicas & { heard: Heard; expectNext: ExpectNext }) => Promise<void>) => async () => {
      const replicas = await open();
      const heard = new Heard(replicas.subscriber.changes);
      /** Runs `write` and expects exactly `expected` to be heard for it (as a set when `unordered`). */
      const expectNext: ExpectNext = async (write, expected, opts = {}) => {
        const mark = heard.changes.length;
        await write();
        await until(() => heard.changes.length >= mark + expected.length, `${expected.length} change(s) after ${mark}`, replicas.catchUp);
        if (opts.unordered) expect(byKey(heard.since(mark))).toEqual(byKey(expected));
        else expect(heard.since(mark)).toEqual(expected);
      };
      try {
        await fn({ ...replicas, heard, expectNext });
      } finally {
        heard.unsubscribe();
        await replicas.cleanup();
      }
    };

    it(
      'a revocation is heard by its row id, and so is a repeat of it (the row moved)',
      withReplicas(async ({ writer, expectNext }) => {
        await expectNext(() => writer.revocations.add(revocation('rev-1')), [revoked('rev-1')]);
        await expectNext(() => writer.revocations.add({ ...revocation('rev-1'), revokedAt: T + 5 }), [revoked('rev-1')]);
      }),
    );

    it(
      'a person is heard by their lower-cased e-mail after an upsert or an update',
      withReplicas(async ({ writer, expectNext }) => {
        await expectNext(() => writer.users.upsert(person('Ana@Acme.TEST')), [userChange('ana@acme.test')]);
        await expectNext(() => writer.users.update('BO@acme.test', () => person('bo@acme.test')), [userChange('bo@acme.test')]);
        await expectNext(() => writer.users.update('Ana@acme.test', (u) => u && { ...u, groups: ['platform'] }), [userChange('ana@acme.test')]);
      }),
    );

    it(
      'a signing key is heard by its kid',
      withReplicas(async ({ writer, expectNext }) => {
        await expectNext(() => writer.keys.insert(signingKey('kid-1')), [keyChange('kid-1')]);
      }),
    );

    it(
      'a SCIM write is heard as every person whose access it changed: a new user, a group’s members, both e-mails of a moved user',
      withReplicas(async ({ writer, expectNext }) => {
        const { scim } = writer;
        await expectNext(() => scim.createUser(scimUser('u1', 'cy@acme.test')), [userChange('cy@acme.test')]);
        await expectNext(() => scim.createUser(scimUser('u2', 'dee@acme.test')), [userChange('dee@acme.test')]);
        await expectNext(() => scim.createGroup(scimGroup('g1', 'platform', ['u1', 'u2'])), [userChange('cy@acme.test'), userChange('dee@acme.test')], {
          unordered: true,
        });
        // The e-mail is the Port identity: the old one is left inactive, the new one provisioned.
        await expectNext(
          () => scim.replaceUser(scimUser('u1', 'cy2@acme.test', { version: 2 }), 1),
          [userChange('cy@acme.test'), userChange('cy2@acme.test')],
          { unordered: true },
        );
        await expectNext(() => scim.replaceGroup(scimGroup('g1', 'platform-team', ['u1'], { version: 2 }), 1), [userChange('cy2@acme.test'), userChange('dee@acme.test')], {
          unordered: true,
        });
        await expectNext(() => scim.deleteGroup('g1'), [userChange('cy2@acme.test')]);
        await expectNext(() => scim.deleteUser('u2'), [userChange('dee@acme.test')]);
      }),
    );

    it(
      'a SCIM write that changes no person is not heard',
      withReplicas(async ({ writer, expectNext }) => {
        await writer.scim.createUser(scimUser('u-no-mail', undefined));
        await writer.scim.createGroup(scimGroup('g-empty', 'nobody-here', ['u-no-mail']));
        expect(await writer.scim.replaceUser(scimUser('u-no-mail', undefined), 7)).toBe('conflict');
        // A later change is the next thing heard.
        await expectNext(() => writer.revocations.add(revocation('after')), [revoked('after')]);
      }),
    );

    it(
      'changes arrive in commit order, whatever their topic',
      withReplicas(async ({ writer, expectNext }) => {
        await expectNext(
          async () => {
            await writer.revocations.add(revocation('r-1'));
            await writer.keys.insert(signingKey('k-1'));
            await writer.users.upsert(person('eve@acme.test'));
            await writer.revocations.add(revocation('r-2'));
            await writer.scim.createUser(scimUser('u1', 'fay@acme.test'));
            await writer.keys.insert(signingKey('k-2'));
          },
          [revoked('r-1'), keyChange('k-1'), userChange('eve@acme.test'), revoked('r-2'), userChange('fay@acme.test'), keyChange('k-2')],
        );
      }),
    );

    it(
      'a write that fails publishes nothing (duplicate kid, SCIM uniqueness conflict, an update whose change throws)',
      withReplicas(async ({ writer, expectNext }) => {
        await expectNext(() => writer.keys.insert(signingKey('k-1')), [keyChange('k-1')]);
        await expectNext(() => writer.scim.createUser(scimUser('u1', 'gus@acme.test')), [userChange('gus@acme.test')]);
        await expect(writer.keys.insert(signingKey('k-1'))).rejects.toThrow();
        await expect(writer.scim.createUser(scimUser('u2', 'gus@acme.test', { userName: 'someone-else' }))).rejects.toBeInstanceOf(ScimConflictError);
        await expect(
          writer.users.update('hal@acme.test', () => {
            throw new Error('no');
          }),
        ).rejects.toThrow('no');
        // Committed after the failures: if any of them had published, it would come first.
        await expectNext(() => writer.revocations.add(revocation('barrier')), [revoked('barrier')]);
      }),
    );

    it(
      'an unsubscribed listener hears nothing more; one subscribed after a change was heard does not hear it',
      withReplicas(async ({ writer, subscriber, heard, expectNext }) => {
        const leaving = new Heard(subscriber.changes);
        await expectNext(() => writer.revocations.add(revocation('r-1')), [revoked('r-1')]);
        leaving.unsubscribe();
        const late = new Heard(subscriber.changes);
        await expectNext(() => writer.revocations.add(revocation('r-2')), [revoked('r-2')]);
        // `heard` has r-2, so it was delivered: to every listener subscribed then.
        expect(heard.changes).toEqual([revoked('r-1'), revoked('r-2')]);
        expect(leaving.changes).toEqual([revoked('r-1')]);
        expect(late.changes).toEqual([revoked('r-2')]);
        late.unsubscribe();
      }),
    );

    it(
      'a listener that throws neither fails the write nor keeps the change from the other listeners',
      withReplicas(async ({ writer, subscriber, heard, expectNext }) => {
        const unsubscribe = subscriber.changes.subscribe(() => {
          throw new Error('a broken cache');
        });
        const after = new Heard(subscriber.changes);
        await expectNext(() => writer.revocations.add(revocation('r-1')), [revoked('r-1')]);
        await expectNext(() => writer.keys.insert(signingKey('k-1')), [keyChange('k-1')]);
        expect(after.changes).toEqual(heard.changes);
        expect(await writer.revocations.byIds(['r-1'])).toHaveLength(1);
        unsubscribe();
        after.unsubscribe();
      }),
    );

    it(
      'a healthy feed is current, before and after it delivers',
      withReplicas(async ({ writer, subscriber, expectNext }) => {
        // A bound no healthy feed comes near: this is about what it vouches for, not its speed.
        expect(subscriber.changes.health(60_000)).toEqual({ current: true });
        await expectNext(() => writer.revocations.add(revocation('r-1')), [revoked('r-1')]);
        expect(subscriber.changes.health(60_000)).toEqual({ current: true });
      }),
    );
  });
}

type ExpectNext = (write: () => Promise<unknown>, expected: Change[], opts?: { unordered?: boolean }) => Promise<void>;
