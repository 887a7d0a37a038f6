/** Minimal cookie handling for Port's two cookies (RFC 6265 §4.2 request syntax). */

/** Parses a `Cookie` header; the first occurrence of a name wins; malformed pairs are skipped. */
export function parseCookies(header: string | undefined): Map<string, string> {
  const cookies = new Map<string, string>();
  if (!header) return cookies;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq <= 0) continue;
    const name = part.slice(0, eq).trim();
    let value = part.slice(eq + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    if (name && !cookies.has(name)) cookies.set(name, value);
  }
  return cookies;
}

export interface CookieOptions {
  /** Seconds; 0 deletes the cookie. */
  maxAge: number;
  path: string;
  secure: boolean;
  sameSite: 'Lax' | 'Strict';
}

/** A `Set-Cookie` value; always HttpOnly. Values are Port's own base64url strings. */
export function serializeCookie(name: string, value: string, o: CookieOptions): string {
  if (!/^[A-Za-z0-9_-]*$/.test(value)) throw new Error('cookie values must be base64url');
  return `${name}=${value}; Max-Age=${Math.max(0, Math.floor(o.maxAge))}; Path=${o.path}; HttpOnly${o.secure ? '; Secure' : ''}; SameSite=${o.sameSite}`;
}
