import { Command, CommanderError } from 'commander';
import { agentCommandGroup, registerAgentCommand } from './agent-command.js';
import { registerAgentProxyCommand } from './agent-proxy-command.js';
import { registerAgentsCommands } from './agents-command.js';
import { registerAuditCommands } from './audit-commands.js';
import { registerDemoCommand } from './demo-command.js';
import { EXIT_USAGE } from './exit-codes.js';
import { registerPolicyCommands } from './policy-commands.js';
import { registerServeCommand } from './serve-command.js';
import { registerTokenCommands } from './token-command.js';
import { registerCredsCommand } from './creds-command.js';
import { registerRotateCommand } from './rotate-command.js';
import { registerRevokeCommand } from './revoke-command.js';
import { registerInitCommand } from './init-command.js';
import { registerConfigCommands } from './config-commands.js';
import { packageVersion } from './version.js';

export function buildProgram(): Command {
  const program = new Command('port')
    .description('Port: identity-aware access broker and policy relay for Buildkite')
    .version(packageVersion(), '-V, --version', "print Port's version")
    .showHelpAfterError()
    .exitOverride();
  registerInitCommand(program);
  registerConfigCommands(program);
  registerServeCommand(program);
  registerPolicyCommands(program);
  registerAuditCommands(program);
  registerAgentCommand(program);
  registerAgentProxyCommand(agentCommandGroup(program));
  registerAgentsCommands(program);
  registerTokenCommands(program);
  registerCredsCommand(program);
  registerRotateCommand(program);
  registerRevokeCommand(program);
  registerDemoCommand(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version exit 0; usage mistakes exit 2.
      process.exitCode = err.exitCode === 0 ? 0 : EXIT_USAGE;
      return;
    }
    throw err;
  }
}
