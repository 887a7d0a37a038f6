import type { SignedCallerIdentityRequest } from './attestation/aws-iam.js';
import { AttestationError } from './attestation/errors.js';

/**
 * The body of `POST /v1/agents/attest`, checked member by member. Validated here rather
 * than by a Fastify JSON schema: Fastify's default Ajv options remove members a schema
 * doesn't list (`removeAdditional`) and coerce types, and an attestation must be refused,
 * not trimmed, when it carries anything unexpected. Each refusal names the member.
 */
export interface AttestRequest {
  /** A Buildkite OIDC token of a job on the attesting agent, for Port's audience. */
  buildkite_token: string;
  /** A signed sts:GetCallerIdentity the host made with its instance role (not sent by it). */
  aws_iam?: SignedCallerIdentityRequest;
  /** The EC2 instance identity document and its base64 signature, as IMDS serves them. */
  aws_iid?: { document: string; signature: string };
}

/** Largest accepted body (bytes): a token, a signed request and an identity document fit in far less. */
export const MAX_ATTEST_BODY_BYTES = 64 * 1024;

const LIMITS = {
  token: 16 * 1024,
  url: 2048,
  headers: 32,
  headerName: 128,
  // An instance role's session token is about 1.3 KB; AWS allows larger ones with session tags.
  headerValue: 8192,
  /** Base64 of the GetCallerIdentity form: a few dozen bytes. */
  iamBody: 4096,
  /** An instance identity document is about 500 bytes. */
  document: 8192,
  /** The base64 `signature` (RSA-2048: 344 characters) or `pkcs7`/`rsa2048` forms (about 1.5 KB). */
  signature: 8192,
} as const;

const TOP = ['buildkite_token', 'aws_iam', 'aws_iid'];
const IAM = ['method', 'url', 'headers', 'body'];
const IID = ['document', 'signature'];

/** The request, or AttestationError `invalid_attestation` (400) naming what is wrong. */
export function parseAttestRequest(body: unknown): AttestRequest {
  const top = object(body, 'The request body');
  onlyMembers(top, TOP, 'The request body');
  const token = string(top.buildkite_token, 'buildkite_token', LIMITS.token);
  if (top.aws_iam === undefined && top.aws_iid === undefined) {
    throw invalid('The request carries no attestation: send aws_iam (a signed sts:GetCallerIdentity), aws_iid (the instance identity document and signature), or both.');
  }
  const out: AttestRequest = { buildkite_token: token };
  if (top.aws_iam !== undefined) out.aws_iam = iamRequest(top.aws_iam);
  if (top.aws_iid !== undefined) {
    const iid = object(top.aws_iid, 'aws_iid');
    onlyMembers(iid, IID, 'aws_iid');
    out.aws_iid = { document: string(iid.document, 'aws_iid.document', LIMITS.document), signature: string(iid.signature, 'aws_iid.signature', LIMITS.signature) };
  }
  return out;
}

function iamRequest(value: unknown): SignedCallerIdentityRequest {
  const iam = object(value, 'aws_iam');
  onlyMembers(iam, IAM, 'aws_iam');
  if (iam.method !== 'POST') throw invalid('aws_iam.method must be "POST" (sts:GetCallerIdentity is sent as a POST form).');
  const url = string(iam.url, 'aws_iam.url', LIMITS.url);
  const headersIn = object(iam.headers, 'aws_iam.headers');
  const names = Object.keys(headersIn);
  if (names.length > LIMITS.headers) throw invalid(`aws_iam.headers has more than ${LIMITS.headers} headers.`);
  const headers: Record<string, string> = {};
  for (const name of names) {
    if (name.length === 0 || name.length > LIMITS.headerName || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) {
      throw invalid('aws_iam.headers has a name that is not an HTTP header name.');
    }
    headers[name] = string(headersIn[name], `aws_iam.headers["${name}"]`, LIMITS.headerValue);
  }
  return { method: 'POST', url, headers, body: string(iam.body, 'aws_iam.body', LIMITS.iamBody) };
}

function object(value: unknown, what: string): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw invalid(`${what} must be a JSON object.`);
  return value as Record<string, unknown>;
}

function onlyMembers(o: Record<string, unknown>, allowed: readonly string[], what: string): void {
  const extra = Object.keys(o).find((k) => !allowed.includes(k));
  if (extra !== undefined) {
    const name = /^[A-Za-z0-9_-]{1,64}$/.test(extra) ? `"${extra}"` : 'a member';
    throw invalid(`${what} has ${name}, which Port does not accept; it takes ${allowed.join(', ')}.`);
  }
}

function string(value: unknown, what: string, max: number): string {
  if (value === undefined) throw invalid(`${what} is missing.`);
  if (typeof value !== 'string' || value === '') throw invalid(`${what} must be a non-empty string.`);
  if (value.length > max) throw invalid(`${what} is longer than ${max} characters.`);
  return value;
}

function invalid(message: string): AttestationError {
  return new AttestationError('invalid_attestation', message);
}
