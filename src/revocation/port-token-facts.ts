import { identityFromClaims } from '../identity/claims.js';
import type { PortTokenClaims } from '../issuer/port-token.js';
import { tokenFacts, type TokenFacts } from './token-facts.js';

/** Revocation facts of a verified Port token: its jti, `iat`, job identity and `build_creator`. */
export function portTokenFacts(claims: PortTokenClaims): TokenFacts {
  return tokenFacts(identityFromClaims(claims), { jti: claims.jti, issuedAt: claims.iat, creator: claims.build_creator });
}
