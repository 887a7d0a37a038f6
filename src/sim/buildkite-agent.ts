/**
 * A `buildkite-agent` stand-in that behaves like the real CLI for what Port's jobs run
 * (https://buildkite.com/docs/agent/v3/cli-oidc): `oidc request-token` and `redactor add`. Tests and the demo put a
 * directory holding the shim from `writeBuildkiteAgentShim` on PATH, set the job's env
 * (`BuildkiteSimulator.jobEnv`), and run hooks unchanged.
 */
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SIM_AGENT_VERSION } from './agent-api-client.js';
import { oidcRequestToken } from './agent-cmd-oidc.js';
import { redactorAdd } from './agent-cmd-redactor.js';
import { CommandError } from './agent-command-error.js';
import { FlagError } from './agent-flags.js';
import { processIo, type AgentIo } from './agent-io.js';

const APP_HELP = `Usage:

  buildkite-agent <command> [options...]

Available commands are (simulator):

  oidc request-token\tRequests and prints an OIDC token from Buildkite with the specified audience
  redactor add\tAdd values to redact from a job's log output

Use "buildkite-agent <command> --help" for more information about a command.
`;

/**
 * Runs the CLI. `args` are the arguments after the program name (`process.argv.slice(2)`);
 * resolves to the exit status. Writes only through `io` (the process's by default).
 */
export async function main(args: readonly string[], io: Partial<AgentIo> = {}): Promise<number> {
  const full: AgentIo = { ...processIo(), ...io };
  const [command, sub, ...rest] = args;
  try {
    if (command === '--version' || command === '-v' || command === 'version') {
      full.stdout(`buildkite-agent version ${SIM_AGENT_VERSION}\n`);
      return 0;
    }
    if (command === 'oidc' && sub === 'request-token') return await oidcRequestToken(rest, full);
    if (command === 'redactor' && sub === 'add') return await redactorAdd(rest, full);
    full.stdout(APP_HELP);
    if (command !== undefined && command !== '--help' && command !== '-h' && command !== 'help') {
      full.stderr(`buildkite-agent (simulator): "${[command, sub].filter((s) => s !== undefined).join(' ')}" is not simulated\n`);
      return 1;
    }
    return command === undefined ? 1 : 0;
  } catch (err) {
    if (err instanceof FlagError) {
      full.stderr(`Incorrect Usage: ${err.message}\n\nfatal: ${err.message}\n`);
      return 1;
    }
    if (err instanceof CommandError) {
      full.stderr(`fatal: ${err.message}\n`);
      return err.exitCode;
    }
    full.stderr(`fatal: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}

/**
 * The compiled CLI entry point. Computed from this module's location so it works both from
 * `dist/sim/` and, under vitest, from `src/sim/` (both are two levels below the package root).
 */
export function compiledAgentCliPath(): string {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
  return join(root, 'dist', 'sim', 'buildkite-agent-cli.js');
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * Writes an executable `buildkite-agent` into `dir` (created if needed) that runs the compiled
 * stand-in with this Node binary, and returns its path. Needs `dist/` (run `tsc` first).
 */
export function writeBuildkiteAgentShim(dir: string): string {
  const cli = compiledAgentCliPath();
  if (!existsSync(cli)) {
    throw new Error(`compiled buildkite-agent stand-in not found at ${cli}; run \`npm run build\` first`);
  }
  mkdirSync(dir, { recursive: true });
  const path = join(dir, 'buildkite-agent');
  const script = [
    '#!/bin/sh',
    "# buildkite-agent stand-in from Port's Buildkite simulator (src/sim/buildkite-agent.ts).",
    `exec ${shellQuote(process.execPath)} ${shellQuote(cli)} "$@"`,
    '',
  ].join('\n');
  writeFileSync(path, script, { mode: 0o755 });
  chmodSync(path, 0o755);
  return path;
}
