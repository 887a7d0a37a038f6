import type { AwsSession } from './aws-role-provider.js';
import { CredentialError } from './errors.js';

/**
 * A session is not handed out with less than this left: AWS SDKs refresh credentials a
 * few minutes before `Expiration` (JS v3: 5 min; botocore: 10 min mandatory refresh), so
 * one with less would be fetched again at once, and no relay request is signed with one
 * about to lapse.
 */
export const RENEW_BEFORE_MS = 10 * 60 * 1000;
/** STS counts from its own clock and answers whole seconds: this much past a bearer's cap is still within it. */
const CAP_SLACK_MS = 60 * 1000;
const MAX_ENTRIES = 10_000;

interface Entry {
  pending: Promise<AwsSession>;
  /** Set once STS answered. */
  session?: AwsSession;
}

export interface CachedSessionRequest {
  /** Job id, credential and everything the session is made from (aws-role-provider.ts). */
  key: string;
  credential: string;
  /** Most STS calls in flight at once for this credential (`sts_concurrency`). */
  maxInFlight: number;
  /** Latest `Expiration` this bearer may be handed (ms): its token's life, at least AWS's 15 minutes. */
  usableUntil: number;
  now: number;
}

/**
 * The AWS sessions Port holds, shared by `POST /v1/credentials` and the relay's SigV4
 * signing, so a job looping on either can't multiply STS calls: one per (job, credential, effective parameters), reused
 * while it has more than RENEW_BEFORE_MS left and doesn't outlive the asking bearer, never
 * shared across jobs. Concurrent requests for one key share one STS call; at most
 * `maxInFlight` STS calls per credential run at once, and more are refused with 503
 * `credential_unavailable` so a job looping on its credential can't spend the account's
 * STS quota. A failure is answered to the requests that shared the call, then dropped:
 * the next request calls STS again. Bounded: sessions
 * due for renewal go first, then the oldest.
 */
export class AwsSessionCache {
  private readonly entries = new Map<string, Entry>();
  private readonly inFlight = new Map<string, number>();

  constructor(private readonly maxEntries = MAX_ENTRIES) {}

  /** The cached session, or a new one from `assume`; `fresh` when this call assumed it. */
  async get(req: CachedSessionRequest, assume: () => Promise<AwsSession>): Promise<{ session: AwsSession; fresh: boolean }> {
    for (;;) {
      const hit = this.entries.get(req.key);
      if (hit === undefined) break;
      // A call in flight is shared, its failure too: waiters don't each retry STS at once.
      const s = hit.session ?? (await hit.pending);
      if (this.usable(s, req, Date.now())) return { session: s, fresh: false };
      if (this.entries.get(req.key) === hit) {
        this.entries.delete(req.key);
        break;
      }
      // Replaced while we waited: look at the new entry.
    }
    const running = this.inFlight.get(req.credential) ?? 0;
    if (running >= req.maxInFlight) {
      throw new CredentialError(
        'credential_unavailable',
        `Port already has ${running} AWS STS calls in flight for credential ${req.credential} (its sts_concurrency); busy, retry shortly.`,
      );
    }
    this.inFlight.set(req.credential, running + 1);
    const entry: Entry = {
      pending: assume().finally(() => {
        const n = (this.inFlight.get(req.credential) ?? 1) - 1;
        if (n <= 0) this.inFlight.delete(req.credential);
        else this.inFlight.set(req.credential, n);
      }),
    };
    entry.pending.then(
      (s) => {
        entry.session = s;
      },
      () => {
        if (this.entries.get(req.key) === entry) this.entries.delete(req.key);
      },
    );
    this.prune(req.now);
    this.entries.set(req.key, entry);
    return { session: await entry.pending, fresh: true };
  }

  /** Entries held (for tests and metrics). */
  get size(): number {
    return this.entries.size;
  }

  private usable(s: AwsSession, req: CachedSessionRequest, now: number): boolean {
    return s.expiresAt - RENEW_BEFORE_MS > now && s.expiresAt <= req.usableUntil + CAP_SLACK_MS;
  }

  private prune(now: number): void {
    if (this.entries.size < this.maxEntries) return;
    for (const [key, e] of this.entries) {
      if (e.session !== undefined && e.session.expiresAt - RENEW_BEFORE_MS <= now) this.entries.delete(key);
    }
    // Map iteration is insertion order: the oldest first.
    for (const key of this.entries.keys()) {
      if (this.entries.size < this.maxEntries) break;
      this.entries.delete(key);
    }
  }
}
