/**
 * Flag parsing the way the real `buildkite-agent` (urfave/cli v1 over Go's `flag`
 * package) does it: `-name` or `--name`, `=value` or a separate argument, bool flags
 * without a value, parsing stops at the first positional argument or `--`; values
 * fall back to the flag's environment variable, then its default.
 */

export type FlagKind = 'string' | 'int' | 'bool' | 'list';
export type FlagValue = string | number | boolean | string[];

export interface FlagSpec {
  name: string;
  kind: FlagKind;
  /** Environment variable read when the flag is not on the command line. */
  env?: string;
  default?: FlagValue;
  usage?: string;
}

/** A usage problem; the CLI answers like urfave/cli: `Incorrect Usage: …`. */
export class FlagError extends Error {}

export interface ParsedFlags {
  values: Map<string, FlagValue>;
  positional: string[];
  help: boolean;
}

/** Go's `strconv.ParseBool`. */
function parseBool(text: string): boolean | undefined {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(text)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(text)) return false;
  return undefined;
}

/** Go's `strconv.ParseInt(s, 0, 64)` for the values people type: decimal, 0x…, 0o…, 0b…, with a sign. */
function parseInt64(text: string): number | undefined {
  const m = /^([+-]?)(0x[0-9a-f]+|0o[0-7]+|0b[01]+|[0-9]+)$/i.exec(text.replace(/_/g, ''));
  if (m === null) return undefined;
  const n = Number(m[2]);
  if (!Number.isSafeInteger(n)) return undefined;
  return m[1] === '-' ? -n : n;
}

/**
 * `normalize:"list"` in the agent's config loader: comma-separated entries from the command
 * line and the environment become one list, trimmed, empties dropped.
 */
function splitList(entries: readonly string[]): string[] {
  return entries.flatMap((e) => e.split(',')).map((s) => s.trim()).filter((s) => s !== '');
}

function convert(spec: FlagSpec, raw: string, source: 'flag' | 'env'): FlagValue {
  const where = source === 'flag' ? `for flag -${spec.name}` : `for flag ${spec.name}`;
  switch (spec.kind) {
    case 'string':
      return raw;
    case 'list':
      return splitList([raw]);
    case 'int': {
      const n = parseInt64(raw);
      if (n === undefined) {
        throw new FlagError(
          source === 'flag' ? `invalid value "${raw}" ${where}: parse error` : `could not parse ${raw} as int value ${where}`,
        );
      }
      return n;
    }
    case 'bool': {
      const b = parseBool(raw);
      if (b === undefined) {
        throw new FlagError(
          source === 'flag' ? `invalid boolean value "${raw}" ${where}: parse error` : `could not parse ${raw} as bool value ${where}`,
        );
      }
      return b;
    }
  }
}

export function parseFlags(
  specs: readonly FlagSpec[],
  args: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): ParsedFlags {
  const byName = new Map(specs.map((s) => [s.name, s]));
  const fromCli = new Map<string, string[]>();
  let help = false;
  let i = 0;
  for (; i < args.length; i++) {
    const arg = args[i] ?? '';
    if (arg === '--') {
      i++;
      break;
    }
    if (!arg.startsWith('-') || arg === '-') break;
    const body = arg.replace(/^--?/, '');
    const eq = body.indexOf('=');
    const name = eq === -1 ? body : body.slice(0, eq);
    let value = eq === -1 ? undefined : body.slice(eq + 1);
    if (name === 'help' || name === 'h') {
      help = true;
      continue;
    }
    const spec = byName.get(name);
    if (spec === undefined) throw new FlagError(`flag provided but not defined: -${name}`);
    if (value === undefined) {
      if (spec.kind === 'bool') value = 'true';
      else {
        const next = args[i + 1];
        if (next === undefined) throw new FlagError(`flag needs an argument: -${name}`);
        value = next;
        i++;
      }
    }
    const list = fromCli.get(name) ?? [];
    list.push(value);
    fromCli.set(name, list);
  }

  const values = new Map<string, FlagValue>();
  for (const spec of specs) {
    const cli = fromCli.get(spec.name);
    if (cli !== undefined) {
      // Repeated list flags accumulate; other flags keep the last value, as in Go.
      values.set(spec.name, spec.kind === 'list' ? splitList(cli) : convert(spec, cli[cli.length - 1] ?? '', 'flag'));
      continue;
    }
    const envValue = spec.env === undefined ? undefined : env[spec.env];
    if (envValue !== undefined && envValue !== '') {
      values.set(spec.name, convert(spec, envValue, 'env'));
      continue;
    }
    if (spec.default !== undefined) values.set(spec.name, spec.default);
  }
  return { values, positional: args.slice(i), help };
}

export function stringFlag(values: Map<string, FlagValue>, name: string): string {
  const v = values.get(name);
  return typeof v === 'string' ? v : '';
}

export function intFlag(values: Map<string, FlagValue>, name: string): number {
  const v = values.get(name);
  return typeof v === 'number' ? v : 0;
}

export function boolFlag(values: Map<string, FlagValue>, name: string): boolean {
  return values.get(name) === true;
}

export function listFlag(values: Map<string, FlagValue>, name: string): string[] {
  const v = values.get(name);
  return Array.isArray(v) ? v : [];
}

/** Flag usage lines for `--help`. */
export function describeFlags(specs: readonly FlagSpec[]): string {
  return specs
    .map((s) => {
      const value = s.kind === 'bool' ? '' : ' value';
      const env = s.env === undefined ? '' : ` [$${s.env}]`;
      return `  --${s.name}${value}\t${s.usage ?? ''}${env}`;
    })
    .join('\n');
}
