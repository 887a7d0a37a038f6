import type { PortConfig } from '../config/config.js';
import { resolveSecretRef } from '../config/secret-ref.js';
import type { Store } from './store.js';

export interface OpenStoreOptions {
  /** SQLite: create the file when it is missing (first start, `port serve --create-store`). */
  create?: boolean;
  /** Background failures of the store (PostgreSQL: its change feed connection). */
  onError?: (err: unknown) => void;
}

/**
 * Opens the store the config names: PostgreSQL when `store.postgres` is set, else the
 * SQLite file `store.sqlite` (the default). A SQLite store is created only when asked
 * (`create`): a missing one is otherwise refused with StoreMissingError, because an empty
 * store forgets revocations and single use. A PostgreSQL database is migrated on open.
 *
 * Each kind's modules, and its driver, load only when the config names it: a SQLite Port
 * never loads `pg` (nor a PostgreSQL one better-sqlite3), which would otherwise hold
 * memory in every Port process for code it never runs.
 */
export async function openStore(config: Pick<PortConfig, 'store'>, opts: OpenStoreOptions = {}): Promise<Store> {
  const pg = config.store.postgres;
  if (pg !== undefined) {
    const { PostgresStore } = await import('./postgres/postgres-store.js');
    return PostgresStore.open({
      url: resolveSecretRef(pg.ref, pg.key, pg.baseDir),
      poolSize: config.store.postgresPoolSize,
      ...(opts.onError ? { onError: opts.onError } : {}),
    });
  }
  const { SqliteStore } = await import('./sqlite/sqlite-store.js');
  return SqliteStore.open(config.store.sqlite, { create: opts.create ?? false });
}
