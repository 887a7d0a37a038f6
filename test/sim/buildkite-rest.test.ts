import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BuildkiteSimulator, UNBLOCK_REFUSALS, type SimBuild, type SimUser } from '../../src/sim/index.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

let sim: BuildkiteSimulator;
let alice: SimUser;
let bob: SimUser;

beforeAll(async () => {
  sim = await BuildkiteSimulator.start({ organization: 'acme', apiToken: 'bkua_test_token' });
  alice = sim.createUser({ name: 'Alice Author', email: 'alice@example.com' });
  bob = sim.createUser({ name: 'Bob Approver', email: 'bob@example.com' });
});
afterAll(async () => {
  await sim.close();
});

type Answer = { status: number; body: Record<string, unknown>; headers: Headers };

async function api(method: string, path: string, body?: unknown, token: string | null = sim.apiToken): Promise<Answer> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (token !== null) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${sim.apiUrl}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown>, headers: res.headers };
}

function deployBuild(overrides: Partial<Parameters<BuildkiteSimulator['createBuild']>[0]> = {}): SimBuild {
  return sim.createBuild({
    pipelineSlug: 'web',
    branch: 'main',
    tag: 'v1.2.0',
    message: 'Release 1.2.0',
    creator: alice,
    author: { name: 'Alice Author', email: 'alice@example.com' },
    steps: [
      { type: 'command', key: 'build', label: ':package: Build', command: 'make' },
      { type: 'block', key: 'deploy-gate', label: 'Deploy to production', prompt: 'Ship it?', fields: [{ text: 'Release name', key: 'release-name' }] },
      { type: 'command', key: 'deploy', label: ':rocket: Deploy', command: 'make deploy' },
    ],
    ...overrides,
  });
}

const blockJob = (build: SimBuild) => build.jobs.find((j) => j.type === 'manual')!;
const buildPath = (build: SimBuild) => `/v2/organizations/acme/pipelines/${build.pipelineSlug}/builds/${build.number}`;

describe('authentication', () => {
  it('accepts only its API token as Bearer (401 otherwise, Basic included)', async () => {
    const build = deployBuild();
    expect((await api('GET', buildPath(build), undefined, null)).status).toBe(401);
    expect((await api('GET', buildPath(build), undefined, 'bkua_wrong')).status).toBe(401);
    const basic = await fetch(`${sim.apiUrl}${buildPath(build)}`, {
      headers: { authorization: `Basic ${Buffer.from(`${sim.apiToken}:`).toString('base64')}` },
    });
    expect(basic.status).toBe(401);
    const denied = await api('GET', buildPath(build), undefined, null);
    expect(denied.body).toHaveProperty('message');
    expect((await api('GET', buildPath(build))).status).toBe(200);
  });

  it('generates a bkua_ token when none is configured', async () => {
    const other = await BuildkiteSimulator.start({ organization: 'other' });
    try {
      expect(other.apiToken).toMatch(/^bkua_[0-9a-f]{40}$/);
    } finally {
      await other.close();
    }
  });

  it('answers 404 for another organization and for unknown paths', async () => {
    const build = deployBuild();
    expect((await api('GET', `/v2/organizations/evil/pipelines/web/builds/${build.number}`)).status).toBe(404);
    expect((await api('GET', '/v2/organizations/acme/nothing')).status).toBe(404);
  });
});

describe('GET build and jobs', () => {
  it('returns a build blocked at its block step, with jobs, creator, author and pipeline', async () => {
    const build = deployBuild();
    const { status, body } = await api('GET', buildPath(build));
    expect(status).toBe(200);
    expect(body).toMatchObject({
      id: build.id,
      number: build.number,
      state: 'passed',
      blocked: true,
      branch: 'main',
      tag: 'v1.2.0',
      commit: build.commit,
      message: 'Release 1.2.0',
      source: 'ui',
      creator: { id: alice.id, name: 'Alice Author', email: 'alice@example.com' },
      author: { name: 'Alice Author', email: 'alice@example.com' },
      pipeline: { slug: 'web' },
      meta_data: {},
    });
    expect(body.id).toMatch(UUID);
    expect(Buffer.from(String(body.graphql_id), 'base64').toString()).toBe(`Build---${build.id}`);
    const jobs = body.jobs as Record<string, unknown>[];
    expect(jobs.map((j) => [j.type, j.step_key, j.state])).toEqual([
      ['script', 'build', 'passed'],
      ['manual', 'deploy-gate', 'blocked'],
      ['script', 'deploy', 'waiting'],
    ]);
    expect(jobs[1]).toMatchObject({ label: 'Deploy to production', unblockable: true, unblocked_by: null, unblocked_at: null });
    expect(jobs[1]?.unblock_url).toContain(`#${blockJob(build).id}`);
  });

  it('honours exclude_jobs and exclude_pipeline', async () => {
    const build = deployBuild();
    const { body } = await api('GET', `${buildPath(build)}?exclude_jobs=true&exclude_pipeline=true`);
    expect(body).not.toHaveProperty('jobs');
    expect(body).not.toHaveProperty('pipeline');
  });

  it('answers 404 "No build found" for an unknown build number', async () => {
    const res = await api('GET', '/v2/organizations/acme/pipelines/web/builds/9999');
    expect(res).toMatchObject({ status: 404, body: { message: 'No build found' } });
  });

  it('lists a build’s jobs with cursor pagination and a state filter', async () => {
    const build = deployBuild();
    const first = await api('GET', `${buildPath(build)}/jobs?per_page=2`);
    expect((first.body.items as unknown[]).length).toBe(2);
    const next = (first.body.links as { next?: string }).next;
    expect(next).toBeDefined();
    const second = await api('GET', new URL(next!).pathname + new URL(next!).search);
    expect((second.body.items as { step_key: string }[]).map((j) => j.step_key)).toEqual(['deploy']);
    expect((second.body.links as { next?: string }).next).toBeUndefined();
    const blocked = await api('GET', `${buildPath(build)}/jobs?state[]=blocked`);
    expect((blocked.body.items as { id: string }[]).map((j) => j.id)).toEqual([blockJob(build).id]);
  });

  it('gets one job, organization-scoped and build-scoped', async () => {
    const build = deployBuild();
    const job = blockJob(build);
    const org = await api('GET', `/v2/organizations/acme/jobs/${job.id}`);
    expect(org.body).toMatchObject({ id: job.id, type: 'manual', state: 'blocked', step_key: 'deploy-gate' });
    const scoped = await api('GET', `${buildPath(build)}/jobs/${job.id}`);
    expect(scoped.body).toEqual(org.body);
    expect(await api('GET', '/v2/organizations/acme/jobs/00000000-0000-4000-8000-000000000000')).toMatchObject({ status: 404, body: { message: 'No job found' } });
  });
});

describe('PUT unblock', () => {
  it('unblocks as the named user, records the call and changes the state', async () => {
    const build = deployBuild();
    const job = blockJob(build);
    const before = sim.unblockCalls.length;
    const res = await api('PUT', `/v2/organizations/acme/jobs/${job.id}/unblock`, { fields: { 'release-name': 'v1.2.0' }, unblocker: bob.id });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      id: job.id,
      type: 'manual',
      state: 'unblocked',
      unblockable: false,
      unblocked_by: { id: bob.id, name: 'Bob Approver', email: 'bob@example.com' },
    });
    expect(Date.parse(String(res.body.unblocked_at))).not.toBeNaN();

    const calls = sim.unblockCalls.slice(before);
    expect(calls).toHaveLength(1);
    expect(calls[0]).toMatchObject({
      jobId: job.id,
      build: { id: build.id, pipelineSlug: 'web', number: build.number },
      unblocker: bob.id,
      fields: { 'release-name': 'v1.2.0' },
      status: 200,
      message: null,
      unblockedBy: bob,
    });
    expect(calls[0]?.at).toBeInstanceOf(Date);

    // The build moved on: no longer blocked, field values in meta-data (block step docs), the next job runs.
    const after = await api('GET', buildPath(build));
    expect(after.body).toMatchObject({ blocked: false, state: 'running', meta_data: { 'release-name': 'v1.2.0' } });
    expect((after.body.jobs as { step_key: string; state: string }[]).map((j) => j.state)).toEqual(['passed', 'unblocked', 'running']);
    expect(job.state).toBe('unblocked');
    expect(job.unblockedBy).toBe(bob);
  });

  it('credits the API token’s owner when no unblocker is named (build-scoped route)', async () => {
    const build = deployBuild();
    const job = blockJob(build);
    const res = await api('PUT', `${buildPath(build)}/jobs/${job.id}/unblock`, {});
    expect(res.status).toBe(200);
    expect((res.body.unblocked_by as { id: string }).id).toBe(sim.apiUser.id);
    expect(sim.unblockCalls.at(-1)).toMatchObject({ unblocker: null, fields: null, unblockedBy: sim.apiUser });
  });

  it('answers 400 "This job type cannot be unblocked" for a command job', async () => {
    const build = deployBuild();
    const script = build.jobs[0]!;
    const res = await api('PUT', `/v2/organizations/acme/jobs/${script.id}/unblock`, {});
    expect(res).toMatchObject({ status: 400, body: { message: 'This job type cannot be unblocked' } });
    expect(sim.unblockCalls.at(-1)).toMatchObject({ jobId: script.id, status: 400, message: UNBLOCK_REFUSALS.wrongType });
  });

  it('answers 422 for an unblocker that is not a user of the organization, and stays blocked', async () => {
    const build = deployBuild();
    const job = blockJob(build);
    const res = await api('PUT', `/v2/organizations/acme/jobs/${job.id}/unblock`, { unblocker: '00000000-0000-4000-8000-000000000000' });
    expect(res).toMatchObject({ status: 422, body: { message: 'Unblocker is not a valid user id for this organization' } });
    expect(sim.unblockCalls.at(-1)).toMatchObject({ status: 422, unblocker: '00000000-0000-4000-8000-000000000000', unblockedBy: null });
    expect(job.state).toBe('blocked');
    expect(build.blocked).toBe(true);
  });

  it('answers 422 for a job of a canceled build', async () => {
    const build = deployBuild();
    sim.cancelBuild(build);
    const res = await api('PUT', `/v2/organizations/acme/jobs/${blockJob(build).id}/unblock`, { unblocker: bob.id });
    expect(res).toMatchObject({ status: 422, body: { message: 'Jobs from canceled builds cannot be unblocked' } });
  });

  it('refuses a second unblock of the same job with 422', async () => {
    const build = deployBuild();
    const job = blockJob(build);
    expect((await api('PUT', `/v2/organizations/acme/jobs/${job.id}/unblock`, { unblocker: bob.id })).status).toBe(200);
    const again = await api('PUT', `/v2/organizations/acme/jobs/${job.id}/unblock`, { unblocker: alice.id });
    expect(again.status).toBe(422);
    expect(job.unblockedBy).toBe(bob);
  });

  it('answers 404 for an unknown job and 400 for a body that is not a JSON object', async () => {
    expect((await api('PUT', '/v2/organizations/acme/jobs/00000000-0000-4000-8000-000000000000/unblock', {})).status).toBe(404);
    const job = blockJob(deployBuild());
    expect((await api('PUT', `/v2/organizations/acme/jobs/${job.id}/unblock`, ['x'])).status).toBe(400);
    expect((await api('PUT', `/v2/organizations/acme/jobs/${job.id}/unblock`, { fields: { n: 1 } })).status).toBe(422);
  });
});

describe('agents, members and the token user', () => {
  it('describes the agent a job runs on', async () => {
    const job = sim.createJob({ pipelineSlug: 'web', agentTags: { queue: 'deploy', os: 'linux' } });
    const res = await api('GET', `/v2/organizations/acme/agents/${job.agentId}`);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: job.agentId, connection_state: 'connected', meta_data: ['queue=deploy', 'os=linux'], job: { id: job.jobId, type: 'script', state: 'running' } });
    expect((await api('GET', '/v2/organizations/acme/agents/00000000-0000-4000-8000-000000000000')).status).toBe(404);
  });

  it('describes created agents', async () => {
    const agent = sim.createAgent({ name: 'builder-1', hostname: 'ci-1', tags: { queue: 'default' } });
    const res = await api('GET', `/v2/organizations/acme/agents/${agent.id}`);
    expect(res.body).toMatchObject({ id: agent.id, name: 'builder-1', hostname: 'ci-1', job: null, user_agent: 'buildkite-agent/3.80.0 (linux; amd64)' });
  });

  it('lists members with Link pagination and gets one', async () => {
    const first = await fetch(`${sim.apiUrl}/v2/organizations/acme/members?per_page=1`, { headers: { authorization: `Bearer ${sim.apiToken}` } });
    expect(first.headers.get('link')).toMatch(/<[^>]*page=2[^>]*>; rel="next"/);
    const one = await api('GET', `/v2/organizations/acme/members/${bob.id}`);
    expect(one.body).toMatchObject({ id: bob.id, name: 'Bob Approver', email: 'bob@example.com', role: 'member' });
    const me = await api('GET', '/v2/user');
    expect(me.body).toMatchObject({ id: sim.apiUser.id, email: sim.apiUser.email });
  });
});

describe('rate limits and failure knobs', () => {
  it('sends RateLimit-* headers that count down', async () => {
    const a = await api('GET', '/v2/user');
    const b = await api('GET', '/v2/user');
    expect(a.headers.get('ratelimit-limit')).toBe('200');
    expect(a.headers.get('ratelimit-scope')).toBe('rest');
    expect(Number(b.headers.get('ratelimit-remaining'))).toBe(Number(a.headers.get('ratelimit-remaining')) - 1);
    expect(Number(a.headers.get('ratelimit-reset'))).toBeGreaterThanOrEqual(0);
  });

  it('fails the next N calls with 500, then recovers', async () => {
    sim.failApiRequests(2);
    expect((await api('GET', '/v2/user')).status).toBe(500);
    expect((await api('GET', '/v2/user')).status).toBe(500);
    expect((await api('GET', '/v2/user')).status).toBe(200);
  });

  it('fails with 429 and exhausted RateLimit headers, body as rate_limits.md shows', async () => {
    sim.failApiRequests(1, 429, { resetSeconds: 7 });
    const res = await api('GET', '/v2/user');
    expect(res.status).toBe(429);
    expect(res.headers.get('ratelimit-remaining')).toBe('0');
    expect(res.headers.get('ratelimit-reset')).toBe('7');
    expect(res.body).toMatchObject({ scope: 'rest', reset: 7 });
    expect(String(res.body.message)).toContain('exceeded your API rate limit');
    expect((await api('GET', '/v2/user')).status).toBe(200);
  });

  it('enforces the window when asked', async () => {
    const strict = await BuildkiteSimulator.start({ organization: 'acme', rateLimit: { limit: 2, enforce: true } });
    try {
      const call = () => fetch(`${strict.apiUrl}/v2/user`, { headers: { authorization: `Bearer ${strict.apiToken}` } });
      expect((await call()).status).toBe(200);
      expect((await call()).status).toBe(200);
      const third = await call();
      expect(third.status).toBe(429);
      expect(third.headers.get('ratelimit-remaining')).toBe('0');
    } finally {
      await strict.close();
    }
  });

  it('records every request', async () => {
    const before = sim.apiRequests.length;
    await api('GET', '/v2/user', undefined, 'bad');
    expect(sim.apiRequests.slice(before)).toEqual([expect.objectContaining({ method: 'GET', path: '/v2/user', status: 401 })]);
  });
});
