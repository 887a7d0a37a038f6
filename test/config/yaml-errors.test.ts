import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';

// YAML syntax errors name the line and column a person fixes, in one sentence.
const dir = mkdtempSync(join(tmpdir(), 'port-config-yaml-'));
mkdirSync(join(dir, 'policies'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function messageFor(yaml: string): string {
  const file = join(dir, 'port.yaml');
  writeFileSync(file, yaml);
  try {
    loadConfig(file);
  } catch (err) {
    return (err as Error).message.replaceAll(file, 'port.yaml');
  }
  throw new Error('expected the config to be refused');
}

const cases: [string, string, string][] = [
  [
    'an unclosed double quote (reported where it opens, not at the end of the file)',
    'server:\n  public_url: "https://port.example\nbuildkite:\n  organization: acme\n',
    'port.yaml:2:15: invalid YAML: the double quote opened here is never closed; end the value with " on the same line.',
  ],
  [
    'an unclosed single quote',
    "server:\n  public_url: https://port.example\nbuildkite:\n  organization: 'acme\n",
    "port.yaml:4:17: invalid YAML: the single quote opened here is never closed; end the value with ' on the same line.",
  ],
  [
    'a line indented deeper than its siblings (reported on that line)',
    'server:\n  public_url: https://port.example\n    listen: 127.0.0.1:8080\nbuildkite:\n  organization: acme\n',
    'port.yaml:3:5: invalid YAML: this line is indented more than the key above it, which already has a value; indent it like its sibling keys.',
  ],
  [
    'a line indented less than its siblings',
    'server:\n  public_url: https://port.example\n listen: 127.0.0.1:8080\nbuildkite:\n  organization: acme\n',
    'port.yaml:3:1: invalid YAML: this line is not indented like the other keys of its map; line it up with its siblings.',
  ],
  ['a tab as indentation', 'server:\n\tpublic_url: https://port.example\n', 'port.yaml:2:1: invalid YAML: a tab is used for indentation; indent with spaces only.'],
  [
    'a duplicate key',
    'server:\n  public_url: https://port.example\nbuildkite:\n  organization: acme\n  organization: other\n',
    'port.yaml:5:3: invalid YAML: the key "organization" appears twice in the same map; keep one of them.',
  ],
  [
    'a flow mapping never closed (reported where it opens)',
    'server: { public_url: https://port.example\nbuildkite:\n  organization: acme\n',
    'port.yaml:1:9: invalid YAML: the { opened here is never closed; end it with }.',
  ],
  [
    'a flow sequence never closed',
    'server:\n  public_url: https://port.example\nbuildkite:\n  organization: acme\n  algorithms: [RS256, ES256\n',
    'port.yaml:5:15: invalid YAML: the [ opened here is never closed; end it with ].',
  ],
  [
    'a key without a colon',
    'server:\n  public_url: https://port.example\n  listen 127.0.0.1:8080\nbuildkite:\n  organization: acme\n',
    'port.yaml:3:3: invalid YAML: this line is not a "key: value" pair; write the key, a colon and a space, then the value.',
  ],
  [
    'a second document',
    'server:\n  public_url: https://port.example\n---\nbuildkite: {}\n',
    'port.yaml:3:1: invalid YAML: a second YAML document starts here (---); port.yaml is one document, so remove the --- line and what follows or merge it.',
  ],
  ['an alias to no anchor', 'server: *base\n', 'port.yaml: invalid YAML: the alias *base names no anchor &base defined before it; define the anchor first or write the value out.'],
];

describe('YAML syntax errors', () => {
  it.each(cases)('%s', (_name, yaml, message) => {
    const m = messageFor(yaml);
    expect(m).toBe(message);
    expect(m.split('\n')).toHaveLength(1);
  });

  it('the reported line and column point at the text named', () => {
    // Cross-check the positions against the files themselves.
    const source = 'server:\n  public_url: "https://port.example\nbuildkite:\n  organization: acme\n';
    const [, line, col] = /^port\.yaml:(\d+):(\d+):/.exec(messageFor(source))!;
    expect(source.split('\n')[Number(line) - 1]!.slice(Number(col) - 1)).toMatch(/^"https/);
    const dup = 'server:\n  public_url: https://port.example\nbuildkite:\n  organization: acme\n  organization: other\n';
    const [, l2, c2] = /^port\.yaml:(\d+):(\d+):/.exec(messageFor(dup))!;
    expect(dup.split('\n')[Number(l2) - 1]!.slice(Number(c2) - 1)).toBe('organization: other');
  });
});
