import type { z } from 'zod';
import { configSchema } from './schema.js';
import {
  arrayElement,
  discriminatorOf,
  expectation,
  inlineYaml,
  keyInfo,
  kindOf,
  leadingKey,
  literalOf,
  recordParts,
  shapeOf,
  unionOptions,
} from './schema-walk.js';

/** The order of sections in the reference; keys the schema has beyond these follow. */
const SECTIONS = ['server', 'store', 'buildkite', 'policies', 'issuer', 'audit', 'approvals', 'sso', 'scim', 'credentials', 'relay', 'upstreams'];

/**
 * docs/reference/configuration.md, made from the config schema by
 * `node scripts/generate-config-reference.mjs` (and checked current by a test).
 */
export function renderConfigReference(): string {
  const shape = shapeOf(configSchema)!;
  const order = [...SECTIONS.filter((k) => k in shape), ...Object.keys(shape).filter((k) => !SECTIONS.includes(k))];
  const out: string[] = [];
  out.push(
    '# Configuration reference',
    '',
    '<!-- Generated from src/config/schema.ts by `node scripts/generate-config-reference.mjs` (npm run docs:config); do not edit by hand. -->',
    '',
    "Port reads one YAML file, `port.yaml` (pass another with `-c PATH`). Every key is listed below with what it accepts, its default and what it does. Unknown keys are refused, so a misspelt key fails at start instead of being ignored; `port config check` validates a file without starting Port.",
    '',
    'The same schema is available as JSON Schema (draft 2020-12) for editors: `port config schema > port.schema.json`, then start port.yaml with',
    '',
    '```yaml',
    '# yaml-language-server: $schema=./port.schema.json',
    '```',
    '',
    'A minimal configuration:',
    '',
    '```yaml',
    'server:',
    '  public_url: https://port.example.com',
    'buildkite:',
    '  organization: acme',
    '```',
    '',
    '## Contents',
    '',
    '- [Secret references](#secret-references)',
    '- [Durations and sizes](#durations-and-sizes)',
    ...order.map((k) => `- [\`${k}\`](#${k})`),
    '',
    '## Secret references',
    '',
    'A secret is never written into port.yaml itself; the key names where Port reads it:',
    '',
    '| Reference | Read from | Allowed in |',
    '| --- | --- | --- |',
    '| `env:NAME` | the environment variable `NAME` of the Port process (it must be set and not empty) | every secret key |',
    "| `file:PATH` | the file at `PATH` (relative to port.yaml's folder); one trailing newline is removed | every secret key |",
    "| `command:CMD` | the standard output of `CMD`, run when the secret is released (see `command_timeout`, `command_env`, `cache_for`) | `credentials.<name>.value` of a `secret` credential only |",
    '',
    "`port serve` reads every `env:` and `file:` reference at start and refuses to start if one is missing; read-only commands (`port audit …`, `port policy …`) read none of them except the store's. Anything else in a secret key, such as the secret itself, is refused.",
    '',
    '## Durations and sizes',
    '',
    'A duration is a whole number with a unit: `90s`, `15m`, `12h`, `30d`; a bare number is seconds. A size is a whole number with a unit: `512KiB`, `64MiB`, `1GiB` (or `KB`, `MB`, `GB` in powers of 1000, or `B`); a bare number is bytes.',
    '',
  );
  for (const key of order) {
    const node = shape[key]!;
    const info = keyInfo(node);
    out.push(`## \`${key}\``, '');
    if (info.description) out.push(info.description, '');
    const core = info.core;
    if (kindOf(core) === 'object') {
      out.push(requirement(info, true), '');
      renderChildren(core, key, out, '###');
    } else {
      renderKey(node, key, out, '###', { section: true });
    }
  }
  return `${out.join('\n').replace(/\n{3,}/g, '\n\n').trimEnd()}\n`;
}

function requirement(info: ReturnType<typeof keyInfo>, section = false): string {
  if (info.required) return section ? 'This section is required.' : '**Required.**';
  if (info.hasDefault && !section) return `**Default:** ${code(info.default)}`;
  return section ? 'This section is optional.' : 'Optional.';
}

function code(value: unknown): string {
  const text = inlineYaml(value);
  return text.includes('`') ? `\`\` ${text} \`\`` : `\`${text}\``;
}

function renderChildren(objectSchema: z.ZodType, path: string, out: string[], heading: string): void {
  for (const [k, child] of Object.entries(shapeOf(objectSchema)!)) renderKey(child, `${path}.${k}`, out, heading);
}

interface KeyOptions {
  /** A section's own key: its heading and description are already written. */
  section?: boolean;
  /** A line written under the heading, before the facts. */
  intro?: string;
}

/** One key: its heading, what it accepts, default or required, example, description; then the keys under it. */
function renderKey(node: z.ZodType, path: string, out: string[], heading: string, options: KeyOptions = {}): void {
  const info = keyInfo(node);
  const core = info.core;
  if (!options.section) out.push(`${heading} \`${path}\``, '');
  if (options.intro) out.push(options.intro, '');
  const facts = [`**Accepts:** ${accepts(node)}`, requirement(info)];
  const example = info.examples?.[0];
  const kind = kindOf(core);
  if (example !== undefined && kind !== 'enum' && kind !== 'boolean' && inlineYaml(example) !== inlineYaml(info.default)) facts.push(`**Example:** ${code(example)}`);
  out.push(facts.join(' · '), '');
  if (info.description && !options.section) out.push(info.description, '');

  if (kind === 'object') renderChildren(core, path, out, heading);
  else if (kind === 'record') {
    const value = recordParts(core)!.value;
    const valueCore = keyInfo(value).core;
    const entry = `${path}.<name>`;
    if (kindOf(valueCore) === 'object') renderChildren(valueCore, entry, out, heading);
    else if (isObjectUnion(valueCore)) renderVariants(valueCore, entry, out, heading);
  } else if (kind === 'array') {
    const elementCore = keyInfo(arrayElement(core)!).core;
    if (kindOf(elementCore) === 'object') renderChildren(elementCore, `${path}[]`, out, heading);
    else if (isObjectUnion(elementCore)) renderVariants(elementCore, `${path}[]`, out, heading);
  } else if (isObjectUnion(core)) renderVariants(core, path, out, heading);
}

function isObjectUnion(schema: z.ZodType): boolean {
  return kindOf(schema) === 'union' && unionOptions(schema).every((o) => shapeOf(keyInfo(o).core) !== undefined);
}

function accepts(node: z.ZodType): string {
  const core = keyInfo(node).core;
  const kind = kindOf(core);
  if (kind === 'object') return 'a map (keys below)';
  if (kind === 'array' && ['object', 'union'].includes(kindOf(keyInfo(arrayElement(core)!).core))) return 'a list of maps (keys below)';
  if (kind === 'record' && ['object', 'union'].includes(kindOf(keyInfo(recordParts(core)!.value).core))) {
    return `${expectation(node)}; each name ${expectation(recordParts(core)!.key).replace(/^a name /, '')}`;
  }
  return expectation(node);
}

/** The shapes a union accepts: by `type` (credentials) or by which single key is present (inject, sinks, hooks). */
function renderVariants(union: z.ZodType, path: string, out: string[], heading: string): void {
  const disc = discriminatorOf(union);
  const whole = path.replace(/\[\]$/, '');
  if (disc !== undefined) {
    const values = unionOptions(union).map((o) => [literalOf(o, disc)!, keyInfo(shapeOf(keyInfo(o).core)![disc]!).description] as const);
    out.push(`${heading} \`${path}.${disc}\``, '', `**Accepts:** one of ${values.map(([v]) => `\`${v}\``).join(', ')} · **Required.**`, '');
    out.push(`Which kind of entry this is; the other keys depend on it:`, '', ...values.map(([v, d]) => `- \`${v}\`${d ? `: ${d}` : ''}`), '');
  }
  for (const option of unionOptions(union)) {
    const info = keyInfo(option);
    const shape = shapeOf(info.core)!;
    if (disc !== undefined) {
      out.push(`${heading} \`${path}\` with \`${disc}: ${literalOf(option, disc)!}\``, '');
      if (info.description) out.push(info.description, '');
      for (const [k, child] of Object.entries(shape)) if (k !== disc) renderKey(child, `${path}.${k}`, out, `${heading}#`);
    } else {
      const lead = leadingKey(option)!;
      const others = Object.keys(shape).filter((k) => k !== lead);
      const intro = others.length > 0 ? `One form of \`${whole}\`: \`${lead}\`, alone or with ${others.map((k) => `\`${k}\``).join(', ')}.` : `One form of \`${whole}\`: \`${lead}\` alone.`;
      renderKey(shape[lead]!, `${path}.${lead}`, out, heading, { intro });
      for (const k of others) renderKey(shape[k]!, `${path}.${k}`, out, heading);
    }
  }
}
