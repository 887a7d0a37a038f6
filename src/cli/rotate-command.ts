import type { Command } from 'commander';
import { request } from 'undici';
import { configuredAdminToken, portUrl } from './admin-target.js';
import { loadConfigForReading } from './read-config.js';
import { EXIT_FAILED, EXIT_USAGE } from './exit-codes.js';
import { UsageError } from './usage-error.js';

interface RotateOptions {
  config?: string;
  url?: string;
  adminTokenEnv?: string;
  json?: boolean;
}


/**
 * `port rotate <name>`: rotates a secret now through the admin API
 * (`POST /v1/admin/credentials/{name}/rotate`, bearer `server.admin_token`).
 */
export function registerRotateCommand(program: Command): void {
  program
    .command('rotate')
    .description("rotate a secret credential now through its rotation hook (admin API)")
    .argument('<name>', 'the secret, as named under credentials: in port.yaml')
    .option('-c, --config <file>', "Port's config: its listen address and server.admin_token")
    .option('--url <url>', 'Port base URL (default: $PORT_URL, else the config\'s listen address)')
    .option('--admin-token-env <var>', 'environment variable holding the admin token (default: server.admin_token with -c, else PORT_ADMIN_TOKEN)')
    .option('--json', 'print the admin API answer as JSON')
    .action(async (name: string, opts: RotateOptions) => {
      let url: string;
      let token: string;
      try {
        ({ url, token } = target(opts));
      } catch (err) {
        process.stderr.write(`port: rotate: ${(err as Error).message}\n`);
        process.exitCode = EXIT_USAGE;
        return;
      }
      try {
        const res = await request(`${url}/v1/admin/credentials/${encodeURIComponent(name)}/rotate`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
          // The hook may take its whole timeout (at most 10 min).
          headersTimeout: 660_000,
          bodyTimeout: 660_000,
        });
        const body = (await res.body.json().catch(() => ({}))) as Record<string, unknown>;
        if (res.statusCode !== 200) {
          process.stderr.write(`port: rotate ${name}: refused (${res.statusCode} ${String(body.error ?? 'error')}): ${String(body.error_description ?? 'no description')}\n`);
          process.exitCode = EXIT_FAILED;
          return;
        }
        process.stdout.write(
          opts.json
            ? `${JSON.stringify(body, null, 2)}\n`
            : `rotated ${name}: version ${String(body.version)} is current; version ${String(body.previous_version)} is accepted until ${String(body.previous_retires_at)}\n`,
        );
      } catch (err) {
        process.stderr.write(`port: rotate ${name}: ${(err as Error).message}\n`);
        process.exitCode = EXIT_FAILED;
      }
    });
}

function target(opts: RotateOptions): { url: string; token: string } {
  const config = opts.config === undefined ? undefined : loadConfigForReading(opts.config);
  const url = portUrl(opts.url, config);
  let token: string | undefined;
  if (opts.adminTokenEnv !== undefined) {
    token = process.env[opts.adminTokenEnv];
    if (!token) throw new UsageError(`$${opts.adminTokenEnv} (--admin-token-env) is not set`);
  } else {
    token = configuredAdminToken(config);
    if (!token) throw new UsageError('no admin token: set $PORT_ADMIN_TOKEN, pass --admin-token-env VAR, or -c a config with server.admin_token');
  }
  return { url, token };
}
