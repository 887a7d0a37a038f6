import type { PortConfig } from '../config/config.js';
import { SqliteStore } from './sqlite/sqlite-store.js';
import type { Store } from './store.js';

/** Opens the store the config names (SQLite is the default; PostgreSQL comes later). */
export function openStore(config: Pick<PortConfig, 'store'>): Store {
  return SqliteStore.open(config.store.sqlite);
}
