/**
 * Revocation and its effects: the revocation is durable before
 * anything is answered; then the approval requests it covers are closed, a revoked
 * person's sessions end, and the result says, per brokered credential, what revoking can
 * and can't do to it. Lifting ends a revocation early.
 */
import { randomUUID } from 'node:crypto';
import type { ApprovalRequestRecord } from '../store/records/approvals.js';
import { entityString } from '../audit/decision-from-policy.js';
import type { DecisionLog } from '../audit/decision-log.js';
import { jtiHash } from '../audit/token-hash.js';
import type { EntityRef } from '../policy/types.js';
import type { IssuedCredentialFilter, IssuedCredentialRecord, Store } from '../store/store.js';
import { revocationEnd, UNTIL_LIFTED, type RevocationList, type RevocationOrigin, type RevocationScope } from './revocation-list.js';
import { normaliseId } from './revocation-target.js';

/** How long a user, agent or pool revocation lasts unless asked otherwise (`expires_in`): 24 h. */
export const DEFAULT_STANDING_REVOCATION_SECONDS = 24 * 3600;

/**
 * What a lift may end unless it names an origin (`DELETE /v1/revocations`): an admin's and
 * SCIM's revocations. A job's end — `job.finished` (`webhook`), the plugin's pre-exit
 * revocation of its own job (`job`), a holder's RFC 7009 revocation of its token
 * (`holder`) — is not undone: a finished job stays finished.
 */
export const LIFTABLE_ORIGINS: readonly RevocationOrigin[] = ['admin', 'scim'];

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
  /** For `token`: when the token expires (ms); it is never kept longer. */
  expiresAt?: number;
  /** How long the revocation lasts (seconds, `expires_in`); else the scope's default. */
  expiresIn?: number | undefined;
}

export interface LiftInput {
  scope: RevocationScope;
  id: string;
  reason?: string | undefined;
  /** Who lifted (decision-log principal): `admin`, `scim`. */
  actor: string;
  context?: Record<string, unknown>;
  /**
   * Lift only the revocations this origin made (a SCIM re-activation lifts SCIM's, and
   * only while the directory says the person is active); else LIFTABLE_ORIGINS.
   */
  origin?: RevocationOrigin;
}

export interface NotRecallableCredential {
  credential: string;
  type: IssuedCredentialRecord['type'];
  job_id: string;
  session_name?: string;
  facts: Record<string, unknown>;
  /** When it stops working by itself; null for a secret value (it works until rotated). */
  expires_at: string | null;
  /** What the revocation does to it, in one sentence. */
  after_revocation: string;
  /** For a secret: the command that makes the released value useless. */
  rotate_with?: string;
}

export interface RevocationResult {
  scope: RevocationScope;
  id: string;
  revoked_at: string;
  /** Until when it is in force, unless lifted sooner; null: until lifted (a SCIM deprovisioning, until SCIM re-activates the person). */
  expires_at: string | null;
  reason: string;
  /** Pending approval requests closed (status `revoked`). */
  approvals_closed: number;
  /** For `user`: approvals the person had given on other pending requests, withdrawn. */
  approvals_withdrawn: number;
  /** For `user`: approver sessions ended. */
  sessions_ended: number;
  /** `recallable`: issued credentials that stop working now; `not_recallable`: those that don't, and what to do. */
  credentials: { recallable: number; not_recallable: NotRecallableCredential[] };
  /** For `user`: which tokens a user revocation can reach (it depends on Port knowing build creators). */
  creator_coverage?: string;
  note: string;
}

export interface LiftResult {
  scope: RevocationScope;
  id: string;
  lifted_at: string;
  reason: string;
  /** How many revocation records were lifted (0: none was in force, or none this lift may end). */
  lifted: number;
  /**
   * Who made the revocations of the same thing still in force (empty: none), e.g. an
   * admin's after SCIM lifted its own, or `webhook`/`job` (a finished job, never lifted).
   */
  still_revoked_by: RevocationOrigin[];
  /** Until when they are; null when none is, or when it lasts until lifted. */
  still_revoked_until: string | null;
}

export interface RevocationServiceDeps {
  revocations: RevocationList;
  store: Store;
  log: DecisionLog;
  /** Longest any covered token can live (seconds): Buildkite's 2 h + issuer.token_ttl + skew. */
  maxTokenLifetime: number;
  /** False when Port has no `buildkite.api_token` and so never learns who started a build. */
  knowsCreators?: boolean;
  /** How long user/agent/pool revocations last by default (seconds). */
  standingLifetime?: number;
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
    const origin = originOf(input.actor);
    // Durable first: nothing below runs, and nothing is answered, until the store has it.
    const at = this.now();
    const recorded = await this.deps.revocations.add({ scope, id, revokedAt: at, expiresAt: this.lifetimeEnd(input, origin, at), reason, origin });
    const { revokedAt, expiresAt } = recorded;

    const { closed, withdrawn } = await this.closeApprovals(scope, id, revokedAt);
    const sessionsEnded = scope === 'user' ? await this.deps.store.sessions.deleteAllOf(id) : 0;
    const issued = (await this.deps.store.issued.list(credentialFilter(scope, id))).filter((c) => c.issuedAt <= revokedAt);
    // A released secret value works until rotated, whenever its bearer expired; the rest until their expiry.
    const live = issued.filter((c) => c.type === 'secret' || c.expiresAt > revokedAt);
    const recallable = live.filter((c) => c.recallable && c.expiresAt > revokedAt).length;
    const notRecallable = await this.describeNotRecallable(live.filter((c) => !c.recallable));
    const creatorCoverage = scope === 'user' ? this.creatorCoverage() : undefined;

    const result: RevocationResult = {
      scope,
      id,
      revoked_at: new Date(revokedAt).toISOString(),
      expires_at: revocationEnd(expiresAt),
      reason,
      approvals_closed: closed.length,
      approvals_withdrawn: withdrawn.length,
      sessions_ended: sessionsEnded,
      credentials: { recallable, not_recallable: notRecallable },
      ...(creatorCoverage !== undefined ? { creator_coverage: creatorCoverage } : {}),
      note: note(scope, revocationEnd(expiresAt), notRecallable),
    };
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
          ...target(scope, id),
          reason,
          expires_at: result.expires_at,
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

  /**
   * Lifts the revocations of a thing that are in force (those of LIFTABLE_ORIGINS, or only
   * `origin`'s), durably; one decision-log entry (action `unrevoke`) when anything was lifted.
   * SCIM's lift of a person is decided by the directory at the time of the lift, not by the
   * write that asked for it: a re-activation racing a deactivation lifts
   * nothing while the person reads inactive, and never a revocation made after the read.
   */
  async lift(input: LiftInput): Promise<LiftResult> {
    const { scope } = input;
    const id = normaliseId(scope, input.id);
    const reason = (input.reason ?? '').trim().slice(0, 500) || 'revocation lifted';
    const liftedAt = this.now();
    const origins = input.origin !== undefined ? [input.origin] : LIFTABLE_ORIGINS;
    let lifted = 0;
    if (input.origin === 'scim' && scope === 'user' && (await this.deps.store.users.get(id))?.active !== true) {
      // The directory says inactive (or has no one): SCIM's revocation stays (fail closed).
    } else {
      const madeBefore = input.origin === 'scim' ? liftedAt : undefined;
      lifted = await this.deps.revocations.lift(scope, id, { origins, reason, now: liftedAt, ...(madeBefore !== undefined ? { madeBefore } : {}) });
    }
    const still = this.deps.revocations.get(scope, id, liftedAt);
    const result: LiftResult = {
      scope,
      id,
      lifted_at: new Date(liftedAt).toISOString(),
      reason,
      lifted,
      still_revoked_by: still?.origins ?? [],
      still_revoked_until: still ? revocationEnd(still.expiresAt) : null,
    };
    if (lifted > 0) {
      await this.deps.log.record([
        {
          id: randomUUID(),
          time: result.lifted_at,
          principal: input.actor,
          action: 'unrevoke',
          resource: resourceOf(scope, id),
          decision: 'allow',
          policies: [],
          reason: `Lifted the ${scope} revocation: ${reason}`,
          context: {
            ...input.context,
            scope,
            ...target(scope, id),
            reason,
            lifted,
            origins,
            still_revoked_by: result.still_revoked_by,
            still_revoked_until: result.still_revoked_until,
          },
        },
      ]);
    }
    return result;
  }

  /**
   * When a new revocation ends: SCIM's never (until SCIM re-activates the person: the
   * directory keeps them inactive for good, so must the revocation); `expires_in` when
   * asked, else per scope; a token's never after the token.
   */
  private lifetimeEnd(input: RevokeInput, origin: RevocationOrigin, at: number): number {
    if (origin === 'scim') return UNTIL_LIFTED;
    const tokenLife = at + this.deps.maxTokenLifetime * 1000;
    const standing = this.deps.standingLifetime ?? DEFAULT_STANDING_REVOCATION_SECONDS;
    let end: number;
    if (input.expiresIn !== undefined) end = at + input.expiresIn * 1000;
    else if (input.scope === 'token' || input.scope === 'job' || input.scope === 'build') end = tokenLife;
    else end = at + standing * 1000;
    if (input.scope === 'token') end = Math.min(end, tokenLife, input.expiresAt ?? Infinity);
    return end;
  }

  private creatorCoverage(): string {
    if (this.deps.knowsCreators === false) {
      return "Port has no buildkite.api_token, so it never learns who started a build: a user revocation covers only tokens whose creator Port knew, and here that is none. Revoke the person's builds by build, or use policy.";
    }
    return "Covers every token of a build Port knows this person started, old and new. While it is in force, an exchange whose build creator the Buildkite API can't tell is refused (503, retry), and Port tokens minted with the creator unknown (claim build_creator_unknown) are refused.";
  }

  /** Per credential, what revoking does to it; a secret once per (name, version) still accepted. */
  private async describeNotRecallable(records: IssuedCredentialRecord[]): Promise<NotRecallableCredential[]> {
    const out: NotRecallableCredential[] = [];
    const secretsSeen = new Set<string>();
    const retired = new Map<string, Set<number>>();
    for (const c of [...records].reverse()) {
      if (c.type !== 'secret') {
        out.push(describe(c));
        continue;
      }
      const version = typeof c.facts.version === 'number' ? c.facts.version : -1;
      const key = `${c.credential}\u0000${version}`;
      if (secretsSeen.has(key)) continue;
      secretsSeen.add(key);
      let gone = retired.get(c.credential);
      if (gone === undefined) {
        gone = new Set((await this.deps.store.secretVersions.list(c.credential)).filter((v) => v.retiredAt !== undefined).map((v) => v.version));
        retired.set(c.credential, gone);
      }
      // A version whose retire hook ran is no longer accepted anywhere: nothing to do.
      if (!gone.has(version)) out.push(describe(c));
    }
    return out.reverse();
  }

  /** Closes the pending requests the revocation covers; for a user, also withdraws their approvals elsewhere. */
  private async closeApprovals(scope: RevocationScope, id: string, at: number): Promise<{ closed: string[]; withdrawn: string[] }> {
    const closed: string[] = [];
    const withdrawn: string[] = [];
    if (scope === 'token' || scope === 'agent' || scope === 'pool') return { closed, withdrawn };
    for (const request of await this.deps.store.approvals.list({ status: 'pending' })) {
      if (covers(scope, id, request)) {
        // Compare-and-set: a concurrent approval or expiry that won leaves it as it is.
        const done = await this.deps.store.approvals.updatePending(request.id, (r) => ({ ...r, status: 'revoked', closedAt: at }));
        if (done) closed.push(request.id);
      } else if (scope === 'user' && request.approvals.some((a) => a.email === id)) {
        const done = await this.deps.store.approvals.updatePending(request.id, (r) => ({ ...r, approvals: r.approvals.filter((a) => a.email !== id) }));
        if (done) withdrawn.push(request.id);
      }
    }
    return { closed, withdrawn };
  }
}

/** The origin recorded with a revocation, from its actor (SCIM re-activation lifts only SCIM's). */
function originOf(actor: string): RevocationOrigin {
  if (actor === 'scim') return 'scim';
  if (actor === 'webhook') return 'webhook';
  if (actor.startsWith('Port::Job::')) return 'job';
  return 'admin';
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
  const expires = new Date(c.expiresAt).toISOString();
  const base = { credential: c.credential, type: c.type, job_id: c.jobId, ...(sessionName !== undefined ? { session_name: sessionName } : {}), facts: c.facts };
  switch (c.type) {
    case 'secret':
      return {
        ...base,
        expires_at: null,
        after_revocation: `The job holds the value, and it works until the secret is rotated: port rotate ${c.credential} (with a rotation hook; else rotate it at its source).`,
        rotate_with: `port rotate ${c.credential}`,
      };
    case 'port_token':
      return { ...base, expires_at: expires, after_revocation: `Services that verify it offline with Port's JWKS accept it until its exp, ${expires}.` };
    case 'aws_role':
      return { ...base, expires_at: expires, after_revocation: `AWS can't recall the session: it works until ${expires}; Port won't renew it (the token that would is refused).` };
  }
}

function note(scope: RevocationScope, end: string | null, notRecallable: NotRecallableCredential[]): string {
  const until = end ?? 'lifted';
  const covered: Record<RevocationScope, string> = {
    token: `The token is refused from now on.`,
    job: `Every token of this job — Port tokens, and Buildkite tokens presented to Port — is refused until ${until}.`,
    build: `Every token of this build's jobs — Port tokens, and Buildkite tokens presented to Port — is refused until ${until}.`,
    user:
      end === null
        ? 'Every token of a build this person started, old and new, is refused until SCIM re-activates the person (or an admin lifts it).'
        : `Every token of a build this person started, old and new, is refused until ${until} unless lifted.`,
    agent: `Every token of a job on this agent, old and new, is refused until ${until} unless lifted.`,
    pool: `Every token of a job in this pool, old and new, is refused until ${until} unless lifted; meanwhile tokens without cluster_name and queue_key are refused too.`,
  };
  const parts = [covered[scope], 'Relay access stops at once: the relay checks every request, so the upstream credentials it injects are not used for these tokens any more.'];
  const count = (type: IssuedCredentialRecord['type']) => notRecallable.filter((c) => c.type === type);
  const latest = (cs: NotRecallableCredential[]) => cs.reduce((a, c) => (c.expires_at !== null && c.expires_at > a ? c.expires_at : a), '');
  const aws = count('aws_role');
  if (aws.length > 0) parts.push(`${aws.length} AWS session(s) can't be recalled from AWS: they work until they expire (by ${latest(aws)}), and Port won't renew them.`);
  const secrets = count('secret');
  if (secrets.length > 0) {
    const names = [...new Set(secrets.map((c) => c.credential))];
    parts.push(`${secrets.length} secret value(s) were released and can't be recalled; rotate them: ${names.map((n) => `port rotate ${n}`).join(', ')}.`);
  }
  const portTokens = count('port_token');
  if (portTokens.length > 0) parts.push(`${portTokens.length} port_token(s) stay valid at services that verify them offline until their exp (by ${latest(portTokens)}).`);
  return parts.join(' ');
}

function target(scope: RevocationScope, id: string): Record<string, unknown> {
  return scope === 'token' ? { jti_sha256: jtiHash(id) } : { id };
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
