/**
 * The relay decides `proxy` with the build's creator (`Job.creator`, `User in
 * [Group]` in Port's schema), end to end: the Buildkite simulator names each build's creator, Port maps
 * them to the person SCIM provisioned (or SSO recorded), and a policy on
 * `principal.creator in Port::Group::"deployers"` decides every relay request. A group
 * change or deactivation through SCIM applies to the very next request, with the
 * decision cache on. Then the decision log: relay records carry `context.job` (with
 * `build_creator`) and the token's jti hash, allows aggregated per token, and
 * `port audit lineage` finds them by user, build and job.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DecisionEntry } from '../../src/store/records/decisions.js';
import { readLineage } from '../../src/audit/lineage-read.js';
import { jtiHash } from '../../src/audit/token-hash.js';
import type { SimJob } from '../../src/sim/index.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { TEST_POLICIES, type Harness } from '../helpers/port-harness.js';
import { startRecordingUpstream, type RecordingUpstream } from '../helpers/relay/recording-upstream.js';
import { GROUP_SCHEMA, oktaUser, scimClient, startScimHarness, type ScimClient } from '../scim/scim-client.js';

const POLICIES = {
  'exchange.cedar': TEST_POLICIES['exchange.cedar']!,
  'relay.cedar': `
@id("deployers-use-deploy-api")
@reason("builds started by an active deployer may call the deploy API")
permit (principal is Port::Job, action == Port::Action::"proxy", resource == Port::Upstream::"deploy-api")
when { principal has creator && principal.creator.active && principal.creator in Port::Group::"deployers" };
`,
};

let h: Harness;
let scim: ScimClient;
let upstream: RecordingUpstream;
let deployers: string;
let portClosed = false;

beforeAll(async () => {
  upstream = await startRecordingUpstream();
  h = await startScimHarness({
    policies: POLICIES,
    extra: (sim) => {
      process.env.PORT_RELAY_CREATOR_BK_TOKEN = sim.apiToken;
      return {
        buildkite: {
          organization: 'acme',
          issuer: sim.issuer,
          jwks_url: sim.jwksUrl,
          audience: 'https://port.acme.test',
          api_url: sim.url,
          api_token: 'env:PORT_RELAY_CREATOR_BK_TOKEN',
        },
        // The decision cache stays on (its default 5 s): a change must get past it.
        // One allow window for the whole file: allows are written when Port closes.
        relay: { accept_buildkite_tokens: true, allow_log_window: 3600 },
        upstreams: { 'deploy-api': { url: upstream.url, timeout: 2, connect_timeout: 2 } },
      };
    },
  });
  scim = scimClient(h.url);
  const group = await scim.post('/Groups', { schemas: [GROUP_SCHEMA], displayName: 'deployers', members: [] });
  expect(group.status).toBe(201);
  deployers = group.body.id as string;
}, 60_000);

afterAll(async () => {
  if (h && !portClosed) await h.port.close();
  await h?.sim.close();
  await upstream?.close();
  if (h) rmSync(h.dir, { recursive: true, force: true });
});

/** Provisions a person through SCIM (Okta's shapes); returns their SCIM id. */
async function provision(email: string, member: boolean): Promise<string> {
  const res = await scim.post('/Users', oktaUser(email));
  expect(res.status).toBe(201);
  const id = res.body.id as string;
  if (member) await addMember(id);
  return id;
}

async function addMember(id: string): Promise<void> {
  // Entra's shape (Microsoft Learn, "Add a member to a group").
  const res = await scim.patch(`/Groups/${deployers}`, [{ op: 'Add', path: 'members', value: [{ value: id }] }]);
  expect(res.status).toBe(200);
}

async function removeMember(id: string, shape: 'okta' | 'entra'): Promise<void> {
  const op =
    shape === 'okta'
      ? { op: 'remove', path: `members[value eq "${id}"]` }
      : { op: 'Remove', path: 'members', value: [{ value: id }] };
  const res = await scim.patch(`/Groups/${deployers}`, [op]);
  expect(res.status).toBe(200);
}

/** A running command job of a new build of acme/deploy, created by `email` (or by no one). */
function jobBy(email: string | null): SimJob {
  const creator = email === null ? null : h.sim.createUser({ name: email.split('@')[0]!, email });
  const build = h.sim.createBuild({ pipelineSlug: 'deploy', branch: 'main', creator, steps: [{ type: 'command', key: 'ship', label: 'Ship' }] });
  return h.sim.build(build.id)!.jobs.find((j) => j.type === 'script')!.oidcJob!;
}

const bkToken = (job: SimJob) => h.sim.mintToken(job, { audience: h.audience });

async function portToken(job: SimJob): Promise<string> {
  const res = await h.exchange(await bkToken(job));
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body.access_token as string;
}

/** Allowed relay requests made per token (jti hash), to check the aggregated log entries. */
const allowed = new Map<string, number>();

async function relay(token: string, path = '/deploys/1', method = 'GET'): Promise<{ status: number; body: any }> {
  const res = await fetch(`${h.url}/relay/deploy-api${path}`, { method, headers: { authorization: `Bearer ${token}` } });
  const text = await res.text();
  if (res.status === 200) {
    const jti = String(decodeJwt(token).jti);
    allowed.set(jtiHash(jti), (allowed.get(jtiHash(jti)) ?? 0) + 1);
  }
  return { status: res.status, body: res.headers.get('content-type')?.includes('application/json') ? JSON.parse(text) : text };
}

const jobs: Record<string, SimJob> = {};
const tokens: Record<string, string> = {};

describe('proxy policy on the creator\'s group', () => {
  it("allows the job of a creator SCIM put in the group, refuses everyone else's; a refused request never reaches the upstream", async () => {
    await provision('ana@acme.test', true);
    await provision('bob@acme.test', false);
    jobs.ana = jobBy('Ana@Acme.test');
    jobs.bob = jobBy('bob@acme.test');
    const unknown = jobBy('nobody-provisioned@acme.test');
    const none = jobBy(null);
    tokens.ana = await portToken(jobs.ana);
    tokens.bob = await portToken(jobs.bob);
    expect(decodeJwt(tokens.ana).build_creator).toBe('ana@acme.test');

    upstream.reset();
    expect((await relay(tokens.ana)).status).toBe(200);
    expect((await relay(tokens.ana)).status).toBe(200);
    // Same upstream, method and path right after an allow: another token's decision is its own.
    const bob = await relay(tokens.bob);
    expect(bob.status).toBe(403);
    expect(bob.body).toMatchObject({ error: 'access_denied' });
    expect(bob.body.error_description).toMatch(/^Policy denied GET \/deploys\/1 on deploy-api: /);
    // A creator Port has no record of, and a build with no creator: the policy can't match.
    expect((await relay(await portToken(unknown))).status).toBe(403);
    expect((await relay(await portToken(none))).status).toBe(403);
    expect(upstream.requests).toHaveLength(2);
  });

  it('stops allowing on the next request after SCIM removes the creator from the group (decision cached or not), and allows again once re-added', async () => {
    const id = await provision('dana@acme.test', true);
    jobs.dana = jobBy('dana@acme.test');
    tokens.dana = await portToken(jobs.dana);
    expect((await relay(tokens.dana)).status).toBe(200);
    // The same request again is a decision-cache hit.
    expect((await relay(tokens.dana)).status).toBe(200);

    await removeMember(id, 'okta');
    expect((await relay(tokens.dana)).status).toBe(403);
    expect((await relay(tokens.dana, '/deploys/other')).status).toBe(403);

    await addMember(id);
    expect((await relay(tokens.dana)).status).toBe(200);

    await removeMember(id, 'entra');
    expect((await relay(tokens.dana)).status).toBe(403);
  });

  it("refuses the creator's outstanding token on the next request after SCIM deactivates them", async () => {
    const id = await provision('eve@acme.test', true);
    const token = await portToken(jobBy('eve@acme.test'));
    expect((await relay(token)).status).toBe(200);
    const res = await scim.patch(`/Users/${id}`, [{ op: 'replace', value: { active: false } }]);
    expect(res.status).toBe(200);
    const after = await relay(token);
    expect(after.status).toBe(401);
    expect(after.body.error).toBe('invalid_token');
  });

  it('decides an SSO-recorded creator (store.users.upsert) by the groups Port holds; a change applies to the next request', async () => {
    await h.port.store.users.upsert({ email: 'finn@acme.test', active: true, groups: ['deployers'], updatedAt: Date.now(), source: 'sso' });
    const token = await portToken(jobBy('finn@acme.test'));
    expect((await relay(token)).status).toBe(200);
    await h.port.store.users.upsert({ email: 'finn@acme.test', active: true, groups: ['readers'], updatedAt: Date.now(), source: 'sso' });
    expect((await relay(token)).status).toBe(403);
  });

  it("decides a Buildkite token presented directly with its build's creator too", async () => {
    tokens.anaBuildkite = await bkToken(jobs.ana!);
    tokens.bobBuildkite = await bkToken(jobs.bob!);
    const ok = await fetch(`${h.url}/relay/deploy-api/deploys/bk`, { headers: { authorization: `Bearer ${tokens.anaBuildkite}` } });
    expect(ok.status).toBe(200);
    await ok.text();
    const refused = await fetch(`${h.url}/relay/deploy-api/deploys/bk`, { headers: { authorization: `Bearer ${tokens.bobBuildkite}` } });
    expect(refused.status).toBe(403);
    await refused.text();
  });

  it("refuses with 503 when the creator's record can't be read, rather than deciding without the creator", async () => {
    await provision('gus@acme.test', true);
    const token = await portToken(jobBy('gus@acme.test'));
    upstream.reset();
    // Fault injection: the store stops answering user reads (the relay has nothing cached for gus yet).
    const users = h.port.store.users;
    const read = users.get;
    users.get = async () => {
      throw new Error('database is locked');
    };
    try {
      const res = await relay(token);
      expect(res.status).toBe(503);
      expect(res.body).toEqual({ error: 'creator_unavailable', error_description: expect.stringMatching(/creator's directory record/) });
      expect(upstream.requests).toHaveLength(0);
    } finally {
      users.get = read;
    }
    expect((await relay(token)).status).toBe(200);
  });
});

describe('relay decisions in the decision log, and their lineage', () => {
  let entries: DecisionEntry[];
  let store: SqliteStore;

  beforeAll(async () => {
    // A second token of ana's job: its allows are an entry of their own.
    tokens.ana2 = await portToken(jobs.ana!);
    expect((await relay(tokens.ana2)).status).toBe(200);
    expect((await relay(tokens.ana2, '/deploys/2')).status).toBe(200);
    expect((await relay(tokens.ana2, '/deploys/3')).status).toBe(200);
    // Closing Port writes the aggregated allows; then the log is read as an auditor would.
    await h.port.close();
    portClosed = true;
    store = SqliteStore.open(join(h.dir, 'port.db'));
    entries = await store.decisions.read(0, 100_000);
  });
  afterAll(async () => {
    await store?.close();
  });

  const proxy = () => entries.map((e) => e.record).filter((r) => r.action === 'proxy');
  const hashOf = (token: string) => jtiHash(String(decodeJwt(token).jti));

  it('a denial names the job (with its creator) and the Port token by its jti hash, never the token', () => {
    const deny = proxy().find((r) => r.decision === 'deny' && r.principal === `Port::Job::"${jobs.bob!.jobId}"` && r.context.token_kind === 'port')!;
    expect(deny).toMatchObject({
      resource: 'Port::Upstream::"deploy-api"',
      context: {
        upstream: 'deploy-api',
        method: 'GET',
        path: '/deploys/1',
        token_kind: 'port',
        job: { job_id: jobs.bob!.jobId, pipeline_slug: 'deploy', build_number: jobs.bob!.buildNumber, build_creator: 'bob@acme.test' },
        port_token: { jti_sha256: hashOf(tokens.bob!) },
      },
    });
    const log = JSON.stringify(entries);
    for (const t of Object.values(tokens)) {
      expect(log).not.toContain(t);
      expect(log).not.toContain(String(decodeJwt(t).jti));
    }
  });

  it('allows are aggregated per token: one entry for each token of the job, with its own hash and request count', () => {
    const ana = proxy().filter((r) => r.decision === 'allow' && r.principal === `Port::Job::"${jobs.ana!.jobId}"` && r.context.token_kind === 'port');
    expect(ana).toHaveLength(2);
    for (const token of [tokens.ana!, tokens.ana2!]) {
      const entry = ana.find((r) => (r.context.port_token as { jti_sha256: string }).jti_sha256 === hashOf(token))!;
      expect(entry.context).toMatchObject({ upstream: 'deploy-api', method: 'GET', requests: allowed.get(hashOf(token)), job: { job_id: jobs.ana!.jobId, build_creator: 'ana@acme.test' } });
      expect(entry.context).not.toHaveProperty('path');
      expect(entry.policies).toEqual([{ id: 'deployers-use-deploy-api', reason: 'builds started by an active deployer may call the deploy API' }]);
    }
    // Dana's allows before and after the group changes: both counted under her one token.
    const dana = proxy().filter((r) => r.decision === 'allow' && r.principal === `Port::Job::"${jobs.dana!.jobId}"`);
    expect(dana.reduce((n, r) => n + Number(r.context.requests), 0)).toBe(allowed.get(hashOf(tokens.dana!)));
  });

  it('a Buildkite-token caller is named by the subject token\'s jti hash', () => {
    const bk = proxy().filter((r) => r.context.token_kind === 'buildkite');
    const hash = (t: string) => jtiHash(String(decodeJwt(t).jti));
    expect(bk.find((r) => r.decision === 'allow')).toMatchObject({
      principal: `Port::Job::"${jobs.ana!.jobId}"`,
      context: { subject_token: { jti_sha256: hash(tokens.anaBuildkite!) }, job: { build_creator: 'ana@acme.test' }, requests: 1 },
    });
    expect(bk.find((r) => r.decision === 'deny')).toMatchObject({
      principal: `Port::Job::"${jobs.bob!.jobId}"`,
      context: { subject_token: { jti_sha256: hash(tokens.bobBuildkite!) }, job: { build_creator: 'bob@acme.test' }, path: '/deploys/bk' },
    });
    for (const r of bk) expect(r.context).not.toHaveProperty('port_token');
  });

  it('port audit lineage finds relay use by user and by build through context.job, and shows the token by hash', async () => {
    const byUser = (await readLineage(store, { kind: 'user', id: 'ana@acme.test' })).lineage;
    const anaProxy = byUser.entries.filter((e) => e.record.action === 'proxy');
    // Two Port-token entries and the Buildkite-token one.
    expect(anaProxy).toHaveLength(3);
    expect(byUser.entries.some((e) => JSON.stringify(e.record).includes('bob@acme.test'))).toBe(false);

    const byBuild = (await readLineage(store, { kind: 'build', id: `acme/deploy/${jobs.bob!.buildNumber}` })).lineage;
    expect(byBuild.entries.filter((e) => e.record.action === 'proxy').map((e) => e.record.decision)).toEqual(['deny', 'deny']);

    const byJob = (await readLineage(store, { kind: 'job', id: jobs.ana!.jobId })).lineage;
    const relaySteps = byJob.groups[0]!.steps.filter((s) => s.stage === 'relay').map((s) => Object.fromEntries(s.facts));
    expect(relaySteps).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ token_kind: 'port', port_token: `sha256:${hashOf(tokens.ana!).slice(0, 16)}` }),
        expect.objectContaining({ token_kind: 'port', port_token: `sha256:${hashOf(tokens.ana2!).slice(0, 16)}` }),
        expect.objectContaining({ token_kind: 'buildkite', buildkite_token: `sha256:${hashOf(tokens.anaBuildkite!).slice(0, 16)}` }),
      ]),
    );
  });
});
