import { z } from 'zod';
import { DURATION_PATTERN, SIZE_PATTERN, configSchema, valueHint } from './schema.js';
import { keyInfo } from './schema-walk.js';

type JsonSchema = Record<string, unknown>;

/**
 * The JSON Schema (draft 2020-12) of what a person writes in port.yaml: durations as `15m`
 * or seconds, sizes as `64MiB` or bytes, secrets as references. Editors use it for
 * completion and checks, e.g. with yaml-language-server's modeline
 * `# yaml-language-server: $schema=./port.schema.json`
 * (https://github.com/redhat-developer/yaml-language-server#using-inlined-schema).
 * `port config schema` prints it.
 */
export function configJsonSchema(): JsonSchema {
  const schema = z.toJSONSchema(configSchema, {
    target: 'draft-2020-12',
    io: 'input',
    unrepresentable: 'any',
    override: ({ zodSchema, jsonSchema }) => {
      const node = zodSchema as unknown as z.ZodType;
      const kind = valueHint(node)?.kind;
      if (kind === 'duration' || kind === 'size') {
        // A transform: zod sees only `string | number`; say which strings and numbers.
        const h = valueHint(node)!;
        for (const k of Object.keys(jsonSchema)) if (k !== 'description' && k !== 'default' && k !== 'examples') delete (jsonSchema as JsonSchema)[k];
        const integer: JsonSchema = { type: 'integer', minimum: h.min ?? 0, ...(h.max !== undefined ? { maximum: h.max } : {}) };
        Object.assign(jsonSchema, {
          anyOf: [{ type: 'string', pattern: kind === 'duration' ? DURATION_PATTERN : SIZE_PATTERN }, integer],
        });
      }
      // zod's `format: uri` allows any scheme; Port takes http(s) only.
      if (kind === 'http_url') (jsonSchema as JsonSchema).pattern = '^[Hh][Tt][Tt][Pp][Ss]?://';
      if ((node._zod.def as { type: string }).type === 'default') {
        // zod drops defaults it can't express as input (a parsed duration); write the input form.
        const value = keyInfo(node).default;
        if (value !== undefined) (jsonSchema as JsonSchema).default = value;
      }
    },
  }) as JsonSchema;
  return {
    $schema: schema.$schema,
    title: 'port.yaml',
    description: 'Configuration of Port, the identity-aware access broker and policy relay for Buildkite CI. Reference: docs/reference/configuration.md.',
    ...Object.fromEntries(Object.entries(schema).filter(([k]) => k !== '$schema')),
  };
}
