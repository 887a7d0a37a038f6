/**
 * Writing Cedar source text from configuration values. Group names, branch and path
 * patterns come from YAML and may hold any character: every value goes into the policy
 * text only as an escaped string literal (or a sanitised comment), so no value can end its
 * literal or its comment and add Cedar of its own.
 *
 * Cedar string literals take the escapes of Rust's (`\"`, `\\`, `\n`, `\r`, `\t`, `\0`,
 * `\u{…}`); in a `like` pattern `*` is the wildcard and `\*` a literal star
 * (https://docs.cedarpolicy.com/policies/syntax-operators.html#operator-like). In grants
 * `*` always means "any run of characters", so patterns never escape it.
 */

/** `"…"`: a Cedar string literal holding exactly `value`. */
export function stringLiteral(value: string): string {
  return `"${escape(value)}"`;
}

/** A Cedar `like` pattern literal in which every `*` of `pattern` is the wildcard. */
export function patternLiteral(pattern: string): string {
  return `"${escape(pattern)}"`;
}

/** `expr == "value"`, or `expr like "pat*tern"` when the pattern has a wildcard. */
export function matches(expr: string, pattern: string): string {
  return pattern.includes('*') ? `${expr} like ${patternLiteral(pattern)}` : `${expr} == ${stringLiteral(pattern)}`;
}

/** `Port::Type::"id"`. */
export function entityLiteral(type: string, id: string): string {
  return `Port::${type}::${stringLiteral(id)}`;
}

/** Text safe inside a `//` comment: no line breaks or other control characters. */
export function commentText(value: string): string {
  return value.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => `\\u{${c.codePointAt(0)!.toString(16)}}`);
}

/** A value as a comment shows it: bare when it is a plain name or pattern, else JSON-quoted. */
export function shownValue(value: string): string {
  return /^[\w./*@+:-]+$/.test(value) ? value : commentText(JSON.stringify(value));
}

function escape(value: string): string {
  let out = '';
  for (const c of value) {
    switch (c) {
      case '\\':
        out += '\\\\';
        break;
      case '"':
        out += '\\"';
        break;
      case '\n':
        out += '\\n';
        break;
      case '\r':
        out += '\\r';
        break;
      case '\t':
        out += '\\t';
        break;
      case '\0':
        out += '\\0';
        break;
      default: {
        const code = c.codePointAt(0)!;
        out += code < 0x20 || (code >= 0x7f && code <= 0x9f) || code === 0x2028 || code === 0x2029 ? `\\u{${code.toString(16)}}` : c;
      }
    }
  }
  return out;
}

/** `a || b`, each operand parenthesised when it is itself a compound; one operand stays bare. */
export function anyOf(parts: readonly string[]): string {
  if (parts.length === 1) return parts[0]!;
  return parts.map(group).join(' || ');
}

/** `a && b`, an operand with `||` parenthesised. */
export function allOf(parts: readonly string[]): string {
  return parts.map((p) => (/\|\|/.test(p) && !isWrapped(p) ? `(${p})` : p)).join(' && ');
}

function group(p: string): string {
  return / (&&|\|\|) /.test(p) && !isWrapped(p) ? `(${p})` : p;
}

/** Whether `p` is one parenthesised expression from its first character to its last. */
function isWrapped(p: string): boolean {
  if (!p.startsWith('(') || !p.endsWith(')')) return false;
  let depth = 0;
  let inString = false;
  for (let i = 0; i < p.length; i++) {
    const c = p[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    else if (c === '(') depth++;
    else if (c === ')' && --depth === 0 && i < p.length - 1) return false;
  }
  return true;
}
