import { PortError } from '../errors.js';

/**
 * `port policy lint` can't run as asked: a trust policy file that can't be read, or a
 * `naming` pattern that is no regular expression. The CLI exits 2 (usage or configuration),
 * not 1: nothing was linted.
 */
export class LintInputError extends PortError {
  constructor(message: string) {
    super('lint_input', message, 400);
  }
}
