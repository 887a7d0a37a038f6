import { HOP_BY_HOP, connectionListed } from './hop-by-hop.js';

/**
 * The upstream's response headers as Port sends them to the caller: hop-by-hop fields and
 * those the upstream's `Connection` lists are removed (RFC 9110 §7.6.1), which includes
 * `proxy-authenticate` (meant for a proxy, and the caller did not talk to one).
 * `set-cookie` is kept: the upstream's cookies are the upstream's business, and the relay
 * never forwards the caller's `Cookie` back to it anyway. A `101` response to an allowed
 * upgrade needs its `upgrade`/`connection` and is the relay's to write, not this function's.
 */
export function downstreamResponseHeaders(
  upstreamHeaders: Readonly<Record<string, string | string[] | undefined>>,
): Record<string, string | string[]> {
  const connectionValues: string[] = [];
  for (const [name, value] of Object.entries(upstreamHeaders)) {
    if (name.toLowerCase() !== 'connection' || value === undefined) continue;
    if (typeof value === 'string') connectionValues.push(value);
    else connectionValues.push(...value);
  }
  const listed = connectionListed(connectionValues);

  const out: Record<string, string | string[]> = {};
  for (const [rawName, value] of Object.entries(upstreamHeaders)) {
    if (value === undefined) continue;
    const name = rawName.toLowerCase();
    if (HOP_BY_HOP.has(name) || listed.has(name)) continue;
    const prev = out[name];
    const values = typeof value === 'string' ? [value] : value;
    if (prev === undefined) out[name] = typeof value === 'string' ? value : [...value];
    else out[name] = [...(typeof prev === 'string' ? [prev] : prev), ...values];
  }
  return out;
}
