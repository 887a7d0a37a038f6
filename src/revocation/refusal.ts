/**
 * How a revocation refusal is said: one sentence for the caller (never naming another
 * job's revoked thing), and the decision-log context. Used by the exchange, the relay and
 * /v1/credentials alike.
 */
import type { Refusal } from './revocation-list.js';

export function refusalMessage(r: Refusal): string {
  if (r.kind === 'pool_unknown') {
    return `A pool revocation is in force and this token lacks the ${r.missingClaims.join(' and ')} claim${r.missingClaims.length > 1 ? 's' : ''}, so Port can't tell its pool; request the token with --claim cluster_name,queue_key.`;
  }
  if (r.kind === 'creator_unknown') {
    return r.since === 'now'
      ? "Port can't tell who started this build (the Buildkite API did not answer) while a user revocation is in force; retry."
      : "This token was issued while Port couldn't tell who started the build, and a user revocation has been made since; exchange a fresh Buildkite token.";
  }
  const until = new Date(r.revocation.expiresAt).toISOString();
  switch (r.revocation.scope) {
    case 'job':
      return 'The job this token belongs to has finished or was revoked; its tokens are refused.';
    case 'build':
      return 'The build this token belongs to was revoked; the tokens of its jobs are refused.';
    case 'user':
      return `The person who started this build is revoked until ${until}; every token of their builds is refused.`;
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
