/**
 * A local, faithful stand-in for Buildkite's OIDC token service
 * (https://buildkite.com/docs/agent/v3/cli-oidc, https://buildkite.com/docs/pipelines/security/oidc),
 * because Buildkite itself cannot be reached from tests or the demo. It serves:
 *
 * - `GET /.well-known/jwks` and `GET /.well-known/openid-configuration` (oidc.md "OIDC URLs");
 * - the Agent API call `POST /v3/jobs/{job_id}/oidc/tokens` (api/oidc.go in
 *   https://github.com/buildkite/agent), authenticated
 *   with `Authorization: Token <job token>` of that very job;
 *
 * and signs tokens exactly in Buildkite's format (the claim tables of the OIDC page and the
 * real token in https://github.com/rubygems/rubygems.org/issues/5412): RS256, header `{kid, alg}` with
 * no `typ`, Buildkite's claims in Buildkite's order. Methods (not HTTP) drive tests and the
 * demo: create and finish jobs, mint tokens directly, rotate keys, take the JWKS down.
 *
 * It also serves the REST API under `/v2/…` (https://buildkite.com/docs/apis/rest-api) with users, builds with block steps,
 * agents and the unblock endpoint, and sends webhooks (https://buildkite.com/docs/apis/webhooks/pipelines): see `rest-sim.ts`.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT } from 'jose';
import { AWS_TAGS_CLAIM, OPTIONAL_CLAIMS, applyOverrides, buildClaims } from './claims.js';
import { parseOutageBody, type OutageInit, type OutageState } from './outage.js';
import { SimApiError } from './errors.js';
import { BodyError, isRecord, readJson, sendJson } from './http.js';
import { uuid } from './ids.js';
import { JobApiServer } from './job-api-server.js';
import { JobRegistry } from './jobs.js';
import { KeyRing, SIGNING_ALG, type PublicJwk, type SigningKey } from './keys.js';
import type { MintOptions, OidcTokenRequest, SimJob, SimJobInit } from './types.js';
import type {
  ApiRequestRecord,
  DeliverWebhookOptions,
  SimAgent,
  SimAgentConnectionState,
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
import type { RateLimitOptions } from './rate-limit.js';
import { RestSim } from './rest-sim.js';
import { AgentRegistry } from './agents.js';
import type { WebhookPayload } from './webhook-payloads.js';

export interface BuildkiteSimulatorOptions {
  /** The organization slug jobs belong to by default (`organization_slug`). */
  organization: string;
  /** The organization's UUID (`organization_id`); random when omitted. */
  organizationId?: string;
  /** `iss` of every token; defaults to the simulator's own base URL. */
  issuer?: string;
  /** Interface to listen on; 127.0.0.1 by default. */
  host?: string;
  /** Port to listen on; 0 (any free port) by default. */
  port?: number;
  /** The one token the REST API (`/v2/…`) accepts as `Authorization: Bearer …`; random `bkua_…` by default. */
  apiToken?: string;
  /** The API token's owner: the default unblocker and the webhooks' `sender`. */
  apiTokenOwner?: SimUserInit;
  /** REST `RateLimit-*` window (200/min, not enforced, by default). */
  rateLimit?: RateLimitOptions;
}

const TOKENS_PATH = /^\/v3\/jobs\/([^/]+)\/oidc\/tokens\/?$/;

export class BuildkiteSimulator {
  readonly organization: string;
  readonly organizationId: string;
  /** Base URL, e.g. `http://127.0.0.1:41234`. */
  readonly url: string;
  readonly jwksUrl: string;
  readonly issuer: string;
  /** What `BUILDKITE_AGENT_ENDPOINT` should be for jobs of this simulator. */
  readonly agentEndpoint: string;

  private readonly jobs: JobRegistry;
  private readonly rest: RestSim;
  private jwksAvailable = true;
  private jwksRequests = 0;
  private tokenRequests = 0;
  private injectedFailures: { remaining: number; status: number } = { remaining: 0, status: 502 };

  private constructor(
    private readonly server: Server,
    private readonly keys: KeyRing,
    private readonly jobApi: JobApiServer,
    jobs: JobRegistry,
    opts: BuildkiteSimulatorOptions & { organizationId: string },
    url: string,
  ) {
    this.organization = opts.organization;
    this.organizationId = opts.organizationId;
    this.url = url;
    this.jwksUrl = `${url}/.well-known/jwks`;
    this.issuer = opts.issuer ?? url;
    this.agentEndpoint = `${url}/v3`;
    this.jobs = jobs;
    this.rest = new RestSim({
      baseUrl: url,
      organizationSlug: opts.organization,
      organizationId: opts.organizationId,
      apiToken: opts.apiToken,
      apiTokenOwner: opts.apiTokenOwner,
      rateLimit: opts.rateLimit,
      oidc: {
        create: (init) => this.createJob(init),
        finish: (jobId) => this.jobs.finish(jobId),
        get: (jobId) => this.jobs.get(jobId),
        isFinished: (jobId) => this.jobs.isFinished(jobId),
        agentQueryRules: (jobId) => this.jobs.agentQueryRules(jobId),
      },
      ids: { clusterId: (name) => jobs.clusterId(name), queueId: (clusterId, key) => jobs.queueId(clusterId, key) },
    });
  }

  static async start(opts: BuildkiteSimulatorOptions): Promise<BuildkiteSimulator> {
    const organizationId = opts.organizationId ?? uuid();
    const keys = await KeyRing.create();
    const jobs = new JobRegistry({ slug: opts.organization, id: organizationId });
    const jobApi = await JobApiServer.start((token) => jobs.byJobApi(token));
    let sim: BuildkiteSimulator | undefined;
    const server = createServer((req, res) => {
      if (sim === undefined) return sendJson(res, 503, { message: 'Service Unavailable' });
      sim.route(req, res).catch(() => {
        if (!res.headersSent) sendJson(res, 500, { message: 'Internal Server Error' });
      });
    });
    const host = opts.host ?? '127.0.0.1';
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(opts.port ?? 0, host, () => resolve());
      });
    } catch (err) {
      await jobApi.close();
      throw err;
    }
    const { port } = server.address() as AddressInfo;
    const urlHost = host.includes(':') ? `[${host}]` : host;
    sim = new BuildkiteSimulator(server, keys, jobApi, jobs, { ...opts, organizationId }, `http://${urlHost}:${port}`);
    return sim;
  }

  // ---- jobs -------------------------------------------------------------------------

  /** A new running job; every field not given gets a sensible default (see `JobRegistry`). */
  createJob(init?: SimJobInit): SimJob {
    const job = this.jobs.create(init);
    // The job runs on an agent the REST API can describe (`GET …/agents/{agent_id}`).
    this.rest.agents.assign(job);
    return job;
  }

  /** Ends a job: its job token (and Job API token) stop working, as on Buildkite. */
  finishJob(job: SimJob | string): void {
    this.jobs.finish(typeof job === 'string' ? job : job.jobId);
  }

  /**
   * The environment a process running as this job sees, as far as the OIDC flow needs it:
   * agent API auth and endpoint, the Job API socket, and the usual `BUILDKITE_*` job variables.
   */
  jobEnv(job: SimJob): Record<string, string> {
    const env: Record<string, string> = {
      BUILDKITE: 'true',
      BUILDKITE_JOB_ID: job.jobId,
      BUILDKITE_AGENT_ACCESS_TOKEN: job.jobToken,
      BUILDKITE_AGENT_ENDPOINT: this.agentEndpoint,
      BUILDKITE_AGENT_JOB_API_SOCKET: this.jobApi.socketPath,
      BUILDKITE_AGENT_JOB_API_TOKEN: job.jobApiToken,
      BUILDKITE_ORGANIZATION_SLUG: job.organizationSlug,
      BUILDKITE_PIPELINE_SLUG: job.pipelineSlug,
      BUILDKITE_PIPELINE_ID: job.pipelineId,
      BUILDKITE_BUILD_ID: job.buildId,
      BUILDKITE_BUILD_NUMBER: String(job.buildNumber),
      BUILDKITE_BRANCH: job.branch,
      BUILDKITE_TAG: job.tag ?? '',
      BUILDKITE_COMMIT: job.commit,
      BUILDKITE_STEP_KEY: job.stepKey ?? '',
      BUILDKITE_AGENT_ID: job.agentId,
      BUILDKITE_SOURCE: job.buildSource,
    };
    if (job.clusterId !== null) env.BUILDKITE_CLUSTER_ID = job.clusterId;
    for (const [name, value] of Object.entries(job.agentTags)) {
      env[`BUILDKITE_AGENT_META_DATA_${name.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`] = value;
    }
    return env;
  }

  /** Values added to a job's log redactor through the Job API (by `oidc request-token` or `redactor add`). */
  redactions(job: SimJob | string): string[] {
    return this.jobApi.redactions(typeof job === 'string' ? job : job.jobId);
  }

  // ---- tokens -----------------------------------------------------------------------

  /**
   * A signed token for a job, through the same code path as the Agent API endpoint (minus
   * auth). `job` may be any `SimJob`, registered or not, so tests can vary single fields.
   * Throws `SimApiError` (422) for requests Buildkite would refuse.
   */
  async mintToken(job: SimJob | string, opts: MintOptions = {}): Promise<string> {
    const resolved = typeof job === 'string' ? this.jobs.get(job) : job;
    if (resolved === undefined) throw new SimApiError('not_found', 'Job not found', 404);
    const request: OidcTokenRequest = {};
    if (opts.audience !== undefined) request.audience = opts.audience;
    if (opts.lifetime !== undefined) request.lifetime = opts.lifetime;
    if (opts.claims !== undefined) request.claims = opts.claims;
    if (opts.awsSessionTags !== undefined) request.awsSessionTags = opts.awsSessionTags;
    if (opts.subjectClaim !== undefined) request.subjectClaim = opts.subjectClaim;
    return this.issue(resolved, request, opts.now, opts.overrides);
  }

  /** The key new tokens are signed with, for tests that forge tokens. */
  get signingKey(): SigningKey {
    return this.keys.current;
  }

  /** A new key (new kid) signs from now on; the old one stays in the JWKS until `retireOldKeys()`. */
  async rotateKey(): Promise<SigningKey> {
    return this.keys.rotate();
  }

  retireOldKeys(): void {
    this.keys.retireOldKeys();
  }

  /** The JWKS document as served. */
  jwks(): { keys: PublicJwk[] } {
    return this.keys.jwks();
  }

  /** While false, `GET /.well-known/jwks` answers 503 (an outage, for fail-closed tests). */
  setJwksAvailable(available: boolean): void {
    this.jwksAvailable = available;
  }

  /** How many times the JWKS was requested (served or not): for cache tests. */
  get jwksRequestCount(): number {
    return this.jwksRequests;
  }

  /** How many token requests reached the Agent API endpoint (including refused ones). */
  get tokenRequestCount(): number {
    return this.tokenRequests;
  }

  /** The next `count` token requests answer `status` (5xx by default): for the agent's retries. */
  failTokenRequests(count: number, status = 502): void {
    this.injectedFailures = { remaining: count, status };
  }

  // ---- REST API, builds, users and webhooks (see rest-sim.ts) ----

  /** The REST API's origin (Port's `buildkite.api_url`); paths start `/v2/`. */
  get apiUrl(): string {
    return this.url;
  }

  /** The one token `/v2/…` accepts as `Authorization: Bearer …`. */
  get apiToken(): string {
    return this.rest.apiToken;
  }

  /** The API token's owner: credited when an unblock names no `unblocker`. */
  get apiUser(): SimUser {
    return this.rest.apiUser;
  }

  /** A user of the organization (a member; a valid `unblocker`). */
  createUser(init: SimUserInit): SimUser {
    return this.rest.createUser(init);
  }

  user(id: string): SimUser | undefined {
    return this.rest.users.get(id);
  }

  /** A build of `steps`; with a block step it is blocked at the first one at once (see builds.ts). */
  createBuild(init: SimBuildInit): SimBuild {
    return this.rest.createBuild(init);
  }

  build(buildId: string): SimBuild | undefined {
    return this.rest.builds.get(buildId);
  }

  /** Runs the build on (its running command jobs pass) until it blocks again or ends. */
  advanceBuild(build: SimBuild | string): SimBuild {
    return this.rest.builds.advance(typeof build === 'string' ? build : build.id);
  }

  /** Ends one running command job of a build (`job.finished`); its OIDC job ends too. */
  finishBuildJob(job: SimBuildJob | string, outcome?: { passed?: boolean; exitStatus?: number }): SimBuildJob {
    return this.rest.builds.finishJob(typeof job === 'string' ? job : job.id, outcome);
  }

  /** Cancels a build; unblocking its jobs then fails with 422 ("Unblock a job", https://buildkite.com/docs/apis/rest-api/jobs). */
  cancelBuild(build: SimBuild | string): SimBuild {
    return this.rest.builds.cancel(typeof build === 'string' ? build : build.id);
  }

  createAgent(init?: SimAgentInit): SimAgent {
    return this.rest.createAgent(init);
  }

  agent(id: string): SimAgent | undefined {
    return this.rest.agents.get(id);
  }

  /**
   * The agent's connection state changes, as Buildkite reports it (`connected`,
   * `disconnected`, `lost`, `stopping`, `stopped`; https://buildkite.com/docs/apis/rest-api/agents).
   */
  setAgentConnectionState(agent: SimAgent | string, state: SimAgentConnectionState): SimAgent {
    return this.rest.agents.setConnectionState(typeof agent === 'string' ? agent : agent.id, state);
  }

  /**
   * `buildkite-agent start --acquire-job ID` (https://buildkite.com/docs/agent/v3/cli-start):
   * the agent takes the running job whatever its tags — an agent registered into another
   * queue of the job's cluster included. From now on the REST job's `agent` is that agent
   * and the job's tokens carry its `agent_id` and tags; the job's `agent_query_rules` and
   * its cluster and queue claims stay the job's own (see `JobRegistry.reassign`). Throws
   * `SimApiError` for an unknown or disconnected agent, an agent of another cluster, or a finished job.
   */
  acquireJob(job: SimJob | string, agent: SimAgent | string): SimJob {
    const jobId = typeof job === 'string' ? job : job.jobId;
    const resolved = this.jobs.get(jobId);
    if (resolved === undefined || this.jobs.isFinished(jobId)) throw new SimApiError('unprocessable', 'The job is not running', 422);
    const taker = this.rest.agents.acquire(resolved, typeof agent === 'string' ? agent : agent.id);
    return this.jobs.reassign(jobId, { id: taker.id, tags: AgentRegistry.tags(taker) });
  }

  /** Every `PUT …/unblock` received — who, which fields, when, and the answer. */
  get unblockCalls(): readonly UnblockCall[] {
    return this.rest.unblockCalls;
  }

  /** Every `/v2/…` request answered. */
  get apiRequests(): readonly ApiRequestRecord[] {
    return this.rest.apiRequests;
  }

  /** The next `count` REST calls answer `status` (500 by default; 429 comes with `RateLimit-Reset: resetSeconds`). */
  failApiRequests(count: number, status = 500, opts?: { resetSeconds?: number }): void {
    this.rest.failApiRequests(count, status, opts);
  }

  /**
   * A REST API outage: every `/v2/…` call answers 503 (`unavailable`, or `status`) or is
   * held unanswered (`hang`) until it ends — after `seconds`, or at `setApiOutage(null)`.
   * Also over HTTP: `PUT /_sim/faults/rest` `{mode: "unavailable"|"hang"|"none", status?, seconds?}`
   * with the API token as Bearer.
   */
  setApiOutage(init: OutageInit | null): OutageState {
    return this.rest.setOutage(init);
  }

  buildFinishedPayload(build: SimBuild): WebhookPayload {
    return this.rest.buildFinishedPayload(build);
  }

  jobFinishedPayload(job: SimBuildJob, build: SimBuild): WebhookPayload {
    return this.rest.jobFinishedPayload(job, build);
  }

  jobActivatedPayload(job: SimBuildJob, build: SimBuild): WebhookPayload {
    return this.rest.jobActivatedPayload(job, build);
  }

  pingPayload(url?: string): WebhookPayload {
    return this.rest.pingPayload(url);
  }

  /** POSTs a webhook as Buildkite does, signed (`{secret}`) or with a token (`{token}`): https://buildkite.com/docs/apis/webhooks/pipelines. */
  deliverWebhook(url: string, event: string, payload: unknown, auth: WebhookAuth, opts?: DeliverWebhookOptions): Promise<WebhookDelivery> {
    return this.rest.deliverWebhook(url, event, payload, auth, opts);
  }

  /** Sends `build.finished` with `blocked: true` for a blocked build (https://buildkite.com/docs/apis/webhooks/pipelines/build-events). */
  blockAndNotify(url: string, build: SimBuild, auth: WebhookAuth, opts?: DeliverWebhookOptions): Promise<WebhookDelivery> {
    return this.rest.blockAndNotify(url, build, auth, opts);
  }

  /** Sends webhooks on its own from now on, as builds block and finish and steps are unblocked (null stops). */
  configureWebhook(target: WebhookTarget | null): void {
    this.rest.configureWebhook(target);
  }

  /** Waits for the automatic deliveries queued so far. */
  settleWebhooks(): Promise<void> {
    return this.rest.settleWebhooks();
  }

  /** Every webhook sent, with the receiver's answer. */
  get webhookDeliveries(): readonly WebhookDelivery[] {
    return this.rest.webhookDeliveries;
  }

  async close(): Promise<void> {
    // Held calls are let go before the server closes.
    this.rest.setOutage(null);
    await this.rest.settleWebhooks();
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      // Clients such as jose's remote JWKS keep connections alive; don't wait on them.
      this.server.closeAllConnections();
    });
    await this.jobApi.close();
  }

  // ---- internals --------------------------------------------------------------------

  private async issue(
    job: SimJob,
    request: OidcTokenRequest,
    now: number = Math.floor(Date.now() / 1000),
    overrides?: Record<string, unknown>,
  ): Promise<string> {
    const claims = applyOverrides(buildClaims({ job, request, issuer: this.issuer, now }), overrides);
    const key = this.keys.current;
    // Header exactly `{"kid": …, "alg": "RS256"}` in that order, no `typ` (rubygems#5412).
    return new SignJWT(claims).setProtectedHeader({ kid: key.kid, alg: SIGNING_ALG }).sign(key.privateKey);
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', this.url).pathname;
    if (path.startsWith('/v2/')) return this.rest.handle(req, res);
    if (path === '/_sim/faults/rest' && req.method === 'PUT') return this.serveOutage(req, res);
    if (path === '/.well-known/jwks' && (req.method === 'GET' || req.method === 'HEAD')) return this.serveJwks(res);
    if (path === '/.well-known/openid-configuration' && (req.method === 'GET' || req.method === 'HEAD')) {
      return sendJson(res, 200, this.discovery());
    }
    const match = TOKENS_PATH.exec(path);
    if (match !== null && req.method === 'POST') return this.serveToken(req, res, decodeURIComponent(match[1] ?? ''));
    sendJson(res, 404, { message: 'Not Found' });
  }

  /** The admin switch for REST outages (see `setApiOutage`); the API token guards it. */
  private async serveOutage(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const given = /^Bearer\s+(\S+)$/.exec(req.headers.authorization ?? '')?.[1];
    if (given !== this.rest.apiToken) return sendJson(res, 401, { message: 'Authentication required. Please supply a valid API Access Token.' });
    try {
      sendJson(res, 200, this.rest.setOutage(parseOutageBody(await readBody(req))));
    } catch (err) {
      if (err instanceof SimApiError) return sendJson(res, err.status, { message: err.message });
      throw err;
    }
  }

  private serveJwks(res: ServerResponse): void {
    this.jwksRequests++;
    if (!this.jwksAvailable) return sendJson(res, 503, { message: 'Service Unavailable' });
    sendJson(res, 200, this.keys.jwks());
  }

  /**
   * Unconfirmed contents (Buildkite documents the URL, not the document; real tokens are RS256). `jwks_uri`
   * points at this server even when `issuer` is set to Buildkite's real one, so clients can fetch it.
   */
  private discovery(): Record<string, unknown> {
    return {
      issuer: this.issuer,
      jwks_uri: this.jwksUrl,
      response_types_supported: ['id_token'],
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: [SIGNING_ALG],
      scopes_supported: ['openid'],
      claims_supported: [
        'iss', 'sub', 'aud', 'exp', 'nbf', 'iat', 'jti',
        'organization_slug', 'pipeline_slug', 'build_number', 'build_branch', 'build_tag', 'build_commit',
        'step_key', 'job_id', 'agent_id', 'build_source', 'runner_environment',
        ...OPTIONAL_CLAIMS, AWS_TAGS_CLAIM,
      ],
    };
  }

  private async serveToken(req: IncomingMessage, res: ServerResponse, jobId: string): Promise<void> {
    this.tokenRequests++;
    try {
      if (this.injectedFailures.remaining > 0) {
        this.injectedFailures.remaining--;
        throw new SimApiError('unavailable', 'Simulated failure', this.injectedFailures.status);
      }
      const job = this.authenticate(req, jobId);
      const request = parseTokenRequest(await readBody(req));
      const token = await this.issue(job, request);
      // Unconfirmed: 201 vs 200. The agent accepts any 2xx (`api/client.go` checkResponse).
      sendJson(res, 201, { token });
    } catch (err) {
      if (err instanceof SimApiError) return sendJson(res, err.status, { message: err.message });
      throw err;
    }
  }

  /**
   * `Authorization: Token <job token>` (api/oidc.go in https://github.com/buildkite/agent). A job token mints only for its own
   * job (`pages/agent/self_hosted/tokens.md`): unknown or finished-job tokens are 401, a valid
   * token used for another job is 403. Unconfirmed: the exact statuses and messages.
   */
  private authenticate(req: IncomingMessage, jobId: string): SimJob {
    const header = req.headers.authorization ?? '';
    const match = /^Token\s+(\S+)$/.exec(header);
    const job = match?.[1] === undefined ? undefined : this.jobs.byAccessToken(match[1]);
    if (job === undefined) throw new SimApiError('unauthorized', 'Unauthorized', 401);
    if (job.jobId !== jobId) throw new SimApiError('forbidden', 'Forbidden', 403);
    return job;
  }
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  try {
    return await readJson(req);
  } catch (err) {
    throw new SimApiError('bad_request', err instanceof BodyError ? err.message : 'Bad Request', 400);
  }
}

/** The token request body; keys are optional (the agent omits empty ones). Wrong types are 422. */
export function parseTokenRequest(body: unknown): OidcTokenRequest {
  if (body === undefined || body === null) return {};
  if (!isRecord(body)) throw new SimApiError('bad_request', 'Request body must be a JSON object', 400);
  const out: OidcTokenRequest = {};
  const bad = (key: string): SimApiError => new SimApiError('unprocessable', `Invalid value for ${key}`, 422);
  if (body.audience !== undefined && body.audience !== null) {
    if (typeof body.audience !== 'string') throw bad('audience');
    out.audience = body.audience;
  }
  if (body.lifetime !== undefined && body.lifetime !== null) {
    if (typeof body.lifetime !== 'number') throw bad('lifetime');
    out.lifetime = body.lifetime;
  }
  for (const [key, field] of [['claims', 'claims'], ['aws_session_tags', 'awsSessionTags']] as const) {
    const value = body[key];
    if (value === undefined || value === null) continue;
    if (!Array.isArray(value) || !value.every((v): v is string => typeof v === 'string')) throw bad(key);
    out[field] = value;
  }
  if (body.subject_claim !== undefined && body.subject_claim !== null) {
    if (typeof body.subject_claim !== 'string') throw bad('subject_claim');
    out.subjectClaim = body.subject_claim;
  }
  return out;
}
