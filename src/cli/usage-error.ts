/** A mistake in how a command was called: the CLI prints it and exits 2 (EXIT_USAGE). */
export class UsageError extends Error {}
