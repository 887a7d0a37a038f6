/**
 * Policies (hand-written and compiled from `grants:`) that name entities which don't
 * exist. Cedar compares entity ids exactly, so such a literal matches nothing: a permit
 * that names it grants nothing, and — worse — a forbid that names it protects nothing.
 *
 * - `reference.credential`, `reference.upstream`, `reference.autoscaler` (errors): not in
 *   `credentials:`, `upstreams:`, `scaling.autoscalers:` — the config is the only place
 *   these are defined.
 * - `reference.pool` (error): a `Port::Pool::"CLUSTER/QUEUE"` covered by no `pools:` entry
 *   (exact, or `CLUSTER/*`), only when `pools:` is used — without it, pools are whatever
 *   the agents' tokens say. A pool id with `*` is a warning: it is no pattern in an entity.
 * - `reference.group` (warning): groups are defined by the identity provider (SSO's groups
 *   claim, SCIM), which lint can't see, so a group can't be proven missing. When `grants:`
 *   is used its bindings are where groups are declared: a group a policy names but no
 *   binding names is likely misspelt, and is reported as a warning.
 */
import type { EntityReference } from '../policy/entity-references.js';
import { error, warning, type LintFinding } from './finding.js';
import { policyLabel, policyLocation, type LintedPolicy } from './linted-policy.js';

export interface KnownEntities {
  credentials: readonly string[];
  upstreams: readonly string[];
  autoscalers: readonly string[];
  /** `pools:` keys (`CLUSTER/QUEUE` or `CLUSTER/*`). */
  pools: readonly string[];
  /** Groups the grants bindings name; undefined when `grants:` is not used. */
  bindingGroups?: ReadonlySet<string>;
}

export function referenceFindings(policies: readonly LintedPolicy[], known: KnownEntities, cwd: string): LintFinding[] {
  const out: LintFinding[] = [];
  for (const policy of policies) {
    for (const ref of policy.refs.references) {
      const finding = check(ref, known);
      if (finding === undefined) continue;
      const literal = `Port::${ref.type}::${JSON.stringify(ref.id)}`;
      const message = `${policyLabel(policy)}${literal} ${finding.message}`;
      const location = policyLocation(policy, cwd, ref);
      out.push(finding.severity === 'error' ? error(finding.rule, location, message) : warning(finding.rule, location, message));
    }
  }
  return out;
}

type Problem = { severity: 'error' | 'warning'; rule: string; message: string };

function check(ref: EntityReference, known: KnownEntities): Problem | undefined {
  switch (ref.type) {
    case 'Credential':
      return known.credentials.includes(ref.id)
        ? undefined
        : { severity: 'error', rule: 'reference.credential', message: `is not a credential in the config; add it under credentials: or use one of: ${list(known.credentials)}.` };
    case 'Upstream':
      return known.upstreams.includes(ref.id)
        ? undefined
        : { severity: 'error', rule: 'reference.upstream', message: `is not an upstream in the config; add it under upstreams: or use one of: ${list(known.upstreams)}.` };
    case 'Autoscaler':
      return known.autoscalers.includes(ref.id)
        ? undefined
        : {
            severity: 'error',
            rule: 'reference.autoscaler',
            message: `is not an autoscaler in the config; add it under scaling.autoscalers: or use one of: ${list(known.autoscalers)}.`,
          };
    case 'Pool':
      return checkPool(ref.id, known.pools);
    case 'Group':
      if (known.bindingGroups === undefined || known.bindingGroups.has(ref.id)) return undefined;
      return {
        severity: 'warning',
        rule: 'reference.group',
        message: `is named in no grants binding; groups come from your identity provider, so lint can't tell whether it exists — check its spelling against your IdP and the bindings' groups (${known.bindingGroups.size > 0 ? [...known.bindingGroups].sort().join(', ') : 'they name none'}).`,
      };
    default:
      return undefined;
  }
}

function checkPool(id: string, pools: readonly string[]): Problem | undefined {
  if (/[*?]/.test(id)) {
    return {
      severity: 'warning',
      rule: 'reference.pool',
      message: `matches no job: Cedar compares entity ids exactly and a job's pool is its CLUSTER/QUEUE, so * is no pattern here; name each queue instead (Port::Pool::"CLUSTER/QUEUE").`,
    };
  }
  if (pools.length === 0) return undefined;
  const cluster = id.slice(0, id.indexOf('/'));
  if (pools.includes(id) || (id.includes('/') && pools.includes(`${cluster}/*`))) return undefined;
  return {
    severity: 'error',
    rule: 'reference.pool',
    message: `is covered by no pools: entry; correct the CLUSTER/QUEUE, or add it under pools: (attestation: [none] if its agents need prove nothing). Configured: ${list(pools)}.`,
  };
}

function list(names: readonly string[]): string {
  return names.length === 0 ? '(none configured)' : names.join(', ');
}
