/**
 * What `port demo` keeps in its folder, and starting clean. Only the files the demo
 * writes are ever removed (never the folder itself, which may be one the user chose).
 */
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';

/** Port's state: the store (SQLite and its WAL files) and the key that seals its signing keys. */
export const STATE_FILES = ['port.db', 'port.db-wal', 'port.db-shm', 'key-encryption-key'] as const;

/** Written afresh by every run: config, secrets, job environments, tokens the printed steps save. */
export const RUN_FILES = [
  'port.yaml',
  'admin-token',
  'npm-publish-token',
  'artifacts-api-key',
  'sso-client-secret',
  'buildkite-api-token',
  'buildkite-webhook-secret',
  'deploy-main.env',
  'deploy-feature.env',
  'deploy-acquired.env',
  'deploy-main.token',
  'aws-config',
  'bin/buildkite-agent',
] as const;

/**
 * Removes the previous run's files. With `keep`, Port's store and key stay (the decision
 * log, revocations and signing keys continue); the answer says which happened.
 */
export function resetDemoDir(dir: string, keep: boolean): 'fresh' | 'continued' {
  for (const f of RUN_FILES) rmSync(join(dir, f), { force: true });
  if (keep && existsSync(join(dir, 'port.db'))) return 'continued';
  for (const f of STATE_FILES) rmSync(join(dir, f), { force: true });
  return 'fresh';
}
