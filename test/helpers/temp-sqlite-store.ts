import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach } from 'vitest';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';

/**
 * A new SQLite store in a temp folder for every test of the file (called at module level);
 * closed and removed after each. Read it as `fresh.store` inside a test.
 */
export function sqliteStorePerTest(prefix: string): { readonly store: SqliteStore } {
  let dir: string | undefined;
  let current: SqliteStore | undefined;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), prefix));
    current = SqliteStore.open(join(dir, 'port.db'));
  });
  afterEach(async () => {
    await current?.close();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    current = dir = undefined;
  });
  return {
    get store(): SqliteStore {
      if (current === undefined) throw new Error('sqliteStorePerTest: the store exists only inside a test');
      return current;
    },
  };
}
