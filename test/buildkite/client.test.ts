import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { BuildkiteApi, BuildkiteApiError, blockedManualJobs, isUnblockable, type BuildkiteApiOptions, type RetryInfo } from '../../src/buildkite/index.js';
import { FakeBuildkite, drop, hang, reply } from './fake-buildkite.js';
import { ORG, TOKEN, agent, build, manualJob, scriptJob } from './fixtures.js';

let fake: FakeBuildkite;
let sleeps: number[];
let retries: RetryInfo[];

beforeAll(async () => {
  fake = await FakeBuildkite.start();
});
afterAll(async () => {
  await fake.close();
});
beforeEach(() => {
  fake.reset();
  sleeps = [];
  retries = [];
});

function api(overrides: Partial<BuildkiteApiOptions> = {}): BuildkiteApi {
  return new BuildkiteApi({
    baseUrl: fake.url,
    token: () => TOKEN,
    organization: ORG,
    timeoutMs: 2_000,
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    random: () => 0.5,
    onRetry: (info) => retries.push(info),
    ...overrides,
  });
}

async function failure(p: Promise<unknown>): Promise<BuildkiteApiError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(BuildkiteApiError);
  return err as BuildkiteApiError;
}

function expectNoToken(err: BuildkiteApiError): void {
  expect(err.message).not.toContain(TOKEN);
  expect(JSON.stringify(err)).not.toContain(TOKEN);
  expect(String(err.stack)).not.toContain(TOKEN);
}

describe('requests', () => {
  it('sends Bearer auth, Accept JSON and the documented path; parses the build with its jobs', async () => {
    fake.queue(reply(200, build));
    const got = await api().getBuild('web', 7);
    const [req] = fake.requests;
    expect(req?.method).toBe('GET');
    expect(req?.url).toBe('/v2/organizations/acme/pipelines/web/builds/7');
    expect(req?.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(req?.headers.accept).toBe('application/json');
    expect(got).toMatchObject({ id: build.id, number: 7, state: 'passed', blocked: true, branch: 'main', tag: 'v1.2.0', source: 'ui' });
    expect(got.creator).toMatchObject({ id: build.creator.id, name: 'Keith Pitt', email: 'keith@example.com' });
    expect(got.author).toMatchObject({ name: 'Keith Pitt', email: 'keith@example.com' });
    expect(got.pipeline?.slug).toBe('web');
    expect(got.jobs?.map((j) => j.type)).toEqual(['script', 'waiter', 'manual']);
    // A waiter has no state in the payload: parsed as null, not a failure.
    expect(got.jobs?.[1]?.state).toBeNull();
    // Untyped fields Buildkite sends are kept.
    expect(got.cancel_reason).toBeNull();
    const blocked = blockedManualJobs(got.jobs ?? []);
    expect(blocked.map((j) => j.id)).toEqual([manualJob.id]);
    expect(isUnblockable(blocked[0]!)).toBe(true);
  });

  it('reads the token at every request (a rotated secret applies at once)', async () => {
    let token = 'first';
    const client = api({ token: () => token });
    fake.queue(reply(200, scriptJob), reply(200, scriptJob));
    await client.getJob(scriptJob.id);
    token = 'second';
    await client.getJob(scriptJob.id);
    expect(fake.requests.map((r) => r.headers.authorization)).toEqual(['Bearer first', 'Bearer second']);
  });

  it('accepts an api_url written with /v2 and encodes path segments', async () => {
    fake.queue(reply(200, scriptJob));
    await api({ baseUrl: `${fake.url}/v2/`, organization: 'a/b' }).getJob('x y');
    expect(fake.requests[0]?.url).toBe('/v2/organizations/a%2Fb/jobs/x%20y');
  });

  it('passes exclude_jobs and reads a build without jobs', async () => {
    const { jobs: _jobs, ...withoutJobs } = build;
    fake.queue(reply(200, withoutJobs));
    const got = await api().getBuild('web', 7, { excludeJobs: true });
    expect(fake.requests[0]?.url).toBe('/v2/organizations/acme/pipelines/web/builds/7?exclude_jobs=true');
    expect(got.jobs).toBeUndefined();
  });

  it('accepts a build whose creator is null', async () => {
    fake.queue(reply(200, { ...build, creator: null, author: null }));
    const got = await api().getBuild('web', 7);
    expect(got.creator).toBeNull();
  });

  it('unblocks with PUT {fields, unblocker} and returns the job', async () => {
    const unblocked = { ...manualJob, state: 'unblocked', unblockable: false, unblocked_at: '2024-01-01T00:00:00.000Z', unblocked_by: build.creator };
    fake.queue(reply(200, unblocked));
    const job = await api().unblockJob(manualJob.id, { fields: { 'release-name': 'v1.2.0' }, unblocker: build.creator.id });
    const [req] = fake.requests;
    expect(req?.method).toBe('PUT');
    expect(req?.url).toBe(`/v2/organizations/acme/jobs/${manualJob.id}/unblock`);
    expect(req?.headers['content-type']).toBe('application/json');
    expect(JSON.parse(req?.body ?? '')).toEqual({ fields: { 'release-name': 'v1.2.0' }, unblocker: build.creator.id });
    expect(job).toMatchObject({ type: 'manual', state: 'unblocked', unblockable: false });
    expect(job.unblocked_by?.id).toBe(build.creator.id);
  });

  it('sends an empty JSON object when unblocking without fields or unblocker', async () => {
    fake.queue(reply(200, { ...manualJob, state: 'unblocked' }));
    await api().unblockJob(manualJob.id);
    expect(fake.requests[0]?.body).toBe('{}');
  });

  it('gets an agent with its meta-data and current job', async () => {
    fake.queue(reply(200, agent));
    const got = await api().getAgent(agent.id);
    expect(fake.requests[0]?.url).toBe(`/v2/organizations/acme/agents/${agent.id}`);
    expect(got).toMatchObject({ id: agent.id, name: 'my-agent', connection_state: 'connected', hostname: 'some.server', meta_data: ['queue=deploy', 'os=linux'] });
    expect(got.job?.id).toBe(scriptJob.id);
  });

  it('records the RateLimit headers of the last response', async () => {
    fake.queue(reply(200, scriptJob, { 'RateLimit-Limit': '200', 'RateLimit-Remaining': '150', 'RateLimit-Reset': '42', 'RateLimit-User-Remaining': '35' }));
    const client = api();
    expect(client.rateLimit).toBeNull();
    await client.getJob(scriptJob.id);
    expect(client.rateLimit).toEqual({ limit: 200, remaining: 150, resetSeconds: 42, userLimit: null, userRemaining: 35, userResetSeconds: null });
  });
});

describe('pagination', () => {
  it('follows links.next cursors but builds the URL itself (same origin, same token)', async () => {
    const page1 = { items: [scriptJob], links: { self: 'x', next: `https://evil.example/v2/organizations/acme/pipelines/web/builds/7/jobs?after=CUR2&per_page=100` } };
    const page2 = { items: [manualJob], links: { self: 'y' } };
    fake.queue(reply(200, page1), reply(200, page2));
    const jobs = await api().listAllBuildJobs('web', 7, { states: ['blocked'] });
    expect(jobs.map((j) => j.id)).toEqual([scriptJob.id, manualJob.id]);
    expect(fake.requests.map((r) => r.url)).toEqual([
      '/v2/organizations/acme/pipelines/web/builds/7/jobs?state%5B%5D=blocked&per_page=100',
      '/v2/organizations/acme/pipelines/web/builds/7/jobs?state%5B%5D=blocked&per_page=100&after=CUR2',
    ]);
  });

  it('finds a member by e-mail across Link-paginated pages', async () => {
    const p1 = [{ id: 'u1', name: 'A', email: 'a@example.com', role: 'member' }];
    const p2 = [{ id: 'u2', name: 'B', email: 'Bea@Example.com', role: 'member' }];
    fake.queue(
      reply(200, p1, { Link: `<${fake.url}/v2/organizations/acme/members?page=2&per_page=100>; rel="next", <${fake.url}/v2/organizations/acme/members?page=2&per_page=100>; rel="last"` }),
      reply(200, p2),
    );
    const member = await api().findOrganizationMemberByEmail('bea@example.com');
    expect(member).toMatchObject({ id: 'u2', email: 'Bea@Example.com' });
    expect(fake.requests.map((r) => r.url)).toEqual([
      '/v2/organizations/acme/members?page=1&per_page=100',
      '/v2/organizations/acme/members?page=2&per_page=100',
    ]);
  });

  it('returns undefined when no member has the e-mail', async () => {
    fake.queue(reply(200, [{ id: 'u1', name: 'A', email: 'a@example.com' }]));
    expect(await api().findOrganizationMemberByEmail('nobody@example.com')).toBeUndefined();
  });
});

describe('retries', () => {
  it('retries 5xx with exponential backoff and jitter, then succeeds', async () => {
    fake.queue(reply(502, { message: 'Bad Gateway' }), reply(503, { message: 'Unavailable' }), reply(200, scriptJob));
    const job = await api({ baseDelayMs: 100, maxDelayMs: 10_000 }).getJob(scriptJob.id);
    expect(job.id).toBe(scriptJob.id);
    expect(fake.requests).toHaveLength(3);
    // equal jitter with random()=0.5: ceiling·(0.5 + 0.25)
    expect(sleeps).toEqual([75, 150]);
    expect(retries.map((r) => [r.retry, r.reason, r.httpStatus])).toEqual([
      [1, 'server_error', 502],
      [2, 'server_error', 503],
    ]);
  });

  it('caps the backoff at maxDelayMs', async () => {
    fake.always(reply(500, { message: 'boom' }));
    await failure(api({ baseDelayMs: 1_000, maxDelayMs: 1_500, maxRetries: 3, random: () => 1 }).getJob('j'));
    expect(sleeps).toEqual([1_000, 1_500, 1_500]);
  });

  it('gives up after maxRetries with a typed server_error naming status, message and attempts', async () => {
    fake.always(reply(500, { message: 'Internal Server Error' }));
    const err = await failure(api({ maxRetries: 2 }).getJob('j1'));
    expect(fake.requests).toHaveLength(3);
    expect(err).toMatchObject({
      code: 'buildkite_server_error',
      httpStatus: 500,
      buildkiteMessage: 'Internal Server Error',
      method: 'GET',
      path: '/v2/organizations/acme/jobs/j1',
      attempts: 3,
      status: 502,
    });
    expect(err.message).toBe('Buildkite API GET /v2/organizations/acme/jobs/j1 answered 500: Internal Server Error (after 3 attempts)');
    expectNoToken(err);
  });

  it('on 429 waits RateLimit-Reset seconds of the exhausted scope, then retries', async () => {
    fake.queue(
      reply(429, { message: 'You have exceeded your API rate limit. Please wait 2 seconds before making more requests.', scope: 'rest', limit: 200, current: 201, reset: 2 }, {
        'RateLimit-Scope': 'rest',
        'RateLimit-Limit': '200',
        'RateLimit-Remaining': '0',
        'RateLimit-Reset': '2',
        'RateLimit-User-Remaining': '20',
        'RateLimit-User-Reset': '50',
      }),
      reply(200, scriptJob),
    );
    await api({ baseDelayMs: 200 }).getJob(scriptJob.id);
    // 2 s from the exhausted org window (not the user window's 50 s) plus ≤ base jitter.
    expect(sleeps).toEqual([2_000 + 100]);
    expect(retries[0]?.reason).toBe('rate_limited');
  });

  it('on 429 honours the per-user window when that is the exhausted one', async () => {
    fake.queue(
      reply(429, { message: 'rate limited', scope: 'rest_user' }, { 'RateLimit-Remaining': '80', 'RateLimit-Reset': '10', 'RateLimit-User-Remaining': '0', 'RateLimit-User-Reset': '3' }),
      reply(200, scriptJob),
    );
    await api({ baseDelayMs: 0 }).getJob(scriptJob.id);
    expect(sleeps).toEqual([3_000]);
  });

  it('on 429 prefers Retry-After', async () => {
    fake.queue(reply(429, { message: 'slow down' }, { 'Retry-After': '1', 'RateLimit-Remaining': '0', 'RateLimit-Reset': '9' }), reply(200, scriptJob));
    await api({ baseDelayMs: 0 }).getJob(scriptJob.id);
    expect(sleeps).toEqual([1_000]);
  });

  it('on 429 without any hint falls back to backoff', async () => {
    fake.queue(reply(429, { message: 'slow down' }), reply(200, scriptJob));
    await api({ baseDelayMs: 100 }).getJob(scriptJob.id);
    expect(sleeps).toEqual([75]);
  });

  it('fails at once when the rate-limit reset is further away than maxRateLimitWaitMs', async () => {
    fake.always(reply(429, { message: 'You have exceeded your API rate limit.' }, { 'RateLimit-Remaining': '0', 'RateLimit-Reset': '55' }));
    const err = await failure(api({ maxRateLimitWaitMs: 10_000 }).getJob('j'));
    expect(fake.requests).toHaveLength(1);
    expect(sleeps).toEqual([]);
    expect(err).toMatchObject({ code: 'buildkite_rate_limited', httpStatus: 429, retryAfterMs: 55_000, attempts: 1, status: 503 });
  });

  it('really waits (no sleep seam) and succeeds after a short RateLimit-Reset', async () => {
    fake.queue(reply(429, { message: 'limited' }, { 'RateLimit-Remaining': '0', 'RateLimit-Reset': '1' }), reply(200, scriptJob));
    const started = Date.now();
    await api({ sleep: undefined, baseDelayMs: 0 }).getJob(scriptJob.id);
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
  });

  it('does not retry other 4xx and surfaces Buildkite’s message', async () => {
    fake.always(reply(422, { message: 'Unblocker is not a valid user id for this organization' }));
    const err = await failure(api().unblockJob(manualJob.id, { unblocker: 'nope' }));
    expect(fake.requests).toHaveLength(1);
    expect(err).toMatchObject({ code: 'buildkite_unprocessable', httpStatus: 422, buildkiteMessage: 'Unblocker is not a valid user id for this organization', method: 'PUT', attempts: 1 });
    expectNoToken(err);
  });

  it.each([
    [400, 'buildkite_bad_request', 'This job type cannot be unblocked'],
    [401, 'buildkite_unauthorized', 'Authentication required'],
    [403, 'buildkite_forbidden', 'Forbidden'],
    [404, 'buildkite_not_found', 'No job found'],
  ] as const)('maps %i to %s without retrying', async (status, code, message) => {
    fake.always(reply(status, { message }));
    const err = await failure(api().getJob('j'));
    expect(fake.requests).toHaveLength(1);
    expect(err).toMatchObject({ code, httpStatus: status, buildkiteMessage: message });
  });

  it('surfaces a 4xx without a JSON body with a null message', async () => {
    fake.always((_req, res) => {
      res.writeHead(404, { 'content-type': 'text/html' });
      res.end('<h1>nope</h1>');
    });
    const err = await failure(api().getJob('j'));
    expect(err).toMatchObject({ code: 'buildkite_not_found', buildkiteMessage: null });
  });

  it('times out a hanging request, retries, and reports a timeout', async () => {
    fake.always(hang);
    const started = Date.now();
    const err = await failure(api({ timeoutMs: 150, maxRetries: 1 }).getJob('j'));
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(fake.requests).toHaveLength(2);
    expect(err).toMatchObject({ code: 'buildkite_timeout', httpStatus: null, attempts: 2, status: 504 });
    expect(retries.map((r) => r.reason)).toEqual(['timeout']);
  });

  it('retries a dropped connection and then succeeds', async () => {
    fake.queue(drop, reply(200, scriptJob));
    const job = await api().getJob(scriptJob.id);
    expect(job.id).toBe(scriptJob.id);
    expect(retries.map((r) => r.reason)).toEqual(['network']);
  });

  it('reports a network failure (connection refused) after the retries', async () => {
    const closed = await FakeBuildkite.start();
    const url = closed.url;
    await closed.close();
    const err = await failure(api({ baseUrl: url, maxRetries: 2 }).getJob('j'));
    expect(err).toMatchObject({ code: 'buildkite_network', httpStatus: null, attempts: 3 });
    expect(err.message).toContain('ECONNREFUSED');
    expectNoToken(err);
  });

  it('treats a retried unblock refused as 422 as done when the job reads back unblocked', async () => {
    const unblocked = { ...manualJob, state: 'unblocked', unblockable: false, unblocked_by: build.creator };
    fake.queue(
      reply(502, { message: 'Bad Gateway' }),
      reply(422, { message: 'This job has already been unblocked' }),
      reply(200, unblocked),
    );
    const job = await api().unblockJob(manualJob.id, { unblocker: build.creator.id });
    expect(job.state).toBe('unblocked');
    expect(fake.requests.map((r) => `${r.method} ${r.url}`)).toEqual([
      `PUT /v2/organizations/acme/jobs/${manualJob.id}/unblock`,
      `PUT /v2/organizations/acme/jobs/${manualJob.id}/unblock`,
      `GET /v2/organizations/acme/jobs/${manualJob.id}`,
    ]);
  });

  it('still fails a retried unblock refused as 422 when the job is not unblocked', async () => {
    fake.queue(reply(502, {}), reply(422, { message: 'Jobs from canceled builds cannot be unblocked' }), reply(200, manualJob));
    const err = await failure(api().unblockJob(manualJob.id));
    expect(err).toMatchObject({ code: 'buildkite_unprocessable', buildkiteMessage: 'Jobs from canceled builds cannot be unblocked', attempts: 2 });
  });
});

describe('bad answers', () => {
  it('rejects a 2xx that is not JSON, without retrying', async () => {
    fake.always((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<html>login</html>');
    });
    const err = await failure(api().getJob('j'));
    expect(fake.requests).toHaveLength(1);
    expect(err.code).toBe('buildkite_invalid_response');
  });

  it('rejects a 2xx of the wrong shape and names where', async () => {
    fake.always(reply(200, { ...build, blocked: 'yes' }));
    const err = await failure(api().getBuild('web', 7));
    expect(err.code).toBe('buildkite_invalid_response');
    expect(err.message).toContain('blocked');
  });

  it('rejects an oversized body', async () => {
    fake.always(reply(200, { ...scriptJob, command: 'x'.repeat(5_000) }));
    const err = await failure(api({ maxResponseBytes: 1_000 }).getJob('j'));
    expect(err.code).toBe('buildkite_invalid_response');
  });

  it('does not follow redirects (the token stays on the configured origin)', async () => {
    fake.always((_req, res) => {
      res.writeHead(302, { location: 'https://evil.example/steal' });
      res.end();
    });
    const err = await failure(api().getJob('j'));
    expect(fake.requests).toHaveLength(1);
    expect(err).toMatchObject({ code: 'buildkite_http_error', httpStatus: 302 });
  });

  it('surfaces an unreadable token as token_unavailable, sending nothing', async () => {
    const err = await failure(
      api({
        token: () => {
          throw new Error('environment variable BK_TOKEN is not set');
        },
      }).getJob('j'),
    );
    expect(fake.requests).toHaveLength(0);
    expect(err.code).toBe('buildkite_token_unavailable');
    expect(err.cause).toBeInstanceOf(Error);
  });
});
