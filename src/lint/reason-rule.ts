/**
 * `policy.reason` (error): a hand-written permit without `@reason("…")`. The reason is what
 * the decision log records for an allow and what a refused job is told about the permits
 * it did not satisfy (src/policy/unmatched-permits.ts); without one, neither says why.
 * Policies compiled from `grants:` always carry one (the role's description).
 */
import { error, type LintFinding } from './finding.js';
import { policyLocation, type LintedPolicy } from './linted-policy.js';

export function reasonFindings(policies: readonly LintedPolicy[], cwd: string): LintFinding[] {
  return policies
    .filter((p) => p.refs.effect === 'permit' && p.refs.reason === undefined)
    .map((p) =>
      error(
        'policy.reason',
        policyLocation(p, cwd),
        `permit ${p.refs.id ?? '(no @id)'} has no @reason; add @reason("…") saying what it grants and why, which the decision log records and refused jobs are shown.`,
      ),
    );
}
