/**
 * `port policy validate | test | explain | show | lint` (lint: policy-lint-command.ts). Exit codes follow
 * exit-codes.ts: 0 ok, 1 the check failed (invalid policies, failing cases), 2 usage.
 *
 * The policy folder is `--policies DIR`, else the `policies:` key of `-c FILE` (resolved
 * against the config file's folder, as the config loader does), else `./policies`. Only
 * that key is read — unless the config has a `grants:` section, whose compiled policies
 * join the folder's (grant-sources.ts); secrets are never read, so these commands work
 * without the secrets the server needs.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { parse as parseYaml } from 'yaml';
import { PolicyEngine } from '../policy/engine.js';
import type { CreatorInfo } from '../policy/entities.js';
import { formatProblem, PolicyLoadError } from '../policy/errors.js';
import { explain } from '../policy/explain.js';
import { buildJobRequest, claimsWithDefaults, JOB_ACTIONS, type JobAction } from '../policy/job-request.js';
import { loadPolicyDir } from '../policy/loader.js';
import { runPolicyTests, toCedarRecord } from '../policy/test-cases.js';
import { EXIT_FAILED, EXIT_OK, EXIT_USAGE } from './exit-codes.js';
import { grantSources } from './grant-sources.js';
import { showCompiledGrants, showPolicySet } from './policy-show.js';
import { collect, LINT_HELP, runLint, type LintCommandOptions } from './policy-lint-command.js';
import { UsageError } from './usage-error.js';

/** Where the commands write and read; tests pass their own. */
export interface PolicyCliIO {
  out(text: string): void;
  err(text: string): void;
  readStdin(): Promise<string>;
}

export const processIO: PolicyCliIO = {
  out: (text) => void process.stdout.write(`${text}\n`),
  err: (text) => void process.stderr.write(`${text}\n`),
  readStdin: async () => {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  },
};

export interface FolderOptions {
  policies?: string;
  config?: string;
}

export interface ExplainOptions extends FolderOptions {
  action?: string;
  credential?: string;
  upstream?: string;
  claims?: string;
  context?: string;
  creator?: string;
  json?: boolean;
}


export function registerPolicyCommands(program: Command, io: PolicyCliIO = processIO): void {
  const policy = program.command('policy').description('author and check Cedar policies');
  const folder = (cmd: Command): Command =>
    cmd
      .option('--policies <dir>', 'the policy folder (default: policies: in -c FILE, else ./policies)')
      .option('-c, --config <file>', "Port's config file; only its policies: key is read");

  folder(policy.command('validate').description('parse the *.cedar files and check them against the schema (strict)')).action(
    async (opts: FolderOptions) => {
      process.exitCode = await runValidate(opts, io);
    },
  );

  folder(policy.command('test').description('run the *.test.yaml cases in the policy folder')).action(async (opts: FolderOptions) => {
    process.exitCode = await runTest(opts, io);
  });

  folder(
    policy
      .command('explain')
      .description('decide one request for a job and say why')
      .requiredOption('--action <action>', `one of ${JOB_ACTIONS.join(', ')}`)
      .option('--credential <name>', 'the credential (for assume)')
      .option('--upstream <name>', 'the upstream (for proxy)')
      .requiredOption('--claims <file>', "the job's Buildkite token claims as JSON (- for stdin); missing ones get test defaults")
      .option('--context <json>', "the request context as a JSON object (merged over the action's defaults)")
      .option('--creator <json>', 'who started the build, e.g. {"email": "dev@acme.example", "groups": ["deployers"]} (default: unknown)')
      .option('--json', 'print the decision as JSON'),
  ).action(async (opts: ExplainOptions) => {
    process.exitCode = await runExplain(opts, io);
  });

  folder(
    policy
      .command('show')
      .description('print the policy set by source: the *.cedar files and the grants: roles of -c FILE')
      .option('--compiled', 'print the Cedar the grants: section of -c FILE compiles to'),
  ).action(async (opts: ShowOptions) => {
    process.exitCode = await runShow(opts, io);
  });

  policy
    .command('lint')
    .description('check naming, references, reasons, reach and IAM trust policies; exit 1 on errors (for CI)')
    .option('-c, --config <file>', "Port's config file (its secrets are not read)", './port.yaml')
    .option('--trust-policy <file>', 'an IAM role trust policy (or aws iam get-role output) to check; repeatable', collect)
    .option('--json', 'print the findings as a JSON array')
    .addHelpText('after', LINT_HELP)
    .action(async (opts: LintCommandOptions) => {
      process.exitCode = await runLint(opts, io);
    });
}

export async function runValidate(opts: FolderOptions, io: PolicyCliIO): Promise<number> {
  return guard(io, async () => {
    const dir = await policyDir(opts);
    const compiled = await grantSources(opts.config);
    const outcome = await loadPolicyDir(dir, compiled);
    for (const w of outcome.ok ? outcome.set.warnings : outcome.warnings) io.err(`warning: ${formatProblem(w)}`);
    if (!outcome.ok) {
      for (const p of outcome.problems) io.err(formatProblem(p));
      io.err(`${outcome.problems.length} problem${outcome.problems.length === 1 ? '' : 's'} in ${dir}`);
      return EXIT_FAILED;
    }
    const { set } = outcome;
    const roles = compiled.length === 0 ? '' : ` and ${compiled.length} grant role${compiled.length === 1 ? '' : 's'}`;
    io.out(`${set.policies.length} ${set.policies.length === 1 ? 'policy' : 'policies'} in ${set.files.length} file${set.files.length === 1 ? '' : 's'}${roles} OK; revision ${set.revision}`);
    return EXIT_OK;
  });
}

export async function runTest(opts: FolderOptions, io: PolicyCliIO): Promise<number> {
  return guard(io, async () => {
    const dir = await policyDir(opts);
    const engine = await PolicyEngine.open(dir, { compiled: await grantSources(opts.config) });
    const report = await runPolicyTests(engine);
    for (const e of report.fileErrors) io.err(`${e.file}${e.case !== undefined ? ` (case "${e.case}")` : ''}: ${e.message}`);
    for (const c of report.cases) {
      io.out(`${c.passed ? '✓' : '✗'} ${path.basename(c.file)}: ${c.name}`);
      for (const d of c.differences) io.out(`    ${d}`);
    }
    if (report.files.length === 0) io.err(`warning: no *.test.yaml files in ${dir}`);
    io.out(report.summary);
    return report.failed > 0 || report.fileErrors.length > 0 ? EXIT_FAILED : EXIT_OK;
  });
}

export async function runExplain(opts: ExplainOptions, io: PolicyCliIO): Promise<number> {
  return guard(io, async () => {
    const action = opts.action;
    if (action === undefined || !(JOB_ACTIONS as readonly string[]).includes(action)) {
      throw new UsageError(`--action must be one of ${JOB_ACTIONS.join(', ')}`);
    }
    if (opts.claims === undefined) throw new UsageError('--claims FILE.json (or - for stdin) is required');
    const claims = parseJsonObject(opts.claims === '-' ? await io.readStdin() : await readText(opts.claims), `--claims ${opts.claims}`);
    let built: ReturnType<typeof buildJobRequest>;
    try {
      const context = opts.context === undefined ? undefined : toCedarRecord(parseJsonObject(opts.context, '--context'), 'context');
      built = buildJobRequest(claimsWithDefaults(claims), {
        action: action as JobAction,
        ...(opts.credential !== undefined ? { credential: opts.credential } : {}),
        ...(opts.upstream !== undefined ? { upstream: opts.upstream } : {}),
        ...(context !== undefined ? { context } : {}),
        ...(opts.creator !== undefined ? { creator: parseCreator(opts.creator) } : {}),
      });
    } catch (err) {
      if (err instanceof UsageError) throw err;
      // Bad claims, resource or context values are mistakes in the command line too.
      throw new UsageError(err instanceof Error ? err.message : String(err));
    }
    const engine = await PolicyEngine.open(await policyDir(opts), { compiled: await grantSources(opts.config) });
    const result = explain(engine, built.request);
    io.out(opts.json === true ? JSON.stringify(result.decision, null, 2) : result.text);
    return EXIT_OK;
  });
}

export interface ShowOptions extends FolderOptions {
  compiled?: boolean;
}

export async function runShow(opts: ShowOptions, io: PolicyCliIO): Promise<number> {
  return guard(io, async () => {
    if (opts.compiled === true) {
      if (opts.config === undefined) throw new UsageError('--compiled prints the grants: section of a config: pass -c FILE');
      await policyDir(opts); // an unreadable or non-YAML config is a usage error, as for the other commands
      return showCompiledGrants(opts.config, await grantSources(opts.config), io);
    }
    return showPolicySet(await policyDir(opts), await grantSources(opts.config), io);
  });
}

/** Maps errors to exit codes: usage → 2, invalid policies → 1 with every problem listed. */
async function guard(io: PolicyCliIO, run: () => Promise<number>): Promise<number> {
  try {
    return await run();
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`port policy: ${err.message}`);
      return EXIT_USAGE;
    }
    if (err instanceof PolicyLoadError) {
      for (const p of err.problems) io.err(formatProblem(p));
      return EXIT_FAILED;
    }
    io.err(`port policy: ${err instanceof Error ? err.message : String(err)}`);
    return EXIT_FAILED;
  }
}

async function policyDir(opts: FolderOptions): Promise<string> {
  if (opts.policies !== undefined) return opts.policies;
  if (opts.config === undefined) return 'policies';
  let doc: unknown;
  try {
    doc = parseYaml(await readText(opts.config));
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`${opts.config}: invalid YAML: ${(err instanceof Error ? err.message : String(err)).split('\n')[0]}`);
  }
  const value = typeof doc === 'object' && doc !== null ? (doc as { policies?: unknown }).policies : undefined;
  if (value === undefined) return path.resolve(path.dirname(opts.config), 'policies');
  if (typeof value !== 'string' || value === '') throw new UsageError(`${opts.config}: policies: must be a folder path`);
  return path.resolve(path.dirname(opts.config), value);
}

async function readText(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    const code = err instanceof Error && 'code' in err ? String(err.code) : 'unreadable';
    throw new UsageError(`cannot read ${file} (${code})`);
  }
}

/** `--creator {"email": …, "groups": […], "active": true}`: groups default to none, active to true. */
function parseCreator(text: string): CreatorInfo {
  const o = parseJsonObject(text, '--creator');
  const groups = o.groups ?? [];
  if (typeof o.email !== 'string' || o.email === '') throw new UsageError('--creator needs "email", a string');
  if (!Array.isArray(groups) || !groups.every((g) => typeof g === 'string')) throw new UsageError('--creator "groups" must be a list of group names');
  if (o.active !== undefined && typeof o.active !== 'boolean') throw new UsageError('--creator "active" must be true or false');
  return { email: o.email, groups: groups as string[], active: o.active !== false };
}

function parseJsonObject(text: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new UsageError(`${what} is not valid JSON`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new UsageError(`${what} must be a JSON object`);
  return value as Record<string, unknown>;
}
