/**
 * Positions in a policy file. Cedar reports `sourceLocations` as UTF-8 *byte* offsets
 * into the string it parsed (checked against cedar-wasm 4.13: a "—" before an error
 * shifts it by 2), JavaScript indexes UTF-16 units; people want 1-based line:column.
 */
export interface Position {
  line: number;
  column: number;
}

export class SourceText {
  readonly text: string;
  /** UTF-16 index of each line's first character. */
  private readonly lineStarts: number[];
  /** UTF-8 byte offset of each UTF-16 index (length text.length + 1). */
  private byteOffsets: Uint32Array | undefined;

  constructor(text: string) {
    this.text = text;
    this.lineStarts = [0];
    for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 10) this.lineStarts.push(i + 1);
  }

  /** UTF-16 index → 1-based line and column (columns count code points). */
  positionOfIndex(index: number): Position {
    const i = Math.max(0, Math.min(index, this.text.length));
    let lo = 0;
    let hi = this.lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((this.lineStarts[mid] ?? 0) <= i) lo = mid;
      else hi = mid - 1;
    }
    const start = this.lineStarts[lo] ?? 0;
    return { line: lo + 1, column: [...this.text.slice(start, i)].length + 1 };
  }

  /** UTF-8 byte offset (as Cedar reports it) → UTF-16 index. */
  indexOfByte(byteOffset: number): number {
    const offsets = this.bytes();
    let lo = 0;
    let hi = this.text.length;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((offsets[mid] ?? 0) <= byteOffset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  positionOfByte(byteOffset: number): Position {
    return this.positionOfIndex(this.indexOfByte(byteOffset));
  }

  private bytes(): Uint32Array {
    if (this.byteOffsets !== undefined) return this.byteOffsets;
    const offsets = new Uint32Array(this.text.length + 1);
    let bytes = 0;
    for (let i = 0; i < this.text.length; i++) {
      offsets[i] = bytes;
      const code = this.text.charCodeAt(i);
      if (code < 0x80) bytes += 1;
      else if (code < 0x800) bytes += 2;
      else if (code >= 0xd800 && code <= 0xdbff) {
        // A surrogate pair is one 4-byte code point; its low half shares the offset.
        bytes += 4;
        if (i + 1 < this.text.length) offsets[++i] = bytes - 4;
      } else bytes += 3;
    }
    offsets[this.text.length] = bytes;
    this.byteOffsets = offsets;
    return offsets;
  }
}

/**
 * UTF-16 start index of each policy text inside the file, in file order. The texts come
 * from `policySetTextToParts`, which returns verbatim slices of the file but sorted by
 * its auto-assigned ids (policy0, policy1, policy10, …), not by position. A match that
 * begins inside a `//` comment or a string literal is skipped, so a commented-out copy
 * of a policy can't be mistaken for it.
 */
export function locatePolicies(fileText: string, parts: readonly string[]): number[] | undefined {
  const inCode = codeMask(fileText);
  const claimed = new Set<number>();
  const starts: number[] = [];
  for (const part of parts) {
    let from = 0;
    let found = -1;
    for (;;) {
      const at = fileText.indexOf(part, from);
      if (at < 0) break;
      if (inCode[at] === 1 && !claimed.has(at)) {
        found = at;
        break;
      }
      from = at + 1;
    }
    if (found < 0) return undefined;
    claimed.add(found);
    starts.push(found);
  }
  return starts;
}

/** 1 where a character is Cedar code, 0 inside `//` comments and string literals. */
function codeMask(text: string): Uint8Array {
  const mask = new Uint8Array(text.length);
  let i = 0;
  while (i < text.length) {
    const ch = text[i];
    if (ch === '/' && text[i + 1] === '/') {
      while (i < text.length && text[i] !== '\n') i++;
    } else if (ch === '"') {
      i++;
      while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
      i++;
    } else {
      mask[i] = 1;
      i++;
    }
  }
  return mask;
}
