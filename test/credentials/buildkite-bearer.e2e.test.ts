import { delimiter, join } from 'node:path';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jtiHash } from '../../src/audit/token-hash.js';
import type { SimJob } from '../../src/sim/index.js';
import { writeBuildkiteAgentShim } from '../../src/sim/index.js';
import { algNone, decodePart, signWithForeignKey, tamperPayload } from '../helpers/forge.js';
import { startHarness, type Harness } from '../helpers/port-harness.js';
import { runPort } from '../helpers/spawn-port.js';
import { ensureDist } from '../sim/ensure-dist.js';
import { ADMIN_TOKEN, decisionsSince, headSeq, release } from './support.js';

/**
 * POST /v1/credentials/{name} with a Buildkite OIDC token as the bearer: the exchange
 * and the release in one request, under every rule of the
 * exchange — verification, single use, revocation, the build creator, `exchange` and
 * `assume` decided — driven over HTTP against a running Port and through `port creds`.
 */
const POLICIES: Record<string, string> = {
  'exchange.cedar': `
@id("acme-jobs-exchange")
@reason("jobs of acme may hold a Port token")
permit (principal, action == Port::Action::"exchange", resource == Port::Organization::"acme");

@id("no-untrusted-pipeline")
@reason("the untrusted pipeline never gets a Port token")
forbid (principal, action == Port::Action::"exchange", resource)
when { principal.pipeline_slug == "untrusted" };
`,
  'credentials.cedar': `
@id("deploy-main-credentials")
@reason("deploys from main of acme/deploy get deploy credentials")
permit (principal, action == Port::Action::"assume", resource)
when { principal.pipeline_slug == "deploy" && principal.branch == "main" };

@id("release-by-deployers")
@reason("builds started by deployers may release")
permit (principal, action == Port::Action::"assume", resource == Port::Credential::"release-secret")
when { principal has creator && principal.creator in Port::Group::"deployers" };
`,
};

const APP_SECRET = 'bk-bearer-app-secret-5d81';
const RELEASE_SECRET = 'bk-bearer-release-secret-77ac';
/** Every Buildkite token this file presents, and every value released: none may reach the decision log. */
const presented: string[] = [];

let h: Harness;
beforeAll(async () => {
  process.env.PORT_TEST_BK_BEARER_ADMIN = ADMIN_TOKEN;
  process.env.PORT_TEST_BK_BEARER_APP = APP_SECRET;
  h = await startHarness({
    policies: POLICIES,
    config: (sim) => {
      process.env.PORT_TEST_BK_BEARER_API = sim.apiToken;
      return {
        server: { listen: '127.0.0.1:0', public_url: 'https://port.acme.test', log_level: 'silent', admin_token: 'env:PORT_TEST_BK_BEARER_ADMIN' },
        issuer: { token_ttl: '10m' },
        buildkite: {
          organization: 'acme',
          issuer: sim.issuer,
          jwks_url: sim.jwksUrl,
          audience: 'https://port.acme.test',
          api_url: sim.url,
          api_token: 'env:PORT_TEST_BK_BEARER_API',
        },
        credentials: {
          'app-secret': { type: 'secret', value: 'env:PORT_TEST_BK_BEARER_APP' },
          'release-secret': { type: 'secret', value: `command:printf %s ${RELEASE_SECRET}` },
          'deploy-token': { type: 'port_token', audience: 'https://deploy.acme.test', ttl: '1h' },
        },
      };
    },
  });
}, 60_000);
afterAll(async () => {
  await h?.close();
});

const deployJob = (init: Partial<SimJob> = {}) => h.sim.createJob({ pipelineSlug: 'deploy', branch: 'main', ...init });
const jobPrincipal = (job: SimJob) => `Port::Job::${JSON.stringify(job.jobId)}`;

/** A Buildkite token of `job` for Port's audience (the claims the plugin requests). */
async function bkToken(job: SimJob, opts: { lifetime?: number; now?: number; audience?: string } = {}): Promise<string> {
  const token = await h.sim.mintToken(job, { audience: opts.audience ?? h.audience, claims: ['organization_id', 'pipeline_id', 'cluster_name', 'queue_key'], ...opts });
  presented.push(token);
  return token;
}

const jtiOf = (token: string) => String(decodePart(token, 1).jti);
const expOf = (token: string) => decodePart(token, 1).exp as number;

async function revoke(scope: string, id: string): Promise<void> {
  const res = await fetch(`${h.url}/v1/revocations`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ scope, id, reason: 'test' }),
  });
  expect(res.status, await res.text()).toBe(200);
}

describe('a Buildkite token as the bearer: allowed', () => {
  it('releases the credential in one request: exchange and assume decided and logged with subject_token, never the token', async () => {
    const job = deployJob();
    const bk = await bkToken(job, { lifetime: 120 });
    const before = await headSeq(h);
    const res = await release(h, 'app-secret', bk);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    // 120 s is sooner than token_ttl (10 min): the Buildkite token's exp caps expires_at.
    expect(res.body).toEqual({ name: 'app-secret', value: APP_SECRET, expires_at: new Date(expOf(bk) * 1000).toISOString() });

    const records = await decisionsSince(h, before);
    expect(records.map((r) => [r.action, r.resource, r.decision])).toEqual([
      ['exchange', 'Port::Organization::"acme"', 'allow'],
      ['assume', 'Port::Credential::"app-secret"', 'allow'],
    ]);
    const subject = { jti_sha256: jtiHash(jtiOf(bk)), exp: expOf(bk) };
    expect(records[0]).toMatchObject({ principal: jobPrincipal(job), policies: [{ id: 'acme-jobs-exchange' }], context: { job: { job_id: job.jobId, pipeline_slug: 'deploy' }, subject_token: subject, bearer: 'buildkite_token' } });
    expect(records[1]).toMatchObject({
      principal: jobPrincipal(job),
      policies: [{ id: 'deploy-main-credentials' }],
      context: { job: { job_id: job.jobId }, subject_token: subject, credential: { type: 'secret', expires_at: res.body.expires_at } },
    });
    // No Port token was minted or presented.
    for (const r of records) expect(r.context).not.toHaveProperty('port_token');
    const logged = JSON.stringify(records);
    expect(logged).not.toContain(bk);
    expect(logged).not.toContain(jtiOf(bk));
    expect(logged).not.toContain(APP_SECRET);

    const [issued] = await h.port.store.issued.list({ jobId: job.jobId });
    expect(issued).toMatchObject({ credential: 'app-secret', type: 'secret', tokenJtiHash: jtiHash(jtiOf(bk)), agentId: job.agentId, expiresAt: expOf(bk) * 1000 });
  });

  it('caps expires_at at token_ttl from now when the Buildkite token lives longer', async () => {
    const bk = await bkToken(deployJob(), { lifetime: 3600 });
    const from = Math.floor(Date.now() / 1000);
    const res = await release(h, 'app-secret', bk);
    const to = Math.floor(Date.now() / 1000);
    expect(res.status).toBe(200);
    const expires = Date.parse(res.body.expires_at) / 1000;
    expect(expires).toBeGreaterThanOrEqual(from + 600);
    expect(expires).toBeLessThanOrEqual(to + 600);
    expect(expires).toBeLessThan(expOf(bk));
  });

  it("a port_token credential never outlives the Buildkite token that asked for it", async () => {
    const job = deployJob();
    const bk = await bkToken(job, { lifetime: 90 });
    const res = await release(h, 'deploy-token', bk);
    expect(res.status).toBe(200);
    presented.push(res.body.access_token);
    const claims = decodeJwt(res.body.access_token);
    expect(claims).toMatchObject({ aud: 'https://deploy.acme.test', sub: job.jobId, exp: expOf(bk) });
    expect(res.body.expires_at).toBe(new Date(expOf(bk) * 1000).toISOString());
  });

  it("looks up the build's creator as at exchange: a deployer's build gets what policy grants deployers", async () => {
    await h.port.store.users.upsert({ email: 'dee@acme.test', active: true, groups: ['deployers'], updatedAt: Date.now() });
    await h.port.store.users.upsert({ email: 'eve@acme.test', active: true, groups: ['developers'], updatedAt: Date.now() });
    const jobBy = (email: string) => {
      const build = h.sim.createBuild({ pipelineSlug: 'web', branch: 'feature', creator: h.sim.createUser({ name: email, email }), steps: [{ type: 'command', key: 'a' }] });
      return build.jobs[0]!.oidcJob!;
    };
    const dee = jobBy('dee@acme.test');
    const before = await headSeq(h);
    const allowed = await release(h, 'release-secret', await bkToken(dee));
    expect(allowed.status, JSON.stringify(allowed.body)).toBe(200);
    expect(allowed.body.value).toBe(RELEASE_SECRET);
    const records = await decisionsSince(h, before);
    expect(records[1]).toMatchObject({ policies: [{ id: 'release-by-deployers' }], context: { job: { build_creator: 'dee@acme.test' }, build_creator: { known: true, in_directory: true } } });

    const denied = await release(h, 'release-secret', await bkToken(jobBy('eve@acme.test')));
    expect(denied.status).toBe(403);
  });
});

describe('a Buildkite token as the bearer: denied by policy', () => {
  it('exchange denied: 403 naming the exchange, one deny logged, and the token is spent', async () => {
    const job = h.sim.createJob({ pipelineSlug: 'untrusted', branch: 'main' });
    const bk = await bkToken(job);
    const before = await headSeq(h);
    const res = await release(h, 'app-secret', bk);
    expect(res).toMatchObject({
      status: 403,
      body: { error: 'access_denied', error_description: 'Policy denied the token exchange: forbidden by no-untrusted-pipeline: the untrusted pipeline never gets a Port token' },
    });
    const records = await decisionsSince(h, before);
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({ action: 'exchange', decision: 'deny', principal: jobPrincipal(job), policies: [{ id: 'no-untrusted-pipeline' }], context: { subject_token: { jti_sha256: jtiHash(jtiOf(bk)) } } });
    // As at /oauth/token, a denied token is used up.
    const again = await release(h, 'app-secret', bk);
    expect(again.status).toBe(401);
    expect(again.body.error_description).toMatch(/already exchanged/);
  });

  it('assume denied: 403 naming the credential and the reason; the exchange allow and the assume deny are logged', async () => {
    const job = deployJob({ branch: 'feature' });
    const bk = await bkToken(job);
    const before = await headSeq(h);
    const res = await release(h, 'app-secret', bk);
    expect(res.status).toBe(403);
    expect(res.body).toEqual({ error: 'access_denied', error_description: expect.stringMatching(/^Policy denied the credential "app-secret": /) });
    const records = await decisionsSince(h, before);
    expect(records.map((r) => [r.action, r.decision, r.principal])).toEqual([
      ['exchange', 'allow', jobPrincipal(job)],
      ['assume', 'deny', jobPrincipal(job)],
    ]);
    expect(records[1]!.context).toMatchObject({ subject_token: { jti_sha256: jtiHash(jtiOf(bk)) } });
    expect(await h.port.store.issued.list({ jobId: job.jobId })).toEqual([]);
  });
});

describe('a Buildkite token as the bearer: single use', () => {
  it('refuses a replay, at this endpoint and at /oauth/token, and a token already exchanged', async () => {
    const job = deployJob();
    const bk = await bkToken(job);
    expect((await release(h, 'app-secret', bk)).status).toBe(200);
    const before = await headSeq(h);
    const replay = await release(h, 'app-secret', bk);
    expect(replay).toMatchObject({ status: 401, body: { error: 'invalid_token', error_description: 'The subject token was already exchanged; request a fresh one from the agent.' } });
    const [r] = await decisionsSince(h, before);
    expect(r).toMatchObject({ action: 'assume', resource: 'Port::Credential::"app-secret"', decision: 'deny', principal: jobPrincipal(job), context: { check: 'replayed' } });
    expect((await h.exchange(bk, { scope: 'app-secret' })).body).toMatchObject({ error: 'invalid_grant' });

    const exchanged = await bkToken(deployJob());
    expect((await h.exchange(exchanged, { scope: 'app-secret' })).status).toBe(200);
    expect((await release(h, 'app-secret', exchanged)).status).toBe(401);
    expect(await h.port.store.issued.list({ jobId: job.jobId })).toHaveLength(1);
  });

  it('concurrent uses of one token: exactly one gets the credential', async () => {
    const bk = await bkToken(deployJob());
    const answers = await Promise.all(Array.from({ length: 5 }, () => release(h, 'app-secret', bk)));
    expect(answers.map((a) => a.status).sort()).toEqual([200, 401, 401, 401, 401]);
  });

  it('an unknown credential answers 404 and does not spend the token', async () => {
    const bk = await bkToken(deployJob());
    const res = await release(h, 'no-such-cred', bk);
    expect(res).toMatchObject({ status: 404, body: { error: 'unknown_credential', error_description: 'No credential is named "no-such-cred".' } });
    expect((await release(h, 'app-secret', bk)).status).toBe(200);
  });
});

describe('a Buildkite token as the bearer: refused tokens', () => {
  const refusedAs = async (token: string, check: string) => {
    presented.push(token);
    const before = await headSeq(h);
    const res = await release(h, 'app-secret', token);
    expect(res.status, JSON.stringify(res.body)).toBe(401);
    expect(res.body.error).toBe('invalid_token');
    expect(res.body.error_description).toMatch(/^The bearer is not a valid Port token, and Port refused it as a Buildkite token: /);
    // The first refusal of each kind per window is logged in full, a repeat only counted:
    // once the window's counts are written, this refusal is in the log either way.
    await h.port.log.flush();
    const records = (await decisionsSince(h, before)).filter((r) => r.context.check === check);
    expect(records.length).toBeGreaterThanOrEqual(1);
    for (const r of records) expect(r).toMatchObject({ action: 'assume', decision: 'deny', principal: null, resource: 'Port::Credential::"app-secret"', context: { check } });
    return res.body.error_description as string;
  };

  it('wrong audience', async () => {
    const description = await refusedAs(await bkToken(deployJob(), { audience: 'https://other.acme.test' }), 'wrong_audience');
    expect(description).toContain('--audience https://port.acme.test');
  });

  it('expired', async () => {
    const now = Math.floor(Date.now() / 1000);
    await refusedAs(await bkToken(deployJob(), { now: now - 3600, lifetime: 300 }), 'expired');
  });

  it('forged: signed by a key Buildkite never published, a tampered claim, alg none', async () => {
    const bk = await bkToken(deployJob());
    await refusedAs(signWithForeignKey(decodePart(bk, 0), decodePart(bk, 1)), 'bad_signature');
    await refusedAs(tamperPayload(bk, { pipeline_slug: 'deploy', build_branch: 'main', job_id: crypto.randomUUID() }), 'bad_signature');
    await refusedAs(algNone(bk), 'alg_not_allowed');
    // None of them spent the genuine token.
    expect((await release(h, 'app-secret', bk)).status).toBe(200);
  });

  it('another organization', async () => {
    await refusedAs(await bkToken(h.sim.createJob({ organizationSlug: 'evil', pipelineSlug: 'deploy', branch: 'main' })), 'wrong_organization');
  });

  it("a Port-signed token for another audience is refused as a Port token, not tried as a Buildkite token", async () => {
    const credential = await release(h, 'deploy-token', await bkToken(deployJob()));
    const token = credential.body.access_token as string;
    presented.push(token);
    const res = await release(h, 'app-secret', token);
    expect(res).toMatchObject({ status: 401, body: { error: 'invalid_token', error_description: expect.stringMatching(/^The bearer is not a valid Port token \(/) } });
  });
});

describe('port creds inside a job', () => {
  it('sends the agent\'s Buildkite token straight to /v1/credentials: one request, no Port token minted', async () => {
    ensureDist();
    const shimDir = join(h.dir, 'bin');
    writeBuildkiteAgentShim(shimDir);
    const env = (job: SimJob) => ({ ...h.sim.jobEnv(job), PATH: `${shimDir}${delimiter}${process.env.PATH}`, PORT_URL: h.url, PORT_AUDIENCE: h.audience, PORT_TOKEN: '' });

    const job = deployJob();
    const before = await headSeq(h);
    const ok = await runPort(['creds', 'app-secret', '--value'], { env: env(job) });
    expect(ok).toMatchObject({ code: 0, stdout: APP_SECRET, stderr: '' });
    const records = await decisionsSince(h, before);
    expect(records.map((r) => [r.action, r.decision, r.principal])).toEqual([
      ['exchange', 'allow', jobPrincipal(job)],
      ['assume', 'allow', jobPrincipal(job)],
    ]);
    for (const r of records) expect(r.context).not.toHaveProperty('port_token');

    const denied = await runPort(['creds', 'app-secret'], { env: env(deployJob({ branch: 'feature' })) });
    expect(denied).toMatchObject({ code: 1, stdout: '' });
    expect(denied.stderr).toMatch(/^port: creds app-secret: token exchange refused \(403 access_denied\): Policy denied the credential "app-secret": .*\n$/);
  });
});

// Last: a user revocation in force refuses every later token whose build's creator Port can't learn.
describe('a Buildkite token as the bearer: revoked', () => {
  const cases: { scope: string; setup: () => { job: SimJob; id: string }; message: RegExp }[] = [
    { scope: 'job', setup: () => ({ job: deployJob(), id: '' }), message: /has finished or was revoked/ },
    { scope: 'build', setup: () => { const job = deployJob(); return { job, id: `acme/deploy/${job.buildNumber}` }; }, message: /build this token belongs to was revoked/ },
    { scope: 'agent', setup: () => { const job = deployJob(); return { job, id: job.agentId }; }, message: /agent this token names is revoked/ },
    { scope: 'pool', setup: () => ({ job: deployJob({ clusterName: 'revoked-cluster', queueKey: 'q1' }), id: 'revoked-cluster/q1' }), message: /pool this token names is revoked/ },
    {
      scope: 'user',
      setup: () => {
        const creator = h.sim.createUser({ name: 'Mallory', email: 'mallory@acme.test' });
        const build = h.sim.createBuild({ pipelineSlug: 'deploy', branch: 'main', creator, steps: [{ type: 'command', key: 'a' }] });
        return { job: build.jobs[0]!.oidcJob!, id: 'mallory@acme.test' };
      },
      message: /person who started this build is revoked/,
    },
  ];
  for (const c of cases) {
    it(`${c.scope}: refused with 401 as at exchange, logged with the revocation scope, nothing released`, async () => {
      const { job, id } = c.setup();
      const bk = await bkToken(job);
      await revoke(c.scope, c.scope === 'job' ? job.jobId : id);
      const before = await headSeq(h);
      const res = await release(h, 'app-secret', bk);
      expect(res.status).toBe(401);
      expect(res.body.error).toBe('invalid_token');
      expect(res.body.error_description).toMatch(c.message);
      const [r] = await decisionsSince(h, before);
      expect(r).toMatchObject({ action: 'assume', decision: 'deny', principal: jobPrincipal(job), resource: 'Port::Credential::"app-secret"', context: { check: 'job_revoked', revocation: { scope: c.scope } } });
      expect(await h.port.store.issued.list({ jobId: job.jobId })).toEqual([]);
    });
  }
});

describe('the decision log', () => {
  it('holds none of the tokens presented in this file, nor a released value', async () => {
    const all = JSON.stringify((await h.port.store.decisions.read(0, 100_000)).map((e) => e.record));
    expect(presented.length).toBeGreaterThan(15);
    for (const token of presented) {
      expect(all).not.toContain(token);
      const signature = token.split('.')[2]!;
      if (signature !== '') expect(all).not.toContain(signature);
    }
    expect(all).not.toContain(APP_SECRET);
    expect(all).not.toContain(RELEASE_SECRET);
  });
});
