import type { RevocationRecord, Store } from '../store/store.js';
import { liftId, revocationId, type RevocationOrigin, type RevocationScope } from './revocation-keys.js';
import { PortError } from '../errors.js';
import { POOL_CLAIMS, type CreatorUnknown, type TokenFacts } from './token-facts.js';

export { REVOCATION_ORIGINS, REVOCATION_SCOPES, type RevocationOrigin, type RevocationScope } from './revocation-keys.js';
export type { TokenFacts } from './token-facts.js';

/**
 * Port can't vouch that its copy of the revocation list is current (the store's change
 * feed is down or behind for longer than `store.feed_max_lag`), so it refuses what a
 * revocation could cover rather than risk honouring a revoked token (fail closed).
 */
export class RevocationsUnconfirmedError extends PortError {
  constructor(readonly reason: string) {
    super('temporarily_unavailable', `Port can't confirm its revocation list is current (${reason}), so it refuses for now; retry shortly.`, 503);
  }
}

/**
 * `expiresAt` of a revocation that lasts until it is lifted (a SCIM deprovisioning lasts
 * until SCIM re-activates the person): the largest time a Date holds, so it is never
 * pruned, never purged from the store, and still formats (`toISOString`) for any reader.
 */
export const UNTIL_LIFTED = 8_640_000_000_000_000;

/** When a revocation ends, as the API says it: an ISO time, or null when it lasts until lifted. */
export function revocationEnd(expiresAt: number): string | null {
  return expiresAt >= UNTIL_LIFTED ? null : new Date(expiresAt).toISOString();
}

/**
 * A revocation in force: the merged view of the records of one thing that are in force
 * (the latest made, the longest lasting). Times are milliseconds since the epoch.
 */
export interface Revocation {
  scope: RevocationScope;
  /** The jti, job id, `org/pipeline/number`, lower-cased e-mail, agent id or `cluster/queue`. */
  id: string;
  revokedAt: number;
  /** Until when it is in force (unless lifted sooner). */
  expiresAt: number;
  reason: string;
  /** Who made the records in force. */
  origins: RevocationOrigin[];
}

/** One revocation to record. */
export interface NewRevocation {
  scope: RevocationScope;
  id: string;
  revokedAt: number;
  expiresAt: number;
  reason: string;
  origin: RevocationOrigin;
}

/**
 * Why a token is refused: a revocation covers it, or a revocation is in force whose
 * reach Port can't rule out for it — a pool revocation and a token that doesn't name its
 * pool, a user revocation and a token whose build creator Port couldn't learn. Those
 * fail closed.
 */
export type Refusal =
  | { kind: 'revoked'; revocation: Revocation }
  | { kind: 'pool_unknown'; missingClaims: string[]; revocation: Revocation }
  | { kind: 'creator_unknown'; since: CreatorUnknown; revocation: Revocation };

interface Entry {
  revokedAt: number;
  expiresAt: number;
  reason: string;
  origin: RevocationOrigin;
}

interface Lift {
  /** Revocations made up to this time are lifted. */
  at: number;
  /** When every revocation it lifted would have expired anyway. */
  expiresAt: number;
}

/**
 * Port's revocations, by token, job, build, user, agent or pool. The store is the record
 * (row ids: revocation-keys.ts); this in-memory copy answers the hot path (the relay checks
 * every request) with one map lookup per scope. A revocation or a lift is written to the
 * store before it is acknowledged, and applied here at once, so the next use sees it.
 *
 * Semantics: while a revocation is in force — made, not expired, not lifted — every token
 * it covers is refused, whenever issued (so a running job can't get round it by asking its
 * agent for a fresh Buildkite token):
 * - `token`: that token; `job`, `build`: every token of the job or build;
 * - `user`: every token of a build that person created (`build_creator`); while any is in
 *   force, a token whose creator Port couldn't learn is refused too (`creator_unknown`);
 * - `agent`: every token naming the agent; `pool`: every token naming the pool, and while
 *   any is in force, every token that lacks `cluster_name`/`queue_key` (`pool_unknown`).
 * How long each lasts is the RevocationService's choice (per scope, or `expires_in`, or
 * UNTIL_LIFTED).
 */
export class RevocationList {
  private readonly scopes: Record<RevocationScope, Map<string, Map<string, Entry>>> = {
    token: new Map(),
    job: new Map(),
    build: new Map(),
    user: new Map(),
    agent: new Map(),
    pool: new Map(),
  };
  /** By liftId(scope, origin | 'all', id). */
  private readonly lifts = new Map<string, Lift>();

  /** Revocation rows the change feed named that are not applied here yet, and since when. */
  private readonly unapplied = new Set<string>();
  private unappliedSince = 0;
  private fetching: Promise<void> | undefined;
  private unsubscribe: (() => void) | undefined;

  private constructor(
    private readonly store: Store,
    private readonly maxLagMs: number,
  ) {}

  /**
   * Loads the revocations in force and follows the store's change feed, so a revocation
   * or lift made by any Port process sharing the store applies here too (subscribed
   * before the load: nothing falls in between). `maxLagMs` (config `store.feed_max_lag`):
   * how long this list may go unconfirmed before every check fails closed.
   */
  static async open(store: Store, now = Date.now(), opts: { maxLagMs?: number } = {}): Promise<RevocationList> {
    const list = new RevocationList(store, opts.maxLagMs ?? 5000);
    list.unsubscribe = store.changes.subscribe((changes) => {
      for (const c of changes) if (c.topic === 'revocations') list.unapplied.add(c.key);
      list.applyHeard();
    });
    for (const e of await store.revocations.listActive(now)) list.remember(e);
    return list;
  }

  /** Stops following the change feed. */
  close(): void {
    this.unsubscribe?.();
  }

  /** Reads and applies the rows the feed named; a failed read is retried until it succeeds (checks fail closed meanwhile). */
  private applyHeard(): void {
    if (this.unapplied.size === 0 || this.fetching) return;
    if (this.unappliedSince === 0) this.unappliedSince = Date.now();
    const ids = [...this.unapplied];
    this.fetching = this.store.revocations
      .byIds(ids)
      .then((rows) => {
        for (const row of rows) this.remember(row);
        // A row not found was purged (expired): nothing to apply.
        for (const id of ids) this.unapplied.delete(id);
        if (this.unapplied.size === 0) this.unappliedSince = 0;
      })
      .catch(() => new Promise<void>((resolve) => setTimeout(resolve, 250).unref()))
      .finally(() => {
        this.fetching = undefined;
        this.applyHeard();
      });
  }

  /**
   * Fails closed (RevocationsUnconfirmedError, 503) when this list can't be vouched for:
   * the change feed has not been confirmed current within `maxLagMs`, or revocations it
   * announced could not be read for that long.
   */
  private checkCurrent(now: number): void {
    const feed = this.store.changes.health(this.maxLagMs);
    if (!feed.current) throw new RevocationsUnconfirmedError(feed.reason ?? 'the change feed is behind');
    if (this.unappliedSince !== 0 && now - this.unappliedSince > this.maxLagMs) throw new RevocationsUnconfirmedError('announced revocations could not be read from the store');
  }

  private remember(e: RevocationRecord): void {
    if (e.kind === 'lift') {
      const k = liftId(e.scope, e.origin, e.target);
      const prior = this.lifts.get(k);
      this.lifts.set(k, { at: Math.max(prior?.at ?? -Infinity, e.revokedAt), expiresAt: Math.max(prior?.expiresAt ?? 0, e.expiresAt) });
      return;
    }
    // A revocation's origin is never `all` (only lifts use it); a row saying so is ignored.
    if (e.origin === 'all') return;
    const byId = this.scopes[e.scope];
    let records = byId.get(e.target);
    if (records === undefined) byId.set(e.target, (records = new Map()));
    const prior = records.get(e.id);
    // The same row again (RFC 7009 repeats): the later time and the longer life, as the store keeps.
    records.set(e.id, {
      revokedAt: Math.max(prior?.revokedAt ?? -Infinity, e.revokedAt),
      expiresAt: Math.max(prior?.expiresAt ?? 0, e.expiresAt),
      reason: prior && prior.revokedAt > e.revokedAt ? prior.reason : e.reason,
      origin: e.origin,
    });
  }

  /** Revocations of this thing by `origin` made up to the returned time are lifted. */
  private liftedUpTo(scope: RevocationScope, id: string, origin: RevocationOrigin): number {
    return Math.max(this.lifts.get(liftId(scope, 'all', id))?.at ?? -Infinity, this.lifts.get(liftId(scope, origin, id))?.at ?? -Infinity);
  }

  private isInForce(scope: RevocationScope, id: string, r: Entry, now: number): boolean {
    return r.expiresAt > now && r.revokedAt > this.liftedUpTo(scope, id, r.origin);
  }

  private inForce(scope: RevocationScope, id: string | undefined, now: number): Revocation | undefined {
    if (id === undefined) return undefined;
    const records = this.scopes[scope].get(id);
    if (records === undefined) return undefined;
    let merged: Revocation | undefined;
    for (const r of records.values()) {
      if (!this.isInForce(scope, id, r, now)) continue;
      if (merged === undefined) {
        merged = { scope, id, revokedAt: r.revokedAt, expiresAt: r.expiresAt, reason: r.reason, origins: [r.origin] };
        continue;
      }
      if (r.revokedAt > merged.revokedAt) {
        merged.revokedAt = r.revokedAt;
        merged.reason = r.reason;
      }
      merged.expiresAt = Math.max(merged.expiresAt, r.expiresAt);
      if (!merged.origins.includes(r.origin)) merged.origins.push(r.origin);
    }
    return merged;
  }

  /**
   * A revocation of `scope` in force for any id; with `sinceSecond`, one made in or after
   * that second (a revocation of the same second as a token's `iat` counts: fail closed).
   * User and pool revocations are few, so a scan is cheap.
   */
  private anyInForce(scope: RevocationScope, now: number, sinceSecond?: number): Revocation | undefined {
    for (const id of this.scopes[scope].keys()) {
      const r = this.inForce(scope, id, now);
      if (r !== undefined && (sinceSecond === undefined || Math.floor(r.revokedAt / 1000) >= Math.floor(sinceSecond))) return r;
    }
    return undefined;
  }

  /** Why the token is refused, if it is (the first found: token, job, build, user, agent, pool, then the unknowns). */
  refusalOf(token: TokenFacts, now = Date.now()): Refusal | undefined {
    this.checkCurrent(now);
    const covered =
      this.inForce('token', token.jti, now) ??
      this.inForce('job', token.jobId, now) ??
      this.inForce('build', token.build, now) ??
      this.inForce('user', token.creator, now) ??
      this.inForce('agent', token.agentId, now) ??
      this.inForce('pool', token.pool, now);
    if (covered !== undefined) return { kind: 'revoked', revocation: covered };
    if (token.pool === undefined) {
      // The pool claims are optional and the job chooses whether to ask for them.
      const pool = this.anyInForce('pool', now);
      if (pool !== undefined) {
        const missingClaims = token.poolClaimsMissing !== undefined && token.poolClaimsMissing.length > 0 ? token.poolClaimsMissing : [...POOL_CLAIMS];
        return { kind: 'pool_unknown', missingClaims, revocation: pool };
      }
    }
    if (token.creator === undefined && token.creatorUnknown !== undefined) {
      // A Port token minted with the creator unknown predates every user revocation in
      // force then (the exchange refuses otherwise): only later ones can have been meant for it.
      const user = this.anyInForce('user', now, token.creatorUnknown === 'at_exchange' ? token.issuedAt : undefined);
      if (user !== undefined) return { kind: 'creator_unknown', since: token.creatorUnknown, revocation: user };
    }
    return undefined;
  }

  /** Whether the token is refused (refusalOf). */
  isTokenRevoked(token: TokenFacts, now = Date.now()): boolean {
    return this.refusalOf(token, now) !== undefined;
  }

  /**
   * Whether the job's end is recorded: a `job.finished` (`webhook`) or pre-exit (`job`)
   * revocation of it is in force. An admin's revocation doesn't count: it may be lifted,
   * and a finished job must stay finished, so `job.finished` records its own.
   */
  isJobRevoked(jobId: string, now = Date.now()): boolean {
    this.checkCurrent(now);
    return this.inForce('job', jobId, now)?.origins.some((o) => o === 'webhook' || o === 'job') === true;
  }

  /** Durably records the revocation, then applies it; returns it as recorded. */
  async add(revocation: NewRevocation): Promise<NewRevocation> {
    // Made in the same millisecond as a lift, it must still count as made after it.
    const revokedAt = Math.max(revocation.revokedAt, this.liftedUpTo(revocation.scope, revocation.id, revocation.origin) + 1);
    const entry: RevocationRecord = {
      // One that never expires can't be stretched or shortened by a repeat: one row serves.
      id: revocationId(revocation.scope, revocation.origin, revocation.id, revocation.expiresAt >= UNTIL_LIFTED),
      kind: 'revocation',
      scope: revocation.scope,
      target: revocation.id,
      origin: revocation.origin,
      revokedAt,
      expiresAt: revocation.expiresAt,
      subject: revocation.id,
      reason: revocation.reason,
    };
    await this.store.revocations.add(entry);
    this.remember(entry);
    return { ...revocation, revokedAt };
  }

  /** A single token by its jti, revoked by its holder (RFC 7009 §2): one row per token, repeats keep it. */
  async revokeToken(t: { jti: string; expiresAt: number; revokedAt: number; subject?: string; reason: string }): Promise<void> {
    const entry: RevocationRecord = {
      id: t.jti,
      kind: 'revocation',
      scope: 'token',
      target: t.jti,
      origin: 'holder',
      revokedAt: t.revokedAt,
      expiresAt: t.expiresAt,
      reason: t.reason,
      ...(t.subject !== undefined ? { subject: t.subject } : {}),
    };
    await this.store.revocations.add(entry);
    this.remember(entry);
  }

  /**
   * Revokes every token of a job (a finished job). The entry lives as long as any token
   * of the job could: `maxTokenLifetime` seconds, which covers a Buildkite token minted
   * just before plus the Port token exchanged for it.
   */
  async revokeJob(jobId: string, reason: string, maxTokenLifetime: number, now = Date.now()): Promise<void> {
    await this.add({ scope: 'job', id: jobId, revokedAt: now, expiresAt: now + maxTokenLifetime * 1000, reason, origin: 'webhook' });
  }

  /**
   * Lifts the revocations of a thing in force now — those the given origins made (all
   * origins when none are given), and with `madeBefore` only those made before that time
   * (a SCIM re-activation lifts only what was revoked before it read the person) —
   * durably, then here. One lift row per origin, covering that origin's records up to the
   * latest lifted (never a record made later, even concurrently). Returns how many
   * records it lifted (0: none matched, and nothing is written).
   */
  async lift(
    scope: RevocationScope,
    id: string,
    opts: { origins?: readonly RevocationOrigin[]; madeBefore?: number; reason: string; now?: number },
  ): Promise<number> {
    const now = opts.now ?? Date.now();
    const byOrigin = new Map<RevocationOrigin, { upTo: number; until: number }>();
    let count = 0;
    for (const r of this.scopes[scope].get(id)?.values() ?? []) {
      if (!this.isInForce(scope, id, r, now)) continue;
      if (opts.origins !== undefined && !opts.origins.includes(r.origin)) continue;
      if (opts.madeBefore !== undefined && r.revokedAt >= opts.madeBefore) continue;
      count++;
      const prior = byOrigin.get(r.origin);
      byOrigin.set(r.origin, { upTo: Math.max(prior?.upTo ?? -Infinity, r.revokedAt), until: Math.max(prior?.until ?? 0, r.expiresAt) });
    }
    for (const [origin, l] of byOrigin) {
      // The lift lasts as long as what it lifted could: else a never-expiring record would return.
      const entry: RevocationRecord = {
        id: liftId(scope, origin, id),
        kind: 'lift',
        scope,
        target: id,
        origin,
        revokedAt: l.upTo,
        expiresAt: l.until,
        subject: id,
        reason: opts.reason,
      };
      await this.store.revocations.add(entry);
      this.remember(entry);
    }
    return count;
  }

  /** This thing's revocation in force, if any (`GET /v1/revocations`, idempotent repeats). */
  get(scope: RevocationScope, id: string, now = Date.now()): Revocation | undefined {
    return this.inForce(scope, id, now);
  }

  /** Revocations in force at `now`, newest first. */
  list(now = Date.now()): Revocation[] {
    const out: Revocation[] = [];
    for (const [scope, byId] of Object.entries(this.scopes) as [RevocationScope, Map<string, Map<string, Entry>>][]) {
      for (const id of byId.keys()) {
        const r = this.inForce(scope, id, now);
        if (r !== undefined) out.push(r);
      }
    }
    return out.sort((a, b) => b.revokedAt - a.revokedAt);
  }

  /** Drops expired records, and lifts whose revocations have all expired (never an UNTIL_LIFTED one). */
  prune(now = Date.now()): void {
    for (const byId of Object.values(this.scopes)) {
      for (const [id, records] of byId) {
        for (const [key, r] of records) if (r.expiresAt <= now) records.delete(key);
        if (records.size === 0) byId.delete(id);
      }
    }
    for (const [key, l] of this.lifts) if (l.expiresAt <= now) this.lifts.delete(key);
  }

  /** Records held (in force, lifted or expired but not yet pruned). */
  get size(): number {
    let n = 0;
    for (const byId of Object.values(this.scopes)) for (const records of byId.values()) n += records.size;
    return n;
  }
}
