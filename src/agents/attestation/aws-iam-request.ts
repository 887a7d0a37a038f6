import { createHash, createHmac } from 'node:crypto';
import { AttestationError } from './errors.js';

/**
 * The one AWS request an agent host signs to prove its instance role: `sts:GetCallerIdentity`
 * (https://docs.aws.amazon.com/STS/latest/APIReference/API_GetCallerIdentity.html), which
 * needs no IAM permission and answers who signed it. The host signs, Port sends it to STS and
 * reads the answer: the approach of Vault's aws auth IAM method
 * (https://developer.hashicorp.com/vault/docs/auth/aws#iam-auth-method).
 */
export interface SignedCallerIdentityRequest {
  method: 'POST';
  url: string;
  headers: Record<string, string>;
  /** The form body, base64. */
  body: string;
}

/**
 * Names the Port a signed request is meant for. It must be a signed header, so a request
 * signed for one Port (or one Vault, Port's own key differs from Vault's
 * `X-Vault-AWS-IAM-Server-ID`) can't be replayed at another: STS checks the signature,
 * the receiving Port checks the value.
 */
export const SERVER_ID_HEADER = 'X-Port-Server-ID';
export const CALLER_IDENTITY_BODY = 'Action=GetCallerIdentity&Version=2011-06-15';
export const FORM_CONTENT_TYPE = 'application/x-www-form-urlencoded; charset=utf-8';

export interface CallerIdentitySigningOptions {
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** The signing region of the endpoint (`us-east-1` for the global sts.amazonaws.com). */
  region: string;
  /** Port's `attestation.aws_iam.sts_endpoint`. */
  stsEndpoint: string;
  /** Port's `attestation.aws_iam.server_id` (its public URL by default). */
  serverId: string;
  now?: Date;
}

/**
 * Signs `POST <sts_endpoint>/` with `Action=GetCallerIdentity&Version=2011-06-15` with SigV4
 * (https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html), signing
 * `content-type`, `host`, `x-amz-date`, `x-amz-security-token` (session credentials) and
 * `x-port-server-id`.
 *
 * Written on node:crypto rather than with @smithy/signature-v4 (a dependency Port already
 * declares) because this request is fixed — one path, no query, five headers — and the
 * function is synchronous: the SDK signer is async only for its pluggable hash. The test
 * suite checks the result against @smithy/signature-v4 and the STS simulator, which verifies
 * with it. Port's relay signer (src/relay) signs only `host` and `x-amz-*`, so it can't carry
 * the server id header, and the relay will depend on this folder, not the other way round.
 */
export function signCallerIdentityRequest(o: CallerIdentitySigningOptions): SignedCallerIdentityRequest {
  let endpoint: URL;
  try {
    endpoint = new URL(o.stsEndpoint);
  } catch {
    throw invalid('The STS endpoint to sign for is not a URL.');
  }
  if (!/^https?:$/.test(endpoint.protocol) || endpoint.search !== '' || endpoint.hash !== '' || endpoint.username !== '' || endpoint.password !== '') {
    throw invalid('The STS endpoint to sign for must be an http(s) URL without query, fragment or user info.');
  }
  if (!/^[a-z0-9-]{1,32}$/.test(o.region)) throw invalid('The signing region must be an AWS region name.');
  if (!isHeaderValue(o.serverId)) throw invalid("Port's server id must be a printable header value of at most 1024 characters.");
  const amzDate = (o.now ?? new Date()).toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
  const date = amzDate.slice(0, 8);
  const headers: Record<string, string> = {
    'content-type': FORM_CONTENT_TYPE,
    host: endpoint.host,
    'x-amz-date': amzDate,
    ...(o.credentials.sessionToken !== undefined ? { 'x-amz-security-token': o.credentials.sessionToken } : {}),
    'x-port-server-id': o.serverId,
  };
  const names = Object.keys(headers).sort();
  const signedHeaders = names.join(';');
  const canonicalRequest = [
    'POST',
    endpoint.pathname,
    '',
    names.map((n) => `${n}:${headers[n]!.trim().replace(/ +/g, ' ')}\n`).join(''),
    signedHeaders,
    sha256Hex(CALLER_IDENTITY_BODY),
  ].join('\n');
  const scope = `${date}/${o.region}/sts/aws4_request`;
  const stringToSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256Hex(canonicalRequest)].join('\n');
  let key: Buffer = hmac(`AWS4${o.credentials.secretAccessKey}`, date);
  for (const part of [o.region, 'sts', 'aws4_request']) key = hmac(key, part);
  const signature = hmac(key, stringToSign).toString('hex');
  return {
    method: 'POST',
    url: endpoint.href,
    headers: {
      Authorization: `AWS4-HMAC-SHA256 Credential=${o.credentials.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`,
      'Content-Type': headers['content-type']!,
      Host: headers.host!,
      'X-Amz-Date': amzDate,
      ...(o.credentials.sessionToken !== undefined ? { 'X-Amz-Security-Token': o.credentials.sessionToken } : {}),
      [SERVER_ID_HEADER]: o.serverId,
    },
    body: Buffer.from(CALLER_IDENTITY_BODY).toString('base64'),
  };
}

/** Printable ASCII without leading/trailing space: what an HTTP header value can carry unchanged. */
export function isHeaderValue(v: string, maxChars = 1024): boolean {
  return v.length > 0 && v.length <= maxChars && /^[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?$/.test(v);
}

function sha256Hex(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

function hmac(key: string | Buffer, data: string): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

function invalid(message: string): AttestationError {
  return new AttestationError('invalid_attestation', message);
}
