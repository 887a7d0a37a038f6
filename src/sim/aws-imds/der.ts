/**
 * The handful of ASN.1 DER encodings (ITU-T X.690 §8, §10) a self-signed X.509 certificate
 * (RFC 5280 §4.1) needs. node:crypto reads certificates but can't make them, and the test
 * certificate authority is built here instead of by the `openssl` CLI so the simulators
 * need no external program and tests can make certificates with any validity window.
 */

export function der(tag: number, content: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), length(content.length), content]);
}

export const sequence = (...items: Buffer[]): Buffer => der(0x30, Buffer.concat(items));
export const set = (...items: Buffer[]): Buffer => der(0x31, Buffer.concat(items));
export const nullValue = (): Buffer => Buffer.from([0x05, 0x00]);
export const printableString = (s: string): Buffer => der(0x13, Buffer.from(s, 'ascii'));
export const utf8String = (s: string): Buffer => der(0x0c, Buffer.from(s, 'utf8'));
/** BIT STRING with no unused bits. */
export const bitString = (bytes: Buffer): Buffer => der(0x03, Buffer.concat([Buffer.from([0]), bytes]));
/** `[n] EXPLICIT`. */
export const explicit = (n: number, inner: Buffer): Buffer => der(0xa0 + n, inner);

/** A non-negative INTEGER from big-endian bytes (a leading 0 keeps it positive, X.690 §8.3). */
export function unsignedInteger(bytes: Buffer): Buffer {
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0) i++;
  const trimmed = bytes.subarray(i);
  return der(0x02, trimmed[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), trimmed]) : trimmed);
}

export function objectIdentifier(dotted: string): Buffer {
  const [a, b, ...rest] = dotted.split('.').map(Number) as [number, number, ...number[]];
  const bytes = [40 * a + b];
  for (const n of rest) {
    const groups = [n & 0x7f];
    for (let v = Math.floor(n / 128); v > 0; v = Math.floor(v / 128)) groups.unshift((v & 0x7f) | 0x80);
    bytes.push(...groups);
  }
  return der(0x06, Buffer.from(bytes));
}

/** RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050. */
export function time(d: Date): Buffer {
  const iso = d.toISOString();
  const digits = iso.slice(0, 19).replace(/[-T:]/g, '');
  return d.getUTCFullYear() < 2050 && d.getUTCFullYear() >= 1950 ? der(0x17, Buffer.from(`${digits.slice(2)}Z`)) : der(0x18, Buffer.from(`${digits}Z`));
}

function length(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}
