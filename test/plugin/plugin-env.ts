/**
 * A step's plugin configuration → the environment the Buildkite agent gives the plugin's
 * hooks, as `buildkite/agent:agent/plugin/plugin.go` computes it
 * (https://buildkite.com/docs/pipelines/integrations/plugins/writing):
 * `BUILDKITE_PLUGIN_<NAME>_<OPTION>` with keys upper-cased and `-`/whitespace → `_`,
 * lists as `_0`, `_1`…, maps as `_<KEY>`, scalars as Go's `%v` prints them (`true`,
 * `false`, numbers as written), `null` refused; names with `__` also under their
 * collapsed form (the agent's deprecated-name fan-out); plus `BUILDKITE_PLUGIN_NAME`,
 * `BUILDKITE_PLUGIN_CONFIGURATION` (the config as JSON, map keys sorted as Go's
 * encoding/json writes them) and the step's `BUILDKITE_PLUGINS`.
 */

export type PluginConfig = { [key: string]: PluginValue };
export type PluginValue = string | number | boolean | PluginValue[] | PluginConfig | null;

/** `Plugin.Name()`: the last path segment, lower-cased, `-buildkite-plugin` stripped. */
export function pluginName(location: string): string {
  const path = location.split('#')[0]!.replace(/\\/g, '/');
  const last = path.split('/').pop() ?? '';
  return last
    .toLowerCase()
    .replace(/\s+/g, ' ')
    .replace(/[^a-zA-Z0-9]/g, '-')
    .replace(/-buildkite-plugin-git/g, '')
    .replace(/-buildkite-plugin/g, '');
}

function formatEnvKey(key: string): string {
  // Go's `-|\s` (RE2 \s = [\t\n\f\r ]).
  return key.toUpperCase().replace(/-|[\t\n\f\r ]/g, '_');
}

function walk(prefix: string, value: PluginValue, into: Array<[string, string]>): void {
  if (value === null) throw new Error(`the agent refuses a null plugin option (${prefix}): Unknown type <nil>`);
  if (typeof value === 'string' || typeof value === 'boolean' || typeof value === 'number') {
    into.push([prefix, String(value)]);
  } else if (Array.isArray(value)) {
    value.forEach((v, i) => walk(`${prefix}_${i}`, v, into));
  } else {
    for (const [k, v] of Object.entries(value)) walk(`${prefix}_${formatEnvKey(k)}`, v, into);
  }
}

function sortedJson(value: PluginValue): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(sortedJson).join(',')}]`;
  const keys = Object.keys(value).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${sortedJson(value[k]!)}`).join(',')}}`;
}

/** The variables the agent sets for one plugin's hooks. */
export function pluginEnvironment(location: string, config: PluginConfig): Record<string, string> {
  const name = formatEnvKey(pluginName(location));
  const pairs: Array<[string, string]> = [
    ['BUILDKITE_PLUGIN_NAME', name],
    ['BUILDKITE_PLUGIN_CONFIGURATION', sortedJson(config)],
  ];
  for (const [k, v] of Object.entries(config)) walk(`BUILDKITE_PLUGIN_${name}_${formatEnvKey(k)}`, v, pairs);
  const env: Record<string, string> = {};
  for (const [k, v] of pairs) {
    env[k] = v;
    const collapsed = k.replace(/_+/g, '_');
    if (collapsed !== k) env[collapsed] = v;
  }
  env.BUILDKITE_PLUGINS = JSON.stringify([{ [location]: config }]);
  return env;
}
