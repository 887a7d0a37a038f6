/**
 * `port policy lint [-c port.yaml] [--trust-policy FILE]... [--json]`: the rules of
 * src/lint over the config, its policy folder and its compiled grants. One line a finding
 * on stdout (`error  RULE  WHERE: sentence`), then `N errors, M warnings`; with `--json`,
 * the findings as a JSON array and nothing else. Exit 1 with an error, 0 with warnings
 * alone, 2 when the config or a trust policy file can't be read (exit-codes.ts). The
 * config is loaded without reading its secrets, so CI needs none of them.
 */
import { ConfigError } from '../errors.js';
import { LintInputError } from '../lint/errors.js';
import { formatFinding, hasErrors, summarize } from '../lint/finding.js';
import { lintConfig } from '../lint/lint.js';
import { EXIT_FAILED, EXIT_OK, EXIT_USAGE } from './exit-codes.js';
import { loadConfigForReading } from './read-config.js';

export interface LintCliIO {
  out(text: string): void;
  err(text: string): void;
}

export interface LintCommandOptions {
  config?: string;
  trustPolicy?: string[];
  json?: boolean;
}

export const LINT_HELP = `
Rules (error: exit 1; warning: exit 0):
  naming.role, naming.aws_role_name, naming.aws_role   role names against naming: (errors)
  grants.invalid                                       grants that don't compile (error)
  policy.invalid                                       policies that don't validate (error)
  reference.credential|upstream|autoscaler|pool        names the config lacks (errors)
  reference.group                                      a group no grants binding names (warning)
  policy.reason                                        a hand-written permit without @reason (error)
  reach.credential, reach.upstream                     nothing can reach it (warnings)
  trust.*                                              IAM trust policies (naming.trust_policies,
                                                       --trust-policy) against Port's issuer,
                                                       audience and sub
A trust policy file is the role's trust policy document, checked against every
web_identity credential whose audience it allows, or \`aws iam get-role\` output,
checked against the credentials with that role ARN.
Exit 2: the config or a trust policy file can't be read, or a naming pattern is invalid.`;

export async function runLint(opts: LintCommandOptions, io: LintCliIO): Promise<number> {
  const file = opts.config ?? './port.yaml';
  try {
    const config = loadConfigForReading(file);
    const findings = await lintConfig(config, { trustPolicies: opts.trustPolicy ?? [] });
    if (opts.json === true) {
      io.out(JSON.stringify(findings, null, 2));
    } else {
      for (const f of findings) io.out(formatFinding(f));
      io.out(summarize(findings));
    }
    return hasErrors(findings) ? EXIT_FAILED : EXIT_OK;
  } catch (err) {
    if (err instanceof ConfigError || err instanceof LintInputError) {
      for (const line of err.message.split('\n')) io.err(`port policy lint: ${line}`);
      return EXIT_USAGE;
    }
    io.err(`port policy lint: ${err instanceof Error ? err.message : String(err)}`);
    return EXIT_FAILED;
  }
}

/** Commander's collector for a repeatable option. */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}
