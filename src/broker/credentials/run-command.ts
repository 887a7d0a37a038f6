import { commandRunner } from './command-runner.js';

/** Most a secret command or rotation hook may print; more is refused, not truncated. */
export const MAX_COMMAND_OUTPUT = 64 * 1024;

/** Why a command produced no usable output; never its output or stderr (they may hold the secret). */
export type CommandFailure = { kind: 'exit'; status: number | string } | { kind: 'timeout'; seconds: number } | { kind: 'too_large' } | { kind: 'spawn' } | { kind: 'runner' };

export type CommandResult = { ok: true; stdout: string } | { ok: false; failure: CommandFailure };

/** What a command sees of Port's environment without being told: enough to run a shell tool. */
export const BASE_COMMAND_ENV = ['PATH', 'HOME', 'LANG', 'LC_ALL', 'TZ', 'TMPDIR'] as const;

/** Set by Port for every command it runs: the credential the command is for. */
export const CREDENTIAL_ENV = 'PORT_CREDENTIAL';

/**
 * The environment of a secret command or rotation hook command: BASE_COMMAND_ENV, the
 * names the credential lists (`command_env`), and PORT_CREDENTIAL — never the rest of
 * Port's environment, which holds its admin, SCIM and Buildkite tokens, the key-encryption
 * key and AWS keys (a helper that logs its environment on error would leak them).
 */
export function commandEnvironment(credential: string, allowed: readonly string[], from: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of [...BASE_COMMAND_ENV, ...allowed]) {
    const value = from[name];
    if (value !== undefined) env[name] = value;
  }
  env[CREDENTIAL_ENV] = credential;
  return env;
}

/**
 * Runs `command` with `/bin/sh -c` in its own process group with exactly `env` as its
 * environment, `stdin` (or nothing) on its standard input, stdout captured up to
 * MAX_COMMAND_OUTPUT and stderr discarded. On timeout the whole group is killed so a
 * backgrounded child can't keep the secret's pipe open. The spawn happens in the command
 * runner (command-runner.ts), so Port's event loop doesn't stop while it forks.
 */
export async function runCommand(command: string, opts: { timeoutSeconds: number; env: Record<string, string>; stdin?: string }): Promise<CommandResult> {
  const outcome = await commandRunner.run({
    command,
    env: opts.env,
    ...(opts.stdin !== undefined ? { stdin: opts.stdin } : {}),
    timeoutMs: opts.timeoutSeconds * 1000,
    maxOutput: MAX_COMMAND_OUTPUT,
  });
  if (outcome.kind === 'runner_stopped') return { ok: false, failure: { kind: 'runner' } };
  const a = outcome.answer;
  if (a.spawnFailed) return { ok: false, failure: { kind: 'spawn' } };
  if (a.timedOut) return { ok: false, failure: { kind: 'timeout', seconds: opts.timeoutSeconds } };
  if (a.truncated) return { ok: false, failure: { kind: 'too_large' } };
  if (a.exitCode !== 0 || a.stdout === undefined) return { ok: false, failure: { kind: 'exit', status: a.exitCode ?? a.signal ?? 'unknown' } };
  return { ok: true, stdout: a.stdout };
}

/** One sentence for a failure: the exit status or the timeout, nothing the command printed. */
export function describeFailure(f: CommandFailure): string {
  switch (f.kind) {
    case 'exit':
      return `exited with status ${f.status}`;
    case 'timeout':
      return `did not finish within ${f.seconds} s`;
    case 'too_large':
      return `printed more than ${MAX_COMMAND_OUTPUT / 1024} KiB`;
    case 'spawn':
      return 'could not be started';
    case 'runner':
      return "was cut short: Port's command runner stopped";
  }
}

/** A value as printed: one trailing newline is how shells end output, not part of the value. */
export function dropTrailingNewline(text: string): string {
  return text.replace(/\r?\n$/, '');
}
