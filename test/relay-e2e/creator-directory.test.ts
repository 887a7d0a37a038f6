/**
 * CreatorDirectory against a real SQLite store: the relay's brief reuse of a build
 * creator's record, and the cases the end-to-end test can't time — concurrent lookups,
 * a change landing while a read is in flight, the TTL, a store that fails.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { UserRecord } from '../../src/store/records/approvals.js';
import { CreatorDirectory } from '../../src/relay/creator-directory.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';

let dir: string;
let store: SqliteStore;
let reads: number;
/** While set, a read has fetched its row and waits for this before answering. */
let hold: Promise<void> | undefined;
let failing = false;

const source = {
  async get(email: string): Promise<UserRecord | undefined> {
    reads++;
    if (failing) throw new Error('SQLITE_BUSY: database is locked');
    const user = await store.users.get(email);
    if (hold) await hold;
    return user;
  },
};

const person = (groups: string[], active = true): UserRecord => ({ email: 'ana@acme.test', active, groups, updatedAt: Date.now() });

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'port-creator-dir-'));
  store = SqliteStore.open(join(dir, 'port.db'));
  reads = 0;
  hold = undefined;
  failing = false;
});
afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('CreatorDirectory', () => {
  it('reuses a record within the TTL: concurrent lookups cost one store read', async () => {
    await store.users.upsert(person(['deployers', 'eng', 'deployers']));
    const directory = new CreatorDirectory(source, { ttlMs: 1000 });
    const [a, b, c] = await Promise.all([directory.lookup('ana@acme.test', 0), directory.lookup('ana@acme.test', 10), directory.lookup('ana@acme.test', 20)]);
    expect(a).toEqual({ email: 'ana@acme.test', active: true, groups: ['deployers', 'eng'] });
    expect(b).toBe(a);
    expect(c).toBe(a);
    expect(await directory.lookup('ana@acme.test', 999)).toBe(a);
    expect(reads).toBe(1);
  });

  it('after the TTL it reads again: the same object when nothing changed, a new one when something did', async () => {
    await store.users.upsert(person(['eng', 'deployers']));
    const directory = new CreatorDirectory(source, { ttlMs: 1000 });
    const first = await directory.lookup('ana@acme.test', 0);
    const unchanged = await directory.lookup('ana@acme.test', 1000);
    expect(reads).toBe(2);
    // Same groups in another order is the same record: decisions cached against it stay valid.
    expect(unchanged).toBe(first);
    await store.users.upsert(person(['eng']));
    const changed = await directory.lookup('ana@acme.test', 2000);
    expect(changed).not.toBe(first);
    expect(changed).toEqual({ email: 'ana@acme.test', active: true, groups: ['eng'] });
  });

  it('forget applies a change on the next lookup, within the TTL', async () => {
    await store.users.upsert(person(['deployers']));
    const directory = new CreatorDirectory(source, { ttlMs: 60_000 });
    expect(await directory.lookup('ana@acme.test', 0)).toMatchObject({ active: true, groups: ['deployers'] });
    await store.users.upsert(person(['deployers'], false));
    directory.forget(['Ana@Acme.test']);
    expect(await directory.lookup('ana@acme.test', 1)).toMatchObject({ active: false });
  });

  it('a read in flight when a change lands answers its own caller but is not remembered, nor joined', async () => {
    await store.users.upsert(person(['deployers']));
    const directory = new CreatorDirectory(source, { ttlMs: 60_000 });
    let release!: () => void;
    hold = new Promise((r) => (release = r));
    const inFlight = directory.lookup('ana@acme.test', 0);
    // The read has its (old) row; now the person loses the group and Port is told.
    await new Promise((r) => setImmediate(r));
    await store.users.upsert(person([]));
    directory.forget(['ana@acme.test']);
    hold = undefined;
    const after = directory.lookup('ana@acme.test', 1);
    release();
    expect(await inFlight).toMatchObject({ groups: ['deployers'] });
    expect(await after).toMatchObject({ groups: [] });
    expect(await directory.lookup('ana@acme.test', 2)).toMatchObject({ groups: [] });
    expect(reads).toBe(2);
  });

  it('a person Port has no record of is remembered as unknown too (no store read per request)', async () => {
    const directory = new CreatorDirectory(source, { ttlMs: 1000 });
    expect(await directory.lookup('nobody@acme.test', 0)).toBeUndefined();
    expect(await directory.lookup('nobody@acme.test', 500)).toBeUndefined();
    expect(reads).toBe(1);
    // Provisioned later: Port's write tells the directory.
    await store.users.upsert({ ...person(['deployers']), email: 'nobody@acme.test' });
    directory.forget(['nobody@acme.test']);
    expect(await directory.lookup('nobody@acme.test', 600)).toMatchObject({ groups: ['deployers'] });
  });

  it('a store that fails rejects the lookup and leaves nothing behind: the next lookup reads again', async () => {
    await store.users.upsert(person(['deployers']));
    const directory = new CreatorDirectory(source, { ttlMs: 1000 });
    failing = true;
    await expect(directory.lookup('ana@acme.test', 0)).rejects.toThrow(/database is locked/);
    failing = false;
    expect(await directory.lookup('ana@acme.test', 1)).toMatchObject({ groups: ['deployers'] });
    expect(reads).toBe(2);
  });

  it('remembers at most maxEntries people, dropping the oldest', async () => {
    for (const n of [1, 2, 3]) await store.users.upsert({ ...person([`g${n}`]), email: `p${n}@acme.test` });
    const directory = new CreatorDirectory(source, { ttlMs: 60_000, maxEntries: 2 });
    for (const n of [1, 2, 3]) await directory.lookup(`p${n}@acme.test`, 0);
    expect(reads).toBe(3);
    await directory.lookup('p3@acme.test', 1);
    await directory.lookup('p2@acme.test', 1);
    expect(reads).toBe(3);
    await directory.lookup('p1@acme.test', 1);
    expect(reads).toBe(4);
  });
});
