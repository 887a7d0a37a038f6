import { jtiHash } from '../audit/token-hash.js';
import type { VerifiedJobToken } from '../identity/buildkite-token-verifier.js';
import { identityClaims } from '../issuer/port-token.js';

/** The identity context recorded with a decision: the job's claims and the token's jti hash. */
export function identityContext(v: VerifiedJobToken): Record<string, unknown> {
  return {
    job: identityClaims(v.identity),
    subject_token: {
      kid: v.kid,
      ...(v.identity.jti !== undefined ? { jti_sha256: jtiHash(v.identity.jti) } : {}),
      iat: v.identity.issuedAt,
      exp: v.identity.expiresAt,
    },
  };
}
