import type { Command } from 'commander';
import type { DemoOptions } from './demo-run.js';

export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('first run: Port + local Buildkite, identity provider, AWS STS and an internal service, with example policies')
    .option('--dir <dir>', 'where the demo keeps its config, database, secrets and buildkite-agent stand-in', '.port-demo')
    .option('--port <port>', "Port's port (0 = any free port)", '8080')
    .option('--sim-port <port>', "the Buildkite simulator's port (0 = any free port)", '8181')
    .option('--idp-port <port>', "the demo identity provider's port (0 = any free port)", '0')
    .option('--service-port <port>', "the demo artifacts API's port (0 = any free port)", '0')
    .option('--keep', "continue with the previous run's store (decision log, revocations, keys) instead of starting clean")
    .action(async (opts: DemoOptions) => {
      // Loaded only when the demo runs: the simulators, the identity provider and the server
      // would otherwise cost every other `port` command (credential_process among them) its start-up time.
      const { runDemoCommand } = await import('./demo-run.js');
      await runDemoCommand(opts);
    });
}

