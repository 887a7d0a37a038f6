import { z } from 'zod';
import { formatDuration } from './duration.js';
import { formatSize } from './size.js';
import { valueHint, type ValueHint } from './schema.js';

/**
 * Reads the config schema as data: what a key accepts, its default, description and
 * examples. The error messages and the configuration reference are both made from it.
 */

/** A key's schema with its wrappers (default, optional, transforms) looked through. */
export interface KeyInfo {
  /** The innermost schema: object, record, array, union, string, number, boolean, enum, literal. */
  core: z.ZodType;
  description?: string;
  examples?: unknown[];
  required: boolean;
  /** The default as a user would write it (durations as `15m`, sizes as `16KiB`). */
  default?: unknown;
  hasDefault: boolean;
  hint?: ValueHint;
}

type Def = { type: string; [key: string]: unknown };

function defOf(schema: z.ZodType): Def {
  return schema._zod.def as unknown as Def;
}

export function keyInfo(schema: z.ZodType): KeyInfo {
  let node = schema;
  let description: string | undefined;
  let examples: unknown[] | undefined;
  let hint: ValueHint | undefined;
  let required = true;
  let hasDefault = false;
  let rawDefault: unknown;
  for (let i = 0; i < 10; i++) {
    const meta = z.globalRegistry.get(node);
    description ??= typeof meta?.description === 'string' ? meta.description : undefined;
    examples ??= Array.isArray(meta?.examples) ? (meta.examples as unknown[]) : undefined;
    hint ??= valueHint(node);
    const def = defOf(node);
    if (def.type === 'default') {
      hasDefault = true;
      required = false;
      rawDefault = def.defaultValue;
      node = def.innerType as z.ZodType;
    } else if (def.type === 'optional') {
      required = false;
      node = def.innerType as z.ZodType;
    } else if (def.type === 'pipe') {
      node = def.in as z.ZodType;
    } else break;
  }
  const info: KeyInfo = { core: node, required, hasDefault };
  if (description !== undefined) info.description = description;
  if (examples !== undefined) info.examples = examples;
  if (hint !== undefined) info.hint = hint;
  if (hasDefault) info.default = userValue(rawDefault, hint);
  return info;
}

/** A parsed default back in the form a user writes it. */
function userValue(value: unknown, hint: ValueHint | undefined): unknown {
  if (typeof value === 'number' && hint?.kind === 'duration') return formatDuration(value);
  if (typeof value === 'number' && hint?.kind === 'size') return formatSize(value);
  return value;
}

export function kindOf(schema: z.ZodType): string {
  return defOf(schema).type;
}

/** An object schema's keys and their schemas. */
export function shapeOf(schema: z.ZodType): Record<string, z.ZodType> | undefined {
  const def = defOf(schema);
  return def.type === 'object' ? (def.shape as Record<string, z.ZodType>) : undefined;
}

export function unionOptions(schema: z.ZodType): z.ZodType[] {
  const def = defOf(schema);
  return def.type === 'union' ? (def.options as z.ZodType[]) : [];
}

export function discriminatorOf(schema: z.ZodType): string | undefined {
  const d = defOf(schema).discriminator;
  return typeof d === 'string' ? d : undefined;
}

export function recordParts(schema: z.ZodType): { key: z.ZodType; value: z.ZodType } | undefined {
  const def = defOf(schema);
  return def.type === 'record' ? { key: def.keyType as z.ZodType, value: def.valueType as z.ZodType } : undefined;
}

export function arrayElement(schema: z.ZodType): z.ZodType | undefined {
  const def = defOf(schema);
  return def.type === 'array' ? (def.element as z.ZodType) : undefined;
}

function enumValues(schema: z.ZodType): string[] | undefined {
  const def = defOf(schema);
  if (def.type === 'enum') return Object.values(def.entries as Record<string, string>);
  if (def.type === 'literal') return (def.values as unknown[]).map(String);
  return undefined;
}

/** The literal value of a discriminated union option's discriminator. */
export function literalOf(option: z.ZodType, key: string): string | undefined {
  const field = shapeOf(keyInfo(option).core)?.[key];
  return field ? enumValues(keyInfo(field).core)?.[0] : undefined;
}

/** The key that tells a plain union's object options apart: the first key of each. */
export function leadingKey(option: z.ZodType): string | undefined {
  const shape = shapeOf(keyInfo(option).core);
  return shape ? Object.keys(shape)[0] : undefined;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** The union option an input is meant for: by discriminator value, or by which leading key it has. */
export function chooseOption(union: z.ZodType, input: unknown, nextSegment?: string): z.ZodType | undefined {
  const options = unionOptions(union);
  const disc = discriminatorOf(union);
  if (disc !== undefined) return isObject(input) ? options.find((o) => literalOf(o, disc) === input[disc]) : undefined;
  if (nextSegment !== undefined) {
    const bySegment = options.find((o) => shapeOf(keyInfo(o).core)?.[nextSegment] !== undefined);
    if (bySegment) return bySegment;
  }
  if (isObject(input)) {
    const matching = options.filter((o) => {
      const k = leadingKey(o);
      return k !== undefined && k in input;
    });
    if (matching.length === 1) return matching[0];
  }
  return undefined;
}

/** The schema at `path` below `root` (walking the input alongside to pick union options). */
export function schemaAt(root: z.ZodType, path: readonly PropertyKey[], input: unknown): z.ZodType | undefined {
  let node: z.ZodType | undefined = root;
  let value = input;
  for (const segment of path) {
    if (node === undefined) return undefined;
    node = childOf(node, String(segment), value);
    value = isObject(value) || Array.isArray(value) ? (value as Record<string, unknown>)[String(segment)] : undefined;
  }
  return node;
}

function childOf(node: z.ZodType, segment: string, input: unknown): z.ZodType | undefined {
  let core = keyInfo(node).core;
  if (kindOf(core) === 'union' && shapeOf(keyInfo(unionOptions(core)[0] ?? core).core)) {
    const option = chooseOption(core, input, segment);
    if (!option) return undefined;
    core = keyInfo(option).core;
  }
  const shape = shapeOf(core);
  if (shape) return shape[segment];
  const record = recordParts(core);
  if (record) return record.value;
  return arrayElement(core);
}

/** The phrase after "expected" for a key, e.g. "a whole number from 1024 to 1048576". */
export function expectation(schema: z.ZodType): string {
  const info = keyInfo(schema);
  const h = info.hint;
  if (h?.kind === 'duration') {
    const bounds = h.min !== undefined && h.max !== undefined ? ` from ${formatDuration(h.min)} to ${formatDuration(h.max)}` : h.max !== undefined ? ` of at most ${formatDuration(h.max)}` : '';
    return `a duration${bounds} such as 90s, 15m, 12h or 30d (or a whole number of seconds)`;
  }
  if (h?.kind === 'size') return `a size${h.max !== undefined ? ` of at most ${formatSize(h.max)}` : ''} such as 512KiB, 64MiB or 1GiB (or a whole number of bytes)`;
  if (h?.expects !== undefined) return h.expects;
  const core = info.core;
  const values = enumValues(core);
  if (values) return values.length === 1 ? `"${values[0]}"` : `one of ${orList(values)}`;
  switch (kindOf(core)) {
    case 'string': {
      const format = (core as unknown as { format?: string | null }).format;
      if (format === 'uuid') return 'a UUID';
      if (format === 'url') return 'a URL';
      return 'a string';
    }
    case 'number': {
      const n = core as unknown as { minValue: number | null; maxValue: number | null; isInt: boolean };
      const what = n.isInt ? 'a whole number' : 'a number';
      const lo = n.minValue !== null && Number.isFinite(n.minValue) && Math.abs(n.minValue) < Number.MAX_SAFE_INTEGER ? n.minValue : undefined;
      const hi = n.maxValue !== null && Number.isFinite(n.maxValue) && Math.abs(n.maxValue) < Number.MAX_SAFE_INTEGER ? n.maxValue : undefined;
      if (lo !== undefined && hi !== undefined) return `${what} from ${lo} to ${hi}`;
      if (lo !== undefined) return `${what} of at least ${lo}`;
      if (hi !== undefined) return `${what} of at most ${hi}`;
      return what;
    }
    case 'boolean':
      return 'true or false';
    case 'array': {
      const min = minItems(core);
      const element = arrayElement(core)!;
      const elementKind = kindOf(keyInfo(element).core);
      const each = elementKind === 'object' || elementKind === 'union' ? '' : `, each ${expectation(element)}`;
      return `a list${min ? ` of at least ${min} item${min === 1 ? '' : 's'}` : ''}${each}`;
    }
    case 'record':
      return 'a map of names to their settings';
    case 'object': {
      const keys = Object.keys(shapeOf(core)!);
      return `a map with the keys ${orList(keys.length > 8 ? [...keys.slice(0, 8), '…'] : keys, 'and')}`;
    }
    case 'union': {
      const disc = discriminatorOf(core);
      const options = unionOptions(core);
      if (disc !== undefined) return `a map with ${disc}: ${orList(options.map((o) => literalOf(o, disc) ?? '?'))}`;
      const leading = options.map(leadingKey);
      if (leading.every((k) => k !== undefined)) return `a map with exactly one of the keys ${orList(leading as string[])}`;
      return orList(options.map((o) => expectation(o)));
    }
    default:
      return 'a valid value';
  }
}

function minItems(schema: z.ZodType): number | undefined {
  const checks = (defOf(schema).checks as { _zod: { def: { check: string; minimum?: number } } }[] | undefined) ?? [];
  const min = checks.find((c) => c._zod.def.check === 'min_length')?._zod.def.minimum;
  return typeof min === 'number' && min > 0 ? min : undefined;
}

export function orList(items: readonly string[], conjunction: 'or' | 'and' = 'or'): string {
  if (items.length <= 1) return items.join('');
  if (items.at(-1) === '…') return `${items.slice(0, -1).join(', ')}, …`;
  return `${items.slice(0, -1).join(', ')} ${conjunction} ${items.at(-1)}`;
}

/** An example value written inline as YAML flow, e.g. `{bearer: env:NPM_TOKEN}`. */
export function inlineYaml(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(inlineYaml).join(', ')}]`;
  if (isObject(value)) return `{${Object.entries(value).map(([k, v]) => `${k}: ${inlineYaml(v)}`).join(', ')}}`;
  if (typeof value === 'string') return /^[\w./:@*${}+=~-][\w ./:@*${}+=~,-]*$/.test(value) && !/: |,/.test(value) ? value : JSON.stringify(value);
  return String(value);
}
