/**
 * The approvals flow end to end against Port's real server:
 *
 * - the company IdP is a real `oidc-provider` (test/web/idp.ts) with people in groups;
 * - Buildkite is the simulator: it blocks builds, sends signed `build.finished`
 *   webhooks, serves builds, jobs and members over REST, and records every unblock;
 * - Port is `startPort` with `sso:` pointing at the IdP, `buildkite.api_*` and
 *   `webhook_secret` at the simulator, and the approval policies, listening on the
 *   `http://127.0.0.1:<port>` its `public_url` names (reserved before it starts, since
 *   the IdP must know Port's redirect URI);
 * - approvers sign in and decide in headless Chromium (Debian's `chromium`, driven by
 *   `playwright-core`), each in their own browser context.
 *
 * (a) a release tag on main built by a `deployers` member is unblocked by policy;
 * (b) a feature-branch deploy needs one `platform` and one `security` approval: the
 *     author's approval is refused, an outsider sees nothing, two approvers approve
 *     through the real pages and Port unblocks the step, credited to the last approver;
 * (c) on a second Port with `approvals.expire_after: 2s`, a request expires: the
 *     approver who opened it in time submits too late, `decide` refuses with
 *     `request_closed` and expires it (the 30 s sweep is not waited for).
 */
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DecisionEntry } from '../../src/store/records/decisions.js';
import type { BuildkiteSimulator } from '../../src/sim/index.js';
import { APPROVAL_POLICIES } from '../helpers/approval-policies.js';
import { startHarness, TEST_POLICIES, type Harness } from '../helpers/port-harness.js';
import { waitUntil } from '../helpers/relay/util.js';
import { IDP_CLIENT_ID, IDP_CLIENT_SECRET, IDP_SCOPES, reservePorts, startIdp, type Idp } from './idp.js';

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const SECRET = 'port-e2e-webhook-hmac-secret';
const STEPS = [
  { type: 'command' as const, key: 'build', label: 'Build' },
  { type: 'block' as const, key: 'deploy', label: 'Deploy to production?' },
];

let idp: Idp;
/** Port with requests that live an hour: (a) and (b). */
let h: Harness;
/** A second Port whose requests expire after 2 s: (c). */
let hx: Harness;
let browser: Browser;
const timings: Record<string, number> = {};

async function timed<T>(name: string, fn: () => Promise<T>): Promise<T> {
  const start = performance.now();
  try {
    return await fn();
  } finally {
    timings[name] = Math.round(performance.now() - start);
  }
}

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

/** Port's config over the simulator and the IdP; `n` names its environment variables. */
function portConfig(n: number, listenPort: number, approvals: Record<string, unknown>) {
  return (sim: BuildkiteSimulator) => {
    process.env[`PORT_E2E_BK_TOKEN_${n}`] = sim.apiToken;
    return {
      server: { listen: `127.0.0.1:${listenPort}`, public_url: `http://127.0.0.1:${listenPort}`, log_level: 'silent' },
      buildkite: {
        organization: 'acme',
        issuer: sim.issuer,
        jwks_url: sim.jwksUrl,
        audience: 'https://port.acme.test',
        api_url: sim.url,
        api_token: `env:PORT_E2E_BK_TOKEN_${n}`,
        webhook_secret: 'env:PORT_E2E_WEBHOOK_SECRET',
      },
      approvals,
      sso: {
        issuer: idp.url,
        client_id: IDP_CLIENT_ID,
        client_secret: 'env:PORT_E2E_SSO_SECRET',
        groups_claim: 'groups',
        scopes: IDP_SCOPES,
        session_ttl: '1h',
      },
    };
  };
}

beforeAll(async () => {
  const start = performance.now();
  process.env.PORT_E2E_WEBHOOK_SECRET = SECRET;
  process.env.PORT_E2E_SSO_SECRET = IDP_CLIENT_SECRET;
  const [mainPort, expiryPort] = await reservePorts(2);
  idp = await startIdp({ redirectUris: [`http://127.0.0.1:${mainPort}/auth/callback`, `http://127.0.0.1:${expiryPort}/auth/callback`] });
  const policies = { ...TEST_POLICIES, 'approvals.cedar': APPROVAL_POLICIES };
  const started = await Promise.allSettled([
    startHarness({ policies, config: portConfig(1, mainPort!, { expire_after: '1h' }) }),
    startHarness({ policies, config: portConfig(2, expiryPort!, { expire_after: '2s', on_expiry: 'fail' }) }),
  ]);
  const failed = started.find((r) => r.status === 'rejected');
  if (failed) {
    // Don't leave the other Port and simulator running behind the failure.
    await Promise.all(started.map((r) => (r.status === 'fulfilled' ? r.value.close() : undefined)));
    throw failed.reason;
  }
  [h, hx] = started.map((r) => (r as PromiseFulfilledResult<Harness>).value) as [Harness, Harness];
  // Port really listens where its public_url says (the browser and the IdP's redirect use it).
  expect(h.url).toBe(`http://127.0.0.1:${mainPort}`);
  expect(hx.url).toBe(`http://127.0.0.1:${expiryPort}`);
  // The simulator also tells Port when a block step was unblocked (job.activated).
  h.sim.configureWebhook({ url: `${h.url}/webhooks/buildkite`, auth: { secret: SECRET }, events: ['job.activated'] });
  // playwright-core gives each launch a fresh, temporary user-data-dir.
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS });
  timings['setup'] = Math.round(performance.now() - start);
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await h?.close();
  await hx?.close();
  await idp?.close();
  delete process.env.PORT_E2E_BK_TOKEN_1;
  delete process.env.PORT_E2E_BK_TOKEN_2;
  console.log('port-approvals e2e timings (ms):', JSON.stringify(timings));
});

/**
 * A fresh browser context (its own cookies) that opens `path` on Port, is sent to the
 * IdP, signs in as `email`, consents, and lands back on `path`.
 */
async function signIn(port: Harness, email: string, path: string): Promise<Page> {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${port.url}${path}`);
  await page.waitForURL((u) => u.origin === idp.url && u.pathname.startsWith('/interaction/'));
  await page.fill('input[name="login"]', email);
  await page.fill('input[name="password"]', 'correct horse');
  await page.click('button[type="submit"]');
  await page.waitForURL((u) => u.origin === port.url || u.pathname.startsWith('/interaction/'));
  if (new URL(page.url()).origin === idp.url) {
    // The IdP asks once to release email, profile and groups to Port.
    await page.click('button:has-text("Continue")');
  }
  await page.waitForURL((u) => u.origin === port.url && `${u.pathname}${u.search}` === path);
  return page;
}

/** Submits a hand-made form from inside Port's page (same origin, the session's own CSRF token). */
async function postFromPage(page: Page, action: string, fields: Record<string, string>): Promise<number> {
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith(action) && r.request().method() === 'POST'),
    page.evaluate(
      ({ action, fields }) => {
        const form = document.createElement('form');
        form.method = 'post';
        form.action = action;
        const csrf = (document.querySelector('input[name="csrf"]') as HTMLInputElement).value;
        for (const [name, value] of Object.entries({ csrf, ...fields })) {
          const input = document.createElement('input');
          input.type = 'hidden';
          input.name = name;
          input.value = value;
          form.appendChild(input);
        }
        document.body.appendChild(form);
        form.submit();
      },
      { action, fields },
    ),
  ]);
  await page.waitForLoadState();
  return response.status();
}

/** Port's decision log entries about one block job, as `action:decision`. */
async function jobLog(port: Harness, jobId: string): Promise<DecisionEntry[]> {
  return (await port.port.store.decisions.read(0, 10_000)).filter((e) => (e.record.context as { job_id?: string } | undefined)?.job_id === jobId);
}
/**
 * The job's log once Port has handled the simulator's `job.activated` delivery (Port
 * answers 202 first and records `unblock_observed` just after).
 */
async function observed(port: Harness, jobId: string): Promise<DecisionEntry[]> {
  await port.sim.settleWebhooks();
  const activated = port.sim.webhookDeliveries.filter((d) => d.event === 'job.activated' && d.request.body.includes(jobId));
  expect(activated.map((d) => d.status)).toEqual([202]);
  return eventually(async () => {
    const log = await jobLog(port, jobId);
    return log.some((e) => e.record.action === 'unblock_observed') ? log : undefined;
  }, 5_000, 'Port to record the job.activated delivery');
}
const actions = (entries: DecisionEntry[]) => entries.map((e) => `${e.record.action}:${e.record.decision}`);

describe('(a) policy opens a release tag on main built by a deployer', () => {
  it('rel@ signs in once; the simulator blocks a v-tag build; Port unblocks it and logs why', async () => {
    // Port learns a creator's groups from their SSO sign-in.
    const page = await timed('a: rel sign-in', () => signIn(h, 'rel@acme.test', '/approvals'));
    expect(await page.textContent('main')).toContain('Nothing is waiting for you.');
    await page.context().close();
    expect(await h.port.store.users.get('rel@acme.test')).toMatchObject({ active: true, groups: ['deployers'], name: 'Rel Ease' });

    const rel = h.sim.createUser({ name: 'Rel Ease', email: 'rel@acme.test' });
    const build = h.sim.createBuild({ pipelineSlug: 'deploy', branch: 'main', tag: 'v1.4.0', creator: rel, steps: STEPS });
    const manual = build.jobs.find((j) => j.type === 'manual')!;
    expect(build.blocked).toBe(true);

    const sent = performance.now();
    const delivery = await h.sim.blockAndNotify(`${h.url}/webhooks/buildkite`, build, { secret: SECRET });
    expect(delivery.status).toBe(202);
    const call = await waitUntil(() => h.sim.unblockCalls.find((c) => c.jobId === manual.id), 10_000, 'the unblock call');
    timings['a: webhook → unblock'] = Math.round(performance.now() - sent);
    expect(call).toMatchObject({ status: 200, message: null, unblocker: null, build: { pipelineSlug: 'deploy', number: build.number } });
    // No `unblocker` for a policy unblock: Buildkite credits the API token's owner.
    expect(call.unblockedBy?.id).toBe(h.sim.apiUser.id);
    expect(manual.state).toBe('unblocked');

    const unblock = (await jobLog(h, manual.id)).find((e) => e.record.action === 'unblock')!;
    expect(unblock.record).toMatchObject({
      principal: `Port::Build::"acme/deploy/${build.number}"`,
      decision: 'allow',
      policies: [{ id: 'release-tags-open', reason: 'release tags from main built by a deployer open by themselves' }],
      context: { build: { branch: 'main', tag: 'v1.4.0', creator: 'rel@acme.test' }, step: { key: 'deploy', label: 'Deploy to production?' } },
    });
    expect(unblock.record.reason).toContain('release tags from main built by a deployer open by themselves');
    const log = await observed(h, manual.id);
    expect(actions(log)).toEqual(['unblock:allow', 'unblocked:allow', 'unblock_observed:allow']);
    expect(log[1]!.record.context).toMatchObject({ by: 'policy' });
    expect(await h.port.store.approvals.getByJob(manual.id)).toBeUndefined();
  });
});

describe('(b) a feature-branch deploy needs platform and security approval', () => {
  it('the author is refused, an outsider sees nothing, pat@ and sam@ approve through the IdP, and the build unblocks', async () => {
    const dev = h.sim.createUser({ name: 'Dana Dev', email: 'dev@acme.test' });
    // Members of the Buildkite organization, so Port can credit them as `unblocker`.
    h.sim.createUser({ name: 'Pat Platform', email: 'pat@acme.test' });
    const samMember = h.sim.createUser({ name: 'Sam Security', email: 'sam@acme.test' });
    const build = h.sim.createBuild({ pipelineSlug: 'deploy', branch: 'feature/login', creator: dev, steps: STEPS });
    const manual = build.jobs.find((j) => j.type === 'manual')!;
    expect((await h.sim.blockAndNotify(`${h.url}/webhooks/buildkite`, build, { secret: SECRET })).status).toBe(202);
    const request = await eventually(() => h.port.store.approvals.getByJob(manual.id), 10_000, 'the approval request');
    expect(request).toMatchObject({ status: 'pending', authors: ['dev@acme.test'], requirement: { approvals: 2, groups: ['platform', 'security'] } });
    const detailPath = `/approvals/${request.id}`;

    // dev@, the build's creator (and in platform), sees the request as theirs and cannot approve it.
    const devPage = await timed('b: dev sign-in', () => signIn(h, 'dev@acme.test', '/approvals'));
    expect(await devPage.textContent('main')).toContain('Nothing is waiting for you.');
    expect(await devPage.textContent('main')).toContain('Your builds waiting for others');
    await devPage.click(`a[href="${detailPath}"]`);
    await devPage.waitForURL(`${h.url}${detailPath}`);
    expect(await devPage.textContent('.notice')).toContain('you started this build or wrote its commit');
    expect(await devPage.locator('button.approve').count()).toBe(0);
    // A hand-made form with dev's own valid CSRF token: refused by the service.
    expect(await postFromPage(devPage, `${detailPath}/decision`, { verdict: 'approve', comment: 'my own build looks fine' })).toBe(403);
    expect(await devPage.textContent('main')).toContain('author_cannot_approve');
    await devPage.context().close();

    // out@ (developers) is offered nothing, may not open it, and a direct POST is refused.
    const outPage = await timed('b: out sign-in', () => signIn(h, 'out@acme.test', '/approvals'));
    expect(await outPage.textContent('main')).toContain('Nothing is waiting for you.');
    expect(await outPage.locator('a[href^="/approvals/"]').count()).toBe(0);
    expect((await outPage.goto(`${h.url}${detailPath}`))!.status()).toBe(403);
    expect(await outPage.textContent('main')).toContain('not_eligible');
    await outPage.goto(`${h.url}/approvals`);
    expect(await postFromPage(outPage, `${detailPath}/decision`, { verdict: 'approve', comment: 'let me in' })).toBe(403);
    expect(await outPage.textContent('main')).toContain('not_eligible');
    await outPage.context().close();
    expect((await h.port.store.approvals.get(request.id))!.approvals).toEqual([]);

    // pat@ (platform) follows the request's link, signs in on the way, and approves.
    const pat = await timed('b: pat sign-in', () => signIn(h, 'pat@acme.test', detailPath));
    const patMain = await pat.textContent('main');
    expect(patMain).toContain('deploys from other branches need platform and security sign-off');
    expect(patMain).toContain('feature/login');
    expect(patMain).toContain(build.commit);
    await pat.fill('textarea[name="comment"]', 'Platform: rollout plan reviewed.');
    await timed('b: pat approve', async () => {
      await pat.click('button.approve');
      await pat.waitForURL(`${h.url}${detailPath}?done=approved`);
    });
    expect(await pat.textContent('.flash')).toContain('Your approval is recorded.');
    expect(await pat.textContent('main')).toContain('1 more approval, including one from security');
    expect(h.sim.unblockCalls.some((c) => c.jobId === manual.id)).toBe(false);
    expect(manual.state).toBe('blocked');

    // sam@ (security) finds it in their list and completes it.
    const sam = await timed('b: sam sign-in', () => signIn(h, 'sam@acme.test', '/approvals'));
    await sam.click(`a[href="${detailPath}"]`);
    await sam.waitForURL(`${h.url}${detailPath}`);
    expect(await sam.textContent('main')).toContain('Platform: rollout plan reviewed.');
    await sam.fill('textarea[name="comment"]', 'Security: no new secrets, OK to ship.');
    await timed('b: sam approve → unblocked', async () => {
      await sam.click('button.approve');
      await sam.waitForURL(`${h.url}${detailPath}?done=unblocked`);
    });
    expect(await sam.textContent('.flash')).toContain('Port unblocked the step');
    expect(await sam.textContent('h1 .status')).toBe('unblocked');
    await pat.context().close();
    await sam.context().close();

    // The simulator got exactly one unblock for this block job, credited to sam's member id.
    const calls = h.sim.unblockCalls.filter((c) => c.jobId === manual.id);
    expect(calls).toHaveLength(1);
    expect(calls[0]).toMatchObject({ status: 200, unblocker: samMember.id, build: { number: build.number } });
    expect(calls[0]!.unblockedBy?.email).toBe('sam@acme.test');
    expect(manual.state).toBe('unblocked');
    expect(manual.unblockedBy?.id).toBe(samMember.id);

    const closed = (await h.port.store.approvals.get(request.id))!;
    expect(closed.status).toBe('unblocked');
    expect(closed.approvals.map((a) => [a.email, a.groups, a.decision, a.comment])).toEqual([
      ['pat@acme.test', ['platform'], 'approve', 'Platform: rollout plan reviewed.'],
      ['sam@acme.test', ['security'], 'approve', 'Security: no new secrets, OK to ship.'],
    ]);

    const log = await observed(h, manual.id);
    expect(actions(log)).toEqual([
      'unblock:deny', // feature-deploys-need-review
      'approval_requested:allow',
      'approve:deny', // dev, the author
      'approve:deny', // out, not in the groups
      'approve:allow', // pat
      'approve:allow', // sam
      'unblocked:allow',
      'unblock_observed:allow', // the simulator's job.activated
    ]);
    expect(log[0]!.record.policies).toEqual([{ id: 'feature-deploys-need-review', reason: 'deploys from other branches need platform and security sign-off' }]);
    expect(log[2]!.record.reason).toContain("the build's author cannot approve it");
    expect(log[4]!.record.policies.map((p) => p.id)).toEqual(['platform-approves']);
    expect(log[5]!.record.policies.map((p) => p.id)).toEqual(['security-approves']);
    expect(log[6]!.record.context).toMatchObject({ request_id: request.id, by: 'approvals', approvers: ['pat@acme.test', 'sam@acme.test'], unblocker: samMember.id });
    expect(log[7]!.record.context).toMatchObject({ unblocked_by: { id: samMember.id, email: 'sam@acme.test' } });
  });
});

describe('(c) a request expires', () => {
  it('on a Port with approvals.expire_after 2s, an approval submitted too late is refused and the request expires', async () => {
    const pat = await timed('c: pat sign-in', () => signIn(hx, 'pat@acme.test', '/approvals'));
    const dev = hx.sim.createUser({ name: 'Dana Dev', email: 'dev@acme.test' });
    const build = hx.sim.createBuild({ pipelineSlug: 'deploy', branch: 'feature/slow-review', creator: dev, steps: STEPS });
    const manual = build.jobs.find((j) => j.type === 'manual')!;
    expect((await hx.sim.blockAndNotify(`${hx.url}/webhooks/buildkite`, build, { secret: SECRET })).status).toBe(202);
    const request = await eventually(() => hx.port.store.approvals.getByJob(manual.id), 10_000, 'the approval request');
    expect(request.expiresAt - request.createdAt).toBe(2000);
    const detailPath = `/approvals/${request.id}`;

    // In time, pat opens the request: it is pending and has the form.
    await pat.goto(`${hx.url}${detailPath}`);
    expect(await pat.textContent('h1 .status')).toBe('pending');
    await pat.fill('textarea[name="comment"]', 'Platform: sorry, was at lunch.');
    const wait = request.expiresAt - Date.now() + 100;
    await timed('c: waiting for expiry', () => new Promise((r) => setTimeout(r, Math.max(0, wait))));

    // Too late: `decide` sees the request past its expiry (or the expiry sweep has closed it already), and refuses.
    const [response] = await Promise.all([
      pat.waitForResponse((r) => r.url().endsWith(`${detailPath}/decision`) && r.request().method() === 'POST'),
      pat.click('button.approve'),
    ]);
    expect(response.status()).toBe(409);
    await pat.waitForLoadState();
    expect(await pat.textContent('main')).toContain('request_closed');
    expect(await pat.textContent('main')).toContain('This request has expired; it can no longer be decided.');

    const closed = (await hx.port.store.approvals.get(request.id))!;
    expect(closed).toMatchObject({ status: 'expired', approvals: [] });
    expect(closed.closedAt).toBeGreaterThanOrEqual(request.expiresAt);
    const log = await jobLog(hx, manual.id);
    expect(actions(log)).toEqual(['unblock:deny', 'approval_requested:allow', 'approval_expired:allow']);
    expect(log[2]!.record).toMatchObject({
      principal: `Port::Build::"acme/deploy/${build.number}"`,
      resource: `Port::BlockStep::"acme/deploy/${build.number}/deploy"`,
      context: { request_id: request.id, on_expiry: 'fail', approvals: 0 },
    });
    expect(log[2]!.record.reason).toContain('cancels the build');
    expect(hx.sim.unblockCalls.some((c) => c.jobId === manual.id)).toBe(false);
    // on_expiry: fail — Port cancelled the build in Buildkite (the simulator), so the gate stays shut.
    const all = await hx.port.store.decisions.read(0, 10_000);
    expect(all.some((e) => e.record.action === 'build_canceled' && e.record.context.request_id === request.id)).toBe(true);
    expect(hx.sim.build(build.id)!.state).toBe('canceled');
    expect(manual.state).not.toBe('unblocked');

    // The page now says expired, without a form; the list no longer offers it.
    await pat.goto(`${hx.url}${detailPath}`);
    expect(await pat.textContent('h1 .status')).toBe('expired');
    expect(await pat.locator('button.approve').count()).toBe(0);
    await pat.goto(`${hx.url}/approvals`);
    expect(await pat.locator(`a[href="${detailPath}"]`).count()).toBe(0);
    await pat.context().close();
  });
});
