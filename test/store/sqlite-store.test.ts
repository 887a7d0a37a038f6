import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { expect, it } from 'vitest';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { describeStoreContract, record } from './store-contract.js';

describeStoreContract('SQLite', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'port-store-'));
  const file = join(dir, 'port.db');
  return { store: SqliteStore.open(file), reopen: async () => SqliteStore.open(file), cleanup: async () => rmSync(dir, { recursive: true, force: true }) };
});

it('SQLite store runs in WAL mode with full sync, and a write is on disk when it resolves', async () => {
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
