/**
 * The simulator's REST API and webhook side (https://buildkite.com/docs/apis/rest-api,
 * https://buildkite.com/docs/apis/webhooks/pipelines): users, builds with
 * block steps, agents; the `/v2` endpoints behind `Authorization: Bearer <api token>`
 * with `RateLimit-*` headers; a record of every unblock call; webhook payloads, signed
 * deliveries, and (when a target is configured) the deliveries Buildkite would send on
 * its own as builds block, jobs finish and block steps are unblocked.
 */
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { AgentRegistry, type ClusterIds } from './agents.js';
import type {
  ApiRequestRecord,
  DeliverWebhookOptions,
  SimAgent,
  SimAgentInit,
  SimBuild,
  SimBuildInit,
  SimBuildJob,
  SimUser,
  SimUserInit,
  UnblockCall,
  WebhookAuth,
  WebhookDelivery,
  WebhookTarget,
} from './build-types.js';
import { BuildRegistry, UNBLOCK_REFUSALS, type BuildEvent, type OidcJobs } from './builds.js';
import { SimApiError, unprocessable } from './errors.js';
import { BodyError, isRecord, readJson, sendJson } from './http.js';
import { randomHex, uuid } from './ids.js';
import { RateLimitWindow, rateLimitHeaders, type RateLimitOptions, type RateLimitState } from './rate-limit.js';
import { routeRest, type RestBackend, type RestResponse } from './rest-api.js';
import { jobJson, oidcJobJson, type Json, type RestContext } from './rest-json.js';
import type { SimJob } from './types.js';
import { deliverWebhook } from './webhook-delivery.js';
import { RestOutage, type OutageInit, type OutageState } from './outage.js';
import { buildEventPayload, jobEventPayload, pingPayload, type WebhookPayload } from './webhook-payloads.js';
import { UserRegistry } from './users.js';

export interface RestSimOptions {
  baseUrl: string;
  organizationSlug: string;
  organizationId: string;
  /** The one API token the REST API accepts; a random `bkua_…` by default. */
  apiToken?: string;
  /** The token's owner: the default unblocker and the webhooks' `sender`. */
  apiTokenOwner?: SimUserInit;
  rateLimit?: RateLimitOptions;
  /** The OIDC side, where a build's command jobs run. */
  oidc: OidcJobs & { get(jobId: string): SimJob | undefined; isFinished(jobId: string): boolean; agentQueryRules(jobId: string): string[] };
  /** Cluster and queue ids, shared with the OIDC side's jobs. */
  ids?: ClusterIds;
}

/** Answers the next calls with a failure: 5xx, or 429 with `RateLimit-Reset: resetSeconds`. */
export interface InjectedFailure {
  remaining: number;
  status: number;
  resetSeconds: number;
}

const AUTH_MESSAGE = 'Authentication required. Please supply a valid API Access Token.'; // Unconfirmed wording.
const DEFAULT_EVENTS = ['build.finished', 'job.finished', 'job.activated'];

export class RestSim implements RestBackend {
  readonly apiToken: string;
  readonly apiUser: SimUser;
  readonly users = new UserRegistry();
  readonly agents: AgentRegistry;
  readonly builds: BuildRegistry;
  readonly ctx: RestContext;

  private readonly rate: RateLimitWindow;
  private injected: InjectedFailure = { remaining: 0, status: 500, resetSeconds: 1 };
  private readonly outage = new RestOutage();
  private readonly unblockLog: UnblockCall[] = [];
  private readonly requestLog: ApiRequestRecord[] = [];
  private readonly deliveries: WebhookDelivery[] = [];
  private webhook: WebhookTarget | null = null;
  private outbox: Promise<void> = Promise.resolve();
  private readonly serviceId = uuid();

  constructor(private readonly opts: RestSimOptions) {
    this.apiToken = opts.apiToken ?? `bkua_${randomHex(20)}`;
    this.agents = new AgentRegistry(opts.ids);
    this.apiUser = this.users.create(opts.apiTokenOwner ?? { name: 'Port Automation', email: `port@${opts.organizationSlug}.example` });
    this.rate = new RateLimitWindow(opts.rateLimit);
    this.ctx = {
      baseUrl: opts.baseUrl,
      organizationSlug: opts.organizationSlug,
      organizationId: opts.organizationId,
      agentOfJob: (jobId) => {
        const job = opts.oidc.get(jobId);
        return job === undefined ? undefined : this.agents.get(job.agentId);
      },
    };
    this.builds = new BuildRegistry(opts.organizationSlug, opts.oidc, (id) => this.users.get(id), (e) => this.onBuildEvent(e));
  }

  // ---- HTTP ---------------------------------------------------------------------------

  /** Answers one `/v2/…` request. */
  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.ctx.baseUrl);
    // An outage (fault injection) comes first: Buildkite down or hanging, whoever asks.
    const gone = new Promise<void>((resolve) => res.once('close', () => resolve()));
    const outageStatus = await this.outage.meet(gone);
    if (res.destroyed) return;
    if (outageStatus !== undefined) {
      this.requestLog.push({ at: new Date(), method: req.method ?? '', path: `${url.pathname}${url.search}`, status: outageStatus });
      return sendJson(res, outageStatus, { message: 'Service Unavailable' });
    }
    const window = this.rate.take();
    let response: RestResponse;
    try {
      response = await this.answer(req, url, window);
    } catch (err) {
      if (!(err instanceof SimApiError)) throw err;
      response = { status: err.status, body: { message: err.message } };
    }
    this.requestLog.push({ at: new Date(), method: req.method ?? '', path: `${url.pathname}${url.search}`, status: response.status });
    if (this.requestLog.length > 10_000) this.requestLog.shift();
    sendJson(res, response.status, response.body, { ...rateLimitHeaders(window), ...(response.headers ?? {}) });
  }

  private async answer(req: IncomingMessage, url: URL, window: RateLimitState): Promise<RestResponse> {
    if (this.injected.remaining > 0) {
      this.injected.remaining--;
      const { status, resetSeconds } = this.injected;
      if (status === 429) return rateLimited(this.rate.limit, resetSeconds);
      return { status, body: { message: 'Simulated failure' } };
    }
    if (!this.authorized(req)) return { status: 401, body: { message: AUTH_MESSAGE } };
    if (window.exceeded && this.rate.enforce) return rateLimited(this.rate.limit, window.reset);
    return routeRest(this, req.method ?? 'GET', url, () => readBody(req));
  }

  /** `Authorization: Bearer <token>` only; Basic auth is not supported (https://buildkite.com/docs/apis/rest-api). */
  private authorized(req: IncomingMessage): boolean {
    const match = /^Bearer\s+(\S+)$/.exec(req.headers.authorization ?? '');
    if (match?.[1] === undefined) return false;
    const given = Buffer.from(match[1]);
    const expected = Buffer.from(this.apiToken);
    return given.length === expected.length && timingSafeEqual(given, expected);
  }

  // ---- REST backend -------------------------------------------------------------------

  unblock(jobId: string, body: unknown): SimBuildJob {
    const request = isRecord(body) ? body : {};
    const unblocker = request.unblocker === undefined || request.unblocker === null ? undefined : request.unblocker;
    const found = this.builds.job(jobId);
    const record = (status: number, message: string | null, unblockedBy: SimUser | null): void => {
      this.unblockLog.push({
        at: new Date(),
        jobId,
        build: found === undefined ? null : { id: found.build.id, pipelineSlug: found.build.pipelineSlug, number: found.build.number },
        unblocker: typeof unblocker === 'string' ? unblocker : unblocker === undefined ? null : JSON.stringify(unblocker),
        fields: request.fields ?? null,
        status,
        message,
        unblockedBy,
      });
    };
    try {
      if (body !== undefined && !isRecord(body)) throw new SimApiError('bad_request', 'Request body must be a JSON object', 400);
      if (unblocker !== undefined && typeof unblocker !== 'string') throw unprocessable(UNBLOCK_REFUSALS.badUnblocker);
      const job = this.builds.unblock(jobId, { unblocker, fields: request.fields ?? undefined }, this.apiUser);
      record(200, null, job.unblockedBy);
      return job;
    } catch (err) {
      if (err instanceof SimApiError) record(err.status, err.message, null);
      throw err;
    }
  }

  agentJob(jobId: string | null): Json | null {
    if (jobId === null) return null;
    const found = this.builds.job(jobId);
    if (found !== undefined) return jobJson(this.ctx, found.build, found.job);
    return this.oidcJob(jobId) ?? null;
  }

  oidcJob(jobId: string): Json | undefined {
    const job = this.opts.oidc.get(jobId);
    if (job === undefined) return undefined;
    return oidcJobJson(this.ctx, job, this.opts.oidc.isFinished(jobId), this.opts.oidc.agentQueryRules(jobId));
  }

  // ---- test knobs and records ------------------------------------------------------------

  get unblockCalls(): readonly UnblockCall[] {
    return this.unblockLog;
  }

  get apiRequests(): readonly ApiRequestRecord[] {
    return this.requestLog;
  }

  get webhookDeliveries(): readonly WebhookDelivery[] {
    return this.deliveries;
  }

  /** Every REST call answers a 5xx, or hangs, until the outage ends (null ends it). */
  setOutage(init: OutageInit | null): OutageState {
    return this.outage.set(init);
  }

  get outageState(): OutageState {
    return this.outage.state();
  }

  failApiRequests(count: number, status = 500, opts: { resetSeconds?: number } = {}): void {
    this.injected = { remaining: count, status, resetSeconds: opts.resetSeconds ?? 1 };
  }

  createUser(init: SimUserInit): SimUser {
    return this.users.create(init);
  }

  createBuild(init: SimBuildInit): SimBuild {
    return this.builds.create(init);
  }

  createAgent(init?: SimAgentInit): SimAgent {
    return this.agents.create(init);
  }

  // ---- webhooks -------------------------------------------------------------------------

  buildFinishedPayload(build: SimBuild): WebhookPayload {
    return buildEventPayload(this.ctx, 'build.finished', build, this.apiUser);
  }

  jobFinishedPayload(job: SimBuildJob, build: SimBuild): WebhookPayload {
    return jobEventPayload(this.ctx, 'job.finished', job, build, this.apiUser);
  }

  jobActivatedPayload(job: SimBuildJob, build: SimBuild): WebhookPayload {
    return jobEventPayload(this.ctx, 'job.activated', job, build, this.apiUser);
  }

  pingPayload(url = this.webhook?.url ?? `${this.ctx.baseUrl}/webhook`): WebhookPayload {
    return pingPayload(this.ctx, this.serviceId, url, this.apiUser);
  }

  async deliverWebhook(url: string, event: string, payload: unknown, auth: WebhookAuth, opts?: DeliverWebhookOptions): Promise<WebhookDelivery> {
    const delivery = await deliverWebhook(url, event, payload, auth, opts);
    this.deliveries.push(delivery);
    return delivery;
  }

  /** Sends `build.finished` for a build blocked at a block step (https://buildkite.com/docs/apis/webhooks/pipelines/build-events). */
  async blockAndNotify(url: string, build: SimBuild, auth: WebhookAuth, opts?: DeliverWebhookOptions): Promise<WebhookDelivery> {
    if (!build.blocked) throw new Error(`build ${build.pipelineSlug}#${build.number} is not blocked`);
    return this.deliverWebhook(url, 'build.finished', this.buildFinishedPayload(build), auth, opts);
  }

  /** From now on, send `target.events` on state changes, in order (null stops). */
  configureWebhook(target: WebhookTarget | null): void {
    this.webhook = target;
  }

  /** Waits until every automatic delivery queued so far has been answered. */
  async settleWebhooks(): Promise<void> {
    await this.outbox;
  }

  private onBuildEvent(e: BuildEvent): void {
    const target = this.webhook;
    if (target === null || !(target.events ?? DEFAULT_EVENTS).includes(e.event)) return;
    // The payload is taken now: the build moves on before the delivery goes out.
    const payload = e.event === 'build.finished' ? this.buildFinishedPayload(e.build) : jobEventPayload(this.ctx, e.event, e.job, e.build, this.apiUser);
    this.outbox = this.outbox.then(async () => {
      await this.deliverWebhook(target.url, e.event, payload, target.auth);
    });
  }
}

/** A 429 as `rate_limits.md` shows it, with the window's headers saying it is exhausted. */
function rateLimited(limit: number, reset: number): RestResponse {
  return {
    status: 429,
    headers: { 'RateLimit-Remaining': '0', 'RateLimit-Reset': String(reset) },
    body: {
      message: `You have exceeded your API rate limit. Please wait ${reset} seconds before making more requests.`,
      scope: 'rest',
      limit,
      current: limit + 1,
      reset,
    },
  };
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  try {
    return await readJson(req);
  } catch (err) {
    throw new SimApiError('bad_request', err instanceof BodyError ? err.message : 'Bad Request', 400);
  }
}
