/**
 * `port agents audit`: which agents received credentials, Port tokens or relay access in a
 * window, how each was attested at the time, and whether every pool that requires
 * attestation (in the config now) served only agents attested as it requires. Read-only:
 * the config is read without its secrets and the store only read. Exit 0 when every such
 * pool did, 1 when one did not (or the store could not be read), 2 for a usage or config error.
 */
import { existsSync } from 'node:fs';
import type { Writable } from 'node:stream';
import type { Command } from 'commander';
import { readAgentAudit } from '../agents/audit-read.js';
import { agentAuditJson, agentAuditText } from '../agents/audit-report-format.js';
import { isPoolFilter } from '../agents/audit-report.js';
import { writeOut } from '../audit/write-out.js';
import { parseDuration } from '../config/duration.js';
import { ConfigError } from '../errors.js';
import { openStore } from '../store/open-store.js';
import { EXIT_FAILED, EXIT_OK, EXIT_USAGE } from './exit-codes.js';
import { loadConfigForReading } from './read-config.js';
import { UsageError } from './usage-error.js';

export interface AgentsCliIO {
  stdout: Writable;
  err(text: string): void;
}

const processIO: AgentsCliIO = {
  stdout: process.stdout,
  err: (text) => void process.stderr.write(`${text}\n`),
};

export interface AgentsAuditOptions {
  config?: string;
  pool?: string;
  since?: string;
  json?: boolean;
}

const DEFAULT_SINCE = '7d';

export function registerAgentsCommands(program: Command, io: AgentsCliIO = processIO): void {
  const agents = program.command('agents').description('what Buildkite agents received from Port, and how they were attested');
  agents
    .command('audit')
    .description('list every agent that received anything in a window and how it was attested; exit 1 when a pool requiring attestation served an agent not attested as it requires')
    .option('-c, --config <file>', "Port's config file", './port.yaml')
    .option('--pool <CLUSTER/QUEUE>', 'only this pool (CLUSTER/* for every queue of a cluster)')
    .option('--since <when>', 'the window: a duration back from now (90m, 24h, 7d) or an ISO 8601 time', DEFAULT_SINCE)
    .option('--json', 'print the report as JSON')
    .action(async (opts: AgentsAuditOptions) => {
      process.exitCode = await runAgentsAudit(opts, io);
    });
}

export async function runAgentsAudit(opts: AgentsAuditOptions, io: AgentsCliIO, now = Date.now()): Promise<number> {
  // A reader that goes away (EPIPE) emits 'error' on the stream; without a listener it would crash.
  let pipeClosed = false;
  const onError = (err: NodeJS.ErrnoException): void => {
    if (err.code === 'EPIPE') pipeClosed = true;
  };
  io.stdout.on('error', onError);
  try {
    const since = parseSince(opts.since ?? DEFAULT_SINCE, now);
    if (opts.pool !== undefined && !isPoolFilter(opts.pool)) {
      throw new UsageError(`--pool ${JSON.stringify(opts.pool.slice(0, 200))} is not a pool; write CLUSTER/QUEUE (or CLUSTER/* for every queue of a cluster).`);
    }
    const config = loadConfigForReading(opts.config ?? './port.yaml');
    // Opening SQLite creates the file; a wrong path must not audit as an empty, "ok" log.
    if (config.store.postgres === undefined && !existsSync(config.store.sqlite)) {
      throw new UsageError(`${config.file}: store.sqlite: ${config.store.sqlite} does not exist; point it at Port's database`);
    }
    const store = await openStore(config);
    try {
      const report = await readAgentAudit(store.decisions, { pools: config.pools, since, until: now, ...(opts.pool !== undefined ? { pool: opts.pool } : {}) });
      await writeOut(io.stdout, opts.json === true ? agentAuditJson(report) : agentAuditText(report));
      if (!report.ok) io.err('port agents audit: FAILED: a pool that requires attestation served agents not attested as it requires');
      return report.ok ? EXIT_OK : EXIT_FAILED;
    } finally {
      await store.close();
    }
  } catch (err) {
    if (err instanceof ConfigError || err instanceof UsageError) {
      io.err(`port agents audit: ${err.message}`);
      return EXIT_USAGE;
    }
    if (pipeClosed) return EXIT_OK;
    io.err(`port agents audit: ${err instanceof Error ? err.message : String(err)}`);
    return EXIT_FAILED;
  } finally {
    io.stdout.off('error', onError);
  }
}

/** `--since`: a duration back from `now` (the config's duration syntax), or an ISO 8601 time before now. */
function parseSince(text: string, now: number): number {
  const seconds = parseDuration(text);
  if (seconds !== undefined && seconds > 0) return now - seconds * 1000;
  const at = /^\d{4}-\d{2}-\d{2}/.test(text) ? Date.parse(text) : Number.NaN;
  if (!Number.isNaN(at) && at < now) return at;
  throw new UsageError(`--since ${JSON.stringify(text.slice(0, 100))} is not a window; write a duration back from now (90m, 24h, 7d) or an ISO 8601 time in the past.`);
}
