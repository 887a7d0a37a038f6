import { randomUUID } from 'node:crypto';
import { entityString } from '../audit/decision-from-policy.js';
import type { DecisionLog } from '../audit/decision-log.js';
import type { DecisionRecord } from '../store/records/decisions.js';
import type { PortConfig } from '../config/config.js';
import type { BuildkiteTokenVerifier, VerifiedJobToken } from '../identity/buildkite-token-verifier.js';
import { TokenRejectedError } from '../identity/errors.js';
import { credentialRef, jobRequestParts, organizationRef, type JobRequestParts } from '../policy/entities.js';
import type { PolicyEngine } from '../policy/engine.js';
import type { AuthzRequest, Decision, EntityRef } from '../policy/types.js';
import { CREATOR_INACTIVE_MESSAGE, refusalContext, refusalMessage } from '../revocation/refusal.js';
import type { RevocationList } from '../revocation/revocation-list.js';
import { buildkiteTokenFacts } from '../revocation/buildkite-token-facts.js';
import { creatorLookupFailed, type BuildCreator, type BuildCreatorLookup } from './build-creator.js';
import { identityContext } from './identity-context.js';
import type { AgentCheck, AgentGate } from '../agents/agent-gate.js';

export interface AdmissionDeps {
  config: PortConfig;
  verifier: BuildkiteTokenVerifier;
  log: DecisionLog;
  revocations: RevocationList;
  /** Who started the build (Buildkite API); without it the creator is unknown. */
  creators?: BuildCreatorLookup | undefined;
  /** The agent checks of `pools:` (src/agents/agent-gate.ts); needed when any pool is configured. */
  agents?: AgentGate | undefined;
}

/** Identifies the request in decision log entries (never the token). */
export interface RequestMeta {
  requestId: string;
  remoteAddress?: string;
  /** RFC 9449 §5: the request carried a valid DPoP proof; the token is bound to this key thumbprint. */
  dpop?: { jkt: string };
}

/**
 * Where a refused Buildkite token is logged: the action and resource of the request it
 * came with (`exchange` at `/oauth/token`; `assume` of the credential at `/v1/credentials`).
 */
export interface RefusalTarget {
  action: 'exchange' | 'assume';
  resource: string | null;
}

/** A verified, unrevoked Buildkite job token, with what policy and the decision log need. */
export interface AdmittedJob extends JobRequestParts {
  verified: VerifiedJobToken;
  creator: BuildCreator;
  /** The build creator's lower-cased e-mail when Buildkite named one. */
  creatorEmail: string | undefined;
  /** Port asked the Buildkite API who started the build and got no answer (a Port token says so). */
  creatorUnknown: boolean;
  /** What the agent gate verified about the job's agent (facts, pool, the key a host-bound token binds to). */
  agentCheck: AgentCheck;
  /**
   * The decision-log context: `job` (with `build_creator` when known),
   * `subject_token` (its jti only as a hash), the creator's standing, `agent` (when pools
   * are configured), the request id.
   */
  context: Record<string, unknown>;
}

/**
 * What every use of a Buildkite token at Port shares — the RFC 8693 exchange and a
 * credential released directly for one: verify it, learn the
 * build's creator, refuse a revoked job, build, user, agent or pool, and consume it
 * exactly once. Refusals are decision-log entries before the error leaves.
 */
export class BuildkiteTokenAdmission {
  constructor(private readonly deps: AdmissionDeps) {
    // Fail closed: configured pools are never silently unchecked.
    if (deps.agents === undefined && Object.keys(deps.config.pools).length > 0) throw new Error('pools are configured but no agent gate was given');
  }

  /** Verifies the token and refuses it when revoked; throws TokenRejectedError (logged). */
  async admit(token: string, meta: RequestMeta, target: RefusalTarget): Promise<AdmittedJob> {
    let verified: VerifiedJobToken;
    try {
      verified = await this.deps.verifier.verify(token);
    } catch (err) {
      if (err instanceof TokenRejectedError) await this.deps.log.record([refusal(err, meta, target, undefined)]);
      throw err;
    }
    const creator: BuildCreator = this.deps.creators ? await this.deps.creators.creatorOf(verified.identity) : { status: 'unavailable' };
    const creatorEmail = creator.status === 'known' ? creator.email : undefined;
    const creatorUnknown = creatorLookupFailed(creator);
    // Any revocation in force that covers the token — or that Port can't rule out for it
    // (src/revocation/revocation-list.ts, fail closed): the token buys nothing.
    const refused = this.deps.revocations.refusalOf(buildkiteTokenFacts(verified, creatorEmail, creatorUnknown));
    if (refused) {
      // Not knowing the creator while a user revocation is in force is Buildkite's outage, not the job's fault: 503, retry.
      const err = new TokenRejectedError(refused.kind === 'creator_unknown' && refused.since === 'now' ? 'creator_unknown' : 'job_revoked', refusalMessage(refused));
      await this.deps.log.record([refusal(err, meta, target, verified, { revocation: refusalContext(refused), build_creator: creatorContext(creator) })]);
      throw err;
    }
    // The directory's word stands on its own: a build of a person SCIM
    // deactivated or deleted buys nothing, even with no revocation in force and under a
    // policy that never tests `creator.active`.
    if (creator.status === 'known' && creator.user !== undefined && !creator.user.active) {
      const err = new TokenRejectedError('job_revoked', CREATOR_INACTIVE_MESSAGE);
      await this.deps.log.record([refusal(err, meta, target, verified, { refusal: 'creator_inactive', build_creator: creatorContext(creator) })]);
      throw err;
    }
    // The agent the token names, against its pool's rules (src/agents/agent-gate.ts).
    let agentCheck: AgentCheck = { context: undefined };
    if (this.deps.agents !== undefined) {
      try {
        agentCheck = await this.deps.agents.check(verified.identity, { dpopJkt: meta.dpop?.jkt });
      } catch (err) {
        if (err instanceof TokenRejectedError) await this.deps.log.record([refusal(err, meta, target, verified, { ...err.context, build_creator: creatorContext(creator) })]);
        throw err;
      }
    }
    const parts = jobRequestParts(verified.identity, {
      creator: creator.status === 'known' ? creator.user : undefined,
      agent: agentCheck.facts,
      pool: agentCheck.pool,
    });
    const { job, subject_token } = identityContext(verified);
    // Decision-log convention: context.job carries build_creator when known (job is a fresh object).
    if (creatorEmail !== undefined) (job as Record<string, unknown>).build_creator = creatorEmail;
    const context: Record<string, unknown> = { job, subject_token, build_creator: creatorContext(creator) };
    if (agentCheck.context !== undefined) context.agent = agentCheck.context;
    context.request_id = meta.requestId;
    // Listed, not spread: a literal that begins with a spread costs a hidden class per object (src/merge-objects.ts).
    return { principal: parts.principal, entities: parts.entities, verified, creator, creatorEmail, creatorUnknown, agentCheck, context };
  }

  /**
   * Single use (a bearer token replayed must buy nothing), remembered until the token expires anyway: consumes
   * the token and logs `records` in one durable write. On a replay only the refusal is
   * logged (the decisions are discarded) and TokenRejectedError `replayed` is thrown.
   */
  async consumeOnce(job: AdmittedJob, records: DecisionRecord[], meta: RequestMeta, target: RefusalTarget): Promise<void> {
    // The refusal is made and written only on a replay; the error (and its stack) only made then.
    const replayed = { check: 'replayed', message: REPLAYED_MESSAGE } as const;
    const firstUse = await this.deps.log.recordFirstUse(
      job.verified.replayKey,
      (job.verified.identity.expiresAt + this.deps.config.buildkite.clockSkew) * 1000,
      records,
      () => [refusal(replayed, meta, target, job.verified)],
    );
    if (!firstUse) throw new TokenRejectedError(replayed.check, replayed.message);
  }
}

/** One decision on a Buildkite token's job: `exchange` on the Organization or `assume` on a Credential. */
export interface GrantDecision {
  action: 'exchange' | 'assume';
  resource: EntityRef;
  decision: Decision;
}

/**
 * The decisions: `exchange` on the organization (context `audience`, `scopes`), then, when it
 * is allowed, `assume` for each requested credential — all or nothing: `denied` is the
 * first deny, if any.
 */
export function decideExchange(policy: PolicyEngine, job: AdmittedJob, audience: string, scopes: string[]): { results: GrantDecision[]; denied: GrantDecision | undefined } {
  const { principal, entities } = job;
  // Every decision is on the same job: its entities are converted and projected once.
  const onJob = policy.on(entities);
  const decide = (action: GrantDecision['action'], resource: EntityRef, context: AuthzRequest['context']): GrantDecision => ({
    action,
    resource,
    decision: onJob.decide({ principal, action, resource, context }),
  });
  const results = [decide('exchange', organizationRef(job.verified.identity.organizationSlug), { audience, scopes })];
  if (results[0]!.decision.decision === 'allow') {
    for (const scope of scopes) results.push(decide('assume', credentialRef(scope), {}));
  }
  return { results, denied: results.find((r) => r.decision.decision === 'deny') };
}

/** A refused subject token: logged with the failed check, and the job only if the token verified. */
const REPLAYED_MESSAGE = 'The subject token was already exchanged; request a fresh one from the agent.';

function refusal(err: Pick<TokenRejectedError, 'check' | 'message'>, meta: RequestMeta, target: RefusalTarget, verified: VerifiedJobToken | undefined, extra: Record<string, unknown> = {}): DecisionRecord {
  return {
    id: randomUUID(),
    time: new Date().toISOString(),
    principal: verified ? entityString({ type: 'Job', id: verified.identity.jobId }) : null,
    action: target.action,
    resource: target.resource,
    decision: 'deny',
    policies: [],
    reason: err.message,
    context: {
      check: err.check,
      request_id: meta.requestId,
      ...(meta.remoteAddress ? { remote_address: meta.remoteAddress } : {}),
      ...(verified ? identityContext(verified) : {}),
      ...extra,
    },
  };
}

/** Whether Port knew the build's creator (recorded with every decision on a Buildkite token). */
function creatorContext(creator: BuildCreator): Record<string, unknown> {
  if (creator.status === 'unavailable' && creator.reason !== undefined) return { known: false, status: creator.status, reason: creator.reason };
  if (creator.status !== 'known') return { known: false, status: creator.status };
  return { known: true, in_directory: creator.user !== undefined, ...(creator.user ? { active: creator.user.active } : {}) };
}
