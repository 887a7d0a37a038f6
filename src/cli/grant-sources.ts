import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { compileGrants } from '../grants/compile.js';
import type { PolicyFile } from '../policy/loader.js';
import { loadConfigForReading } from './read-config.js';
import { UsageError } from './usage-error.js';

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
  // Unreadable or not YAML is a usage error, as it is for the folder lookup — which
  // `--policies DIR` skips, so ignoring it here would check the folder without the grants.
  let text: string;
  try {
    text = await readFile(configFile, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read ${configFile} (${err instanceof Error && 'code' in err ? String(err.code) : 'unreadable'})`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new UsageError(`${configFile}: invalid YAML: ${(err instanceof Error ? err.message : String(err)).split('\n')[0]}`);
  }
  if (typeof doc !== 'object' || doc === null || !('grants' in doc)) return [];
  return compileGrants(loadConfigForReading(configFile)).sources;
}
