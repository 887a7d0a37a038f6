/**
 * Turns a cedar-wasm answer into Port's Decision, failing closed:
 * a `failure` answer, an exception, or any `diagnostics.errors` entry is a deny. Cedar
 * itself skips an erroring policy (https://docs.cedarpolicy.com/auth/authorization.html) — for a `forbid` that would mean
 * it silently stops protecting, so Port never lets an answer with errors allow.
 */
import type { AuthorizationAnswer } from './cedar.js';
import type { Decision, DecisionError, DeterminingPolicy, PolicyInfo, PortAction, UnmatchedPermit } from './types.js';

/** Cedar messages may quote request values; keep reasons and logs bounded. */
const MAX_MESSAGE = 300;

/** A default deny names at most this many unmatched permits, then "and N more". */
export const NAMED_UNMATCHED = 3;

/** Each named permit's @reason is authored text; bounded so the reason stays one short line. */
const MAX_NAMED_REASON = 120;

export interface DecisionContext {
  action: PortAction;
  revision: string;
  policy(id: string): PolicyInfo | undefined;
}

export function interpretAnswer(answer: AuthorizationAnswer, ctx: DecisionContext): Decision {
  if (answer.type === 'failure') {
    const errors = answer.errors.map((e) => ({ message: clip(e.message) }));
    const first = errors[0]?.message ?? 'no detail';
    return deny([], errors, `denied because the request could not be evaluated: ${first}`, ctx.revision);
  }
  const { decision, diagnostics } = answer.response;
  const ids = [...diagnostics.reason].sort();
  const determining = ids.map((id) => determiningPolicy(id, ctx));
  if (diagnostics.errors.length > 0) {
    const errors: DecisionError[] = diagnostics.errors
      .map((e) => ({ policyId: e.policyId, message: clip(e.error.message) }))
      .sort((a, b) => (a.policyId < b.policyId ? -1 : a.policyId > b.policyId ? 1 : 0));
    const first = errors[0] as DecisionError;
    const more = errors.length > 1 ? ` (and ${errors.length - 1} more error${errors.length > 2 ? 's' : ''})` : '';
    // Satisfied forbids still determine the deny; permits that matched do not.
    return deny(
      decision === 'deny' ? determining : [],
      errors,
      `denied because policy ${first.policyId} failed to evaluate: ${first.message}${more}`,
      ctx.revision,
    );
  }
  if (decision === 'allow') {
    return { decision: 'allow', determining, errors: [], reason: `allowed by ${describe(determining)}`, revision: ctx.revision };
  }
  if (determining.length > 0) return deny(determining, [], `forbidden by ${describe(determining)}`, ctx.revision);
  return deny([], [], defaultDenyReason(ctx.action), ctx.revision);
}

/**
 * `denied by default: no policy permits assume; not matched: deploy-main ("only main may
 * deploy"), npm-on-tags, and 2 more` — a default deny with the permits for the action and
 * resource whose conditions did not hold (ids and @reasons only: authored text, never
 * request values), so the refused job learns what it would take.
 */
export function defaultDenyReason(action: PortAction, unmatched: readonly UnmatchedPermit[] = []): string {
  const base = `denied by default: no policy permits ${action}`;
  if (unmatched.length === 0) return base;
  const named = unmatched
    .slice(0, NAMED_UNMATCHED)
    .map((p) => (p.reason === undefined ? p.id : `${p.id} (${JSON.stringify(clip(p.reason, MAX_NAMED_REASON))})`));
  const more = unmatched.length - named.length;
  return `${base}; not matched: ${named.join(', ')}${more > 0 ? `, and ${more} more` : ''}`;
}

/** A deny for an exception thrown by cedar-wasm (e.g. a value it cannot marshal). */
export function failedDecision(err: unknown, revision: string): Decision {
  const message = clip(err instanceof Error ? err.message : String(err));
  return deny([], [{ message }], `denied because the policy engine failed: ${message}`, revision);
}

function deny(determining: DeterminingPolicy[], errors: DecisionError[], reason: string, revision: string): Decision {
  return { decision: 'deny', determining, errors, reason, revision };
}

function determiningPolicy(id: string, ctx: DecisionContext): DeterminingPolicy {
  const p = ctx.policy(id);
  if (p === undefined) return { id, file: '', line: 0 };
  return { id, ...(p.reason !== undefined ? { reason: p.reason } : {}), file: p.file, line: p.line };
}

/** `a: reason a; b` — ids with their @reason where they have one. */
function describe(policies: DeterminingPolicy[]): string {
  return policies.map((p) => (p.reason !== undefined ? `${p.id}: ${p.reason}` : p.id)).join('; ');
}

function clip(message: string, max = MAX_MESSAGE): string {
  const oneLine = message.replace(/\s+/g, ' ').trim();
  return oneLine.length > max ? `${oneLine.slice(0, max - 1)}…` : oneLine;
}
