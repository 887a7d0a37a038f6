/**
 * Every relative link in README.md and docs/ leads somewhere: the file (or folder) exists,
 * and a `#anchor` into a Markdown file names one of its headings (GitHub's anchors).
 */
import { existsSync, statSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO, anchorsOf, docFiles, relativeLinks } from './markdown.js';

describe('relative links in README.md and docs/', () => {
  const files = docFiles();

  it('finds links to check', () => {
    expect(files.flatMap(relativeLinks).length).toBeGreaterThan(20);
  });

  for (const file of files) {
    it(`${file}: every relative link resolves`, () => {
      const broken: string[] = [];
      for (const link of relativeLinks(file)) {
        const [path, anchor] = link.target.split('#', 2) as [string, string | undefined];
        const target = path === '' ? file : normalize(join(dirname(file), decodeURI(path)));
        const where = `${file}:${link.line}: ${link.target}`;
        if (target.startsWith('..')) {
          broken.push(`${where} (outside the repository)`);
          continue;
        }
        const abs = join(REPO, target);
        if (!existsSync(abs)) {
          broken.push(`${where} (no such file: ${target})`);
          continue;
        }
        if (anchor !== undefined && anchor !== '' && statSync(abs).isFile() && target.endsWith('.md') && !anchorsOf(target).has(anchor)) {
          broken.push(`${where} (no heading with anchor #${anchor} in ${target})`);
        }
      }
      expect(broken, broken.join('\n')).toEqual([]);
    });
  }
});
