import type { PolicyEngine } from '../policy/engine.js';
import type { Decision } from '../policy/types.js';
import type { ApprovalEntry, ApprovalRequirement } from '../store/records/approvals.js';

/**
 * What an approval request needs, from the `unblock` policies that refused to open
 * the gate: `@approvals_required("N")` (default 1) and `@approval_groups("a b")` (one
 * approval from a member of each). Several determining policies: the strictest of each.
 */
export function requirementFrom(decision: Decision, policy: PolicyEngine): ApprovalRequirement {
  let approvals = 1;
  const groups = new Set<string>();
  for (const p of decision.determining) {
    const a = policy.policy(p.id)?.annotations ?? {};
    if (a.approvals_required !== undefined) approvals = Math.max(approvals, Number(a.approvals_required));
    for (const g of (a.approval_groups ?? '').split(' ').filter(Boolean)) groups.add(g);
  }
  return {
    approvals: Math.max(approvals, groups.size),
    groups: [...groups].sort(),
    policies: decision.determining.map((p) => (p.reason === undefined ? { id: p.id } : { id: p.id, reason: p.reason })),
    reason: decision.reason,
  };
}

/**
 * Separation of duties when nobody Port can identify started the build. The author
 * exclusion rests on `build.creator` (the Buildkite user who started it); a build
 * triggered by a webhook has none, and its `build.author` is the commit's author as git
 * reports it — self-asserted, so the person who pushed may approve their own change
 * under another name. `extra_approval` (the default) asks one eligible approval more
 * than the policies do, so someone besides a possible author always approves.
 */
export function withNoCreatorRule(requirement: ApprovalRequirement, rule: 'extra_approval' | 'allow', source: string): ApprovalRequirement {
  const who = `Buildkite names no creator for this build (source: ${source || 'unknown'}), so Port cannot tell who started it and its commit author is self-reported`;
  if (rule === 'allow') {
    const reason = `${who}; approvals.no_creator is allow, so the policies' requirement stands`;
    return { ...requirement, reason: `${requirement.reason}; ${reason}`, noCreator: { rule, reason } };
  }
  const approvals = requirement.approvals + 1;
  const reason = `${who}: one approval more than the policies ask (${approvals} in all)`;
  return { ...requirement, approvals, reason: `${requirement.reason}; ${reason}`, noCreator: { rule, reason } };
}

/** Whether the approvals given so far meet the requirement (distinct people, one per group). */
export function isSatisfied(requirement: ApprovalRequirement, entries: readonly ApprovalEntry[]): boolean {
  const approvers = entries.filter((e) => e.decision === 'approve');
  if (new Set(approvers.map((e) => e.email)).size < requirement.approvals) return false;
  return requirement.groups.every((g) => approvers.some((e) => e.groups.includes(g)));
}

/** What is still missing, for people and notifications. */
export function missing(requirement: ApprovalRequirement, entries: readonly ApprovalEntry[]): { approvals: number; groups: string[] } {
  const approvers = entries.filter((e) => e.decision === 'approve');
  return {
    approvals: Math.max(0, requirement.approvals - new Set(approvers.map((e) => e.email)).size),
    groups: requirement.groups.filter((g) => !approvers.some((e) => e.groups.includes(g))),
  };
}
