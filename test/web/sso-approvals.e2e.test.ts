/**
 * The people half of approvals: a feature-branch deploy opens a
 * request needing one `platform` and one `security` approval; the author's own
 * approval is refused; an outsider sees nothing and is refused; two eligible
 * approvers sign in through a real OIDC provider in headless Chromium, approve, and
 * the build unblocks.
 *
 * The web routes run in a small Fastify app over a real SqliteStore, ApprovalService
 * and a fake Buildkite API (test/web/support.ts); port-approvals.e2e.test.ts runs the
 * same flow against Port's real server and the Buildkite simulator.
 */
import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApprovalRequestRecord } from '../../src/store/records/approvals.js';
import { startWeb, type WebEnv } from './support.js';

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
export const SCREENSHOT_DIR = join(tmpdir(), 'port-web-screenshots');

let env: WebEnv;
let browser: Browser;
let request: ApprovalRequestRecord;
const timings: Record<string, number> = {};

async function timed<T>(name: string, fn: () => Promise<T>): Promise<T> {
  const start = performance.now();
  try {
    return await fn();
  } finally {
    timings[name] = Math.round(performance.now() - start);
  }
}

beforeAll(async () => {
  env = await startWeb();
  // playwright-core gives each launch a fresh, temporary user-data-dir.
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS });
  request = await env.openFeatureRequest(2);
});
afterAll(async () => {
  await browser?.close();
  await env?.close();
  console.log('sso-approvals e2e timings (ms):', JSON.stringify(timings));
});

/** A fresh browser context (its own cookies) signed in through Port → IdP → Port. */
async function signIn(email: string, path: string): Promise<Page> {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${env.url}${path}`);
  // Port sent us to the IdP's sign-in form.
  await page.waitForURL((u) => u.origin === env.idpUrl && u.pathname.startsWith('/interaction/'));
  await page.fill('input[name="login"]', email);
  await page.fill('input[name="password"]', 'correct horse');
  await page.click('button[type="submit"]');
  await page.waitForURL((u) => u.origin === env.url || u.pathname.startsWith('/interaction/'));
  if (new URL(page.url()).origin === env.idpUrl) {
    // The IdP asks once to release email, profile and groups to Port.
    await page.click('button:has-text("Continue")');
  }
  await page.waitForURL((u) => u.origin === env.url && `${u.pathname}${u.search}` === path);
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

describe('(b) a feature-branch deploy approved by platform and security through SSO', () => {
  it('the author signs in, sees their request, and their approval is refused', async () => {
    const page = await timed('dev sign-in', () => signIn('dev@acme.test', '/approvals'));
    const cookie = (await page.context().cookies()).find((c) => c.name === 'port_session')!;
    expect(cookie).toMatchObject({ httpOnly: true, secure: true, sameSite: 'Lax', path: '/' });
    expect(cookie.value).toMatch(/^[A-Za-z0-9_-]{43}$/);

    const body = await page.textContent('main');
    expect(body).toContain('Nothing is waiting for you.');
    expect(body).toContain('Your builds waiting for others');
    await page.click(`a[href="/approvals/${request.id}"]`);
    await page.waitForURL(`${env.url}/approvals/${request.id}`);
    expect(await page.textContent('.notice')).toContain('you started this build or wrote its commit');
    expect(await page.locator('button.approve').count()).toBe(0);

    // Even a hand-made form with dev's own valid CSRF token is refused by the service.
    const status = await postFromPage(page, `/approvals/${request.id}/decision`, { verdict: 'approve', comment: 'my own build looks fine' });
    expect(status).toBe(403);
    expect(await page.textContent('main')).toContain('author_cannot_approve');
    expect((await env.store.approvals.get(request.id))!.approvals).toEqual([]);
    await page.context().close();
  });

  it('an approver outside the groups sees nothing, cannot open it, and a direct POST is refused', async () => {
    const page = await timed('out sign-in', () => signIn('out@acme.test', '/approvals'));
    expect(await page.textContent('main')).toContain('Nothing is waiting for you.');
    expect(await page.locator('a[href^="/approvals/"]').count()).toBe(0);

    const detail = await page.goto(`${env.url}/approvals/${request.id}`);
    expect(detail!.status()).toBe(403);
    expect(await page.textContent('main')).toContain('not_eligible');

    await page.goto(`${env.url}/approvals`);
    const status = await postFromPage(page, `/approvals/${request.id}/decision`, { verdict: 'approve', comment: 'let me in' });
    expect(status).toBe(403);
    expect(await page.textContent('main')).toContain('not_eligible');
    expect((await env.store.approvals.get(request.id))!.approvals).toEqual([]);
    await page.context().close();
  });

  it('platform and security approve in their own sessions; the build unblocks', async () => {
    // pat follows the request's link (as from a notification) and signs in on the way.
    const pat = await timed('pat sign-in', () => signIn('pat@acme.test', `/approvals/${request.id}`));
    expect(await pat.textContent('main')).toContain('deploys from other branches need platform and security sign-off');
    await pat.fill('textarea[name="comment"]', 'Platform: rollout plan reviewed.');
    await timed('pat approve', async () => {
      await pat.click('button.approve');
      await pat.waitForURL(`${env.url}/approvals/${request.id}?done=approved`);
    });
    expect(await pat.textContent('.flash')).toContain('Your approval is recorded.');
    expect(await pat.textContent('main')).toContain('1 more approval, including one from security');
    expect(env.bk.unblocks).toEqual([]);

    const sam = await timed('sam sign-in', () => signIn('sam@acme.test', '/approvals'));
    mkdirSync(SCREENSHOT_DIR, { recursive: true });
    await sam.screenshot({ path: join(SCREENSHOT_DIR, 'approvals-list.png'), fullPage: true });
    await sam.click(`a[href="/approvals/${request.id}"]`);
    await sam.waitForURL(`${env.url}/approvals/${request.id}`);
    const main = await sam.textContent('main');
    expect(main).toContain('feature/login');
    expect(main).toContain('3f1c2a9be07d4c1e8a55b2f0c9d6e7a1b2c3d4e5');
    expect(main).toContain('dev@acme.test');
    expect(main).toContain('Platform: rollout plan reviewed.');
    const before = join(SCREENSHOT_DIR, 'approval-page.png');
    await sam.setViewportSize({ width: 1100, height: 1250 });
    await sam.screenshot({ path: before, fullPage: true });
    console.log(`screenshot of the approval page: ${before}`);

    await sam.fill('textarea[name="comment"]', 'Security: no new secrets, OK to ship.');
    await timed('sam approve', async () => {
      await sam.click('button.approve');
      await sam.waitForURL(`${env.url}/approvals/${request.id}?done=unblocked`);
    });
    expect(await sam.textContent('.flash')).toContain('Port unblocked the step');
    const after = join(SCREENSHOT_DIR, 'approval-page-unblocked.png');
    await sam.screenshot({ path: after, fullPage: true });
    console.log(`screenshot after the last approval: ${after}`);

    // The (fake) Buildkite API got the unblock call for this build's block step.
    expect(env.bk.unblocks).toEqual([{ jobId: 'block-2', body: {} }]);
    const closed = (await env.store.approvals.get(request.id))!;
    expect(closed.status).toBe('unblocked');
    expect(closed.approvals.map((a) => [a.email, a.decision, a.comment])).toEqual([
      ['pat@acme.test', 'approve', 'Platform: rollout plan reviewed.'],
      ['sam@acme.test', 'approve', 'Security: no new secrets, OK to ship.'],
    ]);
    expect(await env.actions()).toEqual([
      'unblock:deny',
      'approval_requested:allow',
      'approve:deny', // dev, the author
      'approve:deny', // out, not in the groups
      'approve:allow', // pat
      'approve:allow', // sam
      'unblocked:allow',
    ]);
    // Groups came from the IdP's groups claim at sign-in.
    expect((await env.store.users.get('sam@acme.test'))!).toMatchObject({ active: true, groups: ['security'], name: 'Sam Security' });
    await pat.context().close();
    await sam.context().close();
  });
});
