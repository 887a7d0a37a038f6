/**
 * Comments and docs cite public sources (an RFC section, a Buildkite documentation page,
 * a vendor's docs) or state their reason; they never point at documents that are not in
 * this repository (the team's working notes, review findings, issue numbers), which a
 * reader of the published code can't open. And nothing may suggest `npx port`: on the npm
 * registry `port` is an unrelated package, so that command would run someone else's code.
 *
 * Scans every tracked (and new, not ignored) text file under the paths below and fails
 * with one `file:line: match` per hit.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const SELF = relative(ROOT, fileURLToPath(import.meta.url)).split('\\').join('/');

const SCANNED = ['src', 'test', 'plugin', 'docs', 'README.md', 'examples', 'bench', 'BENCHMARKS.md', 'deploy', 'scripts', '.ci'];

/** What each forbidden pattern stands for, so a failure says why. */
const FORBIDDEN: { pattern: RegExp; why: string }[] = [
  { pattern: /buildkite\.md/, why: 'the internal Buildkite facts file; cite the Buildkite docs page instead' },
  { pattern: /security-notes/, why: 'the internal security notes; cite the RFC, advisory or vendor page instead' },
  { pattern: /\bDESIGN\b/, why: 'the internal design document; state the reason instead' },
  { pattern: /\bcommon\.md\b/, why: 'an internal notes file; state the convention here instead' },
  { pattern: /\.\.\/shared\b|\/work\/shared\b/, why: 'a path outside this repository' },
  { pattern: /\breview\s+(?:#\d+,\s*)?[FG]\d+\b|\b[FG]\d+ of the #\d+ review\b|\bsecond review\b/i, why: 'an internal review finding; state the reason instead' },
  { pattern: /\bissues?\s+#?\d+\b/i, why: 'an internal issue number; describe the behaviour instead (link a public issue by its URL)' },
  { pattern: /\bnpx\s+port\b/, why: '`port` on the npm registry is an unrelated package; use the installed bin `port` or `node bin/port.js`' },
];

function repositoryFiles(): string[] {
  let out: string;
  try {
    out = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard', '--', ...SCANNED], { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  } catch (err) {
    throw new Error(`This test lists the repository's files with git; run it from a git checkout with git installed (${(err as Error).message}).`);
  }
  return out
    .split('\0')
    .filter((f) => f !== '' && f !== SELF)
    .filter((f) => existsSync(join(ROOT, f)) && statSync(join(ROOT, f)).isFile());
}

function hits(file: string): string[] {
  const bytes = readFileSync(join(ROOT, file));
  if (bytes.includes(0)) return []; // binary (images, archives)
  const found: string[] = [];
  bytes
    .toString('utf8')
    .split(/\r?\n/)
    .forEach((line, i) => {
      for (const { pattern, why } of FORBIDDEN) {
        const m = pattern.exec(line);
        if (m) found.push(`${file}:${i + 1}: "${m[0]}" (${why})`);
      }
    });
  return found;
}

describe('no references to documents outside this repository', () => {
  const files = repositoryFiles();

  it('finds the files it is meant to scan', () => {
    expect(files.some((f) => f.startsWith('src/'))).toBe(true);
    expect(files.some((f) => f.startsWith('test/'))).toBe(true);
    expect(files).toContain('README.md');
  });

  it('the patterns catch what they are meant to (and not ordinary text)', () => {
    const caught = (text: string) => FORBIDDEN.some(({ pattern }) => pattern.test(text));
    for (const bad of [
      'see buildkite.md §3',
      'security-notes §4.2',
      '(DESIGN capability 6)',
      'DESIGN.md "Cedar schema"',
      '../shared/notes',
      '/work/shared/x',
      'review F11',
      'F8 of the #5 review',
      'Second review, G1',
      'issue #9 item 8',
      'Issue 4, "People"',
      ['npx', 'port', 'serve'].join(' '),
    ]) {
      expect(caught(bad), bad).toBe(true);
    }
    for (const good of [
      'RFC 8725 §3.11',
      'https://buildkite.com/docs/apis/webhooks/pipelines',
      'https://github.com/rubygems/rubygems.org/issues/5412',
      "@id(\"feature-deploys-need-review\")",
      "scimGroup('g1', 'deployers', [])",
      'port serve --config port.yaml',
      'issued by Port',
    ]) {
      expect(caught(good), good).toBe(false);
    }
  });

  it('no file cites internal notes, review findings or issue numbers, or suggests npx port', () => {
    const found = files.flatMap(hits);
    expect(found.length, `${found.length} reference(s) to fix:\n${found.join('\n')}\n`).toBe(0);
  });
});
