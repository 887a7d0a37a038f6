/**
 * `port init --org SLUG [--dir DIR] [--force]`: writes a starter configuration and policy
 * folder (init-templates.ts) and prints the next steps as commands to paste. Existing
 * files are never overwritten without --force (exit 2, naming them).
 */
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { EXIT_OK, EXIT_USAGE } from './exit-codes.js';
import { STARTER_SECRETS, starterFiles } from './init-templates.js';
import { UsageError } from './usage-error.js';

export interface InitOptions {
  org?: string;
  dir?: string;
  force?: boolean;
  publicUrl?: string;
  listen?: string;
}

/** Where the command writes; tests pass their own. */
export interface InitIO {
  out(text: string): void;
  err(text: string): void;
}

const processIO: InitIO = {
  out: (text) => void process.stdout.write(`${text}\n`),
  err: (text) => void process.stderr.write(`${text}\n`),
};

/** Buildkite organization slugs: lower-case letters, digits and dashes (as in buildkite.com/<slug>). */
const SLUG = /^[a-z0-9][a-z0-9-]{0,99}$/;
const LISTEN = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;

export function registerInitCommand(program: Command, io: InitIO = processIO): void {
  program
    .command('init')
    .description('write a starter port.yaml and policies/ for your Buildkite organization')
    .option('--org <slug>', 'your Buildkite organization slug, as in https://buildkite.com/<slug> (required)')
    .option('--dir <dir>', 'the folder to write into', '.')
    .option('--public-url <url>', 'the URL jobs reach Port at (server.public_url)', 'http://127.0.0.1:8080')
    .option('--listen <host:port>', 'the address Port listens on (server.listen)', '127.0.0.1:8080')
    .option('--force', 'overwrite files that already exist')
    .addHelpText(
      'after',
      `
Writes DIR/port.yaml and DIR/policies/ (exchange.cedar, credentials.cedar,
upstreams.cedar and policies.test.yaml), then prints the next steps. The files pass
\`port config check\` and \`port policy test\` as written once the secrets they name are set.

Example:
  port init --org acme --dir /etc/port`,
    )
    .action((opts: InitOptions) => {
      process.exitCode = runInit(opts, io);
    });
}

export function runInit(opts: InitOptions, io: InitIO): number {
  let plan: { dir: string; files: { file: string; shown: string; text: string }[] };
  try {
    plan = planInit(opts);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.err(`port init: ${err.message}`);
    return EXIT_USAGE;
  }
  const strayPolicies = otherPolicyFiles(plan.dir, plan.files.map((f) => f.file));
  try {
    for (const f of plan.files) {
      mkdirSync(path.dirname(f.file), { recursive: true });
      // Without --force, 'wx' refuses a file created since the check above.
      writeFileSync(f.file, f.text, { flag: opts.force === true ? 'w' : 'wx' });
    }
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const isFile = plan.files.some((f) => f.file === e.path);
    const hint = e.code === 'EEXIST' ? (isFile ? '; pass --force to overwrite it' : '; it is a file, not a folder: choose another --dir') : '';
    io.err(`port init: cannot write ${e.path ?? plan.dir} (${e.code ?? 'error'})${hint}`);
    // The folder the user named can't take the files (EEXIST, EACCES, ENOTDIR): theirs to fix.
    return EXIT_USAGE;
  }
  io.out(nextSteps(opts.org!, plan, strayPolicies));
  return EXIT_OK;
}

function planInit(opts: InitOptions): { dir: string; files: { file: string; shown: string; text: string }[] } {
  const org = opts.org;
  if (org === undefined || org === '') {
    throw new UsageError('--org SLUG is required: your Buildkite organization slug, as in https://buildkite.com/<slug> (e.g. port init --org acme)');
  }
  if (!SLUG.test(org)) {
    throw new UsageError(`--org "${org.slice(0, 64)}" is not a Buildkite organization slug; write the lower-case slug from https://buildkite.com/<slug>, e.g. acme or my-company`);
  }
  const publicUrl = (opts.publicUrl ?? 'http://127.0.0.1:8080').replace(/\/+$/, '');
  if (!isHttpUrl(publicUrl)) throw new UsageError(`--public-url "${publicUrl.slice(0, 64)}" is not an http(s) URL; write e.g. https://port.example.com`);
  const listen = opts.listen ?? '127.0.0.1:8080';
  const m = LISTEN.exec(listen);
  if (m === null || Number(m[2]) > 65535) throw new UsageError(`--listen "${listen.slice(0, 64)}" is not HOST:PORT; write e.g. 127.0.0.1:8080 or 0.0.0.0:8080`);
  const dir = opts.dir ?? '.';
  const files = starterFiles({ organization: org, publicUrl, listen }).map((f) => ({
    file: path.join(dir, ...f.path.split('/')),
    shown: path.join(dir, ...f.path.split('/')),
    text: f.text,
  }));
  if (opts.force !== true) {
    const existing = files.filter((f) => existsSync(f.file)).map((f) => f.shown);
    if (existing.length > 0) {
      throw new UsageError(`${existing.join(', ')} already exist${existing.length === 1 ? 's' : ''}; pass --force to overwrite, or --dir to write elsewhere`);
    }
  }
  return { dir, files };
}

/** Other *.cedar files already in the policy folder: they join the starter set. */
function otherPolicyFiles(dir: string, written: string[]): string[] {
  const policies = path.join(dir, 'policies');
  try {
    return readdirSync(policies)
      .filter((n) => n.endsWith('.cedar') && !n.startsWith('.'))
      .map((n) => path.join(policies, n))
      .filter((f) => !written.includes(f));
  } catch {
    return [];
  }
}

function nextSteps(org: string, plan: { dir: string; files: { shown: string }[] }, strayPolicies: string[]): string {
  const config = shellQuote(path.join(plan.dir, 'port.yaml'));
  const lines = [
    `Wrote a starter configuration for the Buildkite organization ${org}:`,
    ...plan.files.map((f) => `  ${f.shown}`),
  ];
  if (strayPolicies.length > 0) {
    lines.push('', `Note: ${strayPolicies.join(', ')} ${strayPolicies.length === 1 ? 'was' : 'were'} already there and ${strayPolicies.length === 1 ? 'is' : 'are'} part of the policy set too.`);
  }
  lines.push(
    '',
    'Next steps:',
    '',
    '1. Create the secrets port.yaml refers to (once; keep them in your secret manager):',
    ...STARTER_SECRETS.map((s) => `     export ${s.name}="$(openssl rand -hex 32)"`),
    ...STARTER_SECRETS.map((s) => `   ${s.name}: ${s.what}.`),
    '',
    '2. Check the configuration and the policies together, then run the policy tests:',
    `     port config check -c ${config}`,
    `     port policy test -c ${config}`,
    '',
    "3. Start Port (the first start creates its database, with --create-store):",
    `     port serve -c ${config} --create-store`,
    '',
    `4. Set server.public_url in ${config} to the URL your agents reach Port at, and write the`,
    '   policies for your pipelines; run step 2 after each change.',
  );
  return lines.join('\n');
}

function isHttpUrl(value: string): boolean {
  try {
    const u = new URL(value);
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== '';
  } catch {
    return false;
  }
}

/** A path as one shell word: bare when it is plain, else in single quotes. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_./:@%+=,-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}
