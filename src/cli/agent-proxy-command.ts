import type { Command } from 'commander';
import { EXIT_FAILED, EXIT_USAGE } from './exit-codes.js';
import { dpopKeyFrom } from './dpop-key-option.js';

interface ProxyOptions {
  listen: string;
  portUrl?: string;
  tokenFile?: string;
  dpopKey?: string;
}

const PROXY_HELP = `
Tools that only know Bearer or Basic auth (git, npm, curl) can't send a DPoP proof, so a
Port token bound to the host key can't go to the relay through them directly. This
forwarder listens on loopback and sends each request on to Port's relay with
"Authorization: DPoP <token>" and a fresh proof made with the host key:

  port agent proxy --listen 127.0.0.1:8787 --port-url https://port.example.com \\
    --token-file "$PORT_TOKEN_FILE" --dpop-key /var/lib/buildkite-agent/.port/dpop.jwk &
  git clone http://127.0.0.1:8787/relay/git/org/repo.git

The token file is read for every request, so a renewed token is used at once.
Only /relay/... is forwarded. It runs until SIGINT or SIGTERM.`;

/**
 * Adds `proxy` to the `agent` command group: a local forwarder that adds DPoP proofs
 * (src/dpop/forwarder.ts). Exported on its own so the group's file only hooks it in.
 */
export function registerAgentProxyCommand(agent: Command): void {
  agent
    .command('proxy')
    .description('forward git/npm/curl requests on loopback to the relay with a DPoP proof for a host-bound token')
    .option('--listen <host:port>', 'loopback address to listen on', '127.0.0.1:8787')
    .option('--port-url <url>', "Port's URL, as server.public_url says (default: $PORT_URL)")
    .option('--token-file <path>', 'file with the Port token bound to the host key (default: $PORT_TOKEN_FILE)')
    .option('--dpop-key <path>', 'the host key file (default: $PORT_DPOP_KEY)')
    .addHelpText('after', PROXY_HELP)
    .action(async (opts: ProxyOptions) => {
      const portUrl = (opts.portUrl ?? process.env.PORT_URL)?.replace(/\/+$/, '');
      const tokenFile = opts.tokenFile ?? (process.env.PORT_TOKEN_FILE || undefined);
      if (!portUrl) return usage("give Port's URL with --port-url or $PORT_URL");
      if (!tokenFile) return usage('give the token file with --token-file or $PORT_TOKEN_FILE');
      let keyPath: string | undefined;
      try {
        keyPath = dpopKeyFrom(opts.dpopKey);
      } catch (err) {
        return usage((err as Error).message);
      }
      if (!keyPath) return usage('give the host key with --dpop-key or $PORT_DPOP_KEY');
      const listen = parseListen(opts.listen);
      if (listen === undefined) return usage(`--listen ${opts.listen.slice(0, 64)} is not host:port`);
      try {
        new URL(portUrl);
      } catch {
        return usage(`--port-url ${portUrl.slice(0, 128)} is not a URL`);
      }
      try {
        const { loadOrCreateHostKey } = await import('../dpop/host-key.js');
        const { startForwarder, LOOPBACK_HOSTS } = await import('../dpop/forwarder.js');
        if (!LOOPBACK_HOSTS.has(listen.host)) return usage(`--listen must be a loopback address (127.0.0.1, ::1 or localhost), not ${listen.host}`);
        const key = await loadOrCreateHostKey(keyPath);
        const running = await startForwarder({
          ...listen,
          portUrl,
          tokenFile,
          key,
          onError: (message) => process.stderr.write(`port: agent proxy: ${message}\n`),
        });
        process.stderr.write(`port: agent proxy: forwarding ${running.url}/relay/ to ${portUrl}/relay/ with DPoP proofs (key ${key.jkt})\n`);
        const stop = async () => {
          await running.close();
          process.exit(0);
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      } catch (err) {
        process.stderr.write(`port: agent proxy: cannot start: ${(err as Error).message}\n`);
        process.exitCode = (err as NodeJS.ErrnoException).code === 'EADDRINUSE' ? EXIT_USAGE : EXIT_FAILED;
      }
    });
}

function parseListen(value: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(value);
  if (!m) return undefined;
  const port = Number(m[3]);
  return port <= 65535 ? { host: (m[1] ?? m[2])!, port } : undefined;
}

function usage(message: string): void {
  process.stderr.write(`port: agent proxy: ${message}\n`);
  process.exitCode = EXIT_USAGE;
}
