import type { PortConfig } from '../config/config.js';
import { resolveSecretRef } from '../config/secret-ref.js';
import { PostgresStore } from './postgres/postgres-store.js';
import { SqliteStore } from './sqlite/sqlite-store.js';
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
 */
export async function openStore(config: Pick<PortConfig, 'store'>, opts: OpenStoreOptions = {}): Promise<Store> {
  const pg = config.store.postgres;
  if (pg !== undefined) {
    return PostgresStore.open({
      url: resolveSecretRef(pg.ref, pg.key, pg.baseDir),
      poolSize: config.store.postgresPoolSize,
      ...(opts.onError ? { onError: opts.onError } : {}),
    });
  }
  return SqliteStore.open(config.store.sqlite, { create: opts.create ?? false });
}
