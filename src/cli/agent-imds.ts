import { request } from 'undici';
import { readCappedBody } from '../http-body.js';

/**
 * The EC2 instance metadata service, as `port agent attest` reads it on the agent host:
 * IMDSv2 only (a session token from `PUT /latest/api/token`, then GETs with it), so a
 * request forwarded by an open proxy or an SSRF-able service on the host can't read it
 * (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/configuring-instance-metadata-service.html).
 * The endpoint is the one AWS SDKs use: `AWS_EC2_METADATA_SERVICE_ENDPOINT`, else
 * `http://169.254.169.254`; `AWS_EC2_METADATA_DISABLED=true` turns it off.
 */
export interface InstanceIdentityProof {
  /** The identity document, byte for byte as IMDS served it (the signature is over these bytes). */
  document: string;
  /** Its base64 RSA signature (`/latest/dynamic/instance-identity/signature`). */
  signature: string;
  /** The document's region (for messages and the default STS signing region). */
  region?: string;
}

/** IMDS could not be used; `unreachable` when nothing answered (not an EC2 instance, or IMDS off). */
export class ImdsError extends Error {
  constructor(
    readonly unreachable: boolean,
    message: string,
  ) {
    super(message);
  }
}

const DEFAULT_ENDPOINT = 'http://169.254.169.254';
/** Link-local and answered by the hypervisor: anything slower is not an instance's IMDS. */
const TIMEOUT_MS = 2000;
const MAX_ANSWER_BYTES = 16 * 1024;

export function imdsEndpoint(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if ((env.AWS_EC2_METADATA_DISABLED ?? '').toLowerCase() === 'true') return undefined;
  return (env.AWS_EC2_METADATA_SERVICE_ENDPOINT || DEFAULT_ENDPOINT).replace(/\/+$/, '');
}

/** The instance identity document and its signature; ImdsError when IMDS can't give them. */
export async function instanceIdentity(endpoint: string): Promise<InstanceIdentityProof> {
  const token = await call(endpoint, 'PUT', '/latest/api/token', { 'x-aws-ec2-metadata-token-ttl-seconds': '60' });
  const headers = { 'x-aws-ec2-metadata-token': token };
  const document = await call(endpoint, 'GET', '/latest/dynamic/instance-identity/document', headers);
  const signature = (await call(endpoint, 'GET', '/latest/dynamic/instance-identity/signature', headers)).trim();
  let region: string | undefined;
  try {
    const r = (JSON.parse(document) as { region?: unknown }).region;
    if (typeof r === 'string') region = r;
  } catch {
    throw new ImdsError(false, 'the instance metadata service answered an identity document that is not JSON');
  }
  return { document, signature, ...(region !== undefined ? { region } : {}) };
}

async function call(endpoint: string, method: 'PUT' | 'GET', path: string, headers: Record<string, string>): Promise<string> {
  let res;
  try {
    res = await request(`${endpoint}${path}`, { method, headers, headersTimeout: TIMEOUT_MS, bodyTimeout: TIMEOUT_MS, signal: AbortSignal.timeout(TIMEOUT_MS) });
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    throw new ImdsError(true, `the instance metadata service at ${endpoint} did not answer (${typeof code === 'string' ? code : 'timeout'})`);
  }
  const answer = await readCappedBody(res.body as typeof res.body & AsyncIterable<Buffer>, MAX_ANSWER_BYTES);
  if (answer === undefined) throw new ImdsError(false, `the instance metadata service answered more than ${MAX_ANSWER_BYTES} bytes for ${path}`);
  if (res.statusCode !== 200) {
    // 403 on the token: IMDS is off for this instance (or the request went through a proxy).
    throw new ImdsError(path === '/latest/api/token', `the instance metadata service answered HTTP ${res.statusCode} for ${method} ${path}`);
  }
  return answer.toString('utf8');
}
