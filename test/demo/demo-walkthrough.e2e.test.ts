/**
 * The first-run demo as a newcomer meets it: `port demo` prints its steps, and each
 * printed command is run verbatim with bash in the same directory, in order; the approval
 * is done in a real browser (Debian's Chromium through playwright-core) against the
 * demo's bundled identity provider. Then a second run starts clean, and `--keep`
 * continues. With PORT_DEMO_SCREENSHOTS set, the approval pages are saved there as PNGs.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ROOT, spawnPort, type Spawned } from '../helpers/spawn-port.js';

const sh = promisify(execFile);
const base = mkdtempSync(join(tmpdir(), 'port-demo-walk-'));
const dir = join(base, 'demo');
const SHOTS = process.env.PORT_DEMO_SCREENSHOTS;
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

let browser: Browser;
/** Every demo started, so none outlives the file (a test that times out skips its finally). */
const demos: Spawned[] = [];
beforeAll(async () => {
  if (SHOTS) mkdirSync(SHOTS, { recursive: true });
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS });
});
afterAll(async () => {
  await Promise.all(demos.map((d) => d.stop()));
  await browser?.close();
  rmSync(base, { recursive: true, force: true });
});

interface Printed {
  /** Every line that isn't a comment, as printed (minus the indentation). */
  commands: string[];
  approvalUrl: string;
  approver: string;
  author: string;
  password: string;
}

function parse(out: string): Printed {
  const lines = out.split('\n');
  const commands = lines.filter((l) => l.startsWith('  ') && l.trim() !== '' && !l.trimStart().startsWith('#')).map((l) => l.trim());
  const approvalUrl = /#\s+(http:\/\/127\.0\.0\.1:\d+\/approvals\/\S+)/.exec(out)?.[1];
  const signIn = /as (\w+) \(password: (\S+)\)/.exec(out);
  const author = /started by (\w+),/.exec(out)?.[1];
  if (!approvalUrl || !signIn || !author) throw new Error(`the demo printed no approval step:\n${out}`);
  return { commands, approvalUrl, approver: signIn[1]!, password: signIn[2]!, author };
}

/** Runs one printed command in bash, as a newcomer pasting it would (same directory, own shell). */
async function paste(command: string) {
  try {
    const { stdout, stderr } = await sh('bash', ['-c', command], { cwd: ROOT, timeout: 30_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

async function startDemo(extra: string[] = []): Promise<Spawned> {
  const demo = spawnPort(['demo', '--dir', dir, '--port', '0', '--sim-port', '0', '--idp-port', '0', '--service-port', '0', ...extra]);
  demos.push(demo);
  await demo.waitFor(/Press Ctrl-C to stop/, 30_000);
  return demo;
}

async function shot(page: Page, name: string): Promise<void> {
  if (SHOTS) await page.screenshot({ path: join(SHOTS, name), fullPage: true });
}

/**
 * Opens `url` in a fresh browser context and signs in at the demo identity provider;
 * `wrongFirst` tries a wrong password first (refused there), `screenshot` saves the
 * filled-in sign-in form.
 */
async function signIn(url: string, login: string, password: string, opts: { wrongFirst?: boolean; screenshot?: string } = {}): Promise<Page> {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(url);
  await page.waitForURL((u) => u.pathname.startsWith('/interaction/'));
  expect(await page.textContent('h1')).toContain('Sign in');
  if (opts.wrongFirst) {
    await page.fill('input[name="login"]', login);
    await page.fill('input[name="password"]', `${password}-wrong`);
    await page.click('button[type="submit"]');
    expect(await page.textContent('.error')).toContain('wrong password');
  }
  await page.fill('input[name="login"]', login);
  await page.fill('input[name="password"]', password);
  if (opts.screenshot) await shot(page, opts.screenshot);
  await page.click('button[type="submit"]');
  await page.waitForURL(url);
  return page;
}

const step = (cmds: string[], i: number, re: RegExp): string => {
  const c = cmds[i];
  expect(c, `printed step ${i}`).toMatch(re);
  return c!;
};

/** The printed command matching `re` (the only one). */
const printedCommand = (cmds: string[], re: RegExp): string => {
  const found = cmds.filter((c) => re.test(c));
  expect(found, `one printed command matches ${re}`).toHaveLength(1);
  return found[0]!;
};

/** A variable of a job's environment file (`export NAME=value`). */
const jobVar = (file: string, name: string): string => {
  const m = new RegExp(`^export ${name}=(\\S+)$`, 'm').exec(readFileSync(join(dir, file), 'utf8'));
  if (!m) throw new Error(`${file} sets no ${name}`);
  return m[1]!;
};

/** The payload of a JWT (RFC 7519 §3), unverified: what the token says, for assertions. */
const claimsOf = (jwt: string): Record<string, unknown> => JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString('utf8'));

it('every printed step works pasted as it is, and the newcomer approves in the browser', async () => {
  const demo = await startDemo();
  try {
    const out = demo.stdout();
    if (SHOTS) writeFileSync(join(SHOTS, 'demo-output.txt'), out);
    expect(out).toContain('Started from a clean state');
    expect(out).not.toMatch(/npx/);
    expect(demo.stderr()).toBe('');
    const printed = parse(out);
    const c = printed.commands;
    expect(c).toHaveLength(17);

    // 1. the exchange: main gets the grant, the feature branch is denied with the reason.
    const allowed = await paste(step(c, 0, /deploy-main\.env .*token exchange --scope deploy-token --json/));
    expect(allowed.code, allowed.stderr).toBe(0);
    const exchanged = JSON.parse(allowed.stdout);
    expect(exchanged).toMatchObject({ token_type: 'Bearer', scope: 'deploy-token' });
    // The demo's pool requires the buildkite check: the token says the agent passed it.
    expect(claimsOf(exchanged.access_token)).toMatchObject({ cluster_name: 'default', queue_key: 'default', agent_attestation: { attestation: ['buildkite'], connected: true } });
    const denied = await paste(step(c, 1, /deploy-feature\.env .*token exchange --scope deploy-token\)$/));
    expect(denied.code, denied.stderr).toBe(1);
    expect(denied.stderr).toMatch(/403 access_denied.*deploy-token.*only acme\/deploy builds of main may use the deploy token/);

    // 2. the relay: the job's Port token reaches the artifacts API, which gets its key from Port.
    const saved = await paste(step(c, 2, /token exchange --scope aws-deploy > .*deploy-main\.token/));
    expect(saved.code, saved.stderr).toBe(0);
    const portToken = readFileSync(join(dir, 'deploy-main.token'), 'utf8').trim();
    expect(portToken.split('.')).toHaveLength(3);
    const apiKey = readFileSync(join(dir, 'artifacts-api-key'), 'utf8').trim();
    const relayed = await paste(step(c, 3, /curl .*\/relay\/artifacts\/reports\/build-1\.json$/));
    expect(relayed.stdout).toMatch(/\nHTTP 200\n$/);
    expect(JSON.parse(relayed.stdout.split('\n')[0]!)).toMatchObject({ authenticated: true, method: 'GET', path: '/reports/build-1.json', caller_authorization_received: false });
    expect(relayed.stdout).not.toContain(apiKey);
    // The job holds no copy of the service's key: not in its environment file nor its token.
    expect(readFileSync(join(dir, 'deploy-main.env'), 'utf8')).not.toContain(apiKey);
    const admin = await paste(step(c, 4, /\/relay\/artifacts\/admin\/keys$/));
    expect(admin.stdout).toMatch(/\nHTTP 403\n$/);
    expect(admin.stdout).toContain("jobs never reach the artifact store's admin API");

    // 3. AWS credentials in the credential_process shape.
    const creds = await paste(step(c, 5, /creds aws-deploy --url /));
    expect(creds.code, creds.stderr).toBe(0);
    const session = JSON.parse(creds.stdout);
    expect(session).toMatchObject({ Version: 1, AccessKeyId: expect.stringMatching(/^ASIA/), SecretAccessKey: expect.any(String), SessionToken: expect.any(String) });
    expect(Date.parse(session.Expiration)).toBeGreaterThan(Date.now());
    const awsCli = await paste(step(c, 6, /aws sts get-caller-identity --profile port-demo/));
    expect(awsCli.code, awsCli.stderr).toBe(0);
    const hasAwsCli = (await paste('command -v aws')).code === 0;
    if (hasAwsCli) expect(JSON.parse(awsCli.stdout).Arn).toMatch(/assumed-role\/port-demo-deploy\//);
    else expect(awsCli.stdout).toContain('no AWS CLI here');

    // 4. agent pools: a deploy job on main taken by an agent of another queue is refused, though
    // the policy allows its grant; the audit lists the agent that was served, and the config lints clean.
    // The two checks of files alone (the config, the policy folder) change nothing and need
    // nothing pasted before them: they run alongside the steps from here, asserted in their place.
    const linting = paste(step(c, 9, /policy lint -c .*port\.yaml$/));
    const policyTesting = paste(step(c, 16, /policy test --policies /));
    const mainAgent = jobVar('deploy-main.env', 'BUILDKITE_AGENT_ID');
    const otherAgent = jobVar('deploy-acquired.env', 'BUILDKITE_AGENT_ID');
    expect(otherAgent).not.toBe(mainAgent);
    const acquired = await paste(step(c, 7, /deploy-acquired\.env .*token exchange --scope deploy-token\)$/));
    expect(acquired.code, acquired.stderr).toBe(1);
    expect(acquired.stdout).toBe('');
    expect(acquired.stderr).toBe(
      `port: token exchange refused (403 access_denied): Job ${jobVar('deploy-acquired.env', 'BUILDKITE_JOB_ID')} belongs to queue default but runs on agent ${otherAgent} of queue builds: it was acquired outside its pool (buildkite-agent start --acquire-job).\n`,
    );
    const agentsAudit = await paste(step(c, 8, /agents audit -c .*port\.yaml$/));
    expect(agentsAudit.code, agentsAudit.stderr).toBe(0);
    expect(agentsAudit.stdout).toContain('Pool default/default — requires buildkite, enforcement: enforce');
    expect(agentsAudit.stdout).toMatch(new RegExp(`\\n  ${mainAgent}  buildkite +credentials aws-deploy, deploy-token; 2 Port tokens +ok\\n`));
    // The refused agent received nothing, so it is not listed.
    expect(agentsAudit.stdout).not.toContain(otherAgent);
    expect(agentsAudit.stdout).toMatch(/\nOK: every pool that requires attestation served only agents attested with every method it requires\.\n$/);
    const lint = await linting;
    expect(lint).toMatchObject({ code: 0, stdout: '0 errors, 0 warnings\n', stderr: '' });

    // 5. the approval: the author may not approve their own build; the approver approves.
    const bob = await signIn(printed.approvalUrl, printed.author, printed.password, { screenshot: '01-identity-provider-sign-in.png' });
    expect(await bob.textContent('.notice')).toContain('you started this build or wrote its commit');
    expect(await bob.locator('button.approve').count()).toBe(0);
    await shot(bob, '02-author-cannot-approve.png');
    await bob.context().close();
    const alice = await signIn(printed.approvalUrl, printed.approver, printed.password, { wrongFirst: true });
    expect(await alice.textContent('main')).toContain('a deploy to production needs an approver who did not start the build');
    expect(await alice.textContent('h1 .status')).toBe('pending');
    await shot(alice, '03-approval-request.png');
    await alice.fill('textarea[name="comment"]', 'Looks good, ship it.');
    await alice.click('button.approve');
    await alice.waitForURL(`${printed.approvalUrl}?done=unblocked`);
    expect(await alice.textContent('.flash')).toContain('Port unblocked the step');
    expect(await alice.textContent('h1 .status')).toBe('unblocked');
    await shot(alice, '04-approved-and-unblocked.png');
    await alice.context().close();
    const blockStep = await paste(step(c, 10, /curl .*\/v2\/organizations\/acme\/pipelines\/deploy\/builds\/1\/jobs\//));
    expect(JSON.parse(blockStep.stdout)).toMatchObject({ type: 'manual', state: 'unblocked', unblocked_by: { email: 'alice@acme.test' } });

    // 6. a revocation, then the same Port token is refused with the reason.
    const revoke = await paste(step(c, 11, /revoke job [0-9a-f-]{36} -c .*port\.yaml --reason/));
    expect(revoke.code, revoke.stderr).toBe(0);
    expect(revoke.stdout).toMatch(/^revoked job [0-9a-f-]{36} at /);
    const refused = await paste(step(c, 12, /\/relay\/artifacts\/reports\/build-1\.json$/));
    expect(refused.stdout).toMatch(/\nHTTP 401\n$/);
    expect(refused.stdout).toMatch(/revoked/);
    const credsRefused = await paste(step(c, 13, /creds aws-deploy --url /));
    expect(credsRefused.code, credsRefused.stderr).toBe(1);
    expect(credsRefused.stdout).toBe('');
    expect(credsRefused.stderr).toMatch(/refused \(401 .*revoked/);

    // 7. the audit log verifies and tells the story.
    const verify = await paste(step(c, 14, /audit verify -c /));
    expect(verify.code, verify.stderr).toBe(0);
    expect(verify.stdout).toMatch(/OK/);
    const tail = await paste(step(c, 15, /audit tail -c .* --no-follow$/));
    expect(tail.code, tail.stderr).toBe(0);
    expect(tail.stdout).toMatch(/allow\s+assume .*deploy-token-main/);
    expect(tail.stdout).toMatch(/deny\s+assume /);
    expect(tail.stdout).toMatch(/deny\s+proxy .*artifacts-admin-off-limits/);
    expect(tail.stdout).toMatch(/deny\s+exchange .*acquired outside its pool/);
    expect(tail.stdout).toMatch(/allow\s+approve /);
    expect(tail.stdout).toMatch(/revoke/);
    const policyTest = await policyTesting;
    expect(policyTest.code, policyTest.stderr).toBe(0);
  } finally {
    await demo.stop();
  }
}, 180_000);

it('a second run starts clean; with --keep it says it continues, and does', async () => {
  // The last run's token file and decision log are gone.
  const again = await startDemo();
  try {
    expect(again.stdout()).toContain('Started from a clean state');
    expect(existsSync(join(dir, 'deploy-main.token'))).toBe(false);
    const c = parse(again.stdout()).commands;
    const tail = await paste(printedCommand(c, /audit tail /));
    expect(tail.code, tail.stderr).toBe(0);
    expect(tail.stdout).not.toMatch(/revoke/);
  } finally {
    await again.stop();
  }

  // --keep says it continues, and the earlier decisions are still in the log.
  const kept = await startDemo(['--keep']);
  try {
    expect(kept.stdout()).toContain('Continuing with the store');
    const c = parse(kept.stdout()).commands;
    const verify = await paste(printedCommand(c, /audit verify /));
    expect(verify.code, verify.stderr).toBe(0);
    const tail = await paste(printedCommand(c, /audit tail /));
    expect(tail.stdout).toMatch(/approval_requested/);
    expect(tail.stdout.match(/approval_requested/g)!.length).toBe(2);
  } finally {
    await kept.stop();
  }
}, 120_000);
