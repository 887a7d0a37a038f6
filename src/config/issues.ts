import type { z } from 'zod';
import { configSchema } from './schema.js';
import {
  chooseOption,
  expectation,
  inlineYaml,
  keyInfo,
  kindOf,
  leadingKey,
  literalOf,
  orList,
  recordParts,
  schemaAt,
  shapeOf,
  unionOptions,
} from './schema-walk.js';

export const REFERENCE = 'docs/reference/configuration.md';

type Issue = z.core.$ZodIssue;

/**
 * Turns zod's issues into one sentence per problem:
 * `FILE: key.path: found WHAT; expected WHAT, e.g. EXAMPLE.`
 * Values of secret keys are never repeated (someone may have pasted the secret itself).
 */
export function describeIssues(file: string, issues: readonly Issue[], input: unknown): string[] {
  return issues.flatMap((issue) => describe(issue, [], input)).map((line) => `${file}: ${line}`);
}

function describe(issue: Issue, base: readonly PropertyKey[], root: unknown): string[] {
  const path = [...base, ...issue.path];
  const key = keyName(path);
  const node = schemaAt(configSchema, path, root);
  const input = 'input' in issue ? issue.input : valueAt(root, path);
  const hidden = node !== undefined && isSecret(node);
  const at = (body: string) => [`${key ? `${key}: ` : ''}${sentence(body)}`];
  const expected = (extra?: string) => (node ? `expected ${extra ?? expectation(node)}${example(node)}` : `expected ${extra ?? 'a valid value'}`);

  switch (issue.code) {
    case 'unrecognized_keys': {
      const parent = node ? keyInfo(node).core : undefined;
      const siblings = parent && shapeOf(parent) ? Object.keys(shapeOf(parent)!) : [];
      return issue.keys.map((k) => {
        const full = keyName([...path, k]);
        const hint = suggest(k, siblings);
        if (hint) return `${full}: unknown key; did you mean "${hint}"?`;
        const allowed = siblings.length > 0 ? `expected one of ${orList(siblings)}` : 'remove it';
        return `${full}: ${sentence(`unknown key; ${allowed} (see ${REFERENCE})`)}`;
      });
    }
    case 'invalid_type':
      if (input === undefined) return at(`missing; ${expected()}`);
      return at(`found ${found(input, hidden)}; ${expected()}`);
    case 'invalid_union':
      return describeUnion(issue, path, root, node, input, at, expected);
    case 'invalid_value':
      return at(`found ${found(input, hidden)}; expected ${issue.values.length === 1 ? JSON.stringify(issue.values[0]) : `one of ${orList(issue.values.map(String))}`}`);
    case 'too_small':
    case 'too_big': {
      if (issue.origin === 'array' || issue.origin === 'set') {
        const count = Array.isArray(input) ? input.length : undefined;
        const what = count === 0 ? 'an empty list' : count !== undefined ? `a list of ${count} item${count === 1 ? '' : 's'}` : 'a list';
        const bound = issue.code === 'too_small' ? `at least ${String(issue.minimum)}` : `at most ${String(issue.maximum)}`;
        return at(`found ${what}; expected ${bound} item${Number(issue.code === 'too_small' ? issue.minimum : issue.maximum) === 1 ? '' : 's'}${node ? example(node) : ''}`);
      }
      return at(`found ${found(input, hidden)}; ${expected()}`);
    }
    case 'invalid_format':
      return at(`found ${found(input, hidden)}; ${expected()}`);
    case 'invalid_key': {
      // A map's entry name: the record is the parent of `path`.
      const record = schemaAt(configSchema, path.slice(0, -1), root);
      const parts = record ? recordParts(keyInfo(record).core) : undefined;
      const name = String(path.at(-1));
      const examples = record ? keyInfo(record).examples : undefined;
      const exampleKey = examples?.[0] !== null && typeof examples?.[0] === 'object' ? Object.keys(examples[0] as object)[0] : undefined;
      const wanted = parts ? expectation(parts.key) : 'a valid name';
      return at(`found the name "${name}"; expected ${wanted}${exampleKey ? `, e.g. ${exampleKey}` : ''}`);
    }
    case 'custom':
      if (issue.message.startsWith('found ')) return at(issue.message);
      return at(`found ${found(input, hidden)}; ${issue.message}${node && issue.message.startsWith('expected a') ? example(node) : ''}`);
    default:
      return at(`found ${found(input, hidden)}; ${expected()}`);
  }
}

function describeUnion(
  issue: Extract<Issue, { code: 'invalid_union' }>,
  path: PropertyKey[],
  root: unknown,
  node: z.ZodType | undefined,
  input: unknown,
  at: (body: string) => string[],
  expected: (extra?: string) => string,
): string[] {
  // A discriminated union reports at `<key>.type` with the object as input.
  if ('discriminator' in issue && typeof issue.discriminator === 'string') {
    const disc = issue.discriminator;
    const union = schemaAt(configSchema, path.slice(0, -1), root);
    const options = union ? unionOptions(keyInfo(union).core).map((o) => literalOf(o, disc) ?? '?') : ((issue as { options?: unknown[] }).options ?? []).map(String);
    const value = isObject(input) ? input[disc] : undefined;
    const eg = options[0] !== undefined ? `, e.g. ${disc}: ${options[1] ?? options[0]}` : '';
    return at(`${value === undefined ? 'missing' : `found ${found(value, false)}`}; expected one of ${orList(options)}${eg}`);
  }
  const union = node ? keyInfo(node).core : undefined;
  if (union && kindOf(union) === 'union' && isObject(input) && unionOptions(union).every((o) => leadingKey(o) !== undefined)) {
    const options = unionOptions(union);
    const leading = options.map((o) => leadingKey(o)!);
    const present = leading.filter((k) => k in input);
    if (present.length > 1) {
      return at(`found a map with ${orList(present.map((k) => `"${k}"`), 'and')}; expected exactly one of the keys ${orList(leading)}${example(node!)}`);
    }
    const option = chooseOption(union, input);
    const index = option ? options.indexOf(option) : -1;
    const branch = index >= 0 ? issue.errors[index] : undefined;
    if (branch && branch.length > 0) return branch.flatMap((inner) => describe(inner, path, root));
    const keys = Object.keys(input);
    return at(`found ${keys.length === 0 ? 'an empty map' : `a map with ${orList(keys.map((k) => `"${k}"`), 'and')}`}; expected exactly one of the keys ${orList(leading)}${example(node!)}`);
  }
  const hidden = node !== undefined && isSecret(node);
  return at(`found ${found(input, hidden)}; ${expected()}`);
}

function isSecret(node: z.ZodType): boolean {
  const kind = keyInfo(node).hint?.kind;
  return kind === 'secret' || kind === 'secret_value';
}

function example(node: z.ZodType): string {
  const info = keyInfo(node);
  if (kindOf(info.core) === 'enum' || kindOf(info.core) === 'literal' || kindOf(info.core) === 'boolean') return '';
  const first = info.examples?.[0];
  return first === undefined ? '' : `, e.g. ${inlineYaml(first)}`;
}

/** What a value is, in words: `the number 8080`, `"soon"`, `a list`, `an empty value`. */
function found(value: unknown, hidden: boolean): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'an empty value';
  if (typeof value === 'string') {
    if (value === '') return 'an empty string';
    if (hidden) return 'a value that is not a reference (not repeated here in case it is the secret itself)';
    return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  }
  if (typeof value === 'number') return hidden ? 'a number' : `the number ${value}`;
  if (typeof value === 'boolean') return `${value}`;
  if (Array.isArray(value)) return value.length === 0 ? 'an empty list' : 'a list';
  if (isObject(value)) return Object.keys(value).length === 0 ? 'an empty map' : 'a map';
  return `a ${typeof value}`;
}

function keyName(path: readonly PropertyKey[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i > 0 ? '.' : ''}${String(p)}`)).join('');
}

function sentence(body: string): string {
  return /[.?!]$/.test(body) ? body : `${body}.`;
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let v = root;
  for (const p of path) v = v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[String(p)] : undefined;
  return v;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** The closest known key within edit distance 2, for "did you mean". */
function suggest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const c of candidates) {
    const d = editDistance(word, c);
    if (d < bestDistance) [best, bestDistance] = [c, d];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length]!;
}

