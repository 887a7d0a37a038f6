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
    .action(async (opts: { config: string }) => {
      let config;
      try {
        config = loadConfig(opts.config);
      } catch (err) {
        process.stderr.write(`port: ${(err as Error).message}\n`);
        process.exitCode = EXIT_USAGE;
        return;
      }
      try {
        const port = await startPort(config, { handleSignals: true });
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
        process.exitCode = err instanceof PortError && err.code === 'policy_invalid' ? EXIT_USAGE : 1;
      }
    });
}
