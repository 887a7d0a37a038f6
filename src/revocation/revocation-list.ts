import type { RevocationEntry, Store } from '../store/store.js';

/**
 * Revoked Port token ids (RFC 7009). The store is the record; this in-memory copy
 * answers the hot path without a query. A revocation is written to the store
 * before it is acknowledged, and added here at once, so the next use is refused.
 */
/** Key of a whole-job revocation: every token of the job issued up to `revokedAt`. */
const JOB_PREFIX = 'job:';

/** What a revocation check needs from a token. */
export interface TokenFacts {
  jti: string;
  /** The job the token belongs to (Port tokens: `sub`). */
  jobId: string;
  /** `iat`, seconds since the epoch. */
  issuedAt: number;
}

export class RevocationList {
  /** jti → when the row may go. */
  private readonly revoked = new Map<string, number>();
  /** job id → when it was revoked and when the entry may go (ms). */
  private readonly jobs = new Map<string, { revokedAt: number; expiresAt: number }>();

  private constructor(private readonly store: Store) {}

  static async open(store: Store, now = Date.now()): Promise<RevocationList> {
    const list = new RevocationList(store);
    for (const e of await store.listActiveRevocations(now)) list.remember(e);
    return list;
  }

  private remember(e: RevocationEntry): void {
    if (e.jti.startsWith(JOB_PREFIX)) {
      const jobId = e.jti.slice(JOB_PREFIX.length);
      const prior = this.jobs.get(jobId);
      if (!prior || prior.revokedAt < e.revokedAt) this.jobs.set(jobId, { revokedAt: e.revokedAt, expiresAt: e.expiresAt });
    } else {
      this.revoked.set(e.jti, e.expiresAt);
    }
  }

  /**
   * Revoked by its own jti, or because its whole job was revoked. A revoked job's
   * tokens are all refused, whenever issued: Buildkite never reuses a job id, and a
   * Buildkite token leaked from a finished job must not buy a fresh Port token.
   */
  isTokenRevoked(token: TokenFacts): boolean {
    return this.revoked.has(token.jti) || this.jobs.has(token.jobId);
  }

  /** Whether the job was revoked (a finished job): its Buildkite tokens exchange for nothing. */
  isJobRevoked(jobId: string): boolean {
    return this.jobs.has(jobId);
  }

  async revoke(entry: RevocationEntry): Promise<void> {
    await this.store.addRevocation(entry);
    this.remember(entry);
  }

  /**
   * Revokes every token of a job (a finished job, DESIGN capability 6). The row lives
   * as long as any token of the job could: `maxTokenLifetime` seconds, which must cover
   * a Buildkite token minted just before plus the Port token exchanged for it.
   */
  async revokeJob(jobId: string, reason: string, maxTokenLifetime: number, now = Date.now()): Promise<void> {
    // A later revocation of the same job replaces the earlier one (the key is the job).
    await this.store.addRevocation({ jti: `${JOB_PREFIX}${jobId}`, revokedAt: now, expiresAt: now + maxTokenLifetime * 1000, subject: jobId, reason });
    this.remember({ jti: `${JOB_PREFIX}${jobId}`, revokedAt: now, expiresAt: now + maxTokenLifetime * 1000, subject: jobId, reason });
  }

  /** Drops entries for tokens that have expired anyway. */
  prune(now = Date.now()): void {
    for (const [jti, expiresAt] of this.revoked) if (expiresAt <= now) this.revoked.delete(jti);
    for (const [job, e] of this.jobs) if (e.expiresAt <= now) this.jobs.delete(job);
  }

  get size(): number {
    return this.revoked.size + this.jobs.size;
  }
}
