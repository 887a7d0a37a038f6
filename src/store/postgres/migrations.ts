import type { PostgresMigration } from './migrate.js';

/**
 * The PostgreSQL store's schema, one migration per change, never edited once released
 * (src/store/postgres/migrate.ts applies them). Times are bigint milliseconds since the
 * epoch, as in the SQLite store.
 */
export const POSTGRES_MIGRATIONS: readonly PostgresMigration[] = [
  {
    version: 1,
    name: 'leases',
    sql: `CREATE TABLE leases (
            name text PRIMARY KEY,
            owner text NOT NULL,
            until bigint NOT NULL
          );`,
  },
];
