import { loadConfig, type PortConfig } from '../config/config.js';

/**
 * The config for commands that only read Port's state (`port audit …`, `port config
 * check`, and the admin commands, which read their own token): validated in full, but
 * secret references are not read, so an auditor's environment needs none of the
 * upstream, credential or SSO secrets. The store's own reference (`store.postgres`) is
 * read when the store opens.
 */
export function loadConfigForReading(file: string): PortConfig {
  return loadConfig(file, { resolveSecrets: false });
}
