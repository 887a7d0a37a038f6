import { timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { Sha256 } from '@aws-crypto/sha256-js';
import { SignatureV4 } from '@smithy/signature-v4';
import { AwsSimError } from './aws-sim-error.js';
import { parseRawQuery } from './raw-query.js';

/** A secret the simulator knows for an access key id (an IAM user's key or an issued session). */
export interface SigningSecret {
  secretAccessKey: string;
  /** Issued sessions only: the token the request must present as `X-Amz-Security-Token`. */
  sessionToken?: string;
}

export interface VerifiedSignature {
  accessKeyId: string;
  region: string;
  service: string;
  signedHeaders: string[];
  /** The payload hash the signature covers (`UNSIGNED-PAYLOAD` when the body is not covered). */
  payloadHash: string;
  sessionToken?: string;
}

export interface SignedRequest {
  method: string;
  /** The request target as received (path and raw query). */
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** AWS refuses a request whose X-Amz-Date is more than 15 minutes off (SigV4 docs, "Elements of a request signature"). */
const MAX_SKEW_MS = 15 * 60 * 1000;
const AUTH = /^AWS4-HMAC-SHA256 Credential=([A-Z0-9]{16,128})\/(\d{8})\/([a-z0-9-]+)\/([a-z0-9-]+)\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$/;
const AMZ_DATE = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;
const UNSIGNED_PAYLOAD = 'UNSIGNED-PAYLOAD';

/**
 * Verifies an `Authorization: AWS4-HMAC-SHA256 …` header the way AWS does: recompute the
 * signature over exactly the headers the client signed (SigV4 docs, "Create a canonical
 * request"), with the secret of the presented key, and compare. `secretFor` answers the
 * key's secret or throws the AWS error for an unknown / expired key.
 */
export async function verifySigV4(
  req: SignedRequest,
  expect: { service: string; uriEscapePath: boolean; allowUnsignedPayload: boolean },
  secretFor: (accessKeyId: string) => SigningSecret,
  now = Date.now(),
): Promise<VerifiedSignature> {
  const header = req.headers.authorization;
  if (header === undefined) throw new AwsSimError('MissingAuthenticationToken', 'Request is missing Authentication Token', 403);
  const m = AUTH.exec(header);
  if (!m) throw new AwsSimError('IncompleteSignature', 'Authorization header requires Credential, SignedHeaders and Signature parameters.', 400);
  const [, accessKeyId, scopeDate, region, service, signedHeaderList, signature] = m as unknown as [string, string, string, string, string, string, string];
  if (service !== expect.service) throw new AwsSimError('SignatureDoesNotMatch', `Credential should be scoped to correct service: '${expect.service}'.`, 403);
  const amzDate = single(req.headers['x-amz-date']);
  const d = amzDate === undefined ? null : AMZ_DATE.exec(amzDate);
  if (!d) throw new AwsSimError('IncompleteSignature', 'X-Amz-Date must be present in the form yyyyMMddTHHmmssZ.', 400);
  const signingDate = new Date(Date.UTC(+d[1]!, +d[2]! - 1, +d[3]!, +d[4]!, +d[5]!, +d[6]!));
  if (Math.abs(now - signingDate.getTime()) > MAX_SKEW_MS) {
    throw new AwsSimError('SignatureDoesNotMatch', `Signature expired: ${amzDate} is now earlier or later than 15 minutes from the server time.`, 403);
  }
  if (scopeDate !== amzDate!.slice(0, 8)) throw new AwsSimError('SignatureDoesNotMatch', 'Credential scope date does not match X-Amz-Date.', 403);
  const signed = signedHeaderList.split(';');
  if (!signed.includes('host')) throw new AwsSimError('SignatureDoesNotMatch', "'Host' must be a signed header.", 403);
  for (const h of Object.keys(req.headers)) {
    // Every x-amz-* header a request carries must be signed (SigV4 docs, "Signed headers").
    if (h.startsWith('x-amz-') && !signed.includes(h)) throw new AwsSimError('SignatureDoesNotMatch', `Header ${h} is present but not signed.`, 403);
  }
  const secret = secretFor(accessKeyId);
  const presentedToken = single(req.headers['x-amz-security-token']);
  if (secret.sessionToken !== undefined && !sameString(presentedToken ?? '', secret.sessionToken)) {
    throw new AwsSimError('InvalidClientTokenId', 'The security token included in the request is invalid.', 403);
  }
  if (secret.sessionToken === undefined && presentedToken !== undefined) {
    throw new AwsSimError('InvalidClientTokenId', 'The security token included in the request is invalid.', 403);
  }

  const headers: Record<string, string> = {};
  for (const name of signed) {
    const value = req.headers[name];
    if (value === undefined) throw new AwsSimError('SignatureDoesNotMatch', `Signed header ${name} is missing from the request.`, 403);
    headers[name] = Array.isArray(value) ? value.join(',') : value;
  }
  const contentHash = headers['x-amz-content-sha256'];
  if (contentHash === UNSIGNED_PAYLOAD && !expect.allowUnsignedPayload) {
    throw new AwsSimError('SignatureDoesNotMatch', 'UNSIGNED-PAYLOAD is not accepted by this service.', 403);
  }
  const bodyHash = await sha256Hex(req.body);
  if (contentHash !== undefined && contentHash !== UNSIGNED_PAYLOAD && contentHash !== bodyHash) {
    throw new AwsSimError('XAmzContentSHA256Mismatch', "The provided 'x-amz-content-sha256' header does not match what was computed.", 400);
  }
  const queryAt = req.url.indexOf('?');
  const path = queryAt < 0 ? req.url : req.url.slice(0, queryAt);
  const signer = new SignatureV4({
    credentials: { accessKeyId, secretAccessKey: secret.secretAccessKey, ...(secret.sessionToken !== undefined && signed.includes('x-amz-security-token') ? { sessionToken: secret.sessionToken } : {}) },
    region,
    service,
    sha256: Sha256,
    uriEscapePath: expect.uriEscapePath,
    applyChecksum: false,
  });
  const resigned = await signer.sign(
    {
      method: req.method,
      protocol: 'http:',
      hostname: headers.host!,
      path,
      query: queryAt < 0 ? {} : parseRawQuery(req.url.slice(queryAt + 1)),
      headers,
      body: req.body.length > 0 ? req.body : undefined,
    },
    { signingDate, signableHeaders: new Set(signed) },
  );
  const expected = /Signature=([0-9a-f]{64})$/.exec(String(resigned.headers.authorization))?.[1] ?? '';
  const expectedSigned = /SignedHeaders=([^,]+),/.exec(String(resigned.headers.authorization))?.[1] ?? '';
  if (expectedSigned !== signedHeaderList || !sameString(expected, signature)) {
    throw new AwsSimError(
      'SignatureDoesNotMatch',
      'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.',
      403,
    );
  }
  return {
    accessKeyId,
    region,
    service,
    signedHeaders: signed,
    payloadHash: contentHash ?? bodyHash,
    ...(presentedToken !== undefined ? { sessionToken: presentedToken } : {}),
  };
}

function single(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function sameString(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export async function sha256Hex(body: Uint8Array): Promise<string> {
  const h = new Sha256();
  h.update(body);
  return Buffer.from(await h.digest()).toString('hex');
}
