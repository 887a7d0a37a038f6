import type { RevocationEntry, Store } from '../store/store.js';

/**
 * Revoked Port token ids (RFC 7009). The store is the record; this in-memory copy
 * answers the hot path without a query. A revocation is written to the store
 * before it is acknowledged, and added here at once, so the next use is refused.
 */
export class RevocationList {
  private readonly revoked = new Map<string, number>();

  private constructor(private readonly store: Store) {}

  static async open(store: Store, now = Date.now()): Promise<RevocationList> {
    const list = new RevocationList(store);
    for (const e of await store.listActiveRevocations(now)) list.revoked.set(e.jti, e.expiresAt);
    return list;
  }

  isRevoked(jti: string): boolean {
    return this.revoked.has(jti);
  }

  async revoke(entry: RevocationEntry): Promise<void> {
    await this.store.addRevocation(entry);
    this.revoked.set(entry.jti, entry.expiresAt);
  }

  /** Drops entries for tokens that have expired anyway. */
  prune(now = Date.now()): void {
    for (const [jti, expiresAt] of this.revoked) if (expiresAt <= now) this.revoked.delete(jti);
  }

  get size(): number {
    return this.revoked.size;
  }
}
