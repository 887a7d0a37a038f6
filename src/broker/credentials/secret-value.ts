import type { SecretCredentialConfig } from '../../config/config.js';
import { resolveSecretRef } from '../../config/secret-ref.js';
import { ConfigError } from '../../errors.js';
import { CommandSlots } from './command-slots.js';
import { CredentialError } from './errors.js';
import { commandEnvironment, describeFailure, dropTrailingNewline, runCommand } from './run-command.js';

/** How long a release waits for one of the credential's command slots before 503 "busy". */
export const COMMAND_SLOT_WAIT_MS = 2_000;
/** Releases that may wait in line per credential; beyond that, 503 "busy" at once. */
export const MAX_WAITING_RELEASES = 32;

/** One `command:` credential's running commands and cached output. */
interface CommandState {
  slots: CommandSlots;
  /** The last output and when it stops being served (ms); only with `cache_for`. */
  cached?: { value: string; until: number };
  /** The run every concurrent release shares while it runs; only with `cache_for`. */
  inflight?: Promise<string>;
}

/**
 * The configured value of a secret credential (`value: env:NAME | file:PATH | command:CMD`).
 * env: and file: are read on each release, so a changed file applies at once. A command
 * runs on each release too, unless `cache_for` lets its last output be reused (held in
 * this process's memory only, never written anywhere); at most `command_concurrency` run
 * at once per credential, others wait briefly, then get 503 "busy". Failures name the
 * credential and what went wrong, never the value or the command's output.
 */
export class SecretValues {
  private readonly commands = new Map<string, CommandState>();

  async resolve(cred: SecretCredentialConfig, now = Date.now()): Promise<string> {
    const ref = cred.value.ref;
    if (ref.startsWith('command:')) return this.fromCommand(cred, ref.slice('command:'.length).trim(), now);
    try {
      // env: and file: (trailing newline dropped) — the same rules as every secret reference.
      const value = resolveSecretRef(ref, cred.value.key, cred.value.baseDir);
      if (value === '') throw unavailable(cred.name, `${cred.value.key} is empty`);
      return value;
    } catch (err) {
      if (err instanceof ConfigError) throw unavailable(cred.name, err.message.replace(/\.$/, ''), err);
      throw err;
    }
  }

  private async fromCommand(cred: SecretCredentialConfig, command: string, now: number): Promise<string> {
    let state = this.commands.get(cred.name);
    if (state === undefined) {
      state = { slots: new CommandSlots(cred.commandConcurrency, MAX_WAITING_RELEASES) };
      this.commands.set(cred.name, state);
    }
    if (cred.cacheFor <= 0) return this.run(cred, command, state);
    if (state.cached !== undefined && state.cached.until > now) return state.cached.value;
    // With a cache the output is shared anyway: one run serves every release that asks meanwhile.
    if (state.inflight !== undefined) return state.inflight;
    const s = state;
    const run = this.run(cred, command, s)
      .then((value) => {
        s.cached = { value, until: Date.now() + cred.cacheFor * 1000 };
        return value;
      })
      .finally(() => (s.inflight = undefined));
    s.inflight = run;
    return run;
  }

  private async run(cred: SecretCredentialConfig, command: string, state: CommandState): Promise<string> {
    if (!(await state.slots.acquire(COMMAND_SLOT_WAIT_MS))) {
      throw unavailable(cred.name, `its command is already running ${cred.commandConcurrency} times (credentials.${cred.name}.command_concurrency); busy, retry in a few seconds`);
    }
    try {
      const result = await runCommand(command, { timeoutSeconds: cred.commandTimeout, env: commandEnvironment(cred.name, cred.commandEnv) });
      if (!result.ok) throw unavailable(cred.name, `its command ${describeFailure(result.failure)}`);
      const value = dropTrailingNewline(result.stdout);
      if (value === '') throw unavailable(cred.name, 'its command printed nothing');
      return value;
    } finally {
      state.slots.release();
    }
  }
}

function unavailable(name: string, why: string, cause?: unknown): CredentialError {
  return new CredentialError('credential_unavailable', `The secret "${name}" is not available: ${why}.`, cause === undefined ? undefined : { cause });
}
