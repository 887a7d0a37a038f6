/**
 * A revocation in force reaches approvals, whenever what it covers
 * shows up. Against Port's real server (startHarness), the Buildkite simulator (signed
 * webhooks, REST, unblock calls) and a real OIDC provider; people sign in through
 * /login → IdP → /auth/callback with plain HTTP agents (test/web/support.ts), and the
 * admin revokes through `POST /v1/revocations`.
 *
 * The attacks, each failing closed:
 * - A: pat@ is revoked, signs in again and approves: the sign-in is refused (403
 *   `user_revoked`) and the approval never counts; after the lift pat@ may sign in again.
 * - B: a build (or its creator, or its block step's job) is revoked before it reaches
 *   its block step: Port never unblocks it (not even under an auto-unblock policy) and
 *   opens no approvable request — the request is opened closed as `revoked`.
 * Also: a sign-in in flight when the revocation lands, a session that outlives the
 * revocation's own clean-up (another replica's revocation), and a pending request whose
 * build is revoked behind the service's back, each refused at their next step.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApprovalRequestRecord } from '../../src/store/records/approvals.js';
import type { DecisionEntry } from '../../src/store/records/decisions.js';
import type { BuildkiteSimulator, SimBuild, SimUser } from '../../src/sim/index.js';
import { APPROVAL_POLICIES } from '../helpers/approval-policies.js';
import { startHarness, TEST_POLICIES, type Harness } from '../helpers/port-harness.js';
import { waitUntil } from '../helpers/relay/util.js';
import { IDP_CLIENT_ID, IDP_CLIENT_SECRET, IDP_SCOPES, IDP_USERS, reservePorts, startIdp, type Idp } from '../web/idp.js';
import { Agent, csrfIn } from '../web/support.js';

const SECRET = 'revocation-reach-webhook-secret';
const ADMIN = 'revocation-reach-admin-token-0123456789';
const STEPS = [
  { type: 'command' as const, key: 'build', label: 'Build' },
  { type: 'block' as const, key: 'deploy', label: 'Deploy to production?' },
];
let idp: Idp;
let h: Harness;
let hook: string;

beforeAll(async () => {
  process.env.RR_WEBHOOK_SECRET = SECRET;
  process.env.RR_SSO_SECRET = IDP_CLIENT_SECRET;
  process.env.RR_ADMIN = ADMIN;
  const [port] = await reservePorts(1);
  idp = await startIdp({
    redirectUris: [`http://127.0.0.1:${port}/auth/callback`],
    users: { ...IDP_USERS, 'ivy@acme.test': { name: 'Ivy Platform', groups: ['platform'] }, 'una@acme.test': { name: 'Una Used', groups: ['developers'] } },
  });
  h = await startHarness({
    policies: { ...TEST_POLICIES, 'approvals.cedar': APPROVAL_POLICIES },
    config: (sim: BuildkiteSimulator) => {
      process.env.RR_BK_TOKEN = sim.apiToken;
      return {
        server: { listen: `127.0.0.1:${port}`, public_url: `http://127.0.0.1:${port}`, log_level: 'silent', admin_token: 'env:RR_ADMIN' },
        buildkite: {
          organization: 'acme',
          issuer: sim.issuer,
          jwks_url: sim.jwksUrl,
          audience: 'https://port.acme.test',
          api_url: sim.url,
          api_token: 'env:RR_BK_TOKEN',
          webhook_secret: 'env:RR_WEBHOOK_SECRET',
        },
        approvals: { expire_after: '1h' },
        sso: { issuer: idp.url, client_id: IDP_CLIENT_ID, client_secret: 'env:RR_SSO_SECRET', groups_claim: 'groups', scopes: IDP_SCOPES, session_ttl: '1h' },
      };
    },
  });
  hook = `${h.url}/webhooks/buildkite`;
}, 60_000);
afterAll(async () => {
  await h?.close();
  await idp?.close();
});

async function admin(method: 'POST' | 'DELETE', body: Record<string, unknown>): Promise<Record<string, unknown>> {
  const res = await fetch(`${h.url}/v1/revocations`, {
    method,
    headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const json = (await res.json()) as Record<string, unknown>;
  expect(res.status, JSON.stringify(json)).toBe(200);
  return json;
}
const revoke = (scope: string, id: string) => admin('POST', { scope, id, reason: 'believed compromised' });
const lift = (scope: string, id: string) => admin('DELETE', { scope, id, reason: 'false alarm' });

async function blockAndWait(build: SimBuild): Promise<DecisionEntry> {
  expect((await h.sim.blockAndNotify(hook, build, { secret: SECRET })).status).toBe(202);
  const jobId = blockJob(build);
  // Port's `unblock` decision on this step, whichever way it went, is the end of its handling.
  return eventually(
    async () => (await h.port.store.decisions.read(0, 10_000)).find((e) => e.record.action === 'unblock' && e.record.context?.job_id === jobId),
    `Port's unblock decision on build #${build.number}`,
  );
}

function blockJob(build: SimBuild): string {
  return build.jobs.find((j) => j.type === 'manual')!.id;
}

async function requestOf(build: SimBuild): Promise<ApprovalRequestRecord> {
  return eventually(() => h.port.store.approvals.getByJob(blockJob(build)), `the request of build #${build.number}`);
}

/** Polls an async check until it yields a value. */
async function eventually<T>(check: () => Promise<T | undefined>, what: string, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** GETs the request's page and POSTs a decision from it; the decision's answer. */
async function decide(agent: Agent, request: ApprovalRequestRecord, verdict: 'approve' | 'reject'): Promise<Response> {
  const page = await agent.request(`/approvals/${request.id}`);
  expect(page.status).toBe(200);
  return agent.request(`/approvals/${request.id}/decision`, { form: { verdict, comment: 'looks fine', csrf: csrfIn(await page.text()) } });
}

async function signedIn(email: string): Promise<Agent> {
  const agent = new Agent(h.url);
  expect((await agent.signIn(email, '/approvals')).status).toBe(303);
  return agent;
}

let dana: SimUser;
function featureBuild(): SimBuild {
  dana ??= h.sim.createUser({ name: 'Dana Dev', email: 'dev@acme.test' });
  return h.sim.createBuild({ pipelineSlug: 'deploy', branch: 'feature/login', source: 'ui', creator: dana, steps: STEPS });
}

async function deployer(email: string, name: string): Promise<SimUser> {
  await h.port.store.users.upsert({ email, active: true, groups: ['deployers'], updatedAt: Date.now() });
  return h.sim.createUser({ name, email });
}
const releaseBuild = (creator: SimUser, tag: string) => h.sim.createBuild({ pipelineSlug: 'deploy', branch: 'main', tag, source: 'ui', creator, steps: STEPS });
const unblocksOf = (build: SimBuild) => h.sim.unblockCalls.filter((c) => c.jobId === blockJob(build));

describe('a revoked person and the approval pages', () => {
  it('A: a revoked approver who signs in again is refused (403 user_revoked), and their approval never counts; after the lift they may', async () => {
    const build = featureBuild();
    await blockAndWait(build);
    const request = await requestOf(build);
    expect(request.status).toBe('pending');
    const pat = await signedIn('pat@acme.test');

    const result = await revoke('user', 'pat@acme.test');
    expect(result.sessions_ended).toBe(1);
    // The old session is gone: the next page sends pat to sign in.
    const old = await pat.request('/approvals');
    expect(old.status).toBe(302);
    expect(old.headers.get('location')).toMatch(/^\/login\?/);

    // Pat (or whoever holds Pat's IdP session) signs in again at once: refused, no session.
    const again = new Agent(h.url);
    const signIn = await again.signIn('pat@acme.test', '/approvals');
    expect(signIn.status).toBe(403);
    const page = await again.request('/approvals');
    expect(page.status).toBe(302);
    expect(again.cookies.has('port_session')).toBe(false);

    // Sam's approval alone doesn't open the gate (platform's is missing).
    const sam = await signedIn('sam@acme.test');
    expect((await decide(sam, request, 'approve')).status).toBe(303);
    let after = (await h.port.store.approvals.get(request.id))!;
    expect(after.status).toBe('pending');
    expect(after.approvals.map((a) => a.email)).toEqual(['sam@acme.test']);
    expect(unblocksOf(build)).toHaveLength(0);

    // Lifted: the revocation is no longer in force, and Pat's word counts again.
    await lift('user', 'pat@acme.test');
    const patBack = await signedIn('pat@acme.test');
    expect((await decide(patBack, request, 'approve')).headers.get('location')).toBe(`/approvals/${request.id}?done=unblocked`);
    after = (await h.port.store.approvals.get(request.id))!;
    expect(after.status).toBe('unblocked');
    expect(unblocksOf(build)).toHaveLength(1);
  });

  it('the refusal page says user_revoked and until when; nothing about the person is written', async () => {
    await revoke('user', 'out@acme.test');
    const before = await h.port.store.users.get('out@acme.test');
    const agent = new Agent(h.url);
    // Walk the sign-in by hand to read Port's answer at the callback.
    const callback = await agent.authorizeOnly('out@acme.test', '/approvals');
    const res = await agent.request(callback);
    expect(res.status).toBe(403);
    const body = await res.text();
    expect(body).toContain('user_revoked');
    expect(body).toMatch(/revoked your access until \d{4}-\d\d-\d\dT/);
    expect(body).not.toContain('believed compromised');
    expect(res.headers.getSetCookie().some((c) => c.startsWith('port_session=') && !c.startsWith('port_session=;'))).toBe(false);
    expect(await h.port.store.users.get('out@acme.test')).toEqual(before);
  });

  it('a sign-in in flight when the revocation lands is refused at the callback', async () => {
    const agent = new Agent(h.url);
    const res = await agent.signIn('ivy@acme.test', '/approvals', { atIdp: async () => void (await revoke('user', 'ivy@acme.test')) });
    expect(res.status).toBe(403);
    expect(agent.cookies.has('port_session')).toBe(false);
  });

  it('a session that outlives the revocation’s clean-up (another replica’s revocation) stops working on its next request', async () => {
    const una = await signedIn('una@acme.test');
    expect((await una.request('/approvals')).status).toBe(200);
    const sessionsBefore = una.cookies.get('port_session')!;
    // Straight into the in-memory list, as a revocation made elsewhere arrives: no session clean-up ran.
    const now = Date.now();
    await h.port.revocations.revocations.add({ scope: 'user', id: 'una@acme.test', revokedAt: now, expiresAt: now + 3600_000, reason: 'elsewhere', origin: 'admin' });
    const res = await una.request('/approvals');
    expect(res.status).toBe(302);
    expect(res.headers.get('location')).toMatch(/^\/login\?/);
    expect(una.cookies.has('port_session')).toBe(false);
    // The session is deleted, not merely refused: lifting the revocation doesn't bring it back.
    await lift('user', 'una@acme.test');
    una.cookies.set('port_session', sessionsBefore);
    expect((await una.request('/approvals')).status).toBe(302);
  });
});

describe('a revoked build, job or creator and its block step', () => {
  it('B: a revoked build under an auto-unblock policy is never unblocked; the request is opened closed as revoked', async () => {
    const rel = await deployer('rel@acme.test', 'Rel Ease');
    // Control: the same kind of build, not revoked, is opened by policy at once.
    const control = releaseBuild(rel, 'v2.0.0');
    expect((await blockAndWait(control)).record.decision).toBe('allow');
    await waitUntil(() => unblocksOf(control)[0], 10_000, 'the control build unblocked');

    const build = releaseBuild(rel, 'v2.0.1');
    await revoke('build', `acme/deploy/${build.number}`);
    const decision = await blockAndWait(build);
    expect(decision.record).toMatchObject({
      principal: `Port::Build::"acme/deploy/${build.number}"`,
      action: 'unblock',
      decision: 'deny',
      policies: [],
      context: { job_id: blockJob(build), revocation: { scope: 'build', id: `acme/deploy/${build.number}`, reason: 'believed compromised' } },
    });
    expect(decision.record.reason).toMatch(new RegExp(`^Port will not unblock this step: the build acme/deploy/${build.number} is revoked until `));
    const request = await requestOf(build);
    expect(request).toMatchObject({ status: 'revoked', approvals: [], requirement: { approvals: 0, policies: [] } });
    expect(unblocksOf(build)).toHaveLength(0);
  });

  it("B: a build whose creator is revoked is never unblocked (the build's own revocation aside)", async () => {
    const rex = await deployer('rex@acme.test', 'Rex Release');
    await revoke('user', 'rex@acme.test');
    const build = releaseBuild(rex, 'v3.0.0');
    const decision = await blockAndWait(build);
    expect(decision.record).toMatchObject({ decision: 'deny', context: { revocation: { scope: 'user', id: 'rex@acme.test' } } });
    expect((await requestOf(build)).status).toBe('revoked');
    expect(unblocksOf(build)).toHaveLength(0);
  });

  it('B: a revoked block-step job is never unblocked', async () => {
    const rio = await deployer('rio@acme.test', 'Rio Release');
    const build = releaseBuild(rio, 'v4.0.0');
    await revoke('job', blockJob(build));
    const decision = await blockAndWait(build);
    expect(decision.record).toMatchObject({ decision: 'deny', context: { revocation: { scope: 'job', id: blockJob(build) } } });
    expect((await requestOf(build)).status).toBe('revoked');
    expect(unblocksOf(build)).toHaveLength(0);
  });

  it('B: a revoked feature-branch build gets no request approvers can act on: the page says why, decisions are refused', async () => {
    const build = featureBuild();
    await revoke('build', `acme/deploy/${build.number}`);
    expect((await blockAndWait(build)).record.decision).toBe('deny');
    const request = await requestOf(build);
    expect(request.status).toBe('revoked');

    const pat = await signedIn('pat@acme.test');
    const page = await pat.request(`/approvals/${request.id}`);
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain('Why Port refused');
    expect(html).toContain(`the build acme/deploy/${build.number} is revoked until`);
    expect(html).not.toContain('name="verdict"');
    // Nothing lists it as waiting.
    expect(await (await pat.request('/approvals')).text()).not.toContain(`/approvals/${request.id}`);
    // A hand-made decision (the session's CSRF token, from the sign-out form) is refused: the request is closed.
    const post = await pat.request(`/approvals/${request.id}/decision`, { form: { verdict: 'approve', comment: '', csrf: csrfIn(html) } });
    expect(post.status).toBe(409);
    expect(await post.text()).toContain('request_closed');
    expect(unblocksOf(build)).toHaveLength(0);
  });

  it('a pending request whose build is revoked behind the service’s back is closed at the next decision (409 request_revoked), logged', async () => {
    const build = featureBuild();
    await blockAndWait(build);
    const request = await requestOf(build);
    expect(request.status).toBe('pending');
    const pat = await signedIn('pat@acme.test');
    const page = await pat.request(`/approvals/${request.id}`);
    const csrf = csrfIn(await page.text());
    // As a revocation another replica made arrives: the list knows, the request was never closed.
    const now = Date.now();
    const id = `acme/deploy/${build.number}`;
    await h.port.revocations.revocations.add({ scope: 'build', id, revokedAt: now, expiresAt: now + 3600_000, reason: 'elsewhere', origin: 'admin' });
    const res = await pat.request(`/approvals/${request.id}/decision`, { form: { verdict: 'approve', comment: '', csrf } });
    expect(res.status).toBe(409);
    expect(await res.text()).toContain('request_revoked');
    const after = (await h.port.store.approvals.get(request.id))!;
    expect(after.status).toBe('revoked');
    expect(after.approvals).toEqual([]);
    const logged = (await h.port.store.decisions.read(0, 10_000)).filter((e) => e.record.context?.request_id === request.id && e.record.action === 'approve');
    expect(logged.at(-1)!.record).toMatchObject({ principal: 'Port::User::"pat@acme.test"', decision: 'deny', context: { revocation: { scope: 'build', id }, request_closed: true } });
    expect(unblocksOf(build)).toHaveLength(0);
  });
});
