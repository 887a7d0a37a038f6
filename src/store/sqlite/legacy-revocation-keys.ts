import { REVOCATION_ORIGINS, REVOCATION_SCOPES, type RevocationRecord } from '../repositories/revocations.js';

/**
 * Reads the meaning of a revocation row written before the store had columns for it
 * (schema version 9 and older), when all of it was packed into the key:
 * - `rev:<scope>:<origin>:<uuid>:<id>` — one revocation (the id last: it may hold `:`);
 * - `lift:<scope>:<origin|all>:<id>` — the lifts of one thing;
 * - `<scope>:<id>` — a revocation from before lifts existed (origin unknown: `admin`);
 * - anything else — a token's jti revoked by its holder (RFC 7009).
 * Used only by the migration that moves those rows to real columns.
 */
export function parseLegacyKey(key: string): Pick<RevocationRecord, 'kind' | 'scope' | 'target' | 'origin'> {
  const scope = `(${REVOCATION_SCOPES.join('|')})`;
  const origin = `(${REVOCATION_ORIGINS.join('|')})`;
  let m = new RegExp(`^rev:${scope}:${origin}:[0-9a-f-]{36}:(.+)$`, 's').exec(key);
  if (m) return { kind: 'revocation', scope: m[1] as RevocationRecord['scope'], origin: m[2] as RevocationRecord['origin'], target: m[3]! };
  m = new RegExp(`^lift:${scope}:(${REVOCATION_ORIGINS.join('|')}|all):(.+)$`, 's').exec(key);
  if (m) return { kind: 'lift', scope: m[1] as RevocationRecord['scope'], origin: m[2] as RevocationRecord['origin'], target: m[3]! };
  m = /^(job|build|user|agent|pool):(.+)$/s.exec(key);
  if (m) return { kind: 'revocation', scope: m[1] as RevocationRecord['scope'], origin: 'admin', target: m[2]! };
  return { kind: 'revocation', scope: 'token', origin: 'holder', target: key };
}
