import type { PortConfig } from '../config/config.js';
import { SqliteStore } from './sqlite/sqlite-store.js';
import type { Store } from './store.js';

/**
 * Opens the store the config names (SQLite is the default; PostgreSQL comes later).
 * A store is created only when asked (`create`): a missing one is otherwise refused
 * with StoreMissingError, because an empty store forgets revocations and single use.
 */
export function openStore(config: Pick<PortConfig, 'store'>, opts: { create?: boolean } = {}): Store {
  return SqliteStore.open(config.store.sqlite, { create: opts.create ?? false });
}
