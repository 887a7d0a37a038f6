/**
 * The simulated REST API's routes (https://buildkite.com/docs/apis/rest-api), past authentication:
 *
 * - `GET  /v2/organizations/{org}/pipelines/{pipeline}/builds/{number}` (`exclude_jobs`, `exclude_pipeline`)
 * - `GET  …/builds/{number}/jobs` (cursor pagination: `items` + `links.next`; `state[]`, `per_page`, `after`)
 * - `GET  …/builds/{number}/jobs/{id}` and `GET /v2/organizations/{org}/jobs/{id}`
 * - `PUT  …/builds/{number}/jobs/{id}/unblock` and `PUT /v2/organizations/{org}/jobs/{id}/unblock`
 * - `GET  /v2/organizations/{org}/agents/{id}`
 * - `GET  /v2/organizations/{org}/members[/{id}]` (`organizations/members.md`; `Link` pagination)
 * - `GET  /v2/user` (the token's owner)
 *
 * Unconfirmed: the exact 404 messages other than "No job found" (jobs.md).
 */
import type { SimBuild, SimBuildJob, SimUser } from './build-types.js';
import type { AgentRegistry } from './agents.js';
import type { BuildRegistry } from './builds.js';
import { SimApiError } from './errors.js';
import { agentJson, buildJson, jobJson, memberJson, userJson, type Json, type RestContext } from './rest-json.js';
import type { UserRegistry } from './users.js';

export interface RestResponse {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

export interface RestBackend {
  ctx: RestContext;
  builds: BuildRegistry;
  users: UserRegistry;
  agents: AgentRegistry;
  apiUser: SimUser;
  /** Performs (and records) an unblock; throws `SimApiError` to refuse. */
  unblock(jobId: string, body: unknown): SimBuildJob;
  /** The `job` of an agent's JSON. */
  agentJob(jobId: string | null): Json | null;
  /** A job created only on the OIDC side (`createJob`), as `GET …/jobs/{id}` answers it. */
  oidcJob(jobId: string): Json | undefined;
}

const ORG = '/v2/organizations/([^/]+)';
const BUILD = `${ORG}/pipelines/([^/]+)/builds/([^/]+)`;
const ROUTES: { method: string; pattern: RegExp; name: string }[] = [
  { method: 'GET', pattern: new RegExp(`^${BUILD}$`), name: 'build' },
  { method: 'GET', pattern: new RegExp(`^${BUILD}/jobs$`), name: 'buildJobs' },
  { method: 'GET', pattern: new RegExp(`^${BUILD}/jobs/([^/]+)$`), name: 'buildJob' },
  { method: 'PUT', pattern: new RegExp(`^${BUILD}/jobs/([^/]+)/unblock$`), name: 'buildJobUnblock' },
  // "Cancel a build", https://buildkite.com/docs/apis/rest-api/builds.
  { method: 'PUT', pattern: new RegExp(`^${BUILD}/cancel$`), name: 'buildCancel' },
  { method: 'GET', pattern: new RegExp(`^${ORG}/jobs/([^/]+)$`), name: 'job' },
  { method: 'PUT', pattern: new RegExp(`^${ORG}/jobs/([^/]+)/unblock$`), name: 'jobUnblock' },
  { method: 'GET', pattern: new RegExp(`^${ORG}/agents/([^/]+)$`), name: 'agent' },
  { method: 'GET', pattern: new RegExp(`^${ORG}/members$`), name: 'members' },
  { method: 'GET', pattern: new RegExp(`^${ORG}/members/([^/]+)$`), name: 'member' },
  { method: 'GET', pattern: /^\/v2\/user$/, name: 'user' },
];

const notFound = (what = 'Not Found'): SimApiError => new SimApiError('not_found', what, 404);
const badRequest = (message: string): SimApiError => new SimApiError('bad_request', message, 400);

export async function routeRest(b: RestBackend, method: string, url: URL, readBody: () => Promise<unknown>): Promise<RestResponse> {
  const path = url.pathname.replace(/\/+$/, '');
  for (const route of ROUTES) {
    const m = route.pattern.exec(path);
    if (m === null || route.method !== method) continue;
    const p = m.slice(1).map((s) => decodeURIComponent(s));
    if (route.name !== 'user' && p[0] !== b.ctx.organizationSlug) throw notFound();
    switch (route.name) {
      case 'build': {
        const build = findBuild(b, p[1], p[2]);
        const q = url.searchParams;
        return ok(buildJson(b.ctx, build, { jobs: q.get('exclude_jobs') !== 'true', pipeline: q.get('exclude_pipeline') !== 'true' }));
      }
      case 'buildJobs':
        return ok(listJobs(b, findBuild(b, p[1], p[2]), url));
      case 'buildJob': {
        const build = findBuild(b, p[1], p[2]);
        return ok(jobJson(b.ctx, build, jobOf(b, p[3], build)));
      }
      case 'buildJobUnblock': {
        const build = findBuild(b, p[1], p[2]);
        jobOf(b, p[3], build);
        return unblock(b, p[3] ?? '', readBody);
      }
      case 'buildCancel': {
        const build = findBuild(b, p[1], p[2]);
        if (build.state !== 'running' && !build.blocked) {
          throw new SimApiError('unprocessable', 'Build can\'t be canceled because it\'s already finished', 422);
        }
        return ok(buildJson(b.ctx, b.builds.cancel(build.id), { jobs: true, pipeline: true }));
      }
      case 'job': {
        const found = b.builds.job(p[1] ?? '');
        if (found !== undefined) return ok(jobJson(b.ctx, found.build, found.job));
        const oidcJob = b.oidcJob(p[1] ?? '');
        if (oidcJob === undefined) throw notFound('No job found');
        return ok(oidcJob);
      }
      case 'jobUnblock':
        return unblock(b, p[1] ?? '', readBody);
      case 'agent': {
        const agent = b.agents.get(p[1] ?? '');
        if (agent === undefined) throw notFound('No agent found');
        return ok(agentJson(b.ctx, agent, b.agentJob(agent.currentJobId)));
      }
      case 'members':
        return listMembers(b, url);
      case 'member': {
        const user = b.users.get(p[1] ?? '');
        if (user === undefined) throw notFound();
        return ok(memberJson(user, user.id === b.apiUser.id ? 'admin' : 'member'));
      }
      case 'user':
        return ok(userJson(b.apiUser));
    }
  }
  throw notFound();
}

const ok = (body: unknown, headers?: Record<string, string>): RestResponse => ({ status: 200, body, ...(headers ? { headers } : {}) });

function findBuild(b: RestBackend, pipeline: string | undefined, number: string | undefined): SimBuild {
  if (number === undefined || !/^\d+$/.test(number)) throw notFound('No build found');
  const build = b.builds.byPipelineNumber(pipeline ?? '', Number(number));
  if (build === undefined) throw notFound('No build found');
  return build;
}

function jobOf(b: RestBackend, jobId: string | undefined, build: SimBuild): SimBuildJob {
  const found = b.builds.job(jobId ?? '');
  if (found === undefined || found.build.id !== build.id) throw notFound('No job found');
  return found.job;
}

async function unblock(b: RestBackend, jobId: string, readBody: () => Promise<unknown>): Promise<RestResponse> {
  const body = await readBody();
  const job = b.unblock(jobId, body);
  const found = b.builds.job(job.id);
  return ok(jobJson(b.ctx, found!.build, job));
}

function perPage(url: URL, fallback: number): number {
  const raw = url.searchParams.get('per_page');
  if (raw === null) return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) < 1 || Number(raw) > 100) throw badRequest('Invalid per_page');
  return Number(raw);
}

/** `GET …/jobs`: `{items, links: {self, next?}}`; the cursor is opaque (here: the next index). */
function listJobs(b: RestBackend, build: SimBuild, url: URL): Json {
  const size = perPage(url, 30);
  const states = url.searchParams.getAll('state[]');
  const jobs = build.jobs.filter((j) => states.length === 0 || states.includes(j.state));
  let start = 0;
  const after = url.searchParams.get('after');
  if (after !== null) {
    const decoded = Buffer.from(after, 'base64url').toString('utf8');
    if (!/^\d+$/.test(decoded)) throw badRequest('Invalid cursor');
    start = Number(decoded);
  }
  const items = jobs.slice(start, start + size).map((job) => jobJson(b.ctx, build, job));
  const self = `${b.ctx.baseUrl}${url.pathname}${url.search}`;
  const links: Json = { self };
  if (start + size < jobs.length) {
    const next = new URL(self);
    next.searchParams.set('after', Buffer.from(String(start + size)).toString('base64url'));
    next.searchParams.set('per_page', String(size));
    links.next = next.toString();
  }
  return { items, links };
}

/** `GET …/members`: page-numbered with a `Link: <…>; rel="next"` header. */
function listMembers(b: RestBackend, url: URL): RestResponse {
  const size = perPage(url, 30);
  const pageRaw = url.searchParams.get('page') ?? '1';
  if (!/^\d+$/.test(pageRaw) || Number(pageRaw) < 1) throw badRequest('Invalid page');
  const page = Number(pageRaw);
  const users = b.users.all();
  const items = users.slice((page - 1) * size, page * size).map((u) => memberJson(u, u.id === b.apiUser.id ? 'admin' : 'member'));
  if (page * size >= users.length) return ok(items);
  const next = new URL(`${b.ctx.baseUrl}${url.pathname}`);
  next.searchParams.set('page', String(page + 1));
  next.searchParams.set('per_page', String(size));
  return ok(items, { Link: `<${next.toString()}>; rel="next"` });
}
