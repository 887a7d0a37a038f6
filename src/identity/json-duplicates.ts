/**
 * True when a JSON text has an object with the same member name twice. JSON.parse
 * keeps the last one; another parser may keep the first, so a JOSE header or claim
 * set with duplicates is refused (RFC 7515 §4, RFC 8725 §2.6).
 * Assumes `text` already parsed as JSON.
 */
export function hasDuplicateMembers(text: string): boolean {
  const stack: (Set<string> | null)[] = [];
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      const top = stack.at(-1);
      if (expectKey && top) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (top.has(key)) return true;
        top.add(key);
        expectKey = false;
      }
      i = j;
    } else if (c === '{') {
      stack.push(new Set());
      expectKey = true;
    } else if (c === '[') {
      stack.push(null);
    } else if (c === '}' || c === ']') {
      stack.pop();
    } else if (c === ',') {
      expectKey = stack.at(-1) instanceof Set;
    }
  }
  return false;
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
