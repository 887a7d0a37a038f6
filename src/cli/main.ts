import { Command, CommanderError } from 'commander';
import { EXIT_USAGE } from './exit-codes.js';
import { packageVersion } from './version.js';

/** Adds one top-level command (and its subcommands) to the program. */
type Register = (program: Command) => void;

/**
 * Every top-level command, in `port --help`'s order, each with the modules that define it.
 * A command's module imports what its actions use (the policy engine and its wasm, the
 * store and its drivers, the audit readers, undici …): loading them all cost every run of
 * `port` — each `port serve` process, a server.workers primary too — memory and start-up
 * time for commands it never runs (`port init --help`: 92 MB peak RSS and 0.5 s, against
 * 46 MB and 0.1 s alone). `port <command> …` loads only that command's modules; anything
 * else (`port --help`, `port help …`, a mistyped name) loads all, so help and commander's
 * "did you mean" suggestions see every command.
 */
const COMMANDS: ReadonlyArray<{ name: string; load: () => Promise<Register> }> = [
  { name: 'init', load: async () => (await import('./init-command.js')).registerInitCommand },
  { name: 'config', load: async () => (await import('./config-commands.js')).registerConfigCommands },
  { name: 'serve', load: async () => (await import('./serve-command.js')).registerServeCommand },
  { name: 'policy', load: async () => (await import('./policy-commands.js')).registerPolicyCommands },
  { name: 'audit', load: async () => (await import('./audit-commands.js')).registerAuditCommands },
  {
    name: 'agent',
    load: async () => {
      const [agent, proxy] = await Promise.all([import('./agent-command.js'), import('./agent-proxy-command.js')]);
      return (program) => {
        agent.registerAgentCommand(program);
        proxy.registerAgentProxyCommand(agent.agentCommandGroup(program));
      };
    },
  },
  { name: 'agents', load: async () => (await import('./agents-command.js')).registerAgentsCommands },
  { name: 'token', load: async () => (await import('./token-command.js')).registerTokenCommands },
  { name: 'creds', load: async () => (await import('./creds-command.js')).registerCredsCommand },
  { name: 'rotate', load: async () => (await import('./rotate-command.js')).registerRotateCommand },
  { name: 'revoke', load: async () => (await import('./revoke-command.js')).registerRevokeCommand },
  { name: 'demo', load: async () => (await import('./demo-command.js')).registerDemoCommand },
];

/**
 * The `port` program for `argv` (process.argv: node, script, then the arguments): with the
 * command that argv names, or every command when it names none of them.
 */
export async function buildProgram(argv: readonly string[] = []): Promise<Command> {
  const program = new Command('port')
    .description('Port: identity-aware access broker and policy relay for Buildkite')
    .version(packageVersion(), '-V, --version', "print Port's version")
    .showHelpAfterError()
    .exitOverride();
  // Port has no global options before a command other than --help and --version, so the
  // first argument is the command, if any.
  const named = COMMANDS.find((c) => c.name === argv[2]);
  // Loaded together, registered in order: `port --help` lists them as they are listed here.
  const registers = await Promise.all((named ? [named] : COMMANDS).map((c) => c.load()));
  for (const register of registers) register(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  try {
    await (await buildProgram(argv)).parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version exit 0; usage mistakes exit 2.
      process.exitCode = err.exitCode === 0 ? 0 : EXIT_USAGE;
      return;
    }
    throw err;
  }
}
