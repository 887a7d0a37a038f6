/**
 * `port audit verify | export | tail | lineage | checkpoints export`: the decision log,
 * read-only. Exit codes follow exit-codes.ts: 0 ok, 1 the log failed verification (or the
 * command failed), 2 usage or config error. Every command opens the store named by
 * `-c port.yaml`, read without its other secrets (read-config.ts): an auditor needs no
 * upstream, credential or SSO secret.
 */
import { once } from 'node:events';
import { createWriteStream, existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import type { Command } from 'commander';
import type { JWK } from 'jose';
import { parseAnchor } from '../audit/checkpoint-anchor.js';
import { checkpointToJsonLine } from '../audit/checkpoint-line.js';
import type { Checkpoint } from '../store/records/decisions.js';
import { AuditError } from '../audit/errors.js';
import { exportDecisions, tailDecisions } from '../audit/export.js';
import { entryToJsonLine } from '../audit/format.js';
import { selectorProblem, type LineageSelector } from '../audit/lineage.js';
import { lineageToText, selectorText, verificationText } from '../audit/lineage-format.js';
import { readLineage } from '../audit/lineage-read.js';
import { verifyAuditLog, type AuditVerifyReport } from '../audit/verify.js';
import { writeOut } from '../audit/write-out.js';
import type { PortConfig } from '../config/config.js';
import { formatDuration, parseDuration } from '../config/duration.js';
import { ConfigError } from '../errors.js';
import { openStore } from '../store/open-store.js';
import type { Store } from '../store/store.js';
import { EXIT_FAILED, EXIT_OK, EXIT_USAGE } from './exit-codes.js';
import { loadConfigForReading } from './read-config.js';
import { UsageError } from './usage-error.js';

/** Where the commands write; tests pass their own. */
export interface AuditCliIO {
  stdout: Writable;
  err(text: string): void;
  /** Stops `tail` from following; without it, SIGINT/SIGTERM do. */
  signal?: AbortSignal;
}

export const auditProcessIO: AuditCliIO = {
  stdout: process.stdout,
  err: (text) => void process.stderr.write(`${text}\n`),
};

export interface AuditConfigOptions {
  config?: string;
}
export interface VerifyCliOptions extends AuditConfigOptions {
  jwks?: string;
  json?: boolean;
  /** Fail when the newest checkpoint is older than this (a duration: 90s, 10m, 1h). */
  maxAge?: string;
  /** Checkpoints kept outside (JSON lines) that must all still be in the log. */
  anchor?: string;
}
export interface CheckpointsExportCliOptions extends AuditConfigOptions {
  out?: string;
}
export interface ExportCliOptions extends AuditConfigOptions {
  out?: string;
  since?: string;
  until?: string;
}
export interface TailCliOptions extends AuditConfigOptions {
  lines?: string;
  json?: boolean;
  follow?: boolean;
}
export interface LineageCliOptions extends AuditConfigOptions {
  job?: string;
  build?: string;
  user?: string;
  json?: boolean;
}


/** Problems listed by `verify` before "… and N more". */
const LISTED_PROBLEMS = 20;

export function registerAuditCommands(program: Command, io: AuditCliIO = auditProcessIO): void {
  const audit = program.command('audit').description('verify, export and follow the decision log');
  const withConfig = (cmd: Command): Command => cmd.option('-c, --config <file>', "Port's config file", './port.yaml');

  withConfig(audit.command('verify').description('check the hash chain and the signed checkpoints; exit 1 naming the first bad entry'))
    .option('--jwks <file>', "check checkpoints against this JWKS file instead of the keys in Port's database")
    .option('--json', 'print the report as JSON')
    .option('--max-age <duration>', 'fail when the newest checkpoint is older than this (e.g. 15m); for a log you know is live')
    .option('--anchor <file>', 'fail when a checkpoint in FILE (from `port audit checkpoints export` or a file sink) is missing from the log or differs')
    .action(async (opts: VerifyCliOptions) => {
      process.exitCode = await runAuditVerify(opts, io);
    });

  const checkpoints = audit.command('checkpoints').description('the signed checkpoints of the decision log');
  withConfig(checkpoints.command('export').description('write every signed checkpoint as JSON lines, to keep outside Port as an anchor for `verify --anchor`'))
    .option('--out <file>', 'write to FILE instead of stdout')
    .action(async (opts: CheckpointsExportCliOptions) => {
      process.exitCode = await runCheckpointsExport(opts, io);
    });

  withConfig(audit.command('export').description('write the decision log as JSON lines'))
    .option('--out <file>', 'write to FILE instead of stdout')
    .option('--since <time>', 'only decisions at or after this ISO 8601 time')
    .option('--until <time>', 'only decisions before this ISO 8601 time')
    .action(async (opts: ExportCliOptions) => {
      process.exitCode = await runAuditExport(opts, io);
    });

  withConfig(audit.command('tail').description('print the latest decisions, then follow new ones'))
    .option('-n, --lines <n>', 'how many of the latest decisions to print first', '10')
    .option('--json', 'JSON lines instead of one readable line per decision')
    .option('--no-follow', 'print and exit instead of following')
    .action(async (opts: TailCliOptions) => {
      process.exitCode = await runAuditTail(opts, io);
    });

  withConfig(audit.command('lineage').description('print the chain of a job, build or user: exchanges, credentials, relay use, approvals, revocations'))
    .option('--job <id>', 'one job (Buildkite job id)')
    .option('--build <org/pipeline/number>', 'every job of one build, grouped per job')
    .option('--user <email>', 'what a person started (builds they created) and did (approvals), grouped per job')
    .option('--json', 'print the matching entries as JSON lines (the chain check goes to stderr)')
    .action(async (opts: LineageCliOptions) => {
      process.exitCode = await runAuditLineage(opts, io);
    });
}

/**
 * Exit 0 with the chain; 1 when no entry matches or the log does not verify (the chain
 * is still printed: a tampered log is the auditor's finding, not a reason to hide it);
 * 2 for a usage mistake.
 */
export async function runAuditLineage(opts: LineageCliOptions, io: AuditCliIO): Promise<number> {
  return guard(io, () => {
    const selector = lineageSelector(opts);
    return withStore(opts, async (store, config) => {
      const { lineage, lastSeq } = await readLineage(store, selector);
      // After the read, so the verified range covers every entry the chain came from.
      const report = await verifyAuditLog(store, await storeKeys(store), { maxProblems: 1, checkpointInterval: config.audit.checkpointInterval });
      const checked = verificationText(report, lastSeq);
      if (lineage.entries.length === 0) {
        io.err(`port audit lineage: no entries for ${selectorText(selector)}`);
        io.err(checked);
        return EXIT_FAILED;
      }
      if (opts.json === true) {
        await writeOut(io.stdout, lineage.entries.map(entryToJsonLine).join(''));
        io.err(checked);
      } else {
        await writeOut(io.stdout, `${lineageToText(lineage)}\n${checked}\n`);
      }
      if (!report.ok) {
        io.err(`port audit lineage: FAILED: the decision log does not verify: ${report.firstBad?.message ?? 'unknown problem'}`);
        return EXIT_FAILED;
      }
      return EXIT_OK;
    });
  });
}

function lineageSelector(opts: LineageCliOptions): LineageSelector {
  const given = (['job', 'build', 'user'] as const).filter((k) => opts[k] !== undefined);
  if (given.length !== 1) throw new UsageError('lineage needs exactly one of --job ID, --build ORG/PIPELINE/NUMBER or --user EMAIL');
  const kind = given[0]!;
  const id = opts[kind]!;
  const problem = selectorProblem(kind, id);
  if (problem !== undefined) throw new UsageError(problem);
  return { kind, id: kind === 'user' ? id.toLowerCase() : id };
}

export async function runAuditVerify(opts: VerifyCliOptions, io: AuditCliIO): Promise<number> {
  return guard(io, async () => {
    const maxAgeSeconds = parseMaxAge(opts.maxAge);
    const anchor = opts.anchor !== undefined ? await readAnchor(opts.anchor) : undefined;
    return withStore(opts, async (store, config) => {
      const keys = opts.jwks !== undefined ? await readJwks(opts.jwks) : await storeKeys(store);
      const report = await verifyAuditLog(store, keys, {
        maxProblems: LISTED_PROBLEMS,
        checkpointEvery: config.audit.checkpointEvery,
        checkpointInterval: config.audit.checkpointInterval,
        ...(maxAgeSeconds !== undefined ? { maxAgeSeconds } : {}),
        ...(anchor ? { anchor } : {}),
      });
      if (opts.json === true) await writeOut(io.stdout, `${JSON.stringify(report, null, 2)}\n`);
      else await writeOut(io.stdout, describeReport(report, opts));
      if (!report.ok) {
        io.err(`port audit verify: FAILED: ${report.firstBad?.message ?? 'the log does not verify'}`);
        return EXIT_FAILED;
      }
      return EXIT_OK;
    });
  });
}

/** Every checkpoint, oldest first, as JSON lines (checkpoint-line.ts): what an auditor keeps. */
export async function runCheckpointsExport(opts: CheckpointsExportCliOptions, io: AuditCliIO): Promise<number> {
  return guard(io, () =>
    withStore(opts, async (store) => {
      const all = await store.decisions.listCheckpoints();
      const text = all.map(checkpointToJsonLine).join('');
      if (opts.out === undefined) {
        await writeOut(io.stdout, text);
        return EXIT_OK;
      }
      try {
        await writeFile(opts.out, text);
      } catch (err) {
        throw new AuditError('audit_output_closed', `cannot write ${opts.out}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`, { cause: err });
      }
      io.err(`wrote ${all.length} checkpoint${all.length === 1 ? '' : 's'} to ${opts.out}${describeLast(all.at(-1))}`);
      return EXIT_OK;
    }),
  );
}

function describeLast(c: Checkpoint | undefined): string {
  return c ? ` (the last, ${c.num}, covers entries up to ${c.seq}, signed at ${c.time})` : '';
}

function parseMaxAge(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const seconds = parseDuration(value);
  if (seconds === undefined || seconds === 0) throw new UsageError(`--max-age ${value}: not a duration; write e.g. 90s, 15m or 2h`);
  return seconds;
}

async function readAnchor(file: string): Promise<Checkpoint[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new UsageError(`--anchor ${file}: cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  try {
    return parseAnchor(text, `--anchor ${file}`);
  } catch (err) {
    if (err instanceof AuditError) throw new UsageError(err.message);
    throw err;
  }
}

export async function runAuditExport(opts: ExportCliOptions, io: AuditCliIO): Promise<number> {
  return guard(io, () => {
    const since = parseTime(opts.since, '--since');
    const until = parseTime(opts.until, '--until');
    return withStore(opts, async (store) => {
      if (opts.out === undefined) {
        await exportDecisions(store, io.stdout, { since, until });
        return EXIT_OK;
      }
      // The log holds identities and reasons: readable by the owner only.
      const file = createWriteStream(opts.out, { mode: 0o600 });
      let failed: Error | undefined;
      file.on('error', (err) => (failed ??= err));
      try {
        await once(file, 'open');
        const { count } = await exportDecisions(store, file, { since, until });
        await new Promise<void>((resolve, reject) => file.end((err?: Error | null) => (err ? reject(err) : resolve())));
        io.err(`wrote ${count} decision${count === 1 ? '' : 's'} to ${opts.out}`);
      } catch (err) {
        // Only the file's own errors are "cannot write"; a store failure keeps its message.
        if (failed) throw new AuditError('audit_output_closed', `cannot write ${opts.out}: ${failed.message}`, { cause: failed });
        throw err;
      } finally {
        file.destroy();
      }
      return EXIT_OK;
    });
  });
}

export async function runAuditTail(opts: TailCliOptions, io: AuditCliIO): Promise<number> {
  return guard(io, () => {
    const lines = Number(opts.lines ?? '10');
    if (!/^\d+$/.test(opts.lines ?? '10') || !Number.isSafeInteger(lines)) throw new UsageError('-n must be a whole number');
    return withStore(opts, async (store) => {
      const follow = opts.follow !== false;
      const stop = follow && io.signal === undefined ? stopOnSignals() : undefined;
      try {
        await tailDecisions(store, io.stdout, { lines, follow, json: opts.json === true, pollMs: 1000, signal: io.signal ?? stop?.signal });
      } finally {
        stop?.dispose();
      }
      return EXIT_OK;
    });
  });
}

/** Opens the store the config names; refuses to create one where the log should be. */
async function withStore(opts: AuditConfigOptions, run: (store: Store, config: PortConfig) => Promise<number>): Promise<number> {
  const config = loadConfigForReading(opts.config ?? './port.yaml');
  // Opening SQLite creates the file; a wrong path must not verify as an empty, "ok" log.
  if (config.store.postgres === undefined && !existsSync(config.store.sqlite)) {
    throw new UsageError(`${config.file}: store.sqlite: ${config.store.sqlite} does not exist; point it at Port's database`);
  }
  const store = await openStore(config);
  try {
    return await run(store, config);
  } finally {
    await store.close();
  }
}

/** Every key Port ever signed with (keys are never deleted), by kid; public halves only. */
async function storeKeys(store: Store): Promise<Map<string, JWK>> {
  return new Map((await store.keys.list()).map((k) => [k.kid, k.publicJwk]));
}

async function readJwks(file: string): Promise<Map<string, JWK>> {
  let doc: unknown;
  try {
    doc = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    throw new UsageError(`--jwks ${file}: ${err instanceof SyntaxError ? 'not valid JSON' : 'cannot be read'}`);
  }
  const keys = typeof doc === 'object' && doc !== null ? (doc as { keys?: unknown }).keys : undefined;
  if (!Array.isArray(keys)) throw new UsageError(`--jwks ${file}: expected a JWK Set ({"keys": [...]})`);
  const map = new Map<string, JWK>();
  for (const k of keys as unknown[]) {
    if (typeof k !== 'object' || k === null) continue;
    const jwk = k as JWK;
    // Only public members are used: a private key in the file is not needed and not copied.
    if (typeof jwk.kid !== 'string') continue;
    const { kty, crv, x, y, alg, kid } = jwk;
    map.set(kid, Object.fromEntries(Object.entries({ kty, crv, x, y, alg, kid }).filter(([, v]) => v !== undefined)) as JWK);
  }
  return map;
}

function describeReport(r: AuditVerifyReport, opts: VerifyCliOptions): string {
  const jwksFile = opts.jwks;
  const lines: string[] = [];
  const plural = (n: number, word: string, words = `${word}s`): string => `${n} ${n === 1 ? word : words}`;
  lines.push(
    `Decision log: ${plural(r.entries, 'entry', 'entries')}${r.entries > 0 ? ` (last entry ${r.lastSeq})` : ''}, ` +
      `${plural(r.checkpoints, 'checkpoint')} (${r.validCheckpoints} valid${r.lastCheckpointSeq > 0 ? `, last at entry ${r.lastCheckpointSeq}` : ''}).`,
  );
  lines.push(`Checkpoint keys: ${jwksFile !== undefined ? jwksFile : "Port's database (pass --jwks FILE with keys kept elsewhere to rule out forged keys)"}.`);
  if (r.checkpoints > 0) {
    const legacy = r.legacyCheckpoints > 0 ? ` (the first ${r.legacyCheckpoints} written before checkpoints were chained)` : '';
    lines.push(`Checkpoint chain: ${plural(r.checkpoints, 'checkpoint')}${legacy}${r.lastCheckpointTime ? `; the newest valid one signed at ${r.lastCheckpointTime}` : ''}.`);
  }
  lines.push(
    r.checkpointInterval
      ? `Timing: every entry must be checkpointed within audit.checkpoint_interval ${formatDuration(r.checkpointInterval.seconds)} plus ${r.checkpointInterval.slackSeconds}s slack.`
      : 'Timing: not checked (audit.checkpoint_interval is 0).',
  );
  if (opts.maxAge !== undefined) lines.push(`Freshness: the newest checkpoint must be at most ${opts.maxAge} old (--max-age).`);
  if (r.anchored !== undefined) lines.push(`Anchor: ${plural(r.anchored, 'checkpoint')} from ${opts.anchor ?? 'the anchor'} must still be in the log.`);
  else lines.push('Anchor: none (pass --anchor FILE with checkpoints kept elsewhere to detect a log cut back, checkpoints and all).');
  if (r.unsignedEntries > 0) {
    lines.push(
      `${plural(r.unsignedEntries, 'entry', 'entries')} after ${r.lastCheckpointSeq > 0 ? `entry ${r.lastCheckpointSeq}` : 'the start'} ` +
        `${r.unsignedEntries === 1 ? 'is' : 'are'} hash-chained but not signed by a checkpoint yet: deleting or rewriting ${r.unsignedEntries === 1 ? 'it' : 'them'} would not be detected.`,
    );
  }
  if (r.unsealed > 0) {
    lines.push(`${plural(r.unsealed, 'decision')} committed but not sealed into the chain yet (the leader seals them within moments; run again to verify them).`);
  }
  for (const w of r.warnings) lines.push(`warning: ${w}`);
  if (!r.complete) lines.push(`Verification stopped early at entry ${r.lastSeq + 1}; entries after it were not checked.`);
  if (r.ok) {
    lines.push('OK: every entry matches its hash and its predecessor, every checkpoint verifies and links to the one before, and checkpoints were written on time.');
  } else {
    for (const p of r.problems) lines.push(p.message);
    if (r.problemCount > r.problems.length) lines.push(`… and ${r.problemCount - r.problems.length} more`);
    lines.push(`FAILED: ${plural(r.problemCount, 'problem')}; the first is ${r.firstBad?.message ?? 'unknown'}`);
  }
  return `${lines.join('\n')}\n`;
}

function parseTime(value: string | undefined, flag: string): Date | undefined {
  if (value === undefined) return undefined;
  const t = Date.parse(value);
  if (!/^\d{4}-\d{2}-\d{2}/.test(value) || Number.isNaN(t)) throw new UsageError(`${flag} ${value}: not an ISO 8601 time (e.g. 2025-01-31 or 2025-01-31T12:00:00Z)`);
  return new Date(t);
}

/** Aborts on Ctrl-C or SIGTERM so `tail` closes the store and exits 0. */
function stopOnSignals(): { signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  const abort = (): void => controller.abort();
  process.once('SIGINT', abort);
  process.once('SIGTERM', abort);
  return {
    signal: controller.signal,
    dispose: () => {
      process.off('SIGINT', abort);
      process.off('SIGTERM', abort);
    },
  };
}

/** Maps errors to exit codes: config and usage → 2; a closed pipe (`| head`) → 0; anything else → 1. */
async function guard(io: AuditCliIO, run: () => Promise<number>): Promise<number> {
  // A reader that goes away (EPIPE) emits 'error' on the stream; without a listener it would crash.
  let pipeClosed = false;
  const onError = (err: NodeJS.ErrnoException): void => {
    if (err.code === 'EPIPE') pipeClosed = true;
  };
  io.stdout.on('error', onError);
  try {
    return await run();
  } catch (err) {
    if (err instanceof ConfigError || err instanceof UsageError) {
      io.err(`port audit: ${err.message}`);
      return EXIT_USAGE;
    }
    if (pipeClosed) return EXIT_OK;
    io.err(`port audit: ${err instanceof Error ? err.message : String(err)}`);
    return EXIT_FAILED;
  } finally {
    io.stdout.off('error', onError);
  }
}
