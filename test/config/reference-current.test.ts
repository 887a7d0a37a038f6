import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { configJsonSchema } from '../../src/config/json-schema.js';
import { renderConfigReference } from '../../src/config/reference.js';

// docs/reference/configuration.md is generated from the schema (npm run docs:config) and must
// not drift from it; nor may the checked-in JSON Schema.
const reference = readFileSync('docs/reference/configuration.md', 'utf8');

/** Every key path the JSON Schema accepts, as the reference writes it: `upstreams.<name>.inject.bearer`. */
function keyPaths(node: unknown, path: string, out: Set<string>): Set<string> {
  if (node === null || typeof node !== 'object') return out;
  const n = node as Record<string, unknown>;
  for (const [k, child] of Object.entries((n.properties as Record<string, unknown>) ?? {})) {
    const p = path ? `${path}.${k}` : k;
    out.add(p);
    keyPaths(child, p, out);
  }
  if (n.type === 'object' && typeof n.additionalProperties === 'object') keyPaths(n.additionalProperties, `${path}.<name>`, out);
  if (typeof n.items === 'object') keyPaths(n.items, `${path}[]`, out);
  for (const key of ['anyOf', 'oneOf']) if (Array.isArray(n[key])) for (const o of n[key] as unknown[]) keyPaths(o, path, out);
  return out;
}

describe('docs/reference/configuration.md', () => {
  it('is what the schema generates (run npm run docs:config after changing src/config/schema.ts)', () => {
    expect(reference).toBe(renderConfigReference());
  });

  it('has the JSON Schema beside it, also current', () => {
    expect(readFileSync('docs/reference/port.schema.json', 'utf8')).toBe(`${JSON.stringify(configJsonSchema(), null, 2)}\n`);
  });

  it('lists every key the schema accepts, with its own heading', () => {
    const paths = [...keyPaths(configJsonSchema(), '', new Set())];
    expect(paths.length).toBeGreaterThan(100);
    const missing = paths.filter((p) => !reference.includes(`\`${p}\``));
    expect(missing).toEqual([]);
    const headings = new Set([...reference.matchAll(/^#{2,4} `([^`]+)`/gm)].map((m) => m[1]));
    expect(paths.filter((p) => !headings.has(p))).toEqual([]);
  });

  it('explains the secret reference syntax, durations and sizes', () => {
    for (const text of ['`env:NAME`', '`file:PATH`', '`command:CMD`', '## Durations and sizes', '15m', '64MiB']) expect(reference).toContain(text);
  });
});
