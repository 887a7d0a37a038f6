/**
 * docs/guides/grants.md says what Port does: its port.yaml and grants-file snippets are
 * accepted by the config schema, its Cedar snippets validate, the compiled output it
 * shows is what its example compiles to, and the ids and lines its sample output quotes
 * (there and in the CLI reference) are the real ones.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { configSchema } from '../../src/config/schema.js';
import { compileGrants } from '../../src/grants/compile.js';
import { parseGrantsFile } from '../../src/grants/load.js';
import { loadPolicyFiles } from '../../src/policy/loader.js';
import { cleanup, tempDir } from './fixtures.js';
import { configFromObject } from '../../src/config/config.js';

afterAll(cleanup);

const ROOT = path.resolve(import.meta.dirname, '../..');
const GUIDE = readFileSync(path.join(ROOT, 'docs/guides/grants.md'), 'utf8');
const CLI = readFileSync(path.join(ROOT, 'docs/reference/cli.md'), 'utf8');
const blocks = (lang: string, text = GUIDE) => [...text.matchAll(new RegExp(`^\`\`\`${lang}\\n([\\s\\S]*?)^\`\`\`$`, 'gm'))].map((m) => m[1]!);
const BASE = { server: { public_url: 'https://port.example.com' }, buildkite: { organization: 'acme' } };

function compiledExample() {
  const example = parseYaml(blocks('yaml')[0]!) as Record<string, unknown>;
  const dir = tempDir();
  return compileGrants(configFromObject({ ...BASE, ...example }, path.join(dir, 'port.yaml'), { resolveSecrets: false }));
}

describe('docs/guides/grants.md', () => {
  it('has port.yaml snippets the config schema accepts and grants-file snippets the grants loader accepts', () => {
    const yaml = blocks('yaml');
    expect(yaml.length).toBeGreaterThanOrEqual(3);
    for (const text of yaml) {
      const snippet = parseYaml(text) as Record<string, unknown>;
      if ('grants' in snippet || 'credentials' in snippet) {
        const parsed = configSchema.safeParse({ ...BASE, ...snippet });
        expect(parsed.success ? [] : parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`)).toEqual([]);
      } else {
        const parsed = parseGrantsFile(text, 'grants/web-team.yaml');
        expect(parsed.ok ? [] : parsed.problems).toEqual([]);
      }
    }
  });

  it("has Cedar snippets that validate against Port's schema", () => {
    const cedar = blocks('cedar');
    expect(cedar.length).toBeGreaterThanOrEqual(2);
    cedar.forEach((text, i) => {
      const outcome = loadPolicyFiles('docs', [{ name: `grants-snippet-${i + 1}.cedar`, path: `grants-snippet-${i + 1}.cedar`, text }]);
      if (!outcome.ok) throw new Error(`cedar block ${i + 1}: ${outcome.problems.map((p) => `${p.line}:${p.column}: ${p.message}`).join('; ')}`);
    });
  });

  it('shows exactly what its example compiles to', () => {
    const shown = blocks('cedar').find((b) => b.startsWith('// grants:'));
    expect(shown).toBeDefined();
    expect(shown!.trimEnd()).toBe(compiledExample().sources.map((s) => s.text.trimEnd()).join('\n\n'));
  });

  it('quotes real ids and lines in its sample output, and so does the CLI reference', () => {
    const compiled = compiledExample();
    const deployer = compiled.sources.find((s) => s.name === 'grants:deployer')!.text.split('\n');
    const lineOf = (id: string) => deployer.indexOf(`@id("${id}")`) + 1;
    const quoted = [...`${GUIDE}\n${CLI}`.matchAll(/(grant\.deployer\.[0-9a-f]{8}\.[a-z.-]+) \((?:grants:deployer:|line )(\d+)/g)];
    expect(quoted.length).toBeGreaterThanOrEqual(3);
    for (const [, id, line] of quoted) {
      expect(compiled.policies.map((p) => p.id)).toContain(id);
      expect(lineOf(id!), id).toBe(Number(line));
    }
  });

  it('links to the configuration and CLI references', () => {
    expect(GUIDE).toContain('](../reference/configuration.md)');
    expect(GUIDE).toContain('](../reference/cli.md#port-policy-show)');
  });
});
