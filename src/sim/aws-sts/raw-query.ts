/**
 * Splits a raw query string into the decoded name → value(s) map SigV4 signs (the signer
 * re-encodes per RFC 3986). `+` stays `+`: SigV4 canonicalisation does not treat it as a
 * space, so neither do the signer (the relay) and the verifiers (the simulators).
 */
export function parseRawQuery(raw: string): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const part of raw.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const name = decode(eq < 0 ? part : part.slice(0, eq));
    const value = eq < 0 ? '' : decode(part.slice(eq + 1));
    const prev = out[name];
    out[name] = prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [prev, value];
  }
  return out;
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
