import type { RevocationEntry, Store } from '../store/store.js';
import type { TokenFacts } from './token-facts.js';

export type { TokenFacts } from './token-facts.js';

/** What a revocation can name (DESIGN capability 6). */
export const REVOCATION_SCOPES = ['token', 'job', 'build', 'user', 'agent', 'pool'] as const;
export type RevocationScope = (typeof REVOCATION_SCOPES)[number];

/** One active revocation. Times are milliseconds since the epoch. */
export interface Revocation {
  scope: RevocationScope;
  /** The jti, job id, `org/pipeline/number`, lower-cased e-mail, agent id or `cluster/queue`. */
  id: string;
  revokedAt: number;
  /** When every token it covers has expired anyway; the entry can go after this. */
  expiresAt: number;
  reason: string;
}

/**
 * Scopes other than `token` are stored in the `revocations` table under a prefixed key
 * (`job:…`, `build:…`); a bare key is a token's jti (RFC 7009). Port token jtis are
 * UUIDs, so no jti can collide with a prefixed key.
 */
const PREFIXED_SCOPES = ['job', 'build', 'user', 'agent', 'pool'] as const;
type PrefixedScope = (typeof PREFIXED_SCOPES)[number];

interface ScopeEntry {
  revokedAt: number;
  expiresAt: number;
  reason: string;
}

export function revocationKey(scope: RevocationScope, id: string): string {
  return scope === 'token' ? id : `${scope}:${id}`;
}

function parseKey(key: string): { scope: RevocationScope; id: string } {
  const colon = key.indexOf(':');
  if (colon > 0) {
    const scope = key.slice(0, colon);
    if ((PREFIXED_SCOPES as readonly string[]).includes(scope)) return { scope: scope as PrefixedScope, id: key.slice(colon + 1) };
  }
  return { scope: 'token', id: key };
}

/**
 * Port's revocations, by token, job, build, user, agent or pool. The store is the
 * record; this in-memory copy answers the hot path (the relay checks every request)
 * with one map lookup per scope. A revocation is written to the store before it is
 * acknowledged, and added here at once, so the next use is refused.
 *
 * Semantics:
 * - `token`: that token.
 * - `job`, `build`: every token of the job or build, whenever issued; its Buildkite
 *   tokens exchange for nothing afterwards. Buildkite never reuses a job or build, so
 *   nothing legitimate is lost.
 * - `user` (the build creator), `agent`, `pool`: every token issued at or before the
 *   revocation (`iat`, in whole seconds, ≤ the revocation's second: a token of the same
 *   second is refused, failing closed). A repaired agent or a re-admitted person gets
 *   new tokens from fresh Buildkite tokens; to block new exchanges, use policy.
 */
export class RevocationList {
  private readonly scopes: Record<RevocationScope, Map<string, ScopeEntry>> = {
    token: new Map(),
    job: new Map(),
    build: new Map(),
    user: new Map(),
    agent: new Map(),
    pool: new Map(),
  };

  private constructor(private readonly store: Store) {}

  static async open(store: Store, now = Date.now()): Promise<RevocationList> {
    const list = new RevocationList(store);
    for (const e of await store.listActiveRevocations(now)) list.remember(e);
    return list;
  }

  private remember(e: RevocationEntry): void {
    const { scope, id } = parseKey(e.jti);
    const map = this.scopes[scope];
    const prior = map.get(id);
    // A later revocation of the same thing replaces the earlier one; the store does the same.
    map.set(id, {
      revokedAt: Math.max(prior?.revokedAt ?? 0, e.revokedAt),
      expiresAt: Math.max(prior?.expiresAt ?? 0, e.expiresAt),
      reason: prior && prior.revokedAt > e.revokedAt ? prior.reason : e.reason,
    });
  }

  /** Whether any revocation covers the token. */
  isTokenRevoked(token: TokenFacts): boolean {
    return this.revokedBy(token) !== undefined;
  }

  /** The revocation that covers the token, if any (the first found: token, job, build, user, agent, pool). */
  revokedBy(token: TokenFacts): Revocation | undefined {
    const hit = (scope: RevocationScope, id: string | undefined, issuedBefore: boolean): Revocation | undefined => {
      if (id === undefined) return undefined;
      const e = this.scopes[scope].get(id);
      if (e === undefined) return undefined;
      if (issuedBefore && Math.floor(token.issuedAt) > Math.floor(e.revokedAt / 1000)) return undefined;
      return { scope, id, ...e };
    };
    return (
      hit('token', token.jti, false) ??
      hit('job', token.jobId, false) ??
      hit('build', token.build, false) ??
      hit('user', token.creator, true) ??
      hit('agent', token.agentId, true) ??
      hit('pool', token.pool, true)
    );
  }

  /** Whether the job was revoked (a finished job): its Buildkite tokens exchange for nothing. */
  isJobRevoked(jobId: string): boolean {
    return this.scopes.job.has(jobId);
  }

  /** Durably records the revocation, then applies it. */
  async add(revocation: Revocation): Promise<void> {
    const entry: RevocationEntry = {
      jti: revocationKey(revocation.scope, revocation.id),
      revokedAt: revocation.revokedAt,
      expiresAt: revocation.expiresAt,
      subject: revocation.id,
      reason: revocation.reason,
    };
    await this.store.addRevocation(entry);
    this.remember(entry);
  }

  /** A single token by its jti (RFC 7009). */
  async revoke(entry: RevocationEntry): Promise<void> {
    await this.store.addRevocation(entry);
    this.remember(entry);
  }

  /**
   * Revokes every token of a job (a finished job). The entry lives as long as any token
   * of the job could: `maxTokenLifetime` seconds, which covers a Buildkite token minted
   * just before plus the Port token exchanged for it.
   */
  async revokeJob(jobId: string, reason: string, maxTokenLifetime: number, now = Date.now()): Promise<void> {
    await this.add({ scope: 'job', id: jobId, revokedAt: now, expiresAt: now + maxTokenLifetime * 1000, reason });
  }

  /** Whether this exact revocation is in force (`GET /v1/revocations`, idempotent repeats). */
  get(scope: RevocationScope, id: string): Revocation | undefined {
    const e = this.scopes[scope].get(id);
    return e === undefined ? undefined : { scope, id, ...e };
  }

  /** Revocations in force at `now`, newest first. */
  list(now = Date.now()): Revocation[] {
    const out: Revocation[] = [];
    for (const scope of REVOCATION_SCOPES) {
      for (const [id, e] of this.scopes[scope]) if (e.expiresAt > now) out.push({ scope, id, ...e });
    }
    return out.sort((a, b) => b.revokedAt - a.revokedAt);
  }

  /** Drops entries for tokens that have expired anyway. */
  prune(now = Date.now()): void {
    for (const map of Object.values(this.scopes)) for (const [id, e] of map) if (e.expiresAt <= now) map.delete(id);
  }

  get size(): number {
    return Object.values(this.scopes).reduce((n, m) => n + m.size, 0);
  }
}
