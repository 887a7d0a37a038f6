import { refuseKeyInBuildDirs } from './host-key-path.js';

/**
 * The host key file of `--dpop-key`, else `$PORT_DPOP_KEY`, else none; refused (UsageError)
 * inside the job's checkout or build directory, where the job's files — artifacts, caches,
 * the next checkout — could carry it off or replace it.
 */
export function dpopKeyFrom(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const path = flag !== undefined && flag !== '' ? flag : env.PORT_DPOP_KEY || undefined;
  if (path === undefined) return undefined;
  refuseKeyInBuildDirs(path, env);
  return path;
}
