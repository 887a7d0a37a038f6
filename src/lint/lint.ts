/**
 * `port policy lint`: the config, its policy folder and its compiled grants checked for
 * mistakes that validate but are wrong — names that disagree between Port and IAM,
 * references to things that don't exist, permits without a reason, credentials nothing
 * can reach, and IAM trust policies that trust more than Port's jobs. Every rule is its own
 * module; this one gathers the inputs and runs them in a fixed order (naming, grants,
 * policies, references, reasons, reach, trust), so output is stable for CI diffs.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { AwsRoleCredentialConfig, PortConfig } from '../config/config.js';
import { policyReferencesInDir } from '../policy/entity-references.js';
import { loadPolicyDir } from '../policy/loader.js';
import type { PolicyProblem } from '../policy/types.js';
import { LintInputError } from './errors.js';
import { error, type LintFinding } from './finding.js';
import { grantsForLint } from './grants-input.js';
import { displayPath, type LintedPolicy } from './linted-policy.js';
import { namingFindings, type NamingRules } from './naming-rules.js';
import { reachFindings } from './reach-rule.js';
import { reasonFindings } from './reason-rule.js';
import { referenceFindings } from './reference-rules.js';
import { issuerFindings, trustPolicyFindings } from './trust-policy.js';

export interface LintOptions {
  /** More trust policy files (`--trust-policy`), besides `naming.trust_policies`. */
  trustPolicies?: readonly string[];
  /** Paths in findings are shown relative to this folder (default: the process's). */
  cwd?: string;
}

export async function lintConfig(config: PortConfig, options: LintOptions = {}): Promise<LintFinding[]> {
  const cwd = options.cwd ?? process.cwd();
  const rules = namingRulesOf(config);
  const trustFiles = await readTrustPolicies([...config.naming.trustPolicies, ...(options.trustPolicies ?? []).map((f) => path.resolve(cwd, f))], cwd);

  const grants = grantsForLint(config);
  // The folder and the compiled grants validated together, as the server loads them.
  const loaded = await loadPolicyDir(config.policies, grants.sources);
  const invalid = loaded.ok ? [] : loaded.problems.map((p) => invalidPolicy(p, cwd));
  const handWritten: LintedPolicy[] = (await policyReferencesInDir(config.policies)).map((refs) => ({ refs }));
  const all = [...handWritten, ...(grants.policies ?? [])];

  const known = {
    credentials: Object.keys(config.credentials),
    upstreams: Object.keys(config.upstreams),
    autoscalers: Object.keys(config.scaling.autoscalers),
    pools: Object.keys(config.pools),
    ...(grants.used ? { bindingGroups: grants.bindingGroups } : {}),
  };

  const findings: LintFinding[] = [
    ...namingFindings(rules, grants.roles, config.credentials),
    ...grants.findings,
    ...invalid,
    ...referenceFindings(all, known, cwd),
    ...reasonFindings(handWritten, cwd),
    // Without the compiled grants, every credential they grant would look unreachable.
    ...(grants.policies !== undefined ? reachFindings(config, all) : []),
  ];
  if (trustFiles.length > 0) {
    const ctx = {
      issuer: config.server.publicUrl,
      organization: config.buildkite.organization,
      credentials: Object.values(config.credentials).filter((c): c is AwsRoleCredentialConfig => c.type === 'aws_role'),
    };
    findings.push(...issuerFindings(ctx.issuer));
    for (const f of trustFiles) findings.push(...trustPolicyFindings(f.shown, f.text, ctx));
  }
  return findings;
}

/** A policy that does not load: a folder's is the author's to fix; a compiled one clashes with the folder, or is Port's bug. */
function invalidPolicy(p: PolicyProblem, cwd: string): LintFinding {
  const what = `${p.policyId !== undefined ? `policy ${p.policyId}: ` : ''}${p.message}${p.help ? ` (${p.help})` : ''}`;
  if (p.file.startsWith('grants:')) {
    return error('grants.invalid', p.file, `a policy compiled from grants does not load: ${what}; if it clashes with a policy of the folder (a duplicate @id), rename that one, else report this as a bug in Port.`);
  }
  return error('policy.invalid', p.line > 0 ? `${displayPath(p.file, cwd)}:${p.line}:${p.column}` : displayPath(p.file, cwd), `${what}; fix it (port policy validate shows the same).`);
}

function namingRulesOf(config: PortConfig): NamingRules {
  const { roles, awsRoleName } = config.naming;
  let pattern: RegExp | undefined;
  if (roles !== undefined) {
    try {
      // The whole name must match, as the key says, anchored or not: `ci-prod` alone must not pass for `my-ci-prod-x`.
      pattern = new RegExp(`^(?:${roles})$`);
    } catch (err) {
      throw new LintInputError(`${path.basename(config.file)}: naming.roles: ${JSON.stringify(roles)} is not a regular expression (${err instanceof Error ? err.message : String(err)}); fix the pattern.`);
    }
  }
  return { ...(pattern !== undefined ? { roles: { pattern, source: roles! } } : {}), ...(awsRoleName !== undefined ? { awsRoleName } : {}) };
}

async function readTrustPolicies(files: readonly string[], cwd: string): Promise<{ shown: string; text: string }[]> {
  const out: { shown: string; text: string }[] = [];
  for (const file of [...new Set(files)]) {
    const shown = displayPath(file, cwd);
    try {
      out.push({ shown, text: await readFile(file, 'utf8') });
    } catch (err) {
      const code = err instanceof Error && 'code' in err ? String(err.code) : 'unreadable';
      throw new LintInputError(`trust policy ${shown}: cannot be read (${code}); check naming.trust_policies and --trust-policy.`);
    }
  }
  return out;
}
