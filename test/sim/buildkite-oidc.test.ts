import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify, SignJWT, errors as joseErrors } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BuildkiteSimulator, SimApiError, type SimJob } from '../../src/sim/index.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

let sim: BuildkiteSimulator;

beforeAll(async () => {
  sim = await BuildkiteSimulator.start({ organization: 'acme' });
});
afterAll(async () => {
  await sim.close();
});

async function requestToken(job: SimJob, body: unknown, token = job.jobToken, jobId = job.jobId) {
  const res = await fetch(`${sim.agentEndpoint}/jobs/${jobId}/oidc/tokens`, {
    method: 'POST',
    headers: { authorization: `Token ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function verify(token: string, audience: string) {
  const jwks = createRemoteJWKSet(new URL(sim.jwksUrl));
  return jwtVerify(token, jwks, { issuer: sim.issuer, audience, algorithms: ['RS256'] });
}

describe('discovery and JWKS', () => {
  it('serves RSA-2048 RS256 signing keys with 64-hex kids', async () => {
    const res = await fetch(sim.jwksUrl);
    expect(res.status).toBe(200);
    const { keys } = (await res.json()) as { keys: Array<Record<string, string>> };
    expect(keys).toHaveLength(1);
    const [key] = keys;
    expect(key).toMatchObject({ kty: 'RSA', alg: 'RS256', use: 'sig', e: 'AQAB' });
    expect(key?.kid).toMatch(/^[0-9a-f]{64}$/);
    expect(Buffer.from(key?.n ?? '', 'base64url').length).toBe(256);
    expect(key).not.toHaveProperty('d');
  });

  it('serves an OpenID configuration that points at the JWKS', async () => {
    const res = await fetch(`${sim.url}/.well-known/openid-configuration`);
    const doc = (await res.json()) as Record<string, unknown>;
    expect(doc).toMatchObject({
      issuer: sim.issuer,
      jwks_uri: sim.jwksUrl,
      id_token_signing_alg_values_supported: ['RS256'],
    });
    expect(sim.jwksUrl).toBe(`${sim.url}/.well-known/jwks`);
    expect(sim.agentEndpoint).toBe(`${sim.url}/v3`);
    expect(sim.issuer).toBe(sim.url);
  });
});

describe('POST /v3/jobs/{id}/oidc/tokens', () => {
  it('returns a token in Buildkite format that verifies against the JWKS', async () => {
    const job = sim.createJob({ pipelineSlug: 'deploy', branch: 'main', stepKey: null });
    const before = Math.floor(Date.now() / 1000);
    const { status, body } = await requestToken(job, {});
    expect(status).toBe(201);
    expect(Object.keys(body)).toEqual(['token']);
    const token = String(body.token);

    const header = decodeProtectedHeader(token);
    expect(header).toEqual({ kid: sim.signingKey.kid, alg: 'RS256' });
    expect(Object.keys(header)).toEqual(['kid', 'alg']);
    expect(header).not.toHaveProperty('typ');

    const { payload } = await verify(token, 'https://buildkite.com/acme');
    expect(Object.keys(payload)).toEqual([
      'iss', 'sub', 'aud', 'iat', 'nbf', 'exp', 'jti',
      'organization_slug', 'pipeline_slug', 'build_number', 'build_branch', 'build_tag', 'build_commit',
      'step_key', 'job_id', 'agent_id', 'build_source', 'runner_environment',
    ]);
    expect(payload).toMatchObject({
      iss: sim.url,
      sub: `organization:acme:pipeline:deploy:ref:refs/heads/main:commit:${job.commit}:step:`,
      aud: 'https://buildkite.com/acme',
      organization_slug: 'acme',
      pipeline_slug: 'deploy',
      build_number: job.buildNumber,
      build_branch: 'main',
      build_tag: null,
      build_commit: job.commit,
      step_key: null,
      job_id: job.jobId,
      agent_id: job.agentId,
      build_source: 'ui',
      runner_environment: 'self-hosted',
    });
    expect(typeof payload.aud).toBe('string');
    expect(payload.iat).toBe(payload.nbf);
    expect(payload.iat).toBeGreaterThanOrEqual(before);
    expect(payload.exp).toBe((payload.iat ?? 0) + 300);
    expect(payload.jti).toMatch(UUID_V7);
    expect(job.jobId).toMatch(UUID);
    expect(job.agentId).toMatch(UUID);
    expect(job.commit).toMatch(/^[0-9a-f]{40}$/);
    expect(Number.isInteger(payload.build_number)).toBe(true);
  });

  it('honours audience, lifetime, optional claims, subject claim and AWS session tags', async () => {
    const job = sim.createJob({
      pipelineSlug: 'release',
      tag: 'v1.2.0',
      stepKey: 'publish',
      clusterName: 'prod',
      queueKey: 'deploy',
      agentTags: { queue: 'deploy', os: 'linux' },
      buildNumber: 42,
    });
    const { status, body } = await requestToken(job, {
      audience: 'https://port.example',
      lifetime: 600,
      claims: ['organization_id', 'pipeline_id', 'build_id', 'cluster_id', 'cluster_name', 'queue_id', 'queue_key', 'agent_tag:os'],
      aws_session_tags: ['build_number', 'step_key', 'organization_id', 'build_tag'],
      subject_claim: 'pipeline_id',
    });
    expect(status).toBe(201);
    const { payload } = await verify(String(body.token), 'https://port.example');
    expect(payload.exp).toBe((payload.iat ?? 0) + 600);
    expect(payload).toMatchObject({
      sub: job.pipelineId,
      build_tag: 'v1.2.0',
      step_key: 'publish',
      organization_id: sim.organizationId,
      pipeline_id: job.pipelineId,
      build_id: job.buildId,
      cluster_id: job.clusterId,
      cluster_name: 'prod',
      queue_id: job.queueId,
      queue_key: 'deploy',
      'agent_tag:os': 'linux',
      'https://aws.amazon.com/tags': {
        principal_tags: {
          build_number: ['42'],
          step_key: ['publish'],
          organization_id: [sim.organizationId],
          build_tag: ['v1.2.0'],
        },
      },
    });
    expect(payload).not.toHaveProperty('agent_tag:queue');
  });

  it('uses refs/tags in the compound subject for tagged builds and keeps the step key', async () => {
    const job = sim.createJob({ tag: 'v9', branch: 'main', stepKey: 'deploy' });
    const payload = decodeJwt(await sim.mintToken(job));
    expect(payload.sub).toBe(`organization:acme:pipeline:${job.pipelineSlug}:ref:refs/tags/v9:commit:${job.commit}:step:deploy`);
  });

  it('adds the subject claim automatically and optional claims only when requested', async () => {
    const job = sim.createJob();
    const payload = decodeJwt(await sim.mintToken(job, { subjectClaim: 'cluster_id' }));
    expect(payload.sub).toBe(job.clusterId);
    expect(payload.cluster_id).toBe(job.clusterId);
    for (const name of ['organization_id', 'pipeline_id', 'build_id', 'queue_id', 'cluster_name', 'queue_key']) {
      expect(payload).not.toHaveProperty(name);
    }
    const byJob = decodeJwt(await sim.mintToken(job, { subjectClaim: 'job_id' }));
    expect(byJob.sub).toBe(job.jobId);
  });

  it('turns numbers into strings and null into "" for AWS session tags', async () => {
    const job = sim.createJob({ stepKey: null, buildNumber: 7 });
    const payload = decodeJwt(await sim.mintToken(job, { awsSessionTags: ['build_number', 'step_key', 'build_tag'] }));
    expect(payload['https://aws.amazon.com/tags']).toEqual({
      principal_tags: { build_number: ['7'], step_key: [''], build_tag: [''] },
    });
    expect(payload).not.toHaveProperty('organization_id');
  });

  it('refuses a lifetime above 7200 s with 422 and Buildkite\'s message', async () => {
    const job = sim.createJob();
    const { status, body } = await requestToken(job, { lifetime: 14400 });
    expect(status).toBe(422);
    expect(body).toEqual({ message: 'Requested lifetime too high (requested: 14400 max: 7200)' });
    const ok = await requestToken(job, { lifetime: 7200 });
    expect(ok.status).toBe(201);
    await expect(sim.mintToken(job, { lifetime: 7201 })).rejects.toMatchObject({ status: 422 });
  });

  it('refuses unknown claims, unknown session tags and mutable subject claims with 422', async () => {
    const job = sim.createJob();
    expect((await requestToken(job, { claims: ['email'] })).status).toBe(422);
    expect((await requestToken(job, { aws_session_tags: ['nope'] })).status).toBe(422);
    expect((await requestToken(job, { subject_claim: 'pipeline_slug' })).status).toBe(422);
    expect((await requestToken(job, { lifetime: 'long' })).status).toBe(422);
    await expect(sim.mintToken(job, { claims: ['build_creator'] })).rejects.toBeInstanceOf(SimApiError);
  });

  it('accepts only the job token of that very job', async () => {
    const a = sim.createJob();
    const b = sim.createJob();
    expect((await requestToken(a, {}, b.jobToken)).status).toBe(403);
    expect((await requestToken(a, {}, 'not-a-token')).status).toBe(401);
    const missing = await fetch(`${sim.agentEndpoint}/jobs/${a.jobId}/oidc/tokens`, { method: 'POST', body: '{}' });
    expect(missing.status).toBe(401);
    const bearer = await fetch(`${sim.agentEndpoint}/jobs/${a.jobId}/oidc/tokens`, {
      method: 'POST',
      headers: { authorization: `Bearer ${a.jobToken}` },
      body: '{}',
    });
    expect(bearer.status).toBe(401);
    expect((await requestToken(a, {}, a.jobToken, b.jobId)).status).toBe(403);
  });

  it('rejects the token of a finished job', async () => {
    const job = sim.createJob();
    expect((await requestToken(job, {})).status).toBe(201);
    sim.finishJob(job);
    expect((await requestToken(job, {})).status).toBe(401);
  });

  it('answers injected failures first (for the agent\'s retries)', async () => {
    const job = sim.createJob();
    sim.failTokenRequests(1, 503);
    expect((await requestToken(job, {})).status).toBe(503);
    expect((await requestToken(job, {})).status).toBe(201);
  });
});

describe('mintToken', () => {
  it('can issue expired and not-yet-valid tokens', async () => {
    const job = sim.createJob();
    const now = Math.floor(Date.now() / 1000);
    const expired = await sim.mintToken(job, { now: now - 3600 });
    await expect(verify(expired, 'https://buildkite.com/acme')).rejects.toBeInstanceOf(joseErrors.JWTExpired);
    const future = await sim.mintToken(job, { now: now + 3600 });
    await expect(verify(future, 'https://buildkite.com/acme')).rejects.toBeInstanceOf(joseErrors.JWTClaimValidationFailed);
  });

  it('applies overrides after building (replace and delete)', async () => {
    const job = sim.createJob();
    const payload = decodeJwt(
      await sim.mintToken(job, { overrides: { organization_slug: 'evil', jti: undefined, aud: ['a', 'b'] } }),
    );
    expect(payload.organization_slug).toBe('evil');
    expect(payload).not.toHaveProperty('jti');
    expect(payload.aud).toEqual(['a', 'b']);
  });

  it('mints for jobs of other organizations under the same issuer', async () => {
    const job = sim.createJob({ organizationSlug: 'other-org' });
    const payload = decodeJwt(await sim.mintToken(job));
    expect(payload.organization_slug).toBe('other-org');
    expect(payload.aud).toBe('https://buildkite.com/other-org');
    expect(payload.iss).toBe(sim.issuer);
  });

  it('exposes the signing key for forged tokens', async () => {
    const forged = await new SignJWT({ sub: 'x', iss: sim.issuer, aud: 'a', exp: Math.floor(Date.now() / 1000) + 60 })
      .setProtectedHeader({ alg: 'RS256', kid: sim.signingKey.kid })
      .sign(sim.signingKey.privateKey);
    const { payload } = await verify(forged, 'a');
    expect(payload.sub).toBe('x');
  });
});

describe('job defaults', () => {
  it('keeps related ids consistent', () => {
    const a = sim.createJob({ pipelineSlug: 'p1', buildNumber: 3 });
    const b = sim.createJob({ pipelineSlug: 'p1', buildNumber: 3 });
    const c = sim.createJob({ pipelineSlug: 'p2' });
    expect(a.pipelineId).toBe(b.pipelineId);
    expect(a.buildId).toBe(b.buildId);
    expect(a.commit).toBe(b.commit);
    expect(a.jobId).not.toBe(b.jobId);
    expect(a.jobToken).not.toBe(b.jobToken);
    expect(c.pipelineId).not.toBe(a.pipelineId);
    expect(a.clusterId).toBe(c.clusterId);
    expect(a.queueId).toBe(c.queueId);
    expect(a.organizationId).toBe(sim.organizationId);
  });

  it('has no cluster or queue when told so; requested claims are then null', async () => {
    const job = sim.createJob({ clusterName: null });
    expect(job).toMatchObject({ clusterId: null, queueId: null, queueKey: null, agentTags: {} });
    const payload = decodeJwt(await sim.mintToken(job, { claims: ['cluster_id', 'queue_key'] }));
    expect(payload.cluster_id).toBeNull();
    expect(payload.queue_key).toBeNull();
    await expect(sim.mintToken(job, { subjectClaim: 'cluster_id' })).rejects.toMatchObject({ status: 422 });
  });
});

describe('key rotation and JWKS outages', () => {
  it('keeps the old kid published until retired', async () => {
    const local = await BuildkiteSimulator.start({ organization: 'acme', issuer: 'https://agent.buildkite.com' });
    try {
      const job = local.createJob();
      const oldKid = local.signingKey.kid;
      const oldToken = await local.mintToken(job);
      await local.rotateKey();
      const newKid = local.signingKey.kid;
      expect(newKid).not.toBe(oldKid);
      const newToken = await local.mintToken(job);
      expect(decodeProtectedHeader(newToken).kid).toBe(newKid);

      const kids = async () =>
        ((await (await fetch(local.jwksUrl)).json()) as { keys: Array<{ kid: string }> }).keys.map((k) => k.kid);
      expect(await kids()).toEqual([newKid, oldKid]);

      const opts = { issuer: 'https://agent.buildkite.com', audience: 'https://buildkite.com/acme' };
      await jwtVerify(oldToken, createRemoteJWKSet(new URL(local.jwksUrl)), opts);
      await jwtVerify(newToken, createRemoteJWKSet(new URL(local.jwksUrl)), opts);

      local.retireOldKeys();
      expect(await kids()).toEqual([newKid]);
      await expect(jwtVerify(oldToken, createRemoteJWKSet(new URL(local.jwksUrl)), opts)).rejects.toBeInstanceOf(
        joseErrors.JWKSNoMatchingKey,
      );
      expect(decodeJwt(newToken).iss).toBe('https://agent.buildkite.com');
    } finally {
      await local.close();
    }
  });

  it('answers 503 while the JWKS is unavailable and counts requests', async () => {
    const start = sim.jwksRequestCount;
    sim.setJwksAvailable(false);
    try {
      expect((await fetch(sim.jwksUrl)).status).toBe(503);
      const token = await sim.mintToken(sim.createJob());
      await expect(verify(token, 'https://buildkite.com/acme')).rejects.toThrow();
    } finally {
      sim.setJwksAvailable(true);
    }
    expect((await fetch(sim.jwksUrl)).status).toBe(200);
    expect(sim.jwksRequestCount).toBe(start + 3);
  });
});

describe('jobEnv', () => {
  it('gives a job process what the agent would', () => {
    const job = sim.createJob({ stepKey: 'build' });
    const env = sim.jobEnv(job);
    expect(env).toMatchObject({
      BUILDKITE_JOB_ID: job.jobId,
      BUILDKITE_AGENT_ACCESS_TOKEN: job.jobToken,
      BUILDKITE_AGENT_ENDPOINT: sim.agentEndpoint,
      BUILDKITE_AGENT_JOB_API_TOKEN: job.jobApiToken,
      BUILDKITE_ORGANIZATION_SLUG: 'acme',
      BUILDKITE_STEP_KEY: 'build',
      BUILDKITE_AGENT_META_DATA_QUEUE: 'default',
    });
    expect(env.BUILDKITE_AGENT_JOB_API_SOCKET).toMatch(/job-api\.sock$/);
  });
});
