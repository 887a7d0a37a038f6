import { ConfigError } from '../errors.js';

/**
 * A `grants:` role or binding (in port.yaml or a file of `grants.directory`) that can't be
 * compiled as written: it names something that doesn't exist, or would grant more than it
 * says. A ConfigError (code `config_invalid`), so `port serve` and `port config check`
 * report it like any other configuration mistake: one sentence a line, naming the file,
 * the key and the fix.
 */
export class GrantsError extends ConfigError {
  /** Every problem found, one sentence each (the message joins them with newlines). */
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(problems.join('\n'));
    this.problems = problems;
  }
}
