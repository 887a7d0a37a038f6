/**
 * How revocations are keyed in the store's `revocations` table (column `jti`). Each
 * revocation is its own row, so a repeated one never stretches or shortens another, and a
 * lift is a row too (the store only adds rows and keeps the later time on a repeat):
 *
 * - `rev:<scope>:<origin>:<uuid>:<id>` — one revocation (the id last: it may hold `:`); one
 *   that never expires (a SCIM deprovisioning) has the nil UUID, so a repeat only moves its
 *   time and a person deactivated again and again keeps one row;
 * - `lift:<scope>:<origin|all>:<id>` — every revocation of that thing made up to the
 *   row's `revoked_at` is lifted (`all`), or only those made by `origin` (SCIM re-activation);
 * - `<scope>:<id>` — a revocation written before lifts existed (origin unknown: `admin`);
 * - anything else — a token's jti revoked by its holder (RFC 7009). Port token jtis are
 *   UUIDs, so they never look like the prefixed forms.
 */
import { randomUUID } from 'node:crypto';

export const REVOCATION_SCOPES = ['token', 'job', 'build', 'user', 'agent', 'pool'] as const;
export type RevocationScope = (typeof REVOCATION_SCOPES)[number];

/**
 * Who made a revocation: `admin` (API, CLI), `job` (a job revoking itself), `webhook`
 * (job.finished), `scim` (deprovisioning), `holder` (RFC 7009).
 */
export const REVOCATION_ORIGINS = ['admin', 'job', 'webhook', 'scim', 'holder'] as const;
export type RevocationOrigin = (typeof REVOCATION_ORIGINS)[number];

export type ParsedKey =
  | { kind: 'revocation'; scope: RevocationScope; id: string; origin: RevocationOrigin }
  | { kind: 'lift'; scope: RevocationScope; id: string; origin: RevocationOrigin | 'all' };

const SCOPE = `(${REVOCATION_SCOPES.join('|')})`;
const ORIGIN = `(${REVOCATION_ORIGINS.join('|')})`;
const RECORD = new RegExp(`^rev:${SCOPE}:${ORIGIN}:[0-9a-f-]{36}:(.+)$`, 's');
const LIFT = new RegExp(`^lift:${SCOPE}:(${REVOCATION_ORIGINS.join('|')}|all):(.+)$`, 's');
const LEGACY = new RegExp(`^(job|build|user|agent|pool):(.+)$`, 's');

const SHARED = '00000000-0000-0000-0000-000000000000';

/** A fresh key for one revocation; `shared`: the one key of this thing's never-expiring revocation by `origin`. */
export function revocationKey(scope: RevocationScope, origin: RevocationOrigin, id: string, shared = false): string {
  return `rev:${scope}:${origin}:${shared ? SHARED : randomUUID()}:${id}`;
}

/** The key of the lifts of one thing (all origins, or one). Repeats share it. */
export function liftKey(scope: RevocationScope, origin: RevocationOrigin | 'all', id: string): string {
  return `lift:${scope}:${origin}:${id}`;
}

export function parseKey(key: string): ParsedKey {
  let m = RECORD.exec(key);
  if (m) return { kind: 'revocation', scope: m[1] as RevocationScope, origin: m[2] as RevocationOrigin, id: m[3]! };
  m = LIFT.exec(key);
  if (m) return { kind: 'lift', scope: m[1] as RevocationScope, origin: m[2] as RevocationOrigin | 'all', id: m[3]! };
  m = LEGACY.exec(key);
  if (m) return { kind: 'revocation', scope: m[1] as RevocationScope, origin: 'admin', id: m[2]! };
  return { kind: 'revocation', scope: 'token', origin: 'holder', id: key };
}
