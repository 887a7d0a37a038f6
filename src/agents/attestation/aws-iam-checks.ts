import { createHash } from 'node:crypto';
import { isHeaderValue, type SignedCallerIdentityRequest } from './aws-iam-request.js';
import { AttestationError } from './errors.js';

/** What Port forwards to STS once every check passed: only these headers, this body. */
export interface ForwardableRequest {
  headers: Record<string, string>;
  body: Buffer;
  /** X-Amz-Date, milliseconds since the epoch. */
  signedAt: number;
  /** Identifies this signed request (a hash of its signature) for single-use bookkeeping. */
  replayKey: string;
}

/**
 * The headers Port forwards to STS. A client may send others (a user agent…); they are
 * dropped unless signed, and a signed one outside this list is refused: STS would see it
 * missing and refuse anyway, and Port never relays arbitrary headers to AWS.
 */
const FORWARDED = new Set(['authorization', 'content-type', 'content-length', 'host', 'x-amz-date', 'x-amz-security-token', 'x-amz-content-sha256', 'x-port-server-id']);
/** Signed headers without which the request proves nothing to Port. */
const MUST_SIGN = ['host', 'x-amz-date', 'x-port-server-id'];

const MAX_URL_CHARS = 2048;
/** Base64 of the 43-byte form, with room for parameter reordering; anything bigger is not it. */
const MAX_BODY_CHARS = 256;
const MAX_HEADERS = 32;
/** A session token of an instance role is ~1.3 KB; AWS allows larger ones for session tags. */
const MAX_HEADER_VALUE = 8192;
const MAX_HEADER_TOTAL = 16 * 1024;

// SigV4 Authorization header (https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html#add-signature-to-request).
const AUTH = /^AWS4-HMAC-SHA256 Credential=([A-Z0-9]{16,128})\/(\d{8})\/([a-z0-9-]{1,32})\/([a-z0-9-]{1,32})\/aws4_request, ?SignedHeaders=([a-z0-9;-]{1,1024}), ?Signature=([0-9a-f]{64})$/;
const AMZ_DATE = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const FORM_TYPE = /^application\/x-www-form-urlencoded(; ?charset=utf-8)?$/i;

/**
 * Every check Port can make on a signed GetCallerIdentity before anything is sent: the
 * request must be exactly the one `signCallerIdentityRequest` makes, for this Port, signed
 * recently, to the configured STS endpoint. Forwarding anything else would make Port an
 * open relay to AWS with the agent host's signature (the risk Vault's IAM method guards with
 * the same checks). Throws `invalid_attestation` naming the first problem.
 */
export function checkSignedRequest(
  req: SignedCallerIdentityRequest,
  expect: { endpoint: URL; serverId: string; maxAgeMs: number; now: number },
): ForwardableRequest {
  if (req === null || typeof req !== 'object') throw invalid('The aws_iam proof must be an object with method, url, headers and body.');
  if (req.method !== 'POST') throw invalid('The signed sts:GetCallerIdentity request must use POST.');
  if (typeof req.url !== 'string' || req.url.length > MAX_URL_CHARS) throw invalid(`The signed request's url must be a string of at most ${MAX_URL_CHARS} characters.`);
  let url: URL;
  try {
    url = new URL(req.url);
  } catch {
    throw invalid("The signed request's url is not a URL.");
  }
  if (/[\s\x00-\x1f\x7f]/.test(req.url) || url.href !== expect.endpoint.href) {
    throw invalid(`The signed request must be sent to ${expect.endpoint.href} (attestation.aws_iam.sts_endpoint); sign it for that URL.`);
  }
  const body = checkBody(req.body);
  const headers = checkHeaders(req.headers);

  const auth = AUTH.exec(headers.get('authorization') ?? '');
  if (!auth) throw invalid('The signed request needs an Authorization header with an AWS4-HMAC-SHA256 signature (Credential, SignedHeaders, Signature).');
  const [, , scopeDate, , service, signedList, signature] = auth as unknown as [string, string, string, string, string, string, string];
  if (service !== 'sts') throw invalid("The signed request's credential scope must be for the sts service.");
  const signed = signedList.split(';');
  if (new Set(signed).size !== signed.length || signed.some((n) => n === '')) throw invalid('The SignedHeaders list of the signed request is malformed.');
  for (const name of MUST_SIGN) {
    if (!signed.includes(name)) throw invalid(`The signed request must sign the ${name} header (add it to SignedHeaders).`);
  }
  for (const name of signed) {
    if (!FORWARDED.has(name)) throw invalid(`The signed request signs the header ${name}, which Port does not forward to STS; sign only ${[...FORWARDED].filter((n) => n !== 'authorization').join(', ')}.`);
    if (!headers.has(name)) throw invalid(`The signed request signs the header ${name} but does not carry it.`);
  }
  for (const name of headers.keys()) {
    if (name.startsWith('x-amz-') && !signed.includes(name)) throw invalid(`The signed request carries ${name} without signing it.`);
  }

  // Exact: the value is signed, and Port forwards it as it is.
  if (headers.get('host') !== expect.endpoint.host) {
    throw invalid(`The signed request's Host header must be ${expect.endpoint.host}, the host of attestation.aws_iam.sts_endpoint.`);
  }
  if (headers.get('x-port-server-id') !== expect.serverId) {
    throw invalid(`The signed request's X-Port-Server-ID header must be ${expect.serverId}, this Port's attestation.aws_iam.server_id; it was signed for another server.`);
  }
  const amzDate = headers.get('x-amz-date')!;
  const d = AMZ_DATE.exec(amzDate);
  if (!d) throw invalid('The signed request\'s X-Amz-Date must have the form yyyyMMddTHHmmssZ.');
  const signedAt = Date.UTC(+d[1]!, +d[2]! - 1, +d[3]!, +d[4]!, +d[5]!, +d[6]!);
  if (Number.isNaN(signedAt) || scopeDate !== amzDate.slice(0, 8)) throw invalid("The signed request's X-Amz-Date does not match its credential scope date.");
  if (Math.abs(expect.now - signedAt) > expect.maxAgeMs) {
    throw invalid(`The signed request's X-Amz-Date is more than ${Math.round(expect.maxAgeMs / 1000)} s from Port's clock (attestation.aws_iam.max_age); sign a new one and check the host's clock.`);
  }
  const contentType = headers.get('content-type');
  if (contentType === undefined || !FORM_TYPE.test(contentType)) throw invalid('The signed request\'s Content-Type must be application/x-www-form-urlencoded.');
  const contentLength = headers.get('content-length');
  if (contentLength !== undefined && contentLength !== String(body.length)) throw invalid('The signed request\'s Content-Length does not match its body.');
  const contentSha = headers.get('x-amz-content-sha256');
  if (contentSha !== undefined && contentSha !== createHash('sha256').update(body).digest('hex')) throw invalid('The signed request\'s X-Amz-Content-Sha256 does not match its body.');

  const forwarded: Record<string, string> = {};
  for (const [name, value] of headers) if (FORWARDED.has(name)) forwarded[name] = value;
  return { headers: forwarded, body, signedAt, replayKey: `aws_iam:${createHash('sha256').update(signature).digest('base64url')}` };
}

/** The form must be GetCallerIdentity and nothing else: no other action, no extra parameter. */
function checkBody(raw: unknown): Buffer {
  if (typeof raw !== 'string' || raw.length > MAX_BODY_CHARS || !BASE64.test(raw)) {
    throw invalid(`The signed request's body must be the base64 of its form (at most ${MAX_BODY_CHARS} characters).`);
  }
  const body = Buffer.from(raw, 'base64');
  const text = body.toString('utf8');
  if (!/^[A-Za-z0-9=&._-]*$/.test(text)) throw invalid('The signed request\'s body must be Action=GetCallerIdentity&Version=2011-06-15.');
  const form = new URLSearchParams(text);
  const keys = [...form.keys()].sort();
  if (keys.join(',') !== 'Action,Version' || form.get('Action') !== 'GetCallerIdentity' || form.get('Version') !== '2011-06-15') {
    throw invalid('The signed request\'s body must be Action=GetCallerIdentity&Version=2011-06-15, with no other parameter.');
  }
  return body;
}

/** Lower-cased names; one value each; sizes bounded; nothing that could split a header. */
function checkHeaders(raw: unknown): Map<string, string> {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw invalid("The signed request's headers must be an object of name: value.");
  const entries = Object.entries(raw as Record<string, unknown>);
  if (entries.length > MAX_HEADERS) throw invalid(`The signed request carries more than ${MAX_HEADERS} headers.`);
  const out = new Map<string, string>();
  let total = 0;
  for (const [name, value] of entries) {
    if (!/^[A-Za-z0-9-]{1,64}$/.test(name)) throw invalid('The signed request has a header name that is not a token.');
    const lower = name.toLowerCase();
    if (out.has(lower)) throw invalid(`The signed request carries the header ${lower} twice.`);
    if (typeof value !== 'string' || !isHeaderValue(value, MAX_HEADER_VALUE)) {
      throw invalid(`The signed request's ${lower} header must be one printable value of at most ${MAX_HEADER_VALUE} characters.`);
    }
    total += lower.length + value.length;
    if (total > MAX_HEADER_TOTAL) throw invalid(`The signed request's headers exceed ${MAX_HEADER_TOTAL} bytes.`);
    out.set(lower, value);
  }
  return out;
}

function invalid(message: string): AttestationError {
  return new AttestationError('invalid_attestation', message);
}
