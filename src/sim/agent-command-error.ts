/**
 * A command failed: the CLI prints `fatal: <message>` on stderr and exits with `exitCode`,
 * like `buildkite/agent:clicommand/errors.go` (ErrToExitCode).
 */
export class CommandError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = 'CommandError';
  }
}
