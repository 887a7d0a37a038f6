/**
 * The Buildkite REST API client Port uses (https://buildkite.com/docs/apis/rest-api;
 * endpoints from its builds, jobs, agents and organization members pages): get a build with its jobs,
 * list a build's jobs, get a job, unblock a block step, get an agent, and find an
 * organization member. Bearer auth with a token read on every request (so a rotated
 * secret applies at once), a deadline per request, bounded retries with backoff on 5xx,
 * 429 and network failures, and every failure raised as a `BuildkiteApiError`.
 */
import type { Dispatcher } from 'undici';
import type { z } from 'zod';
import { backoffDelayMs, parseRateLimit, rateLimitWaitMs, type Headers } from './backoff.js';
import { BuildkiteApiError, codeForStatus, type BuildkiteApiErrorCode } from './errors.js';
import {
  agentSchema,
  buildSchema,
  errorBodySchema,
  jobListSchema,
  jobSchema,
  memberListSchema,
  memberSchema,
} from './schemas.js';
import { attempt, type AttemptOutcome } from './transport.js';
import type {
  BuildkiteAgent,
  BuildkiteBuild,
  BuildkiteJob,
  BuildkiteJobPage,
  BuildkiteMember,
  BuildkiteRateLimit,
  UnblockJobRequest,
} from './types.js';

export interface BuildkiteApiOptions {
  /** API origin, e.g. `https://api.buildkite.com` (config `buildkite.api_url`); paths start `/v2/`. */
  baseUrl: string;
  /** The API token, read at each request (e.g. from the secret reference). Never logged. */
  token: () => string;
  /** Organization slug (`{org}` in every path). */
  organization: string;
  /** Deadline for one request, headers and body (ms). Default 10 000. */
  timeoutMs?: number;
  /** Retries after the first attempt, on 5xx, 429, timeouts and network failures. Default 3. */
  maxRetries?: number;
  /** Backoff: first retry waits ~this (ms), doubling. Default 200. */
  baseDelayMs?: number;
  /** Backoff cap (ms). Default 5 000. */
  maxDelayMs?: number;
  /** A 429 (or 5xx `Retry-After`) asking for a longer wait fails at once instead (ms). Default 30 000. */
  maxRateLimitWaitMs?: number;
  /** Largest response body read (bytes). Default 16 MiB. */
  maxResponseBytes?: number;
  /** undici dispatcher (connection pool, proxy). Default: undici's global one. */
  dispatcher?: Dispatcher;
  userAgent?: string;
  /** Called before each retry (for logs and metrics). */
  onRetry?: (info: RetryInfo) => void;
  /** Test seams. */
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
  now?: () => number;
}

export interface RetryInfo {
  method: string;
  path: string;
  /** 1 for the first retry. */
  retry: number;
  waitMs: number;
  reason: 'server_error' | 'rate_limited' | 'timeout' | 'network';
  httpStatus: number | null;
}

type Method = 'GET' | 'PUT';
type RetryReason = RetryInfo['reason'];

const DEFAULTS = {
  timeoutMs: 10_000,
  maxRetries: 3,
  baseDelayMs: 200,
  maxDelayMs: 5_000,
  maxRateLimitWaitMs: 30_000,
  maxResponseBytes: 16 * 1024 * 1024,
};

const seg = encodeURIComponent;

export class BuildkiteApi {
  readonly organization: string;
  private readonly origin: string;
  private readonly opts: Required<Pick<BuildkiteApiOptions, keyof typeof DEFAULTS>> & BuildkiteApiOptions;
  private lastRateLimit: BuildkiteRateLimit | null = null;

  constructor(options: BuildkiteApiOptions) {
    // `api_url` is the origin; tolerate one written with the `/v2` suffix.
    this.origin = options.baseUrl.replace(/\/+$/, '').replace(/\/v2$/, '');
    this.organization = options.organization;
    this.opts = {
      ...options,
      timeoutMs: options.timeoutMs ?? DEFAULTS.timeoutMs,
      maxRetries: options.maxRetries ?? DEFAULTS.maxRetries,
      baseDelayMs: options.baseDelayMs ?? DEFAULTS.baseDelayMs,
      maxDelayMs: options.maxDelayMs ?? DEFAULTS.maxDelayMs,
      maxRateLimitWaitMs: options.maxRateLimitWaitMs ?? DEFAULTS.maxRateLimitWaitMs,
      maxResponseBytes: options.maxResponseBytes ?? DEFAULTS.maxResponseBytes,
    };
  }

  /** `RateLimit-*` headers of the most recent response, or null before the first (https://buildkite.com/docs/apis/rest-api/rate-limits). */
  get rateLimit(): BuildkiteRateLimit | null {
    return this.lastRateLimit;
  }

  /** `GET …/pipelines/{pipeline}/builds/{number}`: the build, with its jobs unless `excludeJobs` (https://buildkite.com/docs/apis/rest-api/builds). */
  async getBuild(pipeline: string, number: number, opts: { excludeJobs?: boolean; includeRetriedJobs?: boolean } = {}): Promise<BuildkiteBuild> {
    const query = new URLSearchParams();
    if (opts.excludeJobs) query.set('exclude_jobs', 'true');
    if (opts.includeRetriedJobs) query.set('include_retried_jobs', 'true');
    return (await this.call('GET', this.buildPath(pipeline, number), buildSchema, { query })).value;
  }

  /** One page of `GET …/builds/{number}/jobs` (cursor pagination, https://buildkite.com/docs/apis/rest-api/jobs). */
  async listBuildJobs(
    pipeline: string,
    number: number,
    opts: { states?: string[]; perPage?: number; after?: string } = {},
  ): Promise<BuildkiteJobPage> {
    const query = new URLSearchParams();
    for (const state of opts.states ?? []) query.append('state[]', state);
    if (opts.perPage !== undefined) query.set('per_page', String(opts.perPage));
    if (opts.after !== undefined) query.set('after', opts.after);
    const path = `${this.buildPath(pipeline, number)}/jobs`;
    const { value } = await this.call('GET', path, jobListSchema, { query });
    return { items: value.items, nextCursor: cursorFrom(value.links?.next, 'after') };
  }

  /** All of a build's jobs, following `links.next` (at most `maxPages` pages). */
  async listAllBuildJobs(
    pipeline: string,
    number: number,
    opts: { states?: string[]; perPage?: number; maxPages?: number } = {},
  ): Promise<BuildkiteJob[]> {
    const jobs: BuildkiteJob[] = [];
    const maxPages = opts.maxPages ?? 50;
    let after: string | undefined;
    for (let page = 0; page < maxPages; page++) {
      const result = await this.listBuildJobs(pipeline, number, { states: opts.states, perPage: opts.perPage ?? 100, after });
      jobs.push(...result.items);
      if (result.nextCursor === null) return jobs;
      after = result.nextCursor;
    }
    throw this.failure('buildkite_invalid_response', `has more than ${maxPages} pages of jobs`, 'GET', `${this.buildPath(pipeline, number)}/jobs`, null, null, 1);
  }

  /** `GET /v2/organizations/{org}/jobs/{id}` (https://buildkite.com/docs/apis/rest-api/jobs). */
  async getJob(jobId: string): Promise<BuildkiteJob> {
    return (await this.call('GET', `${this.orgPath()}/jobs/${seg(jobId)}`, jobSchema)).value;
  }

  /**
   * `PUT /v2/organizations/{org}/jobs/{id}/unblock` with `{fields?, unblocker?}` ("Unblock a job",
   * https://buildkite.com/docs/apis/rest-api/jobs).
   * If a retried unblock is refused (400/422) after an earlier attempt may have reached
   * Buildkite (5xx, timeout, network), the job is read back: already `unblocked` counts
   * as done and is returned — check `unblocked_by` if the credited user matters.
   */
  async unblockJob(jobId: string, request: UnblockJobRequest = {}): Promise<BuildkiteJob> {
    const body: UnblockJobRequest = {};
    if (request.fields !== undefined) body.fields = request.fields;
    if (request.unblocker !== undefined) body.unblocker = request.unblocker;
    try {
      return (await this.call('PUT', `${this.orgPath()}/jobs/${seg(jobId)}/unblock`, jobSchema, { body })).value;
    } catch (err) {
      if (!(err instanceof BuildkiteApiError) || err.attempts < 2 || (err.httpStatus !== 400 && err.httpStatus !== 422)) throw err;
      const job = await this.getJob(jobId);
      if (job.state === 'unblocked') return job;
      throw err;
    }
  }

  /**
   * `PUT …/pipelines/{pipeline}/builds/{number}/cancel` (Buildkite docs, "Cancel a
   * build"): how Port fails a blocked build whose approval request expired.
   */
  async cancelBuild(pipeline: string, number: number): Promise<BuildkiteBuild> {
    return (await this.call('PUT', `${this.buildPath(pipeline, number)}/cancel`, buildSchema, { body: {} })).value;
  }

  /** `GET /v2/organizations/{org}/agents/{id}` (https://buildkite.com/docs/apis/rest-api/agents). */
  async getAgent(agentId: string): Promise<BuildkiteAgent> {
    return (await this.call('GET', `${this.orgPath()}/agents/${seg(agentId)}`, agentSchema)).value;
  }

  /** `GET /v2/organizations/{org}/members/{user id}` (`organizations/members.md`; scope `read_organizations`). */
  async getOrganizationMember(userId: string): Promise<BuildkiteMember> {
    return (await this.call('GET', `${this.orgPath()}/members/${seg(userId)}`, memberSchema)).value;
  }

  /**
   * The member with this e-mail (case-insensitive), or undefined: the REST way from a
   * person to the user id `unblocker` takes. Walks `GET …/members` pages (`Link: rel="next"`).
   */
  async findOrganizationMemberByEmail(email: string, opts: { perPage?: number; maxPages?: number } = {}): Promise<BuildkiteMember | undefined> {
    const wanted = email.trim().toLowerCase();
    const maxPages = opts.maxPages ?? 50;
    let page = 1;
    for (let i = 0; i < maxPages; i++) {
      const query = new URLSearchParams({ page: String(page), per_page: String(opts.perPage ?? 100) });
      const { value, headers } = await this.call('GET', `${this.orgPath()}/members`, memberListSchema, { query });
      const found = value.find((m) => m.email?.toLowerCase() === wanted);
      if (found !== undefined) return found;
      const next = cursorFrom(nextLink(headers), 'page');
      if (next === null || !/^\d+$/.test(next) || Number(next) <= page) return undefined;
      page = Number(next);
    }
    return undefined;
  }

  // ---- internals ----------------------------------------------------------------------

  private orgPath(): string {
    return `/v2/organizations/${seg(this.organization)}`;
  }

  private buildPath(pipeline: string, number: number): string {
    return `${this.orgPath()}/pipelines/${seg(pipeline)}/builds/${seg(String(number))}`;
  }

  /** One API call with retries; resolves with the parsed 2xx body or throws `BuildkiteApiError`. */
  private async call<S extends z.ZodType>(
    method: Method,
    path: string,
    schema: S,
    opts: { query?: URLSearchParams; body?: unknown } = {},
  ): Promise<{ value: z.output<S>; headers: Headers }> {
    const qs = opts.query?.toString() ?? '';
    const target = qs === '' ? path : `${path}?${qs}`;
    const body = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    for (let retry = 0; ; retry++) {
      const attempts = retry + 1;
      const outcome = await attempt({
        method,
        url: `${this.origin}${target}`,
        headers: this.headers(method, target, attempts, body !== undefined),
        body,
        timeoutMs: this.opts.timeoutMs,
        maxResponseBytes: this.opts.maxResponseBytes,
        dispatcher: this.opts.dispatcher,
      });
      if (outcome.kind === 'response') this.lastRateLimit = parseRateLimit(outcome.headers);
      const verdict = this.judge(outcome, schema, method, target, attempts);
      if (verdict.kind === 'done') return { value: verdict.value, headers: verdict.headers };
      if (verdict.kind === 'fail') throw verdict.error;
      if (retry >= this.opts.maxRetries) throw verdict.finalError;
      const waitMs = verdict.waitMs ?? backoffDelayMs(retry, this.backoffPolicy());
      this.opts.onRetry?.({ method, path: target, retry: retry + 1, waitMs, reason: verdict.reason, httpStatus: verdict.httpStatus });
      await this.sleep(waitMs);
    }
  }

  private judge<S extends z.ZodType>(
    outcome: AttemptOutcome,
    schema: S,
    method: Method,
    target: string,
    attempts: number,
  ):
    | { kind: 'done'; value: z.output<S>; headers: Headers }
    | { kind: 'fail'; error: BuildkiteApiError }
    | { kind: 'retry'; reason: RetryReason; waitMs: number | undefined; httpStatus: number | null; finalError: BuildkiteApiError } {
    const fail = (code: BuildkiteApiErrorCode, summary: string, status: number | null, message: string | null, extra: { retryAfterMs?: number; cause?: unknown } = {}) =>
      this.failure(code, summary, method, target, status, message, attempts, extra);
    switch (outcome.kind) {
      case 'timeout':
        return { kind: 'retry', reason: 'timeout', waitMs: undefined, httpStatus: null, finalError: fail('buildkite_timeout', `did not answer within ${this.opts.timeoutMs} ms`, null, null) };
      case 'network':
        return { kind: 'retry', reason: 'network', waitMs: undefined, httpStatus: null, finalError: fail('buildkite_network', `failed: ${networkReason(outcome.error)}`, null, null, { cause: outcome.error }) };
      case 'too_large':
        return { kind: 'fail', error: fail('buildkite_invalid_response', `answered ${outcome.status} with a body over ${this.opts.maxResponseBytes} bytes`, outcome.status, null) };
      case 'response':
        break;
    }
    const { status, headers, text } = outcome;
    const json = parseJson(text);
    if (status >= 200 && status < 300) {
      if (json === undefined) return { kind: 'fail', error: fail('buildkite_invalid_response', `answered ${status} with a body that is not JSON`, status, null) };
      const parsed = schema.safeParse(json);
      if (!parsed.success) {
        const where = parsed.error.issues[0]?.path.join('.') || '(root)';
        return { kind: 'fail', error: fail('buildkite_invalid_response', `answered ${status} with an unexpected shape at ${where}`, status, null) };
      }
      return { kind: 'done', value: parsed.data as z.output<S>, headers };
    }
    const message = buildkiteMessage(json);
    if (status === 429) {
      const waitMs = rateLimitWaitMs(headers, json, this.now());
      const error = fail('buildkite_rate_limited', 'answered 429', status, message, waitMs === undefined ? {} : { retryAfterMs: waitMs });
      // A reset further away than Port will wait: fail now rather than sleep or hammer.
      if (waitMs !== undefined && waitMs > this.opts.maxRateLimitWaitMs) return { kind: 'fail', error };
      const jittered = waitMs === undefined ? undefined : waitMs + Math.round(this.random() * Math.min(1000, this.opts.baseDelayMs));
      return { kind: 'retry', reason: 'rate_limited', waitMs: jittered, httpStatus: status, finalError: error };
    }
    if (status >= 500) {
      const asked = rateLimitRetryAfter(headers, this.now());
      const error = fail('buildkite_server_error', `answered ${status}`, status, message);
      const waitMs = asked !== undefined && asked <= this.opts.maxRateLimitWaitMs ? asked : undefined;
      return { kind: 'retry', reason: 'server_error', waitMs, httpStatus: status, finalError: error };
    }
    return { kind: 'fail', error: fail(codeForStatus(status), `answered ${status}`, status, message) };
  }

  private headers(method: Method, target: string, attempts: number, hasBody: boolean): Record<string, string> {
    let token: string;
    try {
      token = this.opts.token();
    } catch (err) {
      throw this.failure('buildkite_token_unavailable', 'was not sent: the API token could not be read', method, target, null, null, attempts, { cause: err });
    }
    const headers: Record<string, string> = {
      authorization: `Bearer ${token}`,
      accept: 'application/json',
      'user-agent': this.opts.userAgent ?? 'port (buildkite-api)',
    };
    if (hasBody) headers['content-type'] = 'application/json';
    return headers;
  }

  private failure(
    code: BuildkiteApiErrorCode,
    summary: string,
    method: string,
    path: string,
    httpStatus: number | null,
    buildkiteMessage: string | null,
    attempts: number,
    extra: { retryAfterMs?: number; cause?: unknown } = {},
  ): BuildkiteApiError {
    return new BuildkiteApiError(code, summary, { method, path, httpStatus, buildkiteMessage, attempts, ...extra });
  }

  private backoffPolicy() {
    return { baseDelayMs: this.opts.baseDelayMs, maxDelayMs: this.opts.maxDelayMs, random: () => this.random() };
  }

  private sleep(ms: number): Promise<void> {
    if (this.opts.sleep) return this.opts.sleep(ms);
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  private random(): number {
    return (this.opts.random ?? Math.random)();
  }

  private now(): number {
    return (this.opts.now ?? Date.now)();
  }
}

function parseJson(text: string): unknown {
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** Buildkite's `message`, trimmed to a sentence's length (it goes into logs). */
function buildkiteMessage(json: unknown): string | null {
  const parsed = errorBodySchema.safeParse(json);
  if (!parsed.success) return null;
  const message = parsed.data.message.replace(/\s+/g, ' ').trim();
  return message.length > 300 ? `${message.slice(0, 300)}…` : message;
}

/** `Retry-After` alone (a 503 may send it); RateLimit-* belong to 429s. */
function rateLimitRetryAfter(headers: Headers, nowMs: number): number | undefined {
  return headers['retry-after'] === undefined ? undefined : rateLimitWaitMs({ 'retry-after': headers['retry-after'] }, undefined, nowMs);
}

/** A query parameter of a pagination link; the client builds the next URL itself, so a link can't redirect the token elsewhere. */
function cursorFrom(link: string | null | undefined, param: string): string | null {
  if (link === null || link === undefined || link === '') return null;
  try {
    return new URL(link, 'http://placeholder.invalid').searchParams.get(param);
  } catch {
    return null;
  }
}

/** The `rel="next"` target of a `Link` header (RFC 8288). */
function nextLink(headers: Headers): string | null {
  const raw = headers.link;
  const value = Array.isArray(raw) ? raw.join(', ') : raw;
  if (value === undefined) return null;
  for (const part of value.split(/,(?=\s*<)/)) {
    const match = /<([^>]*)>\s*;(.*)$/.exec(part.trim());
    if (match && /\brel\s*=\s*"?next"?/i.test(match[2] ?? '')) return match[1] ?? null;
  }
  return null;
}

function networkReason(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string') return code;
  return error instanceof Error ? error.name : 'unknown error';
}
