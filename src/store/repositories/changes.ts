/** What the change feed carries: the caches of several Port processes that must agree. */
export type ChangeTopic = 'revocations' | 'users' | 'signing_keys';

/** One committed change: `key` is a revocation row id, a lower-cased e-mail or a kid. */
export interface Change {
  topic: ChangeTopic;
  key: string;
}

export interface FeedHealth {
  /** True while this process is known to have heard every change committed up to `maxLagMs` ago. */
  current: boolean;
  /** Why not, in a few words. */
  reason?: string;
}

/**
 * Tells caches what changed in the store, whoever changed it (PostgreSQL: every replica,
 * by LISTEN/NOTIFY with a catch-up read by version; SQLite: writes made through this
 * process). Subscribe before loading what the cache holds, so nothing falls in between.
 */
export interface ChangeFeed {
  /** Calls `listener` with changes committed after this call, in commit order; returns an unsubscribe. */
  subscribe(listener: (changes: Change[]) => void): () => void;
  /** Whether the feed can vouch for caches being current: heard from the store within `maxLagMs`. */
  health(maxLagMs: number): FeedHealth;
}
