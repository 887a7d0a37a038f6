export type WebhookWorkStatus = 'pending' | 'done' | 'dropped';

/** A delivery's work as received (src/webhooks). Times in ms since the epoch. */
export interface NewWebhookWork {
  /** The delivery's dedupe key (a hash of its body). */
  key: string;
  event: string;
  /** The validated payload as JSON (only the fields handlers use). */
  payload: string;
  createdAt: number;
}

export interface WebhookWorkRecord extends NewWebhookWork {
  status: WebhookWorkStatus;
  /** Failed attempts so far. */
  attempts: number;
  nextAttemptAt: number;
  /** Who works it now (a process id), while `leaseUntil` is in the future. */
  leaseOwner: string | null;
  leaseUntil: number;
  /** Why the last attempt failed (one sentence, no payload). */
  lastError: string | null;
  updatedAt: number;
  /** Finished rows: when the dedupe key may go. Null while pending. */
  expiresAt: number | null;
}

export type WebhookWorkClaim =
  | { outcome: 'claimed'; work: WebhookWorkRecord; fresh: boolean }
  | { outcome: 'busy' }
  | { outcome: 'finished'; status: 'done' | 'dropped' };

/**
 * Webhook work (src/webhooks): each delivery Port acts on, from receipt until its work
 * is done. A finished row is the delivery's dedupe key, kept until its `expiresAt`.
 */
export interface WebhookWorkStore {
  /**
   * In one transaction: records `work` as pending and leased to `owner` (until
   * `leaseUntil`) unless its key is known; a known pending row whose lease has lapsed is
   * leased to `owner` again. Says `busy` while another lease holds it, `finished` once done.
   */
  claim(work: NewWebhookWork, owner: string, now: number, leaseUntil: number): Promise<WebhookWorkClaim>;
  /** Compare-and-set: leases to `owner` up to `limit` pending rows due at `now` whose lease lapsed. */
  claimDue(owner: string, now: number, leaseUntil: number, limit: number): Promise<WebhookWorkRecord[]>;
  /** Marks a pending row done (or dropped as moot), kept as the dedupe key until `keepUntil`; false if it was not pending. */
  finish(key: string, outcome: 'done' | 'dropped', now: number, keepUntil: number): Promise<boolean>;
  /** Compare-and-set on the lease: `owner` hands the row back, one attempt more, due again at `nextAttemptAt`. */
  release(key: string, owner: string, retry: { nextAttemptAt: number; lastError: string; now: number }): Promise<boolean>;
  /** Compare-and-set on the lease: `owner`, still holding it, extends it to `leaseUntil`; false once it lost it. */
  renew(key: string, owner: string, now: number, leaseUntil: number): Promise<boolean>;
  /** Forgets a row (work given up on): a later re-send is new work. */
  delete(key: string): Promise<void>;
  get(key: string): Promise<WebhookWorkRecord | undefined>;
  list(status?: WebhookWorkStatus): Promise<WebhookWorkRecord[]>;
}
