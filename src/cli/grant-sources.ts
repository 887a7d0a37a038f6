import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { compileGrants } from '../grants/compile.js';
import type { PolicyFile } from '../policy/loader.js';
import { loadConfigForReading } from './read-config.js';

/**
 * The policies the `grants:` section of `configFile` compiles to (src/grants), for the
 * policy commands: none without a config, and none when it has no `grants:` key — then
 * only `policies:` is read, as before grants existed, so the commands still work on a
 * config that does not load in full. With `grants:`, the config is loaded (without
 * reading secrets) because grants are checked against its credentials, upstreams, pools
 * and autoscalers; a ConfigError (GrantsError) names what is wrong.
 */
export async function grantSources(configFile: string | undefined): Promise<PolicyFile[]> {
  if (configFile === undefined) return [];
  let doc: unknown;
  try {
    doc = parseYaml(await readFile(configFile, 'utf8'));
  } catch {
    // Unreadable or not YAML: the policy folder lookup reports it.
    return [];
  }
  if (typeof doc !== 'object' || doc === null || !('grants' in doc)) return [];
  return compileGrants(loadConfigForReading(configFile)).sources;
}
