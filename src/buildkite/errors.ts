/**
 * Every failure of a Buildkite API call, as one typed error. It names the call
 * (method and path, never the origin's credentials), Buildkite's HTTP status and its
 * `{"message": …}` when it sent one — never the API token or a request body.
 */
import { PortError } from '../errors.js';

export type BuildkiteApiErrorCode =
  /** 400: e.g. "This job type cannot be unblocked" (https://buildkite.com/docs/apis/rest-api/jobs). */
  | 'buildkite_bad_request'
  /** 401: the API token is missing, wrong or revoked. */
  | 'buildkite_unauthorized'
  /** 403: the token lacks a scope or a permission. */
  | 'buildkite_forbidden'
  /** 404: no such organization, pipeline, build, job, agent or member (or no access to it). */
  | 'buildkite_not_found'
  /** 422: e.g. "Unblocker is not a valid user id for this organization" (https://buildkite.com/docs/apis/rest-api/jobs). */
  | 'buildkite_unprocessable'
  /** 429 after the retries, or a reset further away than Port will wait (https://buildkite.com/docs/apis/rest-api/rate-limits). */
  | 'buildkite_rate_limited'
  /** 5xx after the retries. */
  | 'buildkite_server_error'
  /** Any other status (e.g. a 3xx: redirects are not followed). */
  | 'buildkite_http_error'
  /** No complete answer within the per-request timeout, after the retries. */
  | 'buildkite_timeout'
  /** Connection refused, reset, DNS failure… after the retries. */
  | 'buildkite_network'
  /** A 2xx whose body is not the JSON Port expects. */
  | 'buildkite_invalid_response'
  /** The API token could not be read (its secret reference failed). */
  | 'buildkite_token_unavailable';

export interface BuildkiteApiErrorDetails {
  method: string;
  /** Path and query of the call, e.g. `/v2/organizations/acme/jobs/…/unblock`. */
  path: string;
  /** Buildkite's HTTP status; null when no response arrived. */
  httpStatus: number | null;
  /** Buildkite's `message`, when its body had one. */
  buildkiteMessage: string | null;
  /** Attempts made, retries included. */
  attempts: number;
  /** For rate limits: how long Buildkite asked to wait (ms), when it said. */
  retryAfterMs?: number;
  cause?: unknown;
}

export class BuildkiteApiError extends PortError {
  declare readonly code: BuildkiteApiErrorCode;
  readonly method: string;
  readonly path: string;
  readonly httpStatus: number | null;
  readonly buildkiteMessage: string | null;
  readonly attempts: number;
  readonly retryAfterMs: number | undefined;

  constructor(code: BuildkiteApiErrorCode, summary: string, details: BuildkiteApiErrorDetails) {
    const said = details.buildkiteMessage === null ? '' : `: ${details.buildkiteMessage}`;
    const tries = details.attempts > 1 ? ` (after ${details.attempts} attempts)` : '';
    super(code, `Buildkite API ${details.method} ${details.path} ${summary}${said}${tries}`, edgeStatus(code), {
      cause: details.cause,
    });
    this.method = details.method;
    this.path = details.path;
    this.httpStatus = details.httpStatus;
    this.buildkiteMessage = details.buildkiteMessage;
    this.attempts = details.attempts;
    this.retryAfterMs = details.retryAfterMs;
  }
}

/** What Port answers its own caller when this error reaches the edge: Buildkite is upstream. */
function edgeStatus(code: BuildkiteApiErrorCode): number {
  if (code === 'buildkite_timeout') return 504;
  if (code === 'buildkite_rate_limited') return 503;
  return 502;
}

/** The error code for a Buildkite HTTP status. */
export function codeForStatus(status: number): BuildkiteApiErrorCode {
  switch (status) {
    case 400:
      return 'buildkite_bad_request';
    case 401:
      return 'buildkite_unauthorized';
    case 403:
      return 'buildkite_forbidden';
    case 404:
      return 'buildkite_not_found';
    case 422:
      return 'buildkite_unprocessable';
    case 429:
      return 'buildkite_rate_limited';
    default:
      return status >= 500 ? 'buildkite_server_error' : 'buildkite_http_error';
  }
}
