import type { VerifiedJobToken } from '../identity/buildkite-token-verifier.js';
import { tokenFacts, type TokenFacts } from './token-facts.js';

/**
 * Revocation facts of a verified Buildkite token (the exchange, the relay,
 * /v1/credentials). `jti` is the token's own `jti`, as `POST /v1/revocations
 * {"scope":"token"}` names it — never the replay key (`jti:<id>`, the
 * single-use cache's). A token without a `jti` gets its replay key (`job:…`, no UUID, so
 * no token revocation names it): revoke its job instead.
 */
export function buildkiteTokenFacts(verified: VerifiedJobToken, creator: string | undefined, creatorUnknown: boolean): TokenFacts {
  const { identity } = verified;
  return tokenFacts(identity, { jti: identity.jti ?? verified.replayKey, issuedAt: identity.issuedAt, creator, creatorUnknown: creatorUnknown ? 'now' : undefined });
}
