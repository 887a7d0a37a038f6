import type { Command } from 'commander';
import { isWorker, reportReady, runPrimary } from '../cluster/workers.js';
import { loadConfig, resolveWorkers, type PortConfig } from '../config/config.js';
import { PortError } from '../errors.js';
import { EXIT_FAILED, EXIT_USAGE } from './exit-codes.js';
import { UsageError } from './usage-error.js';

/** What `port serve --help` says serve runs; kept beside the command so they change together. */
const SERVE_HELP = `
Everything runs on server.listen, under server.public_url, in each of server.workers
processes sharing the listener (default: one per CPU; --workers overrides it):

  Always
    POST /oauth/token                  RFC 8693 token exchange: a job's Buildkite OIDC token
                                       for a Port token (the exchange policies decide)
    GET  /.well-known/openid-configuration, /.well-known/jwks.json
                                       Port as an OIDC issuer: discovery and signing keys
    POST /oauth/introspect             RFC 7662 introspection (a job's own tokens, or any
                                       token with issuer.introspection_token)
    POST /oauth/revoke                 RFC 7009 revocation of a Port token by its holder
    POST /v1/revocations               a job ends its own access ({"scope":"job", …})
    POST /v1/credentials/{name}        brokered credentials (port_token, secret, aws_role)
    ANY  /relay/{upstream}/{path}      the relay: Port adds the upstream's credential and
                                       decides each request (upstreams:)
    POST /webhooks/buildkite           Buildkite webhooks (with buildkite.webhook_token or
                                       webhook_secret): finished jobs' tokens end, blocked
                                       builds open approval requests
    GET  /healthz, /readyz             liveness; readiness (store, policies, signing key,
                                       Buildkite's keys, change feed)

  With server.admin_token
    POST|DELETE|GET /v1/revocations    revoke (and lift) by token, job, build, user, agent
                                       or pool; list what is revoked
    GET  /v1/admin/credentials/{name}, POST …/rotate
                                       secret versions and rotation (port revoke, port rotate)

  With sso:
    /login, /auth/callback, /logout    approvers sign in with your identity provider (OIDC)
    /approvals, /approvals/{id}        approval pages (also needs buildkite.api_token)

  With scim:
    /scim/v2/Users, /scim/v2/Groups    SCIM 2.0 provisioning (RFC 7644); deprovisioning
                                       revokes what the person holds

  In the background: Buildkite JWKS refresh, policy reload when the policy folder changes
  (and on SIGHUP, which also re-reads relay and webhook secrets), signed audit checkpoints
  (audit:), signing-key rotation (issuer.key_rotation), scheduled secret rotation,
  approval expiry, webhook retries. One process leads that work: a worker, or with
  store.postgres one replica's worker. The workers agree through the store, as replicas do.

  Port exposes no /metrics endpoint.

Exit codes: 2 when the configuration or policies are invalid, a secret reference does not
resolve, the store is missing (first start: --create-store) or the address is in use;
1 for any other failure to start (with workers: the first worker's code, or when
replacements keep failing to start). SIGINT/SIGTERM drain and stop; SIGHUP reloads.

Example:
  port serve -c /etc/port/port.yaml`;

export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description('run Port: token exchange, credentials, relay, approvals, SCIM, webhooks, admin API')
    .option('-c, --config <file>', 'configuration file', './port.yaml')
    .option('--create-store', 'create the store if it does not exist (first start); without it a missing store is refused')
    .option('--workers <n>', 'processes to run, 1 to 256, overriding server.workers (1: no extra process)')
    .addHelpText('after', SERVE_HELP)
    .action(async (opts: { config: string; createStore?: boolean; workers?: string }) => {
      let config: PortConfig;
      let workers: { workers: number; workersLimitedBy?: string };
      try {
        config = loadConfig(opts.config);
        workers = opts.workers === undefined ? config.server : resolveWorkers(workersOption(opts.workers), { sso: config.sso !== undefined, keyEncryptionKey: config.issuer.keyEncryptionKey !== undefined }, '--workers');
      } catch (err) {
        process.stderr.write(`port: ${(err as Error).message}\n`);
        process.exitCode = EXIT_USAGE;
        return;
      }
      // A worker serves whatever the count; the primary of several only forks and watches them.
      if (!isWorker() && workers.workers > 1) {
        const argv = process.argv.slice(2);
        const code = await runPrimary({
          count: workers.workers,
          logLevel: config.server.logLevel,
          laterArgs: argv.filter((a) => a !== '--create-store'),
        });
        process.exit(code);
      }
      await serve(config, opts.createStore === true, isWorker() ? undefined : workers.workersLimitedBy);
    });
}

/**
 * Runs the server in this process (with one worker, or as a worker): today's `port serve`.
 * `limitedBy`: why `server.workers: auto` runs only this one process, for the log.
 */
async function serve(config: PortConfig, createStore: boolean, limitedBy?: string): Promise<void> {
  try {
    // Loaded here, not at the top: the server's modules are most of the CLI's start-up
    // time, and every other command (credential_process among them) does without them.
    const { startPort } = await import('../server/port-server.js');
    const port = await startPort(config, { handleSignals: true, createStore });
    port.app.log.info({ url: port.url, public_url: config.server.publicUrl }, 'Port is listening');
    if (limitedBy !== undefined) port.app.log.warn(`server.workers: auto runs 1 worker: ${limitedBy}`);
    let stopping = false;
    const stop = async () => {
      if (stopping) return;
      stopping = true;
      // Drain for a few seconds, then go regardless (open keep-alive connections).
      setTimeout(() => process.exit(0), 10_000).unref();
      await port.close();
      process.exit(0);
    };
    // Alone, a second signal ends Port at once (the default action). A worker may hear a
    // stop twice — from its primary, and from a terminal's Ctrl-C or a service manager that
    // signals the whole process group — and drains all the same (at most 10 s).
    const on = isWorker() ? process.on.bind(process) : process.once.bind(process);
    on('SIGINT', stop);
    on('SIGTERM', stop);
    reportReady(port.url);
  } catch (err) {
    const { message, code } = startFailure(err, config);
    process.stderr.write(`port: cannot start: ${message}\n`);
    process.exitCode = code;
    // A worker's channel to its primary keeps it alive: end it with its code.
    if (isWorker()) process.exit(code);
  }
}

/** `--workers N`: a whole number from 1 to 256. */
function workersOption(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || n < 1 || n > 256) throw new UsageError(`--workers: expected a whole number from 1 to 256, found "${value}".`);
  return n;
}

/** A start failure in one sentence, and its exit code: the operator's to fix (2) or not (1). */
function startFailure(err: unknown, config: PortConfig): { message: string; code: number } {
  const e = err as NodeJS.ErrnoException;
  const { host, port } = config.server.listen;
  const address = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  if (e?.code === 'EADDRINUSE') {
    return { message: `${address} is already in use (another Port or another program listens there); stop it or change server.listen in ${config.file}.`, code: EXIT_USAGE };
  }
  if (e?.code === 'EADDRNOTAVAIL') {
    return { message: `${address} is not an address of this machine; change server.listen in ${config.file}.`, code: EXIT_USAGE };
  }
  if (e?.code === 'EACCES' && e.syscall === 'listen') {
    return { message: `${address}: not permitted to listen there (ports below 1024 need privileges); change server.listen in ${config.file}.`, code: EXIT_USAGE };
  }
  // Invalid policies, a missing store, a store a newer Port wrote, signing keys sealed under
  // another key_encryption_key, a secret that no longer resolves: the operator's to fix, and
  // exit 2 so a supervisor doesn't retry (the systemd unit's RestartPreventExitStatus=2). A
  // failed migration stays 1: the database may have gone away mid-way, and a retry can succeed.
  const operators =
    err instanceof PortError && ['config_invalid', 'policy_invalid', 'store_missing', 'store_too_new', 'signing_key_locked'].includes(err.code);
  return { message: (err as Error)?.message ?? String(err), code: operators ? EXIT_USAGE : EXIT_FAILED };
}
