/**
 * One `port policy lint` finding: how bad, which rule, where (`FILE:LINE:COLUMN`, a config
 * key such as `grants.roles.deployer`, or `FILE#/JSON/pointer` in a trust policy,
 * RFC 6901), and one sentence that ends with the fix. Findings are authored text about
 * names in the config and policies; they never carry a secret value.
 */
export type Severity = 'error' | 'warning';

export interface LintFinding {
  severity: Severity;
  /** Stable id (`naming.role`, `reference.credential`, `trust.subject`, …) a CI log can be grepped for. */
  rule: string;
  location: string;
  message: string;
}

export function error(rule: string, location: string, message: string): LintFinding {
  return { severity: 'error', rule, location, message };
}

export function warning(rule: string, location: string, message: string): LintFinding {
  return { severity: 'warning', rule, location, message };
}

/** `error  naming.role  grants.roles.deployer: "deployer" does not match …` */
export function formatFinding(f: LintFinding): string {
  return `${f.severity}  ${f.rule}  ${f.location}: ${f.message}`;
}

/** `2 errors, 1 warning` */
export function summarize(findings: readonly LintFinding[]): string {
  const errors = findings.filter((f) => f.severity === 'error').length;
  const warnings = findings.length - errors;
  return `${errors} error${errors === 1 ? '' : 's'}, ${warnings} warning${warnings === 1 ? '' : 's'}`;
}

export function hasErrors(findings: readonly LintFinding[]): boolean {
  return findings.some((f) => f.severity === 'error');
}
