import { randomUUID } from 'node:crypto';
import type { DecisionLog } from '../audit/decision-log.js';
import type { DecisionRecord } from '../store/records/decisions.js';
import { decisionRecord, entityString } from '../audit/decision-from-policy.js';
import type { PortConfig } from '../config/config.js';
import { approveRequestParts, unblockRequestParts, type BlockStepFacts, type BuildFacts } from '../policy/block-step-entities.js';
import type { CreatorInfo } from '../policy/entities.js';
import type { PolicyEngine } from '../policy/engine.js';
import type { Decision, EntityRef } from '../policy/types.js';
import { revocationEnd, type Revocation, type RevocationList } from '../revocation/revocation-list.js';
import type { Store } from '../store/store.js';
import type { BuildkiteBuildSummary, BuildkiteBuildsApi, BuildkiteJobSummary } from './buildkite-builds.js';
import { clockContext } from './clock-context.js';
import { ApprovalError } from './errors.js';
import type { ApprovalNotifications } from './notifier.js';
import type { ApprovalRequestRecord, UserRecord } from '../store/records/approvals.js';
import { isSatisfied, requirementFrom, withNoCreatorRule } from './requirement.js';

/** Refusing a decision on an expired request: one message whether the expiry sweep or the decision closed it (a race the approver can't see). */
const EXPIRED = 'This request has expired; it can no longer be decided.';

export interface ApprovalServiceDeps {
  config: PortConfig;
  policy: PolicyEngine;
  store: Store;
  log: DecisionLog;
  api: BuildkiteBuildsApi;
  /**
   * Revocations in force (in memory): a revoked approver's decisions are refused, and a
   * step whose job, build, creator or commit author is revoked is never unblocked.
   */
  revocations: RevocationList;
  now?: () => number;
  /** Told when a request opens and closes; never awaited, never able to fail the flow. */
  notifier?: ApprovalNotifications;
  /** Where a notifier that throws or rejects is reported (ApprovalNotifier itself reports to its own onError). */
  onNotifyError?: (err: unknown) => void;
}

/**
 * Policy-driven block steps. A blocked step is decided with
 * `unblock` (principal: the Build): allowed → Port unblocks it at once; denied → an
 * approval request whose requirement comes from the refusing policies. People who
 * policy allows `approve` approve or reject; the build's creator and the commit's
 * author never count unless an approving policy says `@allow_author("true")`; a build
 * Buildkite names no creator for is handled as `approvals.no_creator` says (by default
 * one approval more). Every step is in the decision log, linked to the build.
 *
 * Revocations (src/revocation) reach approvals while they are in force, whenever the
 * step blocked: a step whose job, build, or creator/commit author (`user`) is revoked is
 * denied `unblock` with the revocation as the reason and gets a request opened already
 * closed as `revoked` (so a repeated webhook finds it and nothing reopens it once the
 * revocation lapses); a pending request found so at decision time is closed the same way;
 * a revoked person's approvals and rejections are refused. Agent and pool revocations
 * don't apply: a block step runs on no agent.
 */
export class ApprovalService {
  private readonly now: () => number;

  constructor(private readonly deps: ApprovalServiceDeps) {
    this.now = deps.now ?? Date.now;
  }

  /**
   * `build.finished` with `blocked: true`: fetch the build and handle each blocked manual
   * job. The build is asked for afresh each time (a retry of failed webhook work too), so
   * a build that is no longer blocked — unblocked, finished, canceled — is left alone, and
   * `blockedJobs: 0` says why. Throws when Buildkite or the store fails: the caller retries.
   */
  async handleBlockedBuild(pipeline: string, number: number): Promise<{ blockedJobs: number; state: string }> {
    const build = await this.deps.api.getBuild(pipeline, number);
    const state = build.state ?? 'unknown';
    // A canceled build's block jobs can't be unblocked (Buildkite answers 422, "Unblock a job",
    // https://buildkite.com/docs/apis/rest-api/jobs), so there is nothing to decide.
    const live = state !== 'canceled' && state !== 'canceling';
    const blocked = live ? (build.jobs ?? []).filter((job) => job.type === 'manual' && job.state === 'blocked') : [];
    for (const job of blocked) await this.handleBlockStep(pipeline, build, job);
    return { blockedJobs: blocked.length, state };
  }

  private async handleBlockStep(pipeline: string, build: BuildkiteBuildSummary, job: BuildkiteJobSummary): Promise<void> {
    // Webhooks repeat and overlap: one request (or unblock) per job.
    if (await this.deps.store.approvals.getByJob(job.id)) return;
    const facts = await this.buildFacts(pipeline, build);
    const step: BlockStepFacts & { label: string; key: string | null } = {
      step: job.step_key ?? job.id,
      fields: {},
      label: job.label ?? '',
      key: job.step_key ?? null,
    };
    const { principal, resource, entities } = unblockRequestParts(facts, step);
    const now = this.now();
    const context = { build: buildContext(build, pipeline), job_id: job.id, step: { key: step.key, label: step.label } };
    const authors = [build.creator?.email, build.author?.email].filter((e): e is string => !!e).map((e) => e.toLowerCase());
    // One request per blocked job: what every request for this step starts from.
    const base = { id: randomUUID(), jobId: job.id, buildId: build.id, build: facts, step, authors, createdAt: now, approvals: [] };
    const revoked = this.stepRevocation(job.id, buildIdOf(facts), authors, now);
    if (revoked !== undefined) {
      const reason = `Port will not unblock this step: ${revocationSentence(revoked)}.`;
      const closed: ApprovalRequestRecord = { ...base, requirement: revokedRequirement(reason), status: 'revoked', expiresAt: now, closedAt: now };
      await this.deps.log.recordApprovalRequest(closed, [
        this.event('unblock', principal, resource, reason, { ...context, request_id: closed.id, revocation: revocationContext(revoked) }, 'deny'),
      ]);
      return;
    }
    const decision = this.deps.policy.decide({
      principal,
      action: 'unblock',
      resource,
      context: { ...clockContext(now, this.deps.config.approvals.timezone), step_label: step.label, step_key: step.key ?? '' },
      entities,
    });
    if (decision.decision === 'allow') {
      await this.deps.log.record([this.record(decision, principal, 'unblock', resource, context)]);
      await this.unblock(job.id, step.fields, principal, resource, { ...context, by: 'policy' });
      return;
    }
    // Who approves is checked against who started the build; when Buildkite names nobody,
    // `approvals.no_creator` decides (requirement.ts: withNoCreatorRule says why).
    const noCreator = build.creator?.email?.trim() ? undefined : this.deps.config.approvals.noCreator;
    if (noCreator === 'deny') {
      await this.deps.log.record([
        this.record(decision, principal, 'unblock', resource, { ...context, no_creator: 'deny' }),
        this.event(
          'approval_requested',
          principal,
          resource,
          `No approval request: Buildkite names no creator for this build (source: ${build.source ?? 'unknown'}), so Port cannot tell who started it, and approvals.no_creator is deny; the step stays blocked.`,
          { ...context, no_creator: 'deny' },
          'deny',
        ),
      ]);
      return;
    }
    const fromPolicies = requirementFrom(decision, this.deps.policy);
    const requirement = noCreator ? withNoCreatorRule(fromPolicies, noCreator, build.source ?? '') : fromPolicies;
    const request: ApprovalRequestRecord = {
      ...base,
      requirement,
      status: 'pending',
      expiresAt: now + this.deps.config.approvals.expireAfter * 1000,
    };
    const noCreatorContext = noCreator ? { no_creator: noCreator } : {};
    // The request and the decision that opened it in one write: a failure leaves neither,
    // so the webhook's retry opens it (and notifies) again rather than finding it half done.
    const opened = await this.deps.log.recordApprovalRequest(request, [
      this.record(decision, principal, 'unblock', resource, { ...context, ...noCreatorContext }),
      this.event('approval_requested', principal, resource, `Approval requested: ${requirement.reason}`, {
        ...context,
        ...noCreatorContext,
        request_id: request.id,
        requirement: {
          approvals: request.requirement.approvals,
          groups: request.requirement.groups,
          ...(noCreator ? { policies_ask: fromPolicies.approvals } : {}),
        },
        expires_at: new Date(request.expiresAt).toISOString(),
      }),
    ]);
    if (opened) this.notify('opened', request);
  }

  /** An approver's decision on a pending request. Throws ApprovalError to refuse. */
  async decide(requestId: string, user: UserRecord, verdict: 'approve' | 'reject', comment: string): Promise<ApprovalRequestRecord> {
    const request = await this.deps.store.approvals.get(requestId);
    if (!request) throw new ApprovalError('not_found', 'No such approval request.', 404);
    if (request.status !== 'pending') {
      throw new ApprovalError('request_closed', request.status === 'expired' ? EXPIRED : `This request is ${request.status}; it can no longer be decided.`, 409);
    }
    if (this.now() >= request.expiresAt) {
      await this.expire(request);
      throw new ApprovalError('request_closed', EXPIRED, 409);
    }
    if (!user.active) throw new ApprovalError('user_inactive', 'Your account is deactivated.', 403);
    const email = user.email.toLowerCase();
    const isAuthor = request.authors.includes(email);
    const approver: CreatorInfo = { email, active: user.active, groups: user.groups };
    const { principal, resource, entities } = approveRequestParts(request.build, request.step, approver);
    const decision = this.deps.policy.decide({ principal, action: 'approve', resource, context: { is_author: isAuthor }, entities });
    const context = { request_id: request.id, job_id: request.jobId, build: request.build, verdict, is_author: isAuthor };
    const refuse = (why: RevokedDecision) => this.refuseRevoked(why, request, verdict, principal, resource, context);
    const revokedNow = this.decisionRevocation(email, request, this.now());
    if (revokedNow !== undefined) return refuse(revokedNow);
    if (decision.decision === 'deny') {
      await this.deps.log.record([this.record(decision, principal, 'approve', resource, context)]);
      throw new ApprovalError('not_eligible', `You may not approve this step: ${decision.reason}`, 403);
    }
    // Separation of duties: the author's word never counts unless policy says so.
    if (isAuthor && !decision.determining.some((p) => this.deps.policy.policy(p.id)?.annotations.allow_author === 'true')) {
      const refused: Decision = { ...decision, decision: 'deny', reason: 'the build\'s author cannot approve it (no approving policy says @allow_author("true"))' };
      await this.deps.log.record([this.record(refused, principal, 'approve', resource, context)]);
      throw new ApprovalError('author_cannot_approve', 'You started this build (or wrote its commit), so your approval does not count.', 403);
    }
    if (request.approvals.some((a) => a.email === email)) {
      throw new ApprovalError('already_decided', 'You have already decided on this request.', 409);
    }
    const at = this.now();
    const entry = { email, groups: user.groups, decision: verdict, comment: comment.slice(0, 2000), at, policies: decision.determining.map((p) => p.id) };
    // One transaction decides what this approval does: the duplicate check, the append,
    // and — when it completes the requirement — claiming the unblock, so two concurrent
    // last approvals can't both call Buildkite (the loser finds the request closed).
    // Cast: assigned in the callback, which TypeScript's narrowing doesn't see.
    let revokedMeanwhile = undefined as RevokedDecision | undefined;
    const updated = await this.deps.store.approvals.updatePending(request.id, (r) => {
      if (r.approvals.some((a) => a.email === email)) throw new ApprovalError('already_decided', 'You have already decided on this request.', 409);
      // Checked again inside the transaction: a revocation made while this decision was on its way wins.
      revokedMeanwhile = this.decisionRevocation(email, r, at);
      if (revokedMeanwhile !== undefined) return r;
      const approvals = [...r.approvals, entry];
      if (verdict === 'reject') return { ...r, approvals, status: 'rejected', closedAt: at };
      if (isSatisfied(r.requirement, approvals)) return { ...r, approvals, status: 'unblocked', closedAt: at };
      return { ...r, approvals };
    });
    if (!updated) throw new ApprovalError('request_closed', 'This request was closed meanwhile.', 409);
    if (revokedMeanwhile !== undefined) return refuse(revokedMeanwhile);
    await this.deps.log.record([
      this.record(decision, principal, verdict === 'approve' ? 'approve' : 'reject', resource, { ...context, comment_length: entry.comment.length }),
    ]);
    if (updated.status === 'rejected') this.notify('closed', updated);
    if (updated.status === 'unblocked') {
      const buildEntity: EntityRef = { type: 'Build', id: `${request.build.organization}/${request.build.pipeline}/${request.build.number}` };
      // Buildkite credits the unblock to the approver who completed it, when they are a member.
      const unblocker = await this.memberId(email);
      try {
        await this.unblock(request.jobId, request.step.fields, buildEntity, resource, {
          request_id: request.id,
          by: 'approvals',
          approvers: updated.approvals.filter((a) => a.decision === 'approve').map((a) => a.email),
          unblocker: unblocker ?? null,
        }, unblocker);
      } catch (err) {
        // Approvals stand; the request says the gate could not be opened (the log has why).
        const failedAt = this.now();
        await this.deps.store.approvals.setStatus(request.id, 'unblock_failed', failedAt);
        this.notify('closed', { ...updated, status: 'unblock_failed', closedAt: failedAt });
        throw new ApprovalError('unblock_failed', `Your approval is recorded, but Port could not unblock the step: ${(err as Error).message}`, 502);
      }
      this.notify('closed', updated);
      return updated;
    }
    return updated;
  }

  /**
   * Whether `user` may act on the request now (for listing it to them), without
   * logging: the same checks `decide` makes, short of recording anything.
   */
  eligibility(request: ApprovalRequestRecord, user: UserRecord): { eligible: boolean; reason: string } {
    if (request.status !== 'pending' || this.now() >= request.expiresAt) return { eligible: false, reason: `the request is ${request.status}` };
    if (!user.active) return { eligible: false, reason: 'your account is deactivated' };
    const email = user.email.toLowerCase();
    const revoked = this.decisionRevocation(email, request, this.now());
    if (revoked?.who === 'approver') return { eligible: false, reason: `your access is revoked ${until(revoked.revocation)}` };
    if (revoked?.who === 'step') return { eligible: false, reason: revocationSentence(revoked.revocation) };
    const byPolicy = this.policyEligibility(request, user);
    if (!byPolicy.eligible) return byPolicy;
    if (request.approvals.some((a) => a.email === email)) return { eligible: false, reason: 'you have already decided' };
    return byPolicy;
  }

  /**
   * Whether policy lets `user` approve this step, whatever the request's state, its
   * approvals so far and any revocation (who may view a request, open or closed).
   */
  wouldBeEligible(request: ApprovalRequestRecord, user: UserRecord): boolean {
    return user.active && this.policyEligibility(request, user).eligible;
  }

  private policyEligibility(request: ApprovalRequestRecord, user: UserRecord): { eligible: boolean; reason: string } {
    const email = user.email.toLowerCase();
    const isAuthor = request.authors.includes(email);
    const { principal, resource, entities } = approveRequestParts(request.build, request.step, { email, active: user.active, groups: user.groups });
    const d = this.deps.policy.decide({ principal, action: 'approve', resource, context: { is_author: isAuthor }, entities });
    if (d.decision === 'deny') return { eligible: false, reason: d.reason };
    if (isAuthor && !d.determining.some((p) => this.deps.policy.policy(p.id)?.annotations.allow_author === 'true')) {
      return { eligible: false, reason: 'you started this build or wrote its commit' };
    }
    return { eligible: true, reason: d.reason };
  }

  /**
   * The revocation in force that shuts a block step: of its job, its build, or a person
   * who started the build or wrote its commit. The same reach RevocationService gives a
   * revocation over the requests pending when it is made (`covers`), so a step that
   * blocks after a revocation is treated as one that was pending before it. Map lookups only.
   */
  private stepRevocation(jobId: string, build: string, people: readonly string[], now: number): Revocation | undefined {
    const list = this.deps.revocations;
    const byJobOrBuild = list.get('job', jobId, now) ?? list.get('build', build, now);
    if (byJobOrBuild !== undefined) return byJobOrBuild;
    for (const email of people) {
      const byPerson = list.get('user', email, now);
      if (byPerson !== undefined) return byPerson;
    }
    return undefined;
  }

  /** Why a decision on `request` by `email` can't count: the approver is revoked, or the step is. */
  private decisionRevocation(email: string, request: ApprovalRequestRecord, now: number): RevokedDecision | undefined {
    const approver = this.deps.revocations.get('user', email, now);
    if (approver !== undefined) return { who: 'approver', revocation: approver };
    const step = this.stepRevocation(request.jobId, buildIdOf(request.build), request.authors, now);
    return step === undefined ? undefined : { who: 'step', revocation: step };
  }

  /**
   * Refuses a decision a revocation rules out, in the decision log; a revoked step's
   * request is closed as `revoked` (compare-and-set: a concurrent close that won stands).
   */
  private async refuseRevoked(
    why: RevokedDecision,
    request: ApprovalRequestRecord,
    verdict: 'approve' | 'reject',
    principal: EntityRef,
    resource: EntityRef,
    context: Record<string, unknown>,
  ): Promise<never> {
    const action = verdict === 'approve' ? 'approve' : 'reject';
    const revocation = revocationContext(why.revocation);
    if (why.who === 'approver') {
      const reason = `${why.revocation.id} is revoked ${until(why.revocation)}; their approvals and rejections are refused`;
      await this.deps.log.record([this.event(action, principal, resource, reason, { ...context, revocation }, 'deny')]);
      throw new ApprovalError('user_revoked', `Your access to Port is revoked ${until(why.revocation)}; your decision is not recorded.`, 403);
    }
    const at = this.now();
    const closed = await this.deps.store.approvals.updatePending(request.id, (r) => ({ ...r, status: 'revoked', closedAt: at }));
    const reason = `Port will not unblock this step: ${revocationSentence(why.revocation)}`;
    await this.deps.log.record([this.event(action, principal, resource, reason, { ...context, revocation, request_closed: closed !== undefined }, 'deny')]);
    if (closed) this.notify('closed', closed);
    throw new ApprovalError('request_revoked', `This request is closed: ${revocationSentence(why.revocation)}.`, 409);
  }

  /** Closes every pending request past its expiry; returns how many. */
  async expireDue(): Promise<number> {
    const due = await this.deps.store.approvals.list({ status: 'pending', expiresBefore: this.now() + 1 });
    let n = 0;
    for (const r of due) if (await this.expire(r)) n++;
    return n;
  }

  private async expire(request: ApprovalRequestRecord): Promise<boolean> {
    const at = this.now();
    const closed = await this.deps.store.approvals.updatePending(request.id, (r) => ({ ...r, status: 'expired', closedAt: at }));
    if (!closed) return false;
    const step = { type: 'BlockStep' as const, id: `${request.build.organization}/${request.build.pipeline}/${request.build.number}/${request.step.step}` };
    const build = { type: 'Build' as const, id: `${request.build.organization}/${request.build.pipeline}/${request.build.number}` };
    const onExpiry = this.deps.config.approvals.onExpiry;
    await this.deps.log.record([
      this.event('approval_expired', build, step, `The approval request expired unanswered; Port ${onExpiry === 'fail' ? 'cancels the build' : 'leaves the step to Buildkite'}.`, {
        request_id: request.id,
        job_id: request.jobId,
        on_expiry: onExpiry,
        approvals: request.approvals.length,
      }),
    ]);
    if (onExpiry === 'fail') {
      // Buildkite has no call that fails one block step; cancelling the build is how the gate stays shut.
      try {
        if (!this.deps.api.cancelBuild) throw new Error('the Buildkite client cannot cancel builds');
        await this.deps.api.cancelBuild(request.build.pipeline, request.build.number);
        await this.deps.log.record([this.event('build_canceled', build, step, 'Port cancelled the build: its approval request expired.', { request_id: request.id })]);
      } catch (err) {
        await this.deps.log.record([
          this.event('build_cancel_failed', build, step, `Port could not cancel the build: ${(err as Error).message}`, { request_id: request.id }, 'deny'),
        ]);
      }
    }
    this.notify('closed', closed);
    return true;
  }

  /** Fire-and-forget: a notification never delays, blocks or fails an approval. */
  private notify(kind: 'opened' | 'closed', request: ApprovalRequestRecord): void {
    const notifier = this.deps.notifier;
    if (!notifier) return;
    const link = `${this.deps.config.server.publicUrl}/approvals/${encodeURIComponent(request.id)}`;
    const report = (err: unknown) => {
      try {
        this.deps.onNotifyError?.(err);
      } catch {
        // A reporter that throws must not become an unhandled rejection.
      }
    };
    try {
      void notifier[kind](request, link).catch(report);
    } catch (err) {
      report(err);
    }
  }

  private async memberId(email: string): Promise<string | undefined> {
    try {
      return (await this.deps.api.findOrganizationMemberByEmail?.(email))?.id;
    } catch {
      // Not being able to name the unblocker must not stop the unblock itself.
      return undefined;
    }
  }

  private async unblock(jobId: string, fields: Record<string, string>, principal: EntityRef, resource: EntityRef, context: Record<string, unknown>, unblocker?: string): Promise<void> {
    try {
      await this.deps.api.unblockJob(jobId, { ...(Object.keys(fields).length > 0 ? { fields } : {}), ...(unblocker ? { unblocker } : {}) });
    } catch (err) {
      await this.deps.log.record([this.event('unblock_failed', principal, resource, `Port's unblock call failed: ${(err as Error).message}`, { ...context, job_id: jobId }, 'deny')]);
      throw err;
    }
    await this.deps.log.record([this.event('unblocked', principal, resource, 'Port unblocked the step through the Buildkite API.', { ...context, job_id: jobId })]);
  }

  /** The build as a policy sees it; the creator comes from Port's users when known. */
  private async buildFacts(pipeline: string, build: BuildkiteBuildSummary): Promise<BuildFacts> {
    const facts: BuildFacts = {
      organization: this.deps.config.buildkite.organization,
      pipeline,
      number: build.number,
      // Absent facts become "" so a policy that tests them simply doesn't match.
      branch: build.branch ?? '',
      tag: build.tag ?? null,
      commit: build.commit ?? '',
      source: build.source ?? '',
    };
    const email = build.creator?.email?.toLowerCase();
    const user = email ? await this.deps.store.users.get(email) : undefined;
    if (user) facts.creator = { email: user.email, active: user.active, groups: user.groups };
    return facts;
  }

  private record(d: Decision, principal: EntityRef, action: string, resource: EntityRef, context: Record<string, unknown>): DecisionRecord {
    return decisionRecord(d, principal, action, resource, context, this.now());
  }

  private event(action: string, principal: EntityRef, resource: EntityRef, reason: string, context: Record<string, unknown>, decision: 'allow' | 'deny' = 'allow'): DecisionRecord {
    return { id: randomUUID(), time: new Date(this.now()).toISOString(), principal: entityString(principal), action, resource: entityString(resource), decision, policies: [], reason, context };
  }
}

/** A decision ruled out by a revocation in force: of the person deciding, or of the step's job, build or people. */
interface RevokedDecision {
  who: 'approver' | 'step';
  revocation: Revocation;
}

/**
 * The requirement of a request opened already closed by a revocation: no approval can
 * open it (`approvals: 0`, no policies), and `reason` says why. See `openedRevoked`.
 */
function revokedRequirement(reason: string): ApprovalRequestRecord['requirement'] {
  return { approvals: 0, groups: [], policies: [], reason };
}

/** Whether Port opened this request already closed, because a revocation covered its step (the pages say so). */
export function openedRevoked(r: ApprovalRequestRecord): boolean {
  return r.status === 'revoked' && r.requirement.approvals === 0 && r.requirement.policies.length === 0;
}

function buildIdOf(b: BuildFacts): string {
  return `${b.organization}/${b.pipeline}/${b.number}`;
}

const iso = (ms: number): string => new Date(ms).toISOString();

/** `until <time>`, or `until it is lifted` for one that never expires (a SCIM deprovisioning). */
function until(r: Revocation): string {
  const end = revocationEnd(r.expiresAt);
  return end === null ? 'until it is lifted' : `until ${end}`;
}

/**
 * What a revocation shutting a step is, in words people may see (the approval pages):
 * never the revocation's own reason, which an administrator wrote for the decision log.
 */
function revocationSentence(r: Revocation): string {
  switch (r.scope) {
    case 'job':
      return `its job ${r.id} is revoked ${until(r)}`;
    case 'build':
      return `the build ${r.id} is revoked ${until(r)}`;
    case 'user':
      return `${r.id}, who started the build or wrote its commit, is revoked ${until(r)}`;
    default:
      return `a ${r.scope} revocation is in force ${until(r)}`;
  }
}

/** The decision log's `context.revocation`. */
function revocationContext(r: Revocation): Record<string, unknown> {
  return { scope: r.scope, id: r.id, reason: r.reason, origins: r.origins, revoked_at: iso(r.revokedAt), expires_at: revocationEnd(r.expiresAt) };
}

function buildContext(build: BuildkiteBuildSummary, pipeline: string): Record<string, unknown> {
  return {
    id: build.id,
    pipeline,
    number: build.number,
    branch: build.branch,
    tag: build.tag ?? null,
    commit: build.commit,
    source: build.source,
    creator: build.creator?.email ?? null,
  };
}
