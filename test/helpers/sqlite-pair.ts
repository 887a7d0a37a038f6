import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';

/** Two SQLite stores on one file — two Port processes sharing it — and their cleanup. */
export function sqlitePair(prefix: string): { one: SqliteStore; two: SqliteStore; cleanup(): Promise<void> } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const [one, two] = [SqliteStore.open(join(dir, 'port.db')), SqliteStore.open(join(dir, 'port.db'))];
  return {
    one,
    two,
    async cleanup() {
      await Promise.all([one.close(), two.close()]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
