/**
 * A minimal `port` for the CLI tests: only the policy commands, with main.ts's handling
 * of commander errors (usage → exit 2). Run with vite-node so the TypeScript runs as is.
 */
import { Command, CommanderError } from 'commander';
import { registerPolicyCommands } from '../../src/cli/policy-commands.js';

const program = new Command('port').exitOverride();
registerPolicyCommands(program);
try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (!(err instanceof CommanderError)) throw err;
  process.exitCode = err.exitCode === 0 ? 0 : 2;
}
