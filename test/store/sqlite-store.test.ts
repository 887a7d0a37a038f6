import { closeSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { expect, it } from 'vitest';
import { StoreCommitUnknownError, StoreUnavailableError } from '../../src/store/errors.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { describeStoreContract, record } from './store-contract.js';

describeStoreContract('SQLite', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'port-store-'));
  const file = join(dir, 'port.db');
  return { store: SqliteStore.open(file), reopen: async () => SqliteStore.open(file), cleanup: async () => rmSync(dir, { recursive: true, force: true }) };
});

it('SQLite store runs in WAL mode, and a write is committed when it resolves', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'port-store-'));
  const file = join(dir, 'port.db');
  const store = SqliteStore.open(file);
  try {
    await store.decisions.append([record(1)]);
    // A second connection sees the committed row without the store closing.
    const other = new Database(file, { readonly: true });
    expect(other.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(other.prepare('SELECT count(*) AS n FROM decisions').get()).toEqual({ n: 1 });
    other.close();
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

it('a failed fsync of the log: the writes it covered are "may or may not have been recorded", and the store takes no write until restarted', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'port-store-'));
  const file = join(dir, 'port.db');
  const store = SqliteStore.open(file);
  try {
    await store.decisions.append([record(1)]); // opens and syncs the log once
    // Make the next fsync fail as a dying disk would: the descriptor the store syncs is gone (EBADF).
    const wal = (store as unknown as { wal: { fd: number } }).wal;
    closeSync(wal.fd);
    const err = await store.decisions.append([record(2)]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreCommitUnknownError);
    expect((err as Error).message).toMatch(/may or may not have been recorded/);
    expect(store.health()).toEqual({ writable: false, reason: expect.stringMatching(/could not make its commits durable .*EBADF.*restart Port/) });
    // Nothing more is written, not even a probe: the failure is final for this process.
    const decisionsBefore = (await store.decisions.read(0, 10)).length;
    const again = await store.decisions.append([record(3)]).catch((e: unknown) => e);
    expect(again).toBeInstanceOf(StoreUnavailableError);
    expect(again).not.toBeInstanceOf(StoreCommitUnknownError); // refused before committing
    await expect(store.checkWritable()).rejects.toBeInstanceOf(StoreUnavailableError);
    expect((await store.decisions.read(0, 10)).length).toBe(decisionsBefore);
    (wal as { fd: number | undefined }).fd = undefined; // already closed above
    await store.close(); // a failed store still closes
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
