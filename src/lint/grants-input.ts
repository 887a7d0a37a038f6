/**
 * What lint needs from `grants:` (port.yaml's section and the files of `grants.directory`):
 * the roles (for naming), the groups the bindings name (for `reference.group`), and the
 * compiled policies (for references, reasons and reach). A grant the compiler refuses is
 * reported as `grants.invalid`, one error per problem; lint then goes on without the
 * compiled policies and leaves out the reach rule, which would otherwise report every
 * credential they grant as unreachable (it runs again once the grants compile).
 */
import type { PortConfig } from '../config/config.js';
import { compileGrants, type CompiledGrants } from '../grants/compile.js';
import { GrantsError } from '../grants/errors.js';
import { allGrants, readGrantsDirectory, roleKey, shownSource, CONFIG_SOURCE, type AllGrants } from '../grants/load.js';
import { policyReferences } from '../policy/entity-references.js';
import type { PolicyFile } from '../policy/loader.js';
import { error, type LintFinding } from './finding.js';
import type { LintedPolicy } from './linted-policy.js';
import type { LintRole } from './naming-rules.js';

export interface GrantsForLint {
  /** Whether the config uses grants at all (any role or binding). */
  used: boolean;
  roles: LintRole[];
  bindingGroups: Set<string>;
  /** Undefined when the grants did not compile. */
  policies?: LintedPolicy[];
  /** The compiled policy sources, as the policy loader reads them beside the folder. */
  sources: PolicyFile[];
  findings: LintFinding[];
}

export function grantsForLint(config: PortConfig): GrantsForLint {
  let grants: AllGrants;
  let fromDirectory: ReturnType<typeof readGrantsDirectory>;
  try {
    fromDirectory = readGrantsDirectory(config);
    grants = allGrants(config, fromDirectory);
  } catch (err) {
    if (!(err instanceof GrantsError)) throw err;
    return { used: true, roles: [], bindingGroups: new Set(), sources: [], findings: err.problems.map(grantsProblem) };
  }
  const roles = Object.values(grants.roles).map((r) => ({
    name: r.name,
    location: r.source === CONFIG_SOURCE ? roleKey(r) : `${shownSource(r.source, config)}: ${roleKey(r)}`,
    credentials: r.credentials,
  }));
  const used = roles.length > 0 || grants.bindings.length > 0;
  const bindingGroups = new Set(grants.bindings.flatMap((b) => b.groups));
  let compiled: CompiledGrants;
  try {
    compiled = compileGrants(config, fromDirectory);
  } catch (err) {
    if (!(err instanceof GrantsError)) throw err;
    return { used, roles, bindingGroups, sources: [], findings: err.problems.map(grantsProblem) };
  }
  const policies = compiled.policies.flatMap((p) =>
    policyReferences(p.source, p.text).map((refs) => ({ refs, compiled: { role: p.role, source: p.binding } })),
  );
  return { used, roles, bindingGroups, policies, sources: compiled.sources, findings: [] };
}

/** `grants/deploy.yaml: bindings[0].role: "x" is not a role; …` → location and sentence. */
function grantsProblem(problem: string): LintFinding {
  const m = /^(\S[^:]*: [^\s:]+): (.+)$/s.exec(problem);
  return m === null ? error('grants.invalid', 'grants', problem) : error('grants.invalid', m[1]!, m[2]!);
}
