/** What a revocation covers (src/revocation). */
export const REVOCATION_SCOPES = ['token', 'job', 'build', 'user', 'agent', 'pool'] as const;
export type RevocationScope = (typeof REVOCATION_SCOPES)[number];

/**
 * Who made a revocation: `admin` (API, CLI), `job` (a job revoking itself), `webhook`
 * (job.finished), `scim` (deprovisioning), `holder` (RFC 7009).
 */
export const REVOCATION_ORIGINS = ['admin', 'job', 'webhook', 'scim', 'holder'] as const;
export type RevocationOrigin = (typeof REVOCATION_ORIGINS)[number];

/**
 * One row of the revocation list: a revocation of one thing, or a lift (every revocation
 * of that thing by `origin`, or by anyone for `all`, made up to `revokedAt` no longer
 * applies). Rows are only ever added; a repeat of the same `id` keeps the later
 * `revokedAt` and the longer `expiresAt`. Times in ms since the epoch.
 */
export interface RevocationRecord {
  /** The row's identity: a fresh id per revocation, or a shared one whose repeats only move its time. */
  id: string;
  kind: 'revocation' | 'lift';
  scope: RevocationScope;
  /** The jti, job id, `org/pipeline/number`, lower-cased e-mail, agent id or `cluster/queue`. */
  target: string;
  origin: RevocationOrigin | 'all';
  revokedAt: number;
  /** When it stops mattering: the row can go after this. */
  expiresAt: number;
  reason: string;
  /** The revoked token's subject (the job), for audit. */
  subject?: string;
}

export interface RevocationStore {
  /** Adds a row (a repeat of its `id` keeps the later time and the longer life). */
  add(record: RevocationRecord): Promise<void>;
  /** Rows that have not expired at `now`. */
  listActive(now: number): Promise<RevocationRecord[]>;
  /** The rows with these ids (what a change feed said changed). */
  byIds(ids: readonly string[]): Promise<RevocationRecord[]>;
}
