/**
 * `port audit lineage` end to end: a real chain written by a running Port (the Buildkite
 * simulator's build with a command job and a block step), then read back through the
 * real `port` bin against Port's SQLite file, as an auditor would after the fact.
 *
 * The chain: the command job exchanges its Buildkite token (allowed, with a grant) and
 * again for a credential policy refuses (denied); relays three GETs (one aggregated entry)
 * and one refused path; the build blocks and policy unblocks it (a release tag built by a
 * deployer); `job.finished` revokes the job's tokens. Another pipeline's job runs alongside.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SimBuild, SimBuildJob, SimJob } from '../../src/sim/index.js';
import { jtiHash } from '../../src/audit/token-hash.js';
import { APPROVAL_POLICIES } from '../helpers/approval-policies.js';
import { startHarness, type Harness } from '../helpers/port-harness.js';
import { startRecordingUpstream, type RecordingUpstream } from '../helpers/relay/recording-upstream.js';
import { waitUntil } from '../helpers/relay/util.js';
import { runPort } from '../helpers/spawn-port.js';
import { raw, updateRecord } from './helpers.js';

const SECRET = 'lineage-webhook-hmac-secret';
const POLICIES = {
  'exchange.cedar': `
@id("acme-jobs-exchange")
@reason("jobs of acme may hold a Port token")
permit (principal, action == Port::Action::"exchange", resource == Port::Organization::"acme");

@id("deploy-from-main")
@reason("deploys come from main")
permit (principal, action == Port::Action::"assume", resource == Port::Credential::"deploy-token")
when { principal.branch == "main" };
`,
  'relay.cedar': `
@id("files-read")
@reason("acme jobs may read the file store")
permit (principal is Port::Job, action == Port::Action::"proxy", resource == Port::Upstream::"files")
when { context.method == "GET" };

@id("no-admin")
@reason("nobody reaches the admin area through the relay")
forbid (principal, action == Port::Action::"proxy", resource)
when { context.path like "/admin*" };
`,
  'approvals.cedar': APPROVAL_POLICIES,
};
const STEPS = [
  { type: 'block' as const, key: 'deploy', label: 'Deploy to production?' },
  { type: 'command' as const, key: 'ship', label: 'Ship' },
];

let h: Harness;
let upstream: RecordingUpstream;
let config: string;
let build: SimBuild;
let command: SimBuildJob;
let block: SimBuildJob;
let other: SimJob;
let tokenHash: string;
let portClosed = false;

async function lineage(...args: string[]) {
  return runPort(['audit', 'lineage', '-c', config, ...args]);
}

beforeAll(async () => {
  process.env.PORT_LINEAGE_WEBHOOK_SECRET = SECRET;
  upstream = await startRecordingUpstream();
  h = await startHarness({
    policies: POLICIES,
    config: (sim) => {
      process.env.PORT_LINEAGE_BK_API_TOKEN = sim.apiToken;
      return {
        buildkite: {
          organization: 'acme',
          issuer: sim.issuer,
          jwks_url: sim.jwksUrl,
          audience: 'https://port.acme.test',
          api_url: sim.url,
          api_token: 'env:PORT_LINEAGE_BK_API_TOKEN',
          webhook_secret: 'env:PORT_LINEAGE_WEBHOOK_SECRET',
        },
        // One window for the whole test: the relay's allows become one entry, written at close.
        relay: { allow_log_window: 3600 },
        upstreams: { files: { url: `${upstream.url}/base`, timeout: 2, connect_timeout: 2 } },
      };
    },
  });
  config = join(h.dir, 'port.yaml');
  const hook = `${h.url}/webhooks/buildkite`;

  const rel = h.sim.createUser({ name: 'Rel Ease', email: 'rel@acme.test' });
  await h.port.store.users.upsert({ email: 'rel@acme.test', active: true, groups: ['deployers'], updatedAt: Date.now() });
  const created = h.sim.createBuild({ pipelineSlug: 'deploy', branch: 'main', tag: 'v2.0.0', creator: rel, steps: STEPS });
  const logged = async (action: string) => (await h.port.store.decisions.read(0, 1000)).some((e) => e.record.action === action);

  // The build blocks at its gate: a release tag built by a deployer, so policy unblocks it.
  block = created.jobs.find((j) => j.type === 'manual')!;
  expect((await h.sim.blockAndNotify(hook, created, { secret: SECRET })).status).toBe(202);
  await waitUntil(() => h.sim.unblockCalls.find((c) => c.jobId === block.id), 10_000, 'the unblock call');
  for (let i = 0; i < 400 && !(await logged('unblocked')); i++) await new Promise((r) => setTimeout(r, 25));

  // The deploy job runs.
  build = h.sim.build(created.id)!;
  command = build.jobs.find((j) => j.type === 'script')!;
  const job = command.oidcJob!;

  // Exchange, allowed with its grant; then a second one for a credential no policy permits.
  const ok = await h.exchange(await h.sim.mintToken(job, { audience: h.audience }), { scope: 'deploy-token' });
  expect(ok.status).toBe(200);
  const token = ok.body.access_token as string;
  tokenHash = jtiHash(JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).jti as string);
  const denied = await h.exchange(await h.sim.mintToken(job, { audience: h.audience }), { scope: 'npm-publish' });
  expect(denied.status).toBe(403);

  // Someone else's job, in the same log.
  other = h.sim.createJob({ pipelineSlug: 'docs', branch: 'main' });
  const otherToken = (await h.exchange(await h.sim.mintToken(other, { audience: h.audience }))).body.access_token as string;

  // Relay: three reads (one aggregated entry), one refused path, and a read by the other job.
  const relay = (path: string, bearer: string) => fetch(`${h.url}/relay/files${path}`, { headers: { authorization: `Bearer ${bearer}` } });
  for (let i = 0; i < 3; i++) expect((await relay(`/docs/${i}`, token)).status).toBe(200);
  expect((await relay('/admin/keys', token)).status).toBe(403);
  expect((await relay('/docs/x', otherToken)).status).toBe(200);

  // The command job finishes: job.finished revokes its tokens.
  const finished = h.sim.finishBuildJob(command);
  build = h.sim.build(created.id)!;
  expect((await h.sim.deliverWebhook(hook, 'job.finished', h.sim.jobFinishedPayload(finished, build), { secret: SECRET })).status).toBe(202);
  for (let i = 0; i < 400 && !(await logged('revoke')); i++) await new Promise((r) => setTimeout(r, 25));

  // Closing Port writes the relay's aggregated entry; the auditor reads the file afterwards.
  await h.port.close();
  portClosed = true;
}, 60_000);

afterAll(async () => {
  if (h && !portClosed) await h.port.close();
  await h?.sim.close();
  await upstream?.close();
  if (h) rmSync(h.dir, { recursive: true, force: true });
});

describe('port audit lineage', () => {
  it('--job prints the chain in time order: identity, exchanges, grant, relay use, revocation; and says the log verifies', async () => {
    const r = await lineage('--job', command.id);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe(`Lineage of job ${command.id}: 7 entries.`);
    expect(lines[2]).toMatch(new RegExp(`^job ${command.id}  build=acme/deploy/${build.number} branch=main tag=v2.0.0 commit=\\w{12} step=ship `));
    const steps = lines.slice(3, 9);
    const short = `sha256:${tokenHash.slice(0, 16)}`;
    expect(steps[0]).toMatch(/ allow exchange Port::Organization::"acme" — allowed by acme-jobs-exchange: jobs of acme may hold a Port token \| port_token=sha256:\w{16} /);
    expect(steps[0]).toContain(`port_token=${short}`);
    expect(steps[1]).toMatch(/ allow assume \(granted at exchange\) Port::Credential::"deploy-token" — allowed by deploy-from-main: deploys come from main \| port_token=/);
    expect(steps[1]).toContain(short);
    // The refused exchange: the organization allowed, the grant denied; no token minted.
    expect(steps[2]).toMatch(/ allow exchange Port::Organization::"acme" — allowed by acme-jobs-exchange/);
    expect(steps[2]).not.toContain('port_token=');
    expect(steps[3]).toMatch(/ deny {2}assume \(granted at exchange\) Port::Credential::"npm-publish" — denied by default: no policy permits assume/);
    // The three reads, one entry (timed at the window's start), and the refused path.
    expect(steps[4]).toMatch(/ allow proxy Port::Upstream::"files" — allowed by files-read: acme jobs may read the file store \| upstream=files method=GET requests=3 until=/);
    expect(steps[5]).toMatch(/ deny {2}proxy Port::Upstream::"files" — forbidden by no-admin: nobody reaches the admin area through the relay \| upstream=files method=GET path=\/admin\/keys/);
    // Relay use names the Port token that made it, as the exchange that minted it does.
    expect(steps[4]).toContain(`token_kind=port port_token=${short}`);
    expect(steps[5]).toContain(`token_kind=port port_token=${short}`);
    expect(lines[9]).toMatch(/ allow revoke - — The job finished: every Port token it was issued is revoked\. \| scope=job id=/);
    expect(lines.at(-1)).toMatch(/^Decision log: read entries 1–\d+; the hash chain verifies, signed by checkpoints up to entry \d+/);
    // Times never go backwards.
    const times = lines.slice(3, 10).map((l) => Date.parse(l.trim().split(' ')[0]!));
    expect([...times].sort((a, b) => a - b)).toEqual(times);
    expect(r.stdout).not.toContain(other.jobId);
  });

  it('--build groups its jobs: the block step policy unblocked, then the deploy job', async () => {
    const r = await lineage('--build', `acme/deploy/${build.number}`);
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n')[0]).toBe(`Lineage of build acme/deploy/${build.number}: 9 entries in 2 jobs.`);
    const headings = r.stdout.split('\n').filter((l) => /^\S/.test(l) && !l.startsWith('Lineage') && !l.startsWith('Decision log'));
    expect(headings).toEqual([`job ${block.id}  block_step=acme/deploy/${build.number}/deploy label="Deploy to production?" creator=rel@acme.test`, expect.stringMatching(new RegExp(`^job ${command.id}  build=`))]);
    const blockLines = r.stdout.split(`job ${block.id}`)[1]!.split('\n').slice(1, 3);
    expect(blockLines[0]).toMatch(/ allow unblock Port::BlockStep::"acme\/deploy\/\d+\/deploy" — allowed by release-tags-open: release tags from main built by a deployer open by themselves \| step=deploy label="Deploy to production\?"/);
    expect(blockLines[1]).toMatch(/ allow unblocked Port::BlockStep::"acme\/deploy\/\d+\/deploy" — Port unblocked the step through the Buildkite API\. \| step=deploy .*by=policy/);
    expect(r.stdout).not.toContain(other.jobId);
  });

  it('--user follows what a person started: the build they created', async () => {
    const r = await lineage('--user', 'Rel@acme.test');
    expect(r.code).toBe(0);
    // The block step's entries name the build's creator, and so does the job's identity at exchange.
    expect(r.stdout.split('\n')[0]).toBe('Lineage of user rel@acme.test: 9 entries in 2 jobs.');
    expect(r.stdout).toContain(`job ${block.id}  block_step=acme/deploy/${build.number}/deploy`);
    expect(r.stdout).toMatch(new RegExp(`job ${command.id}  build=acme/deploy/${build.number} .* creator=rel@acme.test`));
    expect(r.stdout).toMatch(/ allow unblock Port::BlockStep::/);
    // The relay's records carry the job's identity with its creator (context.job).
    expect(r.stdout).toMatch(/ allow proxy Port::Upstream::"files" — allowed by files-read/);
    expect(r.stdout).toMatch(/ deny {2}proxy Port::Upstream::"files" — forbidden by no-admin/);
    expect(r.stdout).not.toContain(other.jobId);
  });

  it('--json prints the matching entries as JSON lines, in the same order, with their chain fields', async () => {
    const r = await lineage('--job', command.id, '--json');
    expect(r.code).toBe(0);
    const entries = r.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(entries.map((e) => e.action)).toEqual(['exchange', 'assume', 'exchange', 'assume', 'proxy', 'proxy', 'revoke']);
    expect(entries[0]).toMatchObject({ seq: expect.any(Number), hash: expect.stringMatching(/^[0-9a-f]{64}$/), principal: `Port::Job::"${command.id}"` });
    expect(entries[4]).toMatchObject({
      decision: 'allow',
      context: { requests: 3, upstream: 'files', job: { job_id: command.id, build_creator: 'rel@acme.test' }, port_token: { jti_sha256: tokenHash } },
    });
    expect(r.stderr).toMatch(/^Decision log: read entries 1–\d+; the hash chain verifies/);
  });

  it('an unknown id prints "no entries" and exits 1', async () => {
    const r = await lineage('--job', '01900000-0000-4000-8000-000000000999');
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('port audit lineage: no entries for job 01900000-0000-4000-8000-000000000999');
  });

  it('usage errors exit 2: no selector, two selectors, a malformed one', async () => {
    for (const args of [[], ['--job', command.id, '--build', `acme/deploy/${build.number}`], ['--build', 'acme/deploy'], ['--user', 'nobody']]) {
      const r = await lineage(...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/^port audit: (lineage needs exactly one of --job ID, --build ORG\/PIPELINE\/NUMBER or --user EMAIL|--build must be|--user must be)/);
    }
  });

  it('a tampered log: the chain is still printed, the verification names the changed entry, exit 1', async () => {
    const db = raw(join(h.dir, 'port.db'));
    const seq = (db.prepare("SELECT seq FROM decisions WHERE record LIKE '%\"action\":\"proxy\"%' ORDER BY seq LIMIT 1").get() as { seq: number }).seq;
    updateRecord(db, seq, (rec) => void (rec.reason = 'rewritten'));
    db.close();
    const r = await lineage('--job', command.id);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`Lineage of job ${command.id}`);
    expect(r.stdout).toContain(`Decision log: read entries 1–`);
    expect(r.stdout).toContain(`DOES NOT VERIFY`);
    expect(r.stderr).toContain(`port audit lineage: FAILED: the decision log does not verify: entry ${seq}: changed`);
  });
});
