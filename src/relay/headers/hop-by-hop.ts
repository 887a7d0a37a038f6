/**
 * Hop-by-hop fields (RFC 9110 §7.6.1; RFC 9112 §6.1 for Transfer-Encoding; `TE` and
 * `Trailer` per RFC 9110 §10.1.4/§6.6.2): they describe one connection and must not be
 * forwarded. `proxy-connection` is the pre-standard spelling some clients still send.
 * `upgrade` is handled by the callers (allowed on some routes).
 */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** RFC 9110 §5.6.2 token. */
export const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * Field names listed in `Connection` (RFC 9110 §7.6.1), lower-cased. Anything that is not
 * a token is ignored: it cannot name a field.
 */
export function connectionListed(values: readonly string[]): Set<string> {
  const names = new Set<string>();
  for (const value of values) {
    for (const part of value.split(',')) {
      const name = part.trim().toLowerCase();
      if (TOKEN.test(name)) names.add(name);
    }
  }
  return names;
}
