/**
 * True when a JSON text has an object with the same member name twice. JSON.parse
 * keeps the last one; another parser may keep the first, so a JOSE header or claim
 * set with duplicates is refused (RFC 7515 §4, RFC 8725 §2.6).
 * Assumes `text` already parsed as JSON.
 */
export function hasDuplicateMembers(text: string): boolean {
  // Containers enclosing the current position; `top` is the innermost (null: an array).
  const stack: (Set<string> | null)[] = [];
  let top: Set<string> | null = null;
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      const end = closingQuote(text, i);
      if (expectKey && top !== null) {
        // A name without escapes is its own text; one with them is decoded, so "a" and "\u0061" are the same name.
        const raw = text.slice(i + 1, end);
        const key = raw.includes('\\') ? (JSON.parse(text.slice(i, end + 1)) as string) : raw;
        if (top.has(key)) return true;
        top.add(key);
        expectKey = false;
      }
      i = end;
    } else if (c === OPEN_BRACE) {
      stack.push(top);
      top = new Set();
      expectKey = true;
    } else if (c === OPEN_BRACKET) {
      stack.push(top);
      top = null;
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      top = stack.pop() ?? null;
    } else if (c === COMMA) {
      expectKey = top !== null;
    }
  }
  return false;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const COMMA = 0x2c;

/**
 * Index of the quote closing the string that opens at `open`: the next quote not escaped by
 * an odd run of backslashes; the text's length when there is none (only in text that is not
 * JSON, which callers have refused already — the scan then ends instead of looping).
 */
function closingQuote(text: string, open: number): number {
  let q = text.indexOf('"', open + 1);
  for (;;) {
    if (q === -1) return text.length;
    let backslashes = 0;
    while (text.charCodeAt(q - 1 - backslashes) === BACKSLASH) backslashes++;
    if (backslashes % 2 === 0) return q;
    q = text.indexOf('"', q + 1);
  }
}

/** What is wrong with a JWS part as a JSON object (RFC 7515 §7.1), if anything. */
export type JsonPartProblem = 'not_json' | 'not_object' | 'duplicate_member';

/**
 * UTF-8 that is not well-formed is refused rather than patched with U+FFFD (RFC 7515 §5.2
 * steps 2–3, RFC 8259 §8.1), as jose's decoder refuses it; a byte-order mark is kept, so
 * JSON.parse refuses it too.
 */
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** A compact JWS's base64url header or payload as a JSON object with unique members, or what is wrong with it. */
export function decodeJsonPart(part: string): { value: Record<string, unknown> } | { problem: JsonPartProblem } {
  let text: string;
  let value: unknown;
  try {
    text = UTF8.decode(Buffer.from(part, 'base64url'));
    value = JSON.parse(text);
  } catch {
    return { problem: 'not_json' };
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return { problem: 'not_object' };
  if (hasDuplicateMembers(text)) return { problem: 'duplicate_member' };
  return { value: value as Record<string, unknown> };
}
