/**
 * How a revocation refusal is said: one sentence for the caller (never naming another
 * job's revoked thing), and the decision-log context. Used by the exchange, the relay and
 * /v1/credentials alike.
 */
import { revocationEnd, type Refusal } from './revocation-list.js';

/**
 * A build whose creator Port's directory holds as inactive (SCIM deactivated or deleted
 * them): refused in its own right, whatever the revocations say. The person
 * is not named: the caller learns only why.
 */
export const CREATOR_INACTIVE_MESSAGE = "The person who started this build is deactivated in Port's directory; the tokens of their builds are refused.";

export function refusalMessage(r: Refusal): string {
  if (r.kind === 'pool_unknown') {
    return `A pool revocation is in force and this token lacks the ${r.missingClaims.join(' and ')} claim${r.missingClaims.length > 1 ? 's' : ''}, so Port can't tell its pool; request the token with --claim cluster_name,queue_key.`;
  }
  if (r.kind === 'creator_unknown') {
    return r.since === 'now'
      ? "Port can't tell who started this build (the Buildkite API did not answer) while a user revocation is in force; retry."
      : "This token was issued while Port couldn't tell who started the build, and a user revocation has been made since; exchange a fresh Buildkite token.";
  }
  const end = revocationEnd(r.revocation.expiresAt);
  const until = end ?? 'lifted';
  switch (r.revocation.scope) {
    case 'job':
      return 'The job this token belongs to has finished or was revoked; its tokens are refused.';
    case 'build':
      return 'The build this token belongs to was revoked; the tokens of its jobs are refused.';
    case 'user':
      return end === null
        ? 'The person who started this build is revoked until they are re-activated; every token of their builds is refused.'
        : `The person who started this build is revoked until ${until}; every token of their builds is refused.`;
    case 'agent':
      return `The agent this token names is revoked until ${until}; every token of its jobs is refused.`;
    case 'pool':
      return `The pool this token names is revoked until ${until}; every token of its jobs is refused.`;
    default:
      return 'This token was revoked.';
  }
}

/** What the decision log records about a refusal (`context.revocation`). */
export function refusalContext(r: Refusal): Record<string, unknown> {
  return {
    scope: r.revocation.scope,
    kind: r.kind,
    ...(r.kind === 'pool_unknown' ? { missing_claims: r.missingClaims } : {}),
    ...(r.kind === 'creator_unknown' ? { creator_unknown: r.since } : {}),
  };
}
