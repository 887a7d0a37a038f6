import { PathRejectedError } from './errors.js';

/**
 * Percent-encoding normalisation of one path segment (RFC 3986 §6.2.2.1 and §6.2.2.2):
 * `%XX` of an unreserved character — or of a character a path may carry raw with the
 * same meaning (sub-delims other than ";", ":" and "@") — is decoded, exactly once, so
 * `/%40acme` and `/@acme` are one path to the policy; every other `%XX` stays encoded
 * with upper-case hex. Anything that lets a later hop derive a different path than the
 * one the policy saw is refused instead.
 *
 * With `keepEncodedSlashes` (a route option for registries such as npm's, whose package
 * names carry `%2F`), `%2F` stays encoded — never a separator — but no part of the
 * segment between encoded slashes may be a dot segment, so a backend that decodes
 * `%2F` before resolving can't be walked out of the path the policy saw.
 */
export function canonicalSegment(segment: string, keepEncodedSlashes = false): string {
  let out = '';
  // Consecutive percent-encoded bytes >= 0x80: one UTF-8 sequence to check as a whole.
  let pending: number[] = [];
  const flush = (): void => {
    if (pending.length === 0) return;
    checkUtf8(pending);
    for (const b of pending) out += encoded(b);
    pending = [];
  };

  let i = 0;
  while (i < segment.length) {
    const c = segment.charCodeAt(i);
    if (c === 0x25 /* % */) {
      const hi = hexValue(segment.charCodeAt(i + 1));
      const lo = hexValue(segment.charCodeAt(i + 2));
      if (hi < 0 || lo < 0) {
        throw new PathRejectedError('malformed_percent', 'The relay path has a "%" that is not followed by two hex digits.');
      }
      const byte = hi * 16 + lo;
      i += 3;
      if (byte >= 0x80) {
        pending.push(byte);
        continue;
      }
      flush();
      out += encodedAscii(byte, keepEncodedSlashes);
      continue;
    }
    flush();
    out += rawAscii(c);
    i += 1;
  }
  flush();

  // `%25` followed by hex digits (whether sent as `%252e` or assembled from `%25%32%65`
  // by our own decoding) is a second layer of encoding: a hop that decodes again sees
  // a different path. Only ever an attack on a proxy, so refuse it.
  if (DOUBLE_ENCODED.test(out)) {
    throw new PathRejectedError('double_encoding', 'The relay path is percent-encoded twice (%25 followed by hex digits).');
  }
  // A backend that decodes %2F and then merges slashes or resolves dots must not reach
  // a path the policy did not see: no empty or dot part between encoded slashes.
  if (keepEncodedSlashes && out.includes('%2F') && out.split('%2F').some((part) => part === '' || DOT_PART.test(part))) {
    throw new PathRejectedError('encoded_slash', 'The relay path hides an empty or dot segment between encoded slashes (%2F).');
  }
  return out;
}

/** A dot segment, also with `;` parameters (see dot-segments.ts). */
const DOT_PART = /^\.{1,2}(?:$|;|%3B)/;

const DOUBLE_ENCODED = /%25[0-9A-Fa-f]{2}/;

/** RFC 3986 §2.3 unreserved: ALPHA / DIGIT / "-" / "." / "_" / "~". */
function isUnreserved(c: number): boolean {
  return (
    (c >= 0x41 && c <= 0x5a) || // A-Z
    (c >= 0x61 && c <= 0x7a) || // a-z
    (c >= 0x30 && c <= 0x39) || // 0-9
    c === 0x2d || c === 0x2e || c === 0x5f || c === 0x7e // - . _ ~
  );
}

/** RFC 3986 §3.3 pchar minus unreserved and pct-encoded: sub-delims, ":" and "@". */
const RAW_KEEP = new Set("!$&'()*+,;=:@".split('').map((ch) => ch.charCodeAt(0)));

/**
 * Encoded characters decoded to their raw form: those of RAW_KEEP that mean the same
 * encoded or not to HTTP backends. ";" stays encoded: to Tomcat-style backends a raw
 * ";" starts path parameters, an encoded one does not.
 */
const DECODE_TO_RAW = new Set("!$&'()*+,=:@".split('').map((ch) => ch.charCodeAt(0)));

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1; // also for NaN past the end of the string
}

function encoded(byte: number): string {
  return '%' + byte.toString(16).toUpperCase().padStart(2, '0');
}

/** Controls are refused raw or encoded; NUL gets its own message because it is the classic truncation trick. */
function refuseControl(byte: number, form: 'raw' | 'encoded'): void {
  if (byte === 0x00) {
    throw new PathRejectedError('nul', `The relay path contains a NUL byte (${form}).`);
  }
  if (byte < 0x20 || byte === 0x7f) {
    throw new PathRejectedError('control_character', `The relay path contains a control character (${form}).`);
  }
}

function encodedAscii(byte: number, keepEncodedSlashes: boolean): string {
  refuseControl(byte, 'encoded');
  // An encoded separator is a second path structure hidden from whoever does not decode
  // (CVE-2021-29492); "\" is a separator to IIS/.NET and WHATWG URL.
  if (byte === 0x2f) {
    if (keepEncodedSlashes) return '%2F';
    throw new PathRejectedError('encoded_slash', 'The relay path contains an encoded slash (%2F).');
  }
  if (byte === 0x5c) throw new PathRejectedError('encoded_backslash', 'The relay path contains an encoded backslash (%5C).');
  return isUnreserved(byte) || DECODE_TO_RAW.has(byte) ? String.fromCharCode(byte) : encoded(byte);
}

function rawAscii(c: number): string {
  refuseControl(c, 'raw');
  if (c === 0x5c) throw new PathRejectedError('backslash', 'The relay path contains a backslash.');
  if (c > 0x7e) throw new PathRejectedError('non_ascii', 'The relay path contains a raw non-ASCII character.');
  if (c === 0x20) throw new PathRejectedError('invalid_character', 'The relay path contains a raw space.');
  if (isUnreserved(c) || RAW_KEEP.has(c)) return String.fromCharCode(c);
  // `"`, `<`, `>`, `[`, `]`, `^`, backtick, `{`, `|`, `}`: not allowed in a path (RFC 3986
  // §3.3); encode them so the canonical form is the one any URL parser leaves alone.
  return encoded(c);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Overlong forms (`%C0%AE` for "."), surrogates, lone continuation bytes: refused, never guessed at. */
function checkUtf8(bytes: number[]): void {
  try {
    utf8.decode(Uint8Array.from(bytes));
  } catch {
    throw new PathRejectedError('invalid_utf8', 'The relay path has percent-encoded bytes that are not valid UTF-8.');
  }
}
