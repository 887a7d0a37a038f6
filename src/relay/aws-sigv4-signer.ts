import { Sha256 } from '@aws-crypto/sha256-js';
import { SignatureV4 } from '@smithy/signature-v4';

/** Session credentials to sign with (the calling job's own STS session). */
export interface SigningCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
}

/** Headers the relay sets from the signature; a caller's own values for them never pass. */
const SIGNATURE_HEADERS = ['authorization', 'x-amz-date', 'x-amz-security-token', 'x-amz-content-sha256'];
/**
 * Besides `host` and every `x-amz-*` left (the relay first drops those the upstream does not
 * forward: aws-sigv4-headers.ts), these are signed when present (they change what the
 * service does with the body).
 */
const SIGNED_IF_PRESENT = new Set(['content-type', 'content-md5', 'content-encoding']);
export const UNSIGNED_PAYLOAD = 'UNSIGNED-PAYLOAD';

/**
 * Signs one outgoing request with SigV4 (AWS "Signature Version 4 signing process"):
 * method, host, the canonical path of exactly what is forwarded, the query and the
 * signed headers. S3 gets `UNSIGNED-PAYLOAD` and its path as sent (S3 does not
 * double-encode); every other service gets the body's SHA-256 and a double-encoded path.
 * Mutates `headers` (the outgoing set) and answers nothing.
 */
export async function signAwsRequest(req: {
  method: string;
  /** Path as forwarded, percent-encoded, without the query. */
  path: string;
  /** Raw query string without `?` ('' for none). */
  query: string;
  headers: Record<string, string | string[]>;
  /** The whole body (non-S3); undefined for S3 or a bodiless request. */
  body: Buffer | undefined;
  service: string;
  region: string;
  credentials: SigningCredentials;
  now?: Date;
}): Promise<void> {
  const s3 = req.service === 's3';
  for (const name of SIGNATURE_HEADERS) delete req.headers[name];
  if (s3) req.headers['x-amz-content-sha256'] = UNSIGNED_PAYLOAD;
  const toSign: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (name === 'host' || name.startsWith('x-amz-') || SIGNED_IF_PRESENT.has(name)) toSign[name] = Array.isArray(value) ? value.join(',') : value;
  }
  const signer = new SignatureV4({ credentials: req.credentials, region: req.region, service: req.service, sha256: Sha256, uriEscapePath: !s3, applyChecksum: true });
  const signed = await signer.sign(
    { method: req.method, protocol: 'https:', hostname: toSign.host ?? '', path: req.path, query: parseRawQuery(req.query), headers: toSign, body: s3 ? undefined : req.body },
    { signingDate: req.now ?? new Date() },
  );
  for (const name of SIGNATURE_HEADERS) {
    const v = signed.headers[name];
    if (v !== undefined) req.headers[name] = v;
  }
}

/**
 * The query as the decoded name → value(s) map the signer re-encodes (RFC 3986). `+` is
 * kept as `+`: SigV4 canonicalisation does not read it as a space.
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
