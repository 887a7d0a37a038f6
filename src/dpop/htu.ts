/** RFC 3986 §2.3 unreserved characters: their percent-encoded and plain forms are the same URI. */
const UNRESERVED = /^[A-Za-z0-9\-._~]$/;

/** Printable ASCII without space: a URI never holds anything else (RFC 3986 §2), and WHATWG's parser would silently drop tabs and newlines. */
const URI_CHARS = /^[\x21-\x7e]+$/;

/**
 * The form in which two `htu` values are compared (RFC 9449 §4.3 check 9): after RFC 3986
 * syntax-based normalisation (§6.2.2: scheme and host case, percent-encoding case and
 * unreserved characters decoded, dot segments removed) and scheme-based normalisation
 * (§6.2.3: the default port dropped, an empty path is `/`). Undefined for anything that is
 * not an absolute `http`/`https` URI, or that carries credentials — and, when
 * `withoutQuery` (a proof's claim), a query or fragment: RFC 9449 §4.2 defines `htu`
 * "without query and fragment parts", so one that has them was not made for Port.
 */
export function comparableUri(uri: string, withoutQuery: boolean): string | undefined {
  if (!URI_CHARS.test(uri)) return undefined;
  if (withoutQuery && (uri.includes('?') || uri.includes('#'))) return undefined;
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return undefined;
  if (url.username !== '' || url.password !== '') return undefined;
  const path = url.pathname.replace(/%([0-9A-Fa-f]{2})/g, (_m, hex: string) => {
    const ch = String.fromCharCode(parseInt(hex, 16));
    return UNRESERVED.test(ch) ? ch : `%${hex.toUpperCase()}`;
  });
  // `host` is lower-case, IDNA-mapped, and omits the scheme's default port (WHATWG URL).
  return `${url.protocol}//${url.host}${path}`;
}

/**
 * The URI a proof for this request must name: Port's public URL and the request's path,
 * without its query (RFC 9449 §4.3 check 9). `target` is the request target as received
 * (origin-form, e.g. Node's `req.url`).
 */
export function requestHtu(publicUrl: string, target: string): string {
  const end = target.search(/[?#]/);
  return `${publicUrl.replace(/\/+$/, '')}${end < 0 ? target : target.slice(0, end)}`;
}
