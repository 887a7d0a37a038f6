import { Parser, parseDocument, type YAMLError } from 'yaml';
import { ConfigError } from '../errors.js';

/**
 * Parses port.yaml's text into plain data, or throws a ConfigError whose message is one
 * sentence: `FILE:LINE:COLUMN: invalid YAML: what is wrong; how to fix it.`
 *
 * The `yaml` package reports some errors where it noticed them rather than where they
 * are (an unclosed quote at the end of the file, an over-indented line at the value
 * before it); those are moved to the place a person would fix.
 */
export function parseYamlConfig(text: string, file: string): unknown {
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true });
  const error = doc.errors[0];
  if (error !== undefined) throw new ConfigError(describeYamlError(text, file, error));
  try {
    return doc.toJS({ maxAliasCount: 100 }) ?? {};
  } catch (err) {
    // An alias to an anchor that is not defined (or defined after it), or alias expansion gone wild.
    const message = err instanceof Error ? err.message : String(err);
    const alias = /Unresolved alias[^:]*: (.+)$/.exec(message);
    if (alias) throw new ConfigError(`${file}: invalid YAML: the alias *${alias[1]} names no anchor &${alias[1]} defined before it; define the anchor first or write the value out.`);
    throw new ConfigError(`${file}: invalid YAML: ${lowerFirst(message.split('\n')[0] ?? '')}; simplify the aliases.`);
  }
}

interface Place {
  line: number;
  col: number;
}

function describeYamlError(text: string, file: string, e: YAMLError): string {
  const lines = text.split(/\r?\n/);
  const at = e.linePos?.[0] ?? { line: 1, col: 1 };
  const say = (place: Place, sentence: string) => `${file}:${place.line}:${place.col}: invalid YAML: ${sentence}`;
  const firstLine = (e.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '');
  switch (e.code) {
    case 'TAB_AS_INDENT':
      return say(at, 'a tab is used for indentation; indent with spaces only.');
    case 'DUPLICATE_KEY': {
      const key = keyAt(lines, at);
      return say(at, `the key ${key ? `"${key}" ` : ''}appears twice in the same map; keep one of them.`);
    }
    case 'MISSING_CHAR': {
      if (/closing.*quote/i.test(firstLine)) {
        const open = unclosedQuote(text);
        if (open) return say(open.place, `the ${open.quote === '"' ? 'double' : 'single'} quote opened here is never closed; end the value with ${open.quote} on the same line.`);
        return say(at, 'a quoted value is never closed; end it with the same quote it starts with.');
      }
      if (/map values/i.test(firstLine)) return say(at, 'this line is not a "key: value" pair; write the key, a colon and a space, then the value.');
      return say(at, `${lowerFirst(firstLine)}.`);
    }
    case 'BLOCK_AS_IMPLICIT_KEY':
    case 'MULTILINE_IMPLICIT_KEY': {
      // Noticed at the value on the line above; the line to fix is the over-indented one below it.
      const next = nextContentLine(lines, at.line);
      if (next) return say(next, 'this line is indented more than the key above it, which already has a value; indent it like its sibling keys.');
      return say(at, 'a key spans several lines or is nested under a key that already has a value; keep each key: value pair on one line.');
    }
    case 'BAD_INDENT': {
      if (/Flow (map|sequence)/.test(firstLine)) {
        const open = unclosedFlow(text);
        const closer = /Flow map/.test(firstLine) ? '}' : ']';
        if (open) return say(open, `the ${closer === '}' ? '{' : '['} opened here is never closed; end it with ${closer}.`);
        return say(at, `a ${closer === '}' ? '{ … }' : '[ … ]'} collection is never closed; end it with ${closer}.`);
      }
      return say(at, 'this line is not indented like the other keys of its map; line it up with its siblings.');
    }
    case 'MULTIPLE_DOCS':
      return say(at, 'a second YAML document starts here (---); port.yaml is one document, so remove the --- line and what follows or merge it.');
    default:
      return say(at, `${lowerFirst(firstLine)}.`);
  }
}

function lowerFirst(s: string): string {
  return s.charAt(0).toLowerCase() + s.slice(1).replace(/[.:]$/, '');
}

function keyAt(lines: string[], at: Place): string | undefined {
  const rest = lines[at.line - 1]?.slice(at.col - 1) ?? '';
  const m = /^(?:"([^"]*)"|'([^']*)'|([^:#]+?))\s*:/.exec(rest);
  return m ? (m[1] ?? m[2] ?? m[3]) : undefined;
}

function nextContentLine(lines: string[], after: number): Place | undefined {
  for (let i = after; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() === '' || line.trim().startsWith('#')) continue;
    return { line: i + 1, col: line.length - line.trimStart().length + 1 };
  }
  return undefined;
}

interface CstNode {
  type?: string;
  offset?: number;
  source?: string;
  start?: unknown;
  end?: unknown;
  [key: string]: unknown;
}

/** Walks the concrete syntax tree depth-first. */
function* cstNodes(text: string): Generator<CstNode> {
  const stack: unknown[] = [...new Parser().parse(text)];
  while (stack.length > 0) {
    const n = stack.pop();
    if (Array.isArray(n)) stack.push(...[...n].reverse());
    else if (n !== null && typeof n === 'object') {
      yield n as CstNode;
      for (const v of Object.values(n)) if (v !== null && typeof v === 'object') stack.push(v);
    }
  }
}

function placeOf(text: string, offset: number): Place {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  return { line, col: offset - (before.lastIndexOf('\n') + 1) + 1 };
}

function unclosedQuote(text: string): { place: Place; quote: string } | undefined {
  for (const n of cstNodes(text)) {
    if ((n.type === 'double-quoted-scalar' || n.type === 'single-quoted-scalar') && typeof n.source === 'string' && typeof n.offset === 'number') {
      const quote = n.type === 'double-quoted-scalar' ? '"' : "'";
      const s = n.source;
      // In a double-quoted scalar, \" is an escaped quote, not the closing one (YAML 1.2 §7.3.1).
      const closed = s.length >= 2 && s.endsWith(quote) && (quote === "'" || (/\\*"$/.exec(s)![0].length - 1) % 2 === 0);
      if (!closed) return { place: placeOf(text, n.offset), quote };
    }
  }
  return undefined;
}

function unclosedFlow(text: string): Place | undefined {
  for (const n of cstNodes(text)) {
    if (n.type !== 'flow-collection' || typeof n.offset !== 'number') continue;
    const end = Array.isArray(n.end) ? (n.end as CstNode[]) : [];
    if (!end.some((t) => t.type === 'flow-map-end' || t.type === 'flow-seq-end')) return placeOf(text, n.offset);
  }
  return undefined;
}
