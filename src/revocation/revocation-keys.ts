/**
 * Row ids of the revocation list (the store's `revocations` rows; what a row means is in
 * its columns: kind, scope, target, origin). Each revocation is its own row, so a repeated
 * one never stretches or shortens another, and a lift is a row too:
 *
 * - a revocation gets a fresh id; one that never expires (a SCIM deprovisioning) has a
 *   shared id per thing and origin, so a repeat only moves its time and a person
 *   deactivated again and again keeps one row;
 * - the lifts of one thing by one origin (or `all`) share an id: a repeat moves the row's
 *   `revokedAt` (every revocation made up to then is lifted) and never shortens it.
 */
import { randomUUID } from 'node:crypto';
import type { RevocationOrigin, RevocationScope } from '../store/store.js';

export { REVOCATION_ORIGINS, REVOCATION_SCOPES } from '../store/repositories/revocations.js';
export type { RevocationOrigin, RevocationScope } from '../store/store.js';

const SHARED = '00000000-0000-0000-0000-000000000000';

/** A fresh id for one revocation; `shared`: the one id of this thing's never-expiring revocation by `origin`. */
export function revocationId(scope: RevocationScope, origin: RevocationOrigin, target: string, shared = false): string {
  return `rev:${scope}:${origin}:${shared ? SHARED : randomUUID()}:${target}`;
}

/** The id of the lifts of one thing (all origins, or one). Repeats share it. */
export function liftId(scope: RevocationScope, origin: RevocationOrigin | 'all', target: string): string {
  return `lift:${scope}:${origin}:${target}`;
}
