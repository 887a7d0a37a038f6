/**
 * The one Agent API call the stand-in makes, the way `buildkite/agent:api/oidc.go`
 * and `api/client.go` make it: `POST {endpoint}/jobs/{job}/oidc/tokens` with
 * `Authorization: Token …` and a JSON body whose empty keys are omitted; errors read
 * `POST <url>: <status line>: <message>` like the agent's `api.ErrorResponse`.
 * Retries follow `clicommand/oidc_request_token.go`: up to 5 attempts, exponential
 * backoff from 2 s, no retry after 400, 401, 403 or 422
 * (https://github.com/buildkite/agent/blob/main/clicommand/oidc_request_token.go).
 */
import type { AgentIo, AgentLogger } from './agent-io.js';

export const SIM_AGENT_VERSION = '3.121.0+sim';
const USER_AGENT = `buildkite-agent/${SIM_AGENT_VERSION} (simulator)`;
const MAX_ATTEMPTS = 5;
const BACKOFF_BASE_SECONDS = 2;
const NO_RETRY_STATUSES = new Set([400, 401, 403, 422]);
/** The agent's HTTP client gives up on a request after 60 s (`internal/agenthttp/client.go` default timeout). */
const REQUEST_TIMEOUT_MS = 60_000;

/** Simulator-only knob: scales the backoff (0 = no waiting), so tests of retries stay fast. */
export const BACKOFF_SCALE_ENV = 'PORT_SIM_AGENT_BACKOFF_SCALE';

export interface OidcTokenCall {
  endpoint: string;
  accessToken: string;
  job: string;
  audience: string;
  lifetime: number;
  claims: string[];
  awsSessionTags: string[];
  subjectClaim: string;
}

/** A non-2xx answer from the Agent API. */
export class AgentApiError extends Error {
  constructor(
    readonly method: string,
    readonly url: string,
    readonly status: number,
    readonly statusText: string,
    readonly apiMessage: string,
  ) {
    super(`${method} ${url}: ${status} ${statusText}${apiMessage === '' ? '' : `: ${apiMessage}`}`);
    this.name = 'AgentApiError';
  }
}

/** Rails does not accept dots in some path segments (`api/client.go` railsPathEscape). */
function railsPathEscape(s: string): string {
  return encodeURIComponent(s).replace(/\./g, '%2E');
}

function joinUrlPath(endpoint: string, path: string): string {
  return `${endpoint.replace(/\/+$/, '')}/${path.replace(/^\/+/, '')}`;
}

async function attempt(io: AgentIo, call: OidcTokenCall): Promise<string> {
  const url = joinUrlPath(call.endpoint, `jobs/${railsPathEscape(call.job)}/oidc/tokens`);
  const body: Record<string, unknown> = {};
  if (call.audience !== '') body.audience = call.audience;
  if (call.lifetime !== 0) body.lifetime = call.lifetime;
  if (call.claims.length > 0) body.claims = call.claims;
  if (call.awsSessionTags.length > 0) body.aws_session_tags = call.awsSessionTags;
  if (call.subjectClaim !== '') body.subject_claim = call.subjectClaim;
  let res: Response;
  try {
    res = await io.fetch(url, {
      method: 'POST',
      headers: {
        authorization: `Token ${call.accessToken}`,
        'content-type': 'application/json',
        'user-agent': USER_AGENT,
      },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
  } catch (err) {
    if (err instanceof Error && err.name === 'TimeoutError') {
      throw new Error(`Post "${url}": context deadline exceeded (Client.Timeout exceeded while awaiting headers)`);
    }
    const cause = err instanceof Error && err.cause instanceof Error ? err.cause.message : String(err);
    throw new Error(`Post "${url}": ${cause}`);
  }
  const text = await res.text();
  if (!res.ok) {
    let message = '';
    try {
      const parsed = JSON.parse(text) as unknown;
      if (typeof parsed === 'object' && parsed !== null && 'message' in parsed && typeof parsed.message === 'string') {
        message = parsed.message;
      }
    } catch {
      // The agent ignores undecodable error bodies too.
    }
    throw new AgentApiError('POST', url, res.status, res.statusText, message);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new Error(`failed to decode JSON response: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (typeof parsed !== 'object' || parsed === null || !('token' in parsed) || typeof parsed.token !== 'string') {
    throw new Error('failed to decode JSON response: no "token" string');
  }
  return parsed.token;
}

/** The token, after the agent's retries; throws the last error. */
export async function requestOidcToken(io: AgentIo, log: AgentLogger, call: OidcTokenCall): Promise<string> {
  const scaleText = io.env[BACKOFF_SCALE_ENV];
  const scale = scaleText !== undefined && scaleText !== '' && Number.isFinite(Number(scaleText)) ? Number(scaleText) : 1;
  for (let n = 1; ; n++) {
    try {
      return await attempt(io, call);
    } catch (err) {
      if (err instanceof AgentApiError && NO_RETRY_STATUSES.has(err.status)) throw err;
      if (n >= MAX_ATTEMPTS) throw err;
      const delaySeconds = BACKOFF_BASE_SECONDS ** n;
      log.warn(`${err instanceof Error ? err.message : String(err)} (Attempt ${n}/${MAX_ATTEMPTS} Retrying in ${delaySeconds}s)`);
      await io.sleep(delaySeconds * 1000 * Math.max(0, scale));
    }
  }
}
