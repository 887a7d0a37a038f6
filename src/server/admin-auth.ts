import { timingSafeEqual, createHash } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import type { SecretSource } from '../config/config.js';
import { resolveSecretRef } from '../config/secret-ref.js';
import { PortError } from '../errors.js';

/** The admin API refused the caller. */
export class AdminAuthError extends PortError {}

/**
 * Bearer authentication for the admin API (`server.admin_token`). The token is read
 * from its reference on each check so a rotated file applies without a restart.
 * Without the key the admin API answers 404: it does not exist.
 */
export function adminAuthenticator(source: SecretSource | undefined) {
  return {
    enabled: source !== undefined,
    /** Whether the request carries the admin token. */
    isAdmin(request: FastifyRequest): boolean {
      if (source === undefined) return false;
      const m = /^Bearer +(\S+)$/i.exec(request.headers.authorization ?? '');
      if (!m) return false;
      return sameSecret(m[1]!, resolveSecretRef(source.ref, source.key, source.baseDir));
    },
    /** Throws 401 unless the request carries the admin token (404 when there is no admin API). */
    require(request: FastifyRequest): void {
      if (source === undefined) throw new AdminAuthError('not_found', 'The admin API is off; set server.admin_token to turn it on.', 404);
      if (!this.isAdmin(request)) throw new AdminAuthError('invalid_token', 'The admin API needs Authorization: Bearer <server.admin_token>.', 401);
    },
  };
}

export type AdminAuthenticator = ReturnType<typeof adminAuthenticator>;

/** Constant-time comparison of two secrets of any length (hashing first equalises lengths). */
function sameSecret(a: string, b: string): boolean {
  return timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest());
}
