/**
 * Leases for background work that must run on exactly one Port replica at a time (key
 * rotation, checkpoints, expiry sweeps): a named row holding its owner and an expiry.
 * The holder renews it well before it lapses; when the holder dies, another replica takes
 * it over once it has lapsed — within one TTL. Every call is one compare-and-set in the
 * store, so two replicas never both hold a name.
 *
 * Times are the caller's clock (ms since the epoch): replicas' clocks must agree to well
 * within the TTL (NTP does), or a replica running ahead could take a live lease early.
 */
export interface LeaseStore {
  /**
   * Takes `name` for `owner` until `now + ttlMs` when it is free, lapsed, or already
   * `owner`'s (then it is a renewal). Resolves to whether `owner` holds it afterwards.
   */
  acquire(name: string, owner: string, now: number, ttlMs: number): Promise<boolean>;
  /** Gives `name` up if `owner` holds it (a clean shutdown), so another may take it at once. */
  release(name: string, owner: string): Promise<void>;
  /** Who holds `name` at `now`, if anyone: a lapsed lease is free. */
  holder(name: string, now: number): Promise<LeaseRecord | undefined>;
}

export interface LeaseRecord {
  name: string;
  owner: string;
  /** When it lapses unless renewed (ms since the epoch). */
  until: number;
}
