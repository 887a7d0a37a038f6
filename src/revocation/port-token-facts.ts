import { identityFromClaims } from '../identity/claims.js';
import type { PortTokenClaims } from '../issuer/port-token.js';
import { tokenFacts, type TokenFacts } from './token-facts.js';

/**
 * Revocation facts of a verified Port token: its jti, `iat`, job identity, `build_creator`,
 * and `build_creator_unknown` (minted while the Buildkite API didn't answer).
 */
export function portTokenFacts(claims: PortTokenClaims): TokenFacts {
  const creator = typeof claims.build_creator === 'string' && claims.build_creator !== '' ? claims.build_creator : undefined;
  return tokenFacts(identityFromClaims(claims), {
    jti: claims.jti,
    issuedAt: claims.iat,
    creator,
    creatorUnknown: claims.build_creator_unknown === true ? 'at_exchange' : undefined,
  });
}
