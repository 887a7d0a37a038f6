import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AwsSessionCache } from '../../src/broker/credentials/aws-session-cache.js';
import type { AwsSession } from '../../src/broker/credentials/aws-role-provider.js';
import { startAwsHarness, type AwsHarness } from './aws-harness.js';

/** Issues a Port token for a job that already exists (a job re-exchanging, e.g. the plugin renewing). */
async function portTokenFor(h: AwsHarness, job: ReturnType<AwsHarness['sim']['createJob']>, scope: string): Promise<string> {
  const res = await h.exchange(await h.sim.mintToken(job, { audience: h.audience }), { scope });
  expect(res.status).toBe(200);
  return res.body.access_token as string;
}

describe('a session lasts no longer than the bearer\'s token (at least AWS\'s 900 s)', () => {
  let h: AwsHarness;
  beforeAll(async () => {
    h = await startAwsHarness({ config: { issuer: { token_ttl: '20m' } } });
  });
  afterAll(() => h.close());

  it('a 20-minute Port token gets a 20-minute session of a 30-minute (and of a 2-hour) credential', async () => {
    for (const [credential, action] of [
      ['aws-web', 'AssumeRoleWithWebIdentity'],
      ['aws-keys', 'AssumeRole'],
    ] as const) {
      const token = await h.portToken(credential);
      const exp = decodeJwt(token).exp!;
      const res = await h.credential(credential, token);
      expect(res.status).toBe(200);
      const asked = h.sts.succeeded(action).at(-1)!.duration!;
      expect(asked).toBeGreaterThan(1100);
      expect(asked).toBeLessThanOrEqual(1200);
      expect(Date.parse(res.body.Expiration) / 1000).toBeLessThanOrEqual(exp + 1);
    }
  });

  it('a Buildkite token with 5 minutes left as the bearer gets AWS\'s minimum, 900 s', async () => {
    const job = h.sim.createJob({ pipelineSlug: 'deploy', branch: 'main' });
    const res = await h.credential('aws-web', await h.sim.mintToken(job, { audience: h.audience, lifetime: 300 }));
    expect(res.status).toBe(200);
    expect(h.sts.succeeded('AssumeRoleWithWebIdentity').at(-1)!.duration).toBe(900);
    const left = Date.parse(res.body.Expiration) - Date.now();
    expect(left).toBeLessThanOrEqual(900_000);
    expect(left).toBeGreaterThan(800_000);
  });
});

describe('one STS session per (job, credential, parameters), reused across releases', () => {
  let h: AwsHarness;
  beforeAll(async () => {
    h = await startAwsHarness();
  });
  afterAll(() => h.close());

  it('a second release within the session\'s life does not call STS; another token of the same job gets the same session', async () => {
    const job = h.sim.createJob({ pipelineSlug: 'deploy', branch: 'main' });
    const token = await portTokenFor(h, job, 'aws-web');
    const before = h.sts.calls.length;
    const first = await h.credential('aws-web', token);
    const second = await h.credential('aws-web', token);
    const renewed = await h.credential('aws-web', await portTokenFor(h, job, 'aws-web'));
    for (const r of [first, second, renewed]) expect(r.status).toBe(200);
    expect(h.sts.calls.length - before).toBe(1);
    expect(second.body).toEqual(first.body);
    expect(renewed.body.AccessKeyId).toBe(first.body.AccessKeyId);
    // Each release is still decided and logged; the reused ones say so.
    const released = (await h.port.store.decisions.read(0, 100_000))
      .map((e) => e.record)
      .filter((r) => r.action === 'assume' && r.decision === 'allow' && r.principal === `Port::Job::"${job.jobId}"`)
      .map((r) => (r.context as { credential?: Record<string, unknown> }).credential)
      // Releases only (the exchanges decided `assume` too, with no credential issued).
      .filter((c): c is Record<string, unknown> => c !== undefined);
    expect(released).toHaveLength(3);
    expect(released.map((c) => c.session_reused)).toEqual([undefined, true, true]);
    expect(new Set(released.map((c) => c.sts_request_id)).size).toBe(1);
  });

  it('another job gets its own session (and its own STS call)', async () => {
    const a = await h.credential('aws-web', await h.portToken('aws-web'));
    const before = h.sts.calls.length;
    const b = await h.credential('aws-web', await h.portToken('aws-web'));
    expect(h.sts.calls.length - before).toBe(1);
    expect(b.body.AccessKeyId).not.toBe(a.body.AccessKeyId);
    expect(h.sts.sessions.get(b.body.AccessKeyId)!.sessionName).not.toBe(h.sts.sessions.get(a.body.AccessKeyId)!.sessionName);
  });

  it('concurrent releases for one job share one STS call', async () => {
    const token = await h.portToken('aws-keys');
    const before = h.sts.calls.length;
    h.sts.delayMs = 200;
    try {
      const all = await Promise.all(Array.from({ length: 6 }, () => h.credential('aws-keys', token)));
      for (const r of all) expect(r.status).toBe(200);
      expect(new Set(all.map((r) => r.body.AccessKeyId)).size).toBe(1);
    } finally {
      h.sts.delayMs = undefined;
    }
    expect(h.sts.calls.length - before).toBe(1);
  });

  it('a bearer whose token ends before the cached session gets a new, shorter session; the longer-lived token then reuses it', async () => {
    const job = h.sim.createJob({ pipelineSlug: 'deploy', branch: 'main' });
    const long = await portTokenFor(h, job, 'aws-web');
    const first = await h.credential('aws-web', long);
    expect(h.sts.succeeded('AssumeRoleWithWebIdentity').at(-1)!.duration).toBe(1800);
    const short = await h.credential('aws-web', await h.sim.mintToken(job, { audience: h.audience, lifetime: 300 }));
    expect(short.status).toBe(200);
    expect(short.body.AccessKeyId).not.toBe(first.body.AccessKeyId);
    expect(h.sts.succeeded('AssumeRoleWithWebIdentity').at(-1)!.duration).toBe(900);
    const before = h.sts.calls.length;
    const again = await h.credential('aws-web', long);
    expect(again.body.AccessKeyId).toBe(short.body.AccessKeyId);
    expect(h.sts.calls.length).toBe(before);
  });

  it('a failed STS call is not kept: the next release calls STS again', async () => {
    const token = await h.portToken('aws-web');
    const { AwsSimError } = await import('../../src/sim/aws-sts/index.js');
    h.sts.failWith = new AwsSimError('ServiceUnavailable', 'simulated outage', 503, 'Receiver');
    try {
      expect((await h.credential('aws-web', token)).status).toBe(503);
    } finally {
      h.sts.failWith = undefined;
    }
    expect((await h.credential('aws-web', token)).status).toBe(200);
  });
});

describe('STS calls in flight are capped per credential (sts_concurrency)', () => {
  let h: AwsHarness;
  beforeAll(async () => {
    h = await startAwsHarness({
      credentials: (sts) => ({ 'aws-one': { type: 'aws_role', role_arn: sts.roleArn('deploy-web'), sts_endpoint: sts.url, duration: '30m', sts_concurrency: 1 } }),
    });
  });
  afterAll(() => h.close());

  it('a second job\'s STS call while one is in flight is refused with 503 credential_unavailable "busy"; it succeeds once the first is done', async () => {
    const [a, b] = [await h.portToken('aws-one'), await h.portToken('aws-one')];
    h.sts.delayMs = 1000;
    let results;
    try {
      results = await Promise.all([h.credential('aws-one', a), h.credential('aws-one', b)]);
    } finally {
      h.sts.delayMs = undefined;
    }
    expect(results.map((r) => r.status).sort()).toEqual([200, 503]);
    const busy = results.find((r) => r.status === 503)!;
    expect(busy.body.error).toBe('credential_unavailable');
    expect(busy.body.error_description).toMatch(/aws-one.*busy, retry/);
    expect(h.sts.calls).toHaveLength(1);
    const retried = await h.credential('aws-one', results[0]!.status === 503 ? a : b);
    expect(retried.status).toBe(200);
    expect(h.sts.calls).toHaveLength(2);
  });
});

describe('AwsSessionCache: bounded', () => {
  const session = (expiresAt: number): AwsSession => ({ accessKeyId: 'ASIA', secretAccessKey: 's', sessionToken: 't', expiresAt, duration: 3600, sessionName: 'n', tags: [] });
  const ask = (key: string, now: number) => ({ key, credential: 'c', maxInFlight: 4, usableUntil: now + 3_600_000, now });

  it('holds at most maxEntries, dropping sessions due for renewal first, then the oldest', async () => {
    const cache = new AwsSessionCache(2);
    const now = Date.now();
    let calls = 0;
    const assume = (expiresAt: number) => async () => {
      calls++;
      return session(expiresAt);
    };
    await cache.get(ask('old', now), assume(now + 3_600_000));
    await cache.get(ask('due', now), assume(now + 60_000));
    await cache.get(ask('new', now), assume(now + 3_600_000));
    expect(cache.size).toBe(2);
    // "old" survived (the session due for renewal went), so it is served from the cache.
    await cache.get(ask('old', now), assume(now + 3_600_000));
    expect(calls).toBe(3);
    await cache.get(ask('newer', now), assume(now + 3_600_000));
    expect(cache.size).toBe(2);
    // The oldest ("old") went.
    await cache.get(ask('old', now), assume(now + 3_600_000));
    expect(calls).toBe(5);
  });
});
