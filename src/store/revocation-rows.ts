import type { RevocationRecord } from './repositories/revocations.js';

/** A `revocations` row as both backends return it (PostgreSQL's bigints arrive as strings). */
export interface RevocationRow {
  id: string;
  kind: RevocationRecord['kind'];
  scope: RevocationRecord['scope'];
  target: string;
  origin: RevocationRecord['origin'];
  revoked_at: number | string;
  expires_at: number | string;
  reason: string;
  subject: string | null;
}

export function revocationFromRow(r: RevocationRow): RevocationRecord {
  return {
    id: r.id,
    kind: r.kind,
    scope: r.scope,
    target: r.target,
    origin: r.origin,
    revokedAt: Number(r.revoked_at),
    expiresAt: Number(r.expires_at),
    reason: r.reason,
    ...(r.subject !== null ? { subject: r.subject } : {}),
  };
}
