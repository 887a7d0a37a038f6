import { existsSync, realpathSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { UsageError } from './usage-error.js';

/**
 * Where `port agent attest` keeps the host's DPoP key: `--key`, else `$PORT_HOST_KEY`, else
 * `${XDG_STATE_HOME:-$HOME/.local/state}/port/host-key.jwk` — state that outlives jobs and
 * belongs to the agent's user (XDG Base Directory Specification, `XDG_STATE_HOME`).
 */
export function hostKeyPath(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  if (flag !== undefined && flag !== '') return resolve(flag);
  if (env.PORT_HOST_KEY) return resolve(env.PORT_HOST_KEY);
  // The specification ignores a relative XDG_STATE_HOME.
  const state = env.XDG_STATE_HOME && isAbsolute(env.XDG_STATE_HOME) ? env.XDG_STATE_HOME : env.HOME ? join(env.HOME, '.local', 'state') : undefined;
  if (state === undefined) throw new UsageError('no place for the host key: HOME is not set; give --key PATH or $PORT_HOST_KEY');
  return join(state, 'port', 'host-key.jwk');
}

/**
 * Refuses a key path inside the job's checkout or the agent's build directory: whatever
 * is there is the job's to read, upload as an artifact, commit, or `git clean` away, and
 * the next job's checkout may hold a key an attacker put there. Symbolic links are
 * resolved on both sides, so a link out of (or into) the checkout doesn't hide where the
 * key lives.
 */
export function refuseKeyInBuildDirs(path: string, env: NodeJS.ProcessEnv = process.env): void {
  const key = realish(path);
  for (const name of ['BUILDKITE_BUILD_CHECKOUT_PATH', 'BUILDKITE_BUILD_PATH'] as const) {
    const dir = env[name];
    if (!dir) continue;
    const rel = relative(realish(resolve(dir)), key);
    // Outside is `..` or `../…` only: `..port/key` is a directory of `dir` whose name starts with two dots.
    const outside = rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel);
    if (!outside) {
      throw new UsageError(`the host key ${path} is inside ${name} (${dir}), where jobs can read or replace it; keep it outside, e.g. in $XDG_STATE_HOME/port or $HOME/.local/state/port`);
    }
  }
}

/** The real path of `p`, or of its deepest existing ancestor with the rest appended. */
function realish(p: string): string {
  const abs = resolve(p);
  if (existsSync(abs)) return realpathSync(abs);
  const parent = dirname(abs);
  return parent === abs ? abs : join(realish(parent), basename(abs));
}
