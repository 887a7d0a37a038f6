/**
 * The name a header field gets in a CGI-style upstream. CGI turns each field into a
 * meta-variable by upper-casing it, replacing `-` with `_` and prefixing `HTTP_` (RFC 3875
 * §4.1.18); WSGI (PEP 3333 "environ Variables"), Rack and PHP do the same. `X_Api_Key`,
 * `x-api-key` and `X-API_KEY` are therefore one variable there, and a repeated variable is
 * merged with `,` or the later field wins. Two names with the same key are one field to
 * such an upstream: a caller's must never stand next to one Port injects or strips.
 */
export function cgiFieldKey(name: string): string {
  return name.toLowerCase().replaceAll('_', '-');
}

/**
 * Removes every header whose CGI key equals `name`'s (any case, `_` or `-`), so that the
 * value set afterwards under `name` is the only one the upstream sees.
 */
export function dropCgiAliases(headers: Record<string, string | string[]>, name: string): void {
  const key = cgiFieldKey(name);
  for (const existing of Object.keys(headers)) {
    if (cgiFieldKey(existing) === key) delete headers[existing];
  }
}
