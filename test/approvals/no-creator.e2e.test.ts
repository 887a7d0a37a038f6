/**
 * Separation of duties for builds Buildkite names no creator for:
 * a webhook-triggered build has no `creator`, and its `author` is whatever git says, so
 * excluding "the author" from approving proves nothing. `approvals.no_creator` decides:
 * `extra_approval` (default) asks one eligible approval more than the policies,
 * `deny` opens no request, `allow` asks what the policies ask. Each is shown on the
 * approval page and in the decision log.
 *
 * Over HTTP against Port's real server: the Buildkite simulator blocks builds and sends
 * signed `build.finished` webhooks, approvers sign in through a real OIDC provider
 * (test/web/idp.ts) with a cookie-keeping client and decide through the approval pages,
 * and the simulator records every unblock call.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApprovalRequestRecord } from '../../src/store/records/approvals.js';
import type { DecisionEntry } from '../../src/store/records/decisions.js';
import { configFromObject } from '../../src/config/config.js';
import { ConfigError } from '../../src/errors.js';
import type { BuildkiteSimulator } from '../../src/sim/index.js';
import { APPROVAL_POLICIES } from '../helpers/approval-policies.js';
import { startHarness, TEST_POLICIES, type Harness } from '../helpers/port-harness.js';
import { IDP_CLIENT_ID, IDP_CLIENT_SECRET, IDP_SCOPES, reservePorts, startIdp, type Idp } from '../web/idp.js';
import { Agent, csrfIn } from '../web/support.js';

const SECRET = 'no-creator-webhook-hmac-secret';
const STEPS = [
  { type: 'command' as const, key: 'build', label: 'Build' },
  { type: 'block' as const, key: 'deploy', label: 'Deploy to production?' },
];
/** What git says wrote the commit: anyone can put any name and address there. */
const FORGED_AUTHOR = { name: 'Mallory', email: 'mallory@acme.test' };

type Mode = 'extra_approval' | 'deny' | 'allow' | 'default';
const MODES: Mode[] = ['default', 'deny', 'allow'];

let idp: Idp;
const ports = new Map<Mode, Harness>();

function portConfig(n: number, listenPort: number, mode: Mode) {
  return (sim: BuildkiteSimulator) => {
    process.env[`PORT_NC_BK_TOKEN_${n}`] = sim.apiToken;
    return {
      server: { listen: `127.0.0.1:${listenPort}`, public_url: `http://127.0.0.1:${listenPort}`, log_level: 'silent' },
      buildkite: {
        organization: 'acme',
        issuer: sim.issuer,
        jwks_url: sim.jwksUrl,
        audience: 'https://port.acme.test',
        api_url: sim.url,
        api_token: `env:PORT_NC_BK_TOKEN_${n}`,
        webhook_secret: 'env:PORT_NC_WEBHOOK_SECRET',
      },
      approvals: { expire_after: '1h', ...(mode === 'default' ? {} : { no_creator: mode }) },
      sso: { issuer: idp.url, client_id: IDP_CLIENT_ID, client_secret: 'env:PORT_NC_SSO_SECRET', groups_claim: 'groups', scopes: IDP_SCOPES, session_ttl: '1h' },
    };
  };
}

beforeAll(async () => {
  process.env.PORT_NC_WEBHOOK_SECRET = SECRET;
  process.env.PORT_NC_SSO_SECRET = IDP_CLIENT_SECRET;
  const listen = await reservePorts(MODES.length);
  idp = await startIdp({ redirectUris: listen.map((p) => `http://127.0.0.1:${p}/auth/callback`) });
  const policies = { ...TEST_POLICIES, 'approvals.cedar': APPROVAL_POLICIES };
  const started = await Promise.allSettled(MODES.map((mode, i) => startHarness({ policies, config: portConfig(i, listen[i]!, mode) })));
  started.forEach((r, i) => r.status === 'fulfilled' && ports.set(MODES[i]!, r.value));
  const failed = started.find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
}, 60_000);

afterAll(async () => {
  await Promise.all([...ports.values()].map((h) => h.close()));
  await idp?.close();
  for (let i = 0; i < MODES.length; i++) delete process.env[`PORT_NC_BK_TOKEN_${i}`];
});

/** Polls an async check until it yields a value. */
async function eventually<T>(check: () => Promise<T | undefined>, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** A blocked deploy build reported to Port by webhook; its block job. */
async function blockedBuild(h: Harness, init: { creator: 'none' | 'rel' }): Promise<{ number: number; jobId: string }> {
  const creator = init.creator === 'rel' ? h.sim.createUser({ name: 'Rel Ease', email: 'rel@acme.test' }) : null;
  const build = h.sim.createBuild({
    pipelineSlug: 'deploy',
    branch: 'feature/login',
    source: creator ? 'ui' : 'webhook',
    creator,
    author: FORGED_AUTHOR,
    steps: STEPS,
  });
  expect((await h.sim.blockAndNotify(`${h.url}/webhooks/buildkite`, build, { secret: SECRET })).status).toBe(202);
  return { number: build.number, jobId: build.jobs.find((j) => j.type === 'manual')!.id };
}

const requestOf = (h: Harness, jobId: string): Promise<ApprovalRequestRecord> =>
  eventually(() => h.port.store.approvals.getByJob(jobId), 10_000, 'the approval request');

async function jobLog(h: Harness, jobId: string): Promise<DecisionEntry[]> {
  return (await h.port.store.decisions.read(0, 10_000)).filter((e) => (e.record.context as { job_id?: string } | undefined)?.job_id === jobId);
}

/** The job's log once it holds at least `n` entries (Port stores the request, then logs). */
const jobLogOf = (h: Harness, jobId: string, n: number) =>
  eventually(async () => {
    const entries = await jobLog(h, jobId);
    return entries.length >= n ? entries : undefined;
  }, 10_000, `${n} decision log entries`);

/** Signed-in approvers per Port (one sign-in each through the IdP). */
const agents = new Map<string, Agent>();
async function approver(h: Harness, email: string): Promise<Agent> {
  const key = `${h.url} ${email}`;
  let agent = agents.get(key);
  if (!agent) {
    agent = new Agent(h.url);
    expect(await agent.signIn(email, '/approvals')).toEqual({ status: 303, location: '/approvals' });
    agents.set(key, agent);
  }
  return agent;
}

/** `email` approves through the request's page; Port's answer (303 with `done=…`, or a refusal). */
async function approve(h: Harness, email: string, request: ApprovalRequestRecord): Promise<{ status: number; location: string | null; code: string | null }> {
  const agent = await approver(h, email);
  const page = await agent.request(`/approvals/${request.id}`);
  expect(page.status).toBe(200);
  const res = await agent.request(`/approvals/${request.id}/decision`, { form: { verdict: 'approve', comment: `ok from ${email}`, csrf: csrfIn(await page.text()) } });
  return { status: res.status, location: res.headers.get('location'), code: res.headers.get('x-port-error') };
}

const unblocked = (h: Harness, jobId: string) => h.sim.unblockCalls.filter((c) => c.jobId === jobId && c.status === 200).length;

describe('approvals.no_creator: extra_approval (the default)', () => {
  it('a webhook-triggered build without a creator needs one eligible approval more than its policies ask', async () => {
    const h = ports.get('default')!;
    expect(h.config.approvals.noCreator).toBe('extra_approval');
    const { jobId } = await blockedBuild(h, { creator: 'none' });
    const request = await requestOf(h, jobId);
    expect(request).toMatchObject({
      status: 'pending',
      authors: ['mallory@acme.test'],
      requirement: { approvals: 3, groups: ['platform', 'security'], noCreator: { rule: 'extra_approval' } },
    });
    expect(request.requirement.reason).toMatch(/^forbidden by feature-deploys-need-review: deploys from other branches need platform and security sign-off; Buildkite names no creator for this build \(source: webhook\)/);

    // The decision log says why, at the unblock decision and at the request.
    const log = await jobLogOf(h, jobId, 2);
    expect(log.map((e) => `${e.record.action}:${e.record.decision}`)).toEqual(['unblock:deny', 'approval_requested:allow']);
    expect(log[0]!.record.context).toMatchObject({ no_creator: 'extra_approval', build: { creator: null, source: 'webhook' } });
    expect(log[1]!.record.context).toMatchObject({ no_creator: 'extra_approval', requirement: { approvals: 3, policies_ask: 2, groups: ['platform', 'security'] } });
    expect(log[1]!.record.reason).toContain('one approval more than the policies ask (3 in all)');

    // The approval page says so.
    const pat = await approver(h, 'pat@acme.test');
    const page = await (await pat.request(`/approvals/${request.id}`)).text();
    expect(page).toContain('<strong>No creator:</strong> Buildkite names no creator for this build (source: webhook), so Port cannot tell who started it');
    expect(page).toContain('none named by Buildkite; commit author mallory@acme.test (self-reported)');
    expect(page).toContain('Needs 3 approvals with one from each of: platform, security.');
    expect(page).toContain('Still needed: <strong>3 more approvals, including one from platform and security</strong>');

    // What the policies ask (platform + security) is not enough any more…
    expect(await approve(h, 'pat@acme.test', request)).toMatchObject({ status: 303, location: `/approvals/${request.id}?done=approved` });
    expect(await approve(h, 'sam@acme.test', request)).toMatchObject({ status: 303, location: `/approvals/${request.id}?done=approved` });
    expect((await h.port.store.approvals.get(request.id))!.status).toBe('pending');
    await h.sim.settleWebhooks();
    expect(unblocked(h, jobId)).toBe(0);
    const after = await (await pat.request(`/approvals/${request.id}`)).text();
    expect(after).toContain('Still needed: <strong>1 more approval</strong>');

    // …a third eligible person completes it, and Port unblocks.
    expect(await approve(h, 'dev@acme.test', request)).toMatchObject({ status: 303, location: `/approvals/${request.id}?done=unblocked` });
    expect((await h.port.store.approvals.get(request.id))!.status).toBe('unblocked');
    expect(unblocked(h, jobId)).toBe(1);
  });

  it('a build with a creator needs only what the policies ask (its commit author is still excluded)', async () => {
    const h = ports.get('default')!;
    const { jobId } = await blockedBuild(h, { creator: 'rel' });
    const request = await requestOf(h, jobId);
    expect(request.requirement).toMatchObject({ approvals: 2, groups: ['platform', 'security'], reason: 'forbidden by feature-deploys-need-review: deploys from other branches need platform and security sign-off' });
    expect(request.requirement.noCreator).toBeUndefined();
    expect(request.authors).toEqual(['rel@acme.test', 'mallory@acme.test']);
    const page = await (await (await approver(h, 'pat@acme.test')).request(`/approvals/${request.id}`)).text();
    expect(page).not.toContain('No creator:');
    expect(page).toContain('rel@acme.test, mallory@acme.test');
    expect(await approve(h, 'pat@acme.test', request)).toMatchObject({ status: 303, location: `/approvals/${request.id}?done=approved` });
    expect(await approve(h, 'sam@acme.test', request)).toMatchObject({ status: 303, location: `/approvals/${request.id}?done=unblocked` });
    expect(unblocked(h, jobId)).toBe(1);
    const log = await jobLog(h, jobId);
    expect(log.some((e) => (e.record.context as Record<string, unknown>).no_creator !== undefined)).toBe(false);
  });
});

describe('approvals.no_creator: deny', () => {
  it('opens no request for a build without a creator, leaves the step blocked, and logs why', async () => {
    const h = ports.get('deny')!;
    const { jobId } = await blockedBuild(h, { creator: 'none' });
    const log = await jobLogOf(h, jobId, 2);
    expect(log.map((e) => `${e.record.action}:${e.record.decision}`)).toEqual(['unblock:deny', 'approval_requested:deny']);
    expect(log[0]!.record.context).toMatchObject({ no_creator: 'deny' });
    expect(log[1]!.record).toMatchObject({ principal: expect.stringMatching(/^Port::Build::"acme\/deploy\/\d+"$/), context: { no_creator: 'deny', job_id: jobId } });
    expect(log[1]!.record.reason).toContain('Buildkite names no creator for this build (source: webhook)');
    expect(log[1]!.record.reason).toContain('approvals.no_creator is deny');
    expect(await h.port.store.approvals.getByJob(jobId)).toBeUndefined();
    // Nobody is offered anything to approve, and nothing was unblocked.
    const list = await (await (await approver(h, 'pat@acme.test')).request('/approvals')).text();
    expect(list).toContain('Nothing is waiting for you.');
    expect(unblocked(h, jobId)).toBe(0);
  });

  it('a build with a creator still gets its request', async () => {
    const h = ports.get('deny')!;
    const { jobId } = await blockedBuild(h, { creator: 'rel' });
    expect((await requestOf(h, jobId)).requirement).toMatchObject({ approvals: 2, groups: ['platform', 'security'] });
  });
});

describe('approvals.no_creator: allow', () => {
  it('asks what the policies ask, and still says the build has no creator', async () => {
    const h = ports.get('allow')!;
    const { jobId } = await blockedBuild(h, { creator: 'none' });
    const request = await requestOf(h, jobId);
    expect(request.requirement).toMatchObject({ approvals: 2, groups: ['platform', 'security'], noCreator: { rule: 'allow' } });
    const page = await (await (await approver(h, 'sam@acme.test')).request(`/approvals/${request.id}`)).text();
    expect(page).toContain('approvals.no_creator is allow, so the policies&#39; requirement stands');
    const log = await jobLogOf(h, jobId, 2);
    expect(log[1]!.record.context).toMatchObject({ no_creator: 'allow', requirement: { approvals: 2, policies_ask: 2 } });
    expect(await approve(h, 'pat@acme.test', request)).toMatchObject({ location: `/approvals/${request.id}?done=approved` });
    expect(await approve(h, 'sam@acme.test', request)).toMatchObject({ location: `/approvals/${request.id}?done=unblocked` });
    expect(unblocked(h, jobId)).toBe(1);
  });
});

describe('configuration', () => {
  it('approvals.no_creator takes extra_approval, deny or allow', () => {
    const raw = (approvals: Record<string, unknown>) => ({ server: { public_url: 'https://port.test' }, buildkite: { organization: 'acme' }, policies: '.', approvals });
    const file = join(__dirname, 'port.yaml');
    expect(configFromObject(raw({}), file).approvals.noCreator).toBe('extra_approval');
    expect(configFromObject({ server: { public_url: 'https://port.test' }, buildkite: { organization: 'acme' }, policies: '.' }, file).approvals.noCreator).toBe('extra_approval');
    expect(configFromObject(raw({ no_creator: 'deny' }), file).approvals.noCreator).toBe('deny');
    expect(() => configFromObject(raw({ no_creator: 'maybe' }), file)).toThrow(ConfigError);
    expect(() => configFromObject(raw({ no_creator: 'maybe' }), file)).toThrow(/approvals\.no_creator: found "maybe"; expected one of extra_approval, deny or allow\./);
  });
});
