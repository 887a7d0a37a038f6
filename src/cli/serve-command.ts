import type { Command } from 'commander';
import { loadConfig } from '../config/config.js';
import { PortError } from '../errors.js';
import { startPort } from '../server/port-server.js';
import { EXIT_USAGE } from './exit-codes.js';

export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description('run Port (token exchange, JWKS, introspection, revocation, health)')
    .option('-c, --config <file>', 'configuration file', './port.yaml')
    .option('--create-store', 'create the store if it does not exist (first start); without it a missing store is refused')
    .action(async (opts: { config: string; createStore?: boolean }) => {
      let config;
      try {
        config = loadConfig(opts.config);
      } catch (err) {
        process.stderr.write(`port: ${(err as Error).message}\n`);
        process.exitCode = EXIT_USAGE;
        return;
      }
      try {
        const port = await startPort(config, { handleSignals: true, createStore: opts.createStore === true });
        port.app.log.info({ url: port.url, public_url: config.server.publicUrl }, 'Port is listening');
        const stop = async () => {
          // Drain for a few seconds, then go regardless (open keep-alive connections).
          setTimeout(() => process.exit(0), 10_000).unref();
          await port.close();
          process.exit(0);
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      } catch (err) {
        process.stderr.write(`port: cannot start: ${(err as Error).message}\n`);
        // A missing store is the operator's call (restore it, or --create-store on a first start).
        process.exitCode = err instanceof PortError && (err.code === 'policy_invalid' || err.code === 'store_missing') ? EXIT_USAGE : 1;
      }
    });
}
