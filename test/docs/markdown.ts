import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

/** The repository root (test/docs/ → ../..). */
export const REPO = join(import.meta.dirname, '..', '..');

/** README.md and every Markdown file under docs/, as paths relative to the repository. */
export function docFiles(): string[] {
  const out = ['README.md'];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(join(REPO, dir), { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.md')) out.push(path);
    }
  };
  walk('docs');
  return out.sort((a, b) => (a === 'README.md' ? -1 : b === 'README.md' ? 1 : a.localeCompare(b)));
}

export interface FencedBlock {
  file: string;
  /** 1-based line of the opening fence. */
  line: number;
  /** The info string's first word: `sh`, `bash`, `yaml`… */
  lang: string;
  /** The block's lines, with the fence's own indentation removed. */
  body: string;
  /** The reason of a `<!-- not run: … -->` comment on the last non-blank line before the fence. */
  notRun?: string;
}

/** Languages whose blocks are commands a reader would paste into a shell. */
export const SHELL_LANGS = new Set(['sh', 'bash', 'shell', 'console']);

const FENCE = /^(\s*)(`{3,}|~{3,})\s*([^\s`]*)/;
const NOT_RUN = /^\s*<!--\s*not run:\s*(.+?)\s*-->\s*$/;

/** Every fenced code block of a Markdown file (CommonMark fences, indented or not). */
export function fencedBlocks(file: string): FencedBlock[] {
  const lines = readFileSync(join(REPO, file), 'utf8').split('\n');
  const blocks: FencedBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = FENCE.exec(lines[i]!);
    if (!open) continue;
    const [, indent, fence, lang] = open as unknown as [string, string, string, string];
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length; j++) {
      const l = lines[j]!;
      if (l.trim().startsWith(fence[0]!.repeat(fence.length)) && l.trim().replace(/[`~]/g, '') === '') break;
      body.push(l.startsWith(indent) ? l.slice(indent.length) : l.trimStart());
    }
    let k = i - 1;
    while (k >= 0 && lines[k]!.trim() === '') k--;
    const marker = k >= 0 ? NOT_RUN.exec(lines[k]!) : null;
    blocks.push({ file, line: i + 1, lang: lang.toLowerCase(), body: body.join('\n'), ...(marker ? { notRun: marker[1]! } : {}) });
    i = j;
  }
  return blocks;
}

/** The commands of a block: a `console` block's `$ ` lines (with their `\` continuations), else the whole body. */
export function commandsOf(block: FencedBlock): string {
  if (block.lang !== 'console') return block.body;
  const out: string[] = [];
  let continuing = false;
  for (const l of block.body.split('\n')) {
    if (continuing) out.push(l);
    else if (l.startsWith('$ ')) out.push(l.slice(2));
    else continue;
    continuing = l.endsWith('\\');
  }
  return out.join('\n');
}

/** The Markdown with fenced blocks and inline code blanked out (line numbers kept), for finding links. */
export function proseOf(file: string): string[] {
  const lines = readFileSync(join(REPO, file), 'utf8').split('\n');
  let fence: string | undefined;
  return lines.map((l) => {
    const open = FENCE.exec(l);
    if (fence === undefined && open) {
      fence = open[2]!;
      return '';
    }
    if (fence !== undefined) {
      if (l.trim().startsWith(fence) && l.trim().replace(/[`~]/g, '') === '') fence = undefined;
      return '';
    }
    return l.replace(/`[^`]*`/g, '``');
  });
}

/** GitHub's anchor for a heading: lower-cased, punctuation dropped, spaces to hyphens. */
export function slug(heading: string): string {
  const text = heading
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/[`*]/g, '')
    .trim()
    .toLowerCase();
  return text.replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');
}

/** The anchors a Markdown file defines: its headings' slugs (repeats get -1, -2…). */
export function anchorsOf(file: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const l of proseOfRaw(file)) {
    const m = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(l);
    if (!m) continue;
    const base = slug(m[1]!);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

/** Lines outside fenced blocks, inline code kept (headings may hold code). */
function proseOfRaw(file: string): string[] {
  const lines = readFileSync(join(REPO, file), 'utf8').split('\n');
  let fence: string | undefined;
  const out: string[] = [];
  for (const l of lines) {
    const open = FENCE.exec(l);
    if (fence === undefined && open) {
      fence = open[2]!;
      continue;
    }
    if (fence !== undefined) {
      if (l.trim().startsWith(fence) && l.trim().replace(/[`~]/g, '') === '') fence = undefined;
      continue;
    }
    out.push(l);
  }
  return out;
}

export interface Link {
  file: string;
  line: number;
  target: string;
}

/** Relative links (`[text](target)`) outside code: not http(s), mailto or other schemes. */
export function relativeLinks(file: string): Link[] {
  const out: Link[] = [];
  proseOf(file).forEach((l, i) => {
    for (const m of l.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
      const target = m[1]!;
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue;
      out.push({ file, line: i + 1, target });
    }
  });
  return out;
}

export function display(file: string): string {
  return relative(REPO, join(REPO, file));
}
