/**
 * Revocation and its effects (DESIGN capability 6): the revocation is durable before
 * anything is answered; then the approval requests it covers are closed, a revoked
 * person's sessions end, and the result says which brokered credentials stop at once
 * and which (AWS STS sessions) only stop being renewed.
 */
import { randomUUID } from 'node:crypto';
import type { ApprovalRequestRecord } from '../approvals/records.js';
import { entityString } from '../audit/decision-from-policy.js';
import type { DecisionLog } from '../audit/decision-log.js';
import { jtiHash } from '../audit/token-hash.js';
import type { EntityRef } from '../policy/types.js';
import type { IssuedCredentialFilter, IssuedCredentialRecord, Store } from '../store/store.js';
import type { RevocationList, RevocationScope } from './revocation-list.js';
import { normaliseId } from './revocation-target.js';

export interface RevokeInput {
  scope: RevocationScope;
  id: string;
  reason?: string | undefined;
  /**
   * Who revoked: the decision-log principal, e.g. `Port::Job::"…"` (a job revoking
   * itself), `admin` (the admin API or CLI), `scim` (deactivation), `webhook`.
   */
  actor: string;
  /** Extra decision-log context (e.g. the bearer's `port_token: {jti_sha256}`). */
  context?: Record<string, unknown>;
  /** For `token`: when the token expires (ms); defaults to the longest token lifetime. */
  expiresAt?: number;
}

export interface NotRecallableCredential {
  credential: string;
  type: IssuedCredentialRecord['type'];
  job_id: string;
  session_name?: string;
  facts: Record<string, unknown>;
  expires_at: string;
}

export interface RevocationResult {
  scope: RevocationScope;
  id: string;
  revoked_at: string;
  reason: string;
  /** Pending approval requests closed (status `revoked`). */
  approvals_closed: number;
  /** For `user`: approvals the person had given on other pending requests, withdrawn. */
  approvals_withdrawn: number;
  /** For `user`: approver sessions ended. */
  sessions_ended: number;
  credentials: { recallable: number; not_recallable: NotRecallableCredential[] };
  note: string;
}

export interface RevocationServiceDeps {
  revocations: RevocationList;
  store: Store;
  log: DecisionLog;
  /** Longest any covered token can live (seconds): Buildkite's 2 h + issuer.token_ttl + skew. */
  maxTokenLifetime: number;
  now?: () => number;
}

const DEFAULT_REASONS: Record<RevocationScope, string> = {
  token: 'token revoked',
  job: 'job revoked',
  build: 'build revoked',
  user: 'user revoked',
  agent: 'agent revoked',
  pool: 'pool revoked',
};

export class RevocationService {
  private readonly now: () => number;

  constructor(private readonly deps: RevocationServiceDeps) {
    this.now = deps.now ?? Date.now;
  }

  get revocations(): RevocationList {
    return this.deps.revocations;
  }

  async revoke(input: RevokeInput): Promise<RevocationResult> {
    const { scope } = input;
    const id = normaliseId(scope, input.id);
    const reason = (input.reason ?? '').trim().slice(0, 500) || DEFAULT_REASONS[scope];
    const revokedAt = this.now();
    const lastsUntil = revokedAt + this.deps.maxTokenLifetime * 1000;
    // Durable first: nothing below runs, and nothing is answered, until the store has it.
    await this.deps.revocations.add({
      scope,
      id,
      revokedAt,
      expiresAt: scope === 'token' && input.expiresAt !== undefined ? Math.min(input.expiresAt, lastsUntil) : lastsUntil,
      reason,
    });

    const { closed, withdrawn } = await this.closeApprovals(scope, id, revokedAt);
    const sessionsEnded = scope === 'user' ? await this.deps.store.deleteSessionsOf(id) : 0;
    const issued = await this.deps.store.listIssuedCredentials({ ...credentialFilter(scope, id), activeAt: revokedAt });
    const notRecallable = issued.filter((c) => !c.recallable && c.issuedAt <= revokedAt).map(describe);
    const recallable = issued.filter((c) => c.recallable).length;

    const result: RevocationResult = {
      scope,
      id,
      revoked_at: new Date(revokedAt).toISOString(),
      reason,
      approvals_closed: closed.length,
      approvals_withdrawn: withdrawn.length,
      sessions_ended: sessionsEnded,
      credentials: { recallable, not_recallable: notRecallable },
      note: note(scope, notRecallable),
    };
    const target = scope === 'token' ? { jti_sha256: jtiHash(id) } : { id };
    await this.deps.log.record([
      {
        id: randomUUID(),
        time: result.revoked_at,
        principal: input.actor,
        action: 'revoke',
        resource: resourceOf(scope, id),
        decision: 'allow',
        policies: [],
        reason: `Revoked ${scope}: ${reason}`,
        context: {
          ...input.context,
          scope,
          ...target,
          reason,
          approvals_closed: closed,
          approvals_withdrawn: withdrawn,
          sessions_ended: sessionsEnded,
          credentials_recallable: recallable,
          credentials_not_recallable: notRecallable.length,
        },
      },
    ]);
    return result;
  }

  /** Closes the pending requests the revocation covers; for a user, also withdraws their approvals elsewhere. */
  private async closeApprovals(scope: RevocationScope, id: string, at: number): Promise<{ closed: string[]; withdrawn: string[] }> {
    const closed: string[] = [];
    const withdrawn: string[] = [];
    if (scope === 'token' || scope === 'agent' || scope === 'pool') return { closed, withdrawn };
    for (const request of await this.deps.store.listApprovalRequests({ status: 'pending' })) {
      if (covers(scope, id, request)) {
        // Compare-and-set: a concurrent approval or expiry that won leaves it as it is.
        const done = await this.deps.store.updatePendingApprovalRequest(request.id, (r) => ({ ...r, status: 'revoked', closedAt: at }));
        if (done) closed.push(request.id);
      } else if (scope === 'user' && request.approvals.some((a) => a.email === id)) {
        const done = await this.deps.store.updatePendingApprovalRequest(request.id, (r) => ({ ...r, approvals: r.approvals.filter((a) => a.email !== id) }));
        if (done) withdrawn.push(request.id);
      }
    }
    return { closed, withdrawn };
  }
}

/** Whether a pending approval request is for the revoked job, build or person's build. */
function covers(scope: RevocationScope, id: string, r: ApprovalRequestRecord): boolean {
  switch (scope) {
    case 'job':
      return r.jobId === id;
    case 'build':
      return `${r.build.organization}/${r.build.pipeline}/${r.build.number}` === id;
    case 'user':
      // Builds the person created or whose commit they wrote (`authors`, lower-cased).
      return r.build.creator?.email.toLowerCase() === id || r.authors.includes(id);
    default:
      return false;
  }
}

function credentialFilter(scope: RevocationScope, id: string): IssuedCredentialFilter {
  switch (scope) {
    case 'token':
      return { tokenJtiHash: jtiHash(id) };
    case 'job':
      return { jobId: id };
    case 'build':
      return { build: id };
    case 'user':
      return { creator: id };
    case 'agent':
      return { agentId: id };
    case 'pool':
      return { pool: id };
  }
}

function describe(c: IssuedCredentialRecord): NotRecallableCredential {
  const sessionName = typeof c.facts.session_name === 'string' ? c.facts.session_name : undefined;
  return {
    credential: c.credential,
    type: c.type,
    job_id: c.jobId,
    ...(sessionName !== undefined ? { session_name: sessionName } : {}),
    facts: c.facts,
    expires_at: new Date(c.expiresAt).toISOString(),
  };
}

function note(scope: RevocationScope, notRecallable: NotRecallableCredential[]): string {
  const covered =
    scope === 'job' || scope === 'build'
      ? `Every Port token of this ${scope} is refused from now on, and its Buildkite tokens exchange for nothing.`
      : scope === 'token'
        ? 'The token is refused from now on.'
        : `Every Port token issued to this ${scope} up to now is refused, as are Buildkite tokens issued up to now; later tokens are not (use policy to block new exchanges).`;
  const relayed = ' Relayed access and recallable credentials stop at once.';
  if (notRecallable.length === 0) return covered + relayed;
  const last = notRecallable.reduce((a, c) => (c.expires_at > a ? c.expires_at : a), notRecallable[0]!.expires_at);
  return `${covered}${relayed} ${notRecallable.length} brokered AWS session(s) can't be recalled from AWS: Port stops renewing them (the token that would get a new one is refused); they expire by ${last}.`;
}

function resourceOf(scope: RevocationScope, id: string): string | null {
  const ref: EntityRef | undefined =
    scope === 'job'
      ? { type: 'Job', id }
      : scope === 'build'
        ? { type: 'Build', id }
        : scope === 'user'
          ? { type: 'User', id }
          : scope === 'agent'
            ? { type: 'Agent', id }
            : scope === 'pool'
              ? { type: 'Pool', id }
              : undefined;
  return ref ? entityString(ref) : null;
}
