import { PortError } from '../errors.js';
import type { PolicyProblem } from './types.js';

/** `file:line:col: message` (or `file: message` for a whole-file problem), the compiler convention. */
export function formatProblem(p: PolicyProblem): string {
  const where = p.line > 0 ? `${p.file}:${p.line}:${p.column}` : p.file;
  const policy = p.policyId !== undefined ? `policy ${p.policyId}: ` : '';
  return `${where}: ${policy}${p.message}${p.help ? ` (${p.help})` : ''}`;
}

/** The policy folder does not load: unreadable, unparsable, or not valid against the schema. */
export class PolicyLoadError extends PortError {
  readonly problems: readonly PolicyProblem[];
  constructor(problems: readonly PolicyProblem[]) {
    const lines = problems.map(formatProblem);
    super(
      'policy_invalid',
      `The policy set is invalid (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n${lines.join('\n')}`,
      500,
    );
    this.problems = problems;
  }
}
