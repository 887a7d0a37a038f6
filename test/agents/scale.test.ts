/**
 * `POST /v1/pools/{cluster}/{queue}/scale` over HTTP against the real server: autoscalers
 * authenticate with their own tokens, the pool must list them, policy decides on the Pool
 * (with its attestation rules) and the counts, and every answer is in the decision log
 * without the token.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AutoscalerAuthenticator } from '../../src/agents/scale-auth.js';
import type { DecisionRecord } from '../../src/store/records/decisions.js';
import { startHarness, type Harness } from '../helpers/port-harness.js';

const POLICIES: Record<string, string> = {
  'scale.cedar': `
@id("elastic-deploy-up-to-10")
@reason("the elastic stack may run up to 10 deploy agents")
permit (principal == Port::Autoscaler::"elastic", action == Port::Action::"scale", resource == Port::Pool::"linux/deploy")
when { context.desired <= 10 };

@id("build-pool-elastic")
@reason("the elastic stack sizes the build pool")
permit (principal == Port::Autoscaler::"elastic", action == Port::Action::"scale", resource == Port::Pool::"linux/build");

@id("build-pool-cap")
@reason("the build pool never grows past 40 agents")
forbid (principal, action == Port::Action::"scale", resource == Port::Pool::"linux/build")
when { context.desired > 40 };

@id("k8s-attested-pools")
@reason("the Kubernetes controller grows only pools whose agents prove their instance role")
permit (principal == Port::Autoscaler::"k8s", action == Port::Action::"scale", resource)
when { resource has attestation && resource.attestation.contains("aws_iam") };

@id("gpu-unbound-pools")
@reason("pools whose agents prove their instance role, without host-bound tokens, may be scaled")
permit (principal == Port::Autoscaler::"elastic", action == Port::Action::"scale", resource)
when { resource has host_bound && !resource.host_bound && resource has attestation && resource.attestation.contains("aws_iam") };

@id("rogue-anything")
@reason("a careless policy: the config still has to list the autoscaler on the pool")
permit (principal == Port::Autoscaler::"rogue", action == Port::Action::"scale", resource);
`,
};

const tokens = { elastic: randomBytes(32).toString('hex'), k8s: randomBytes(32).toString('hex'), rogue: randomBytes(32).toString('hex') };
const secretsDir = mkdtempSync(join(tmpdir(), 'port-scale-secrets-'));
const k8sTokenFile = join(secretsDir, 'k8s-token');

let h: Harness;

beforeAll(async () => {
  process.env.SCALE_TEST_ELASTIC_TOKEN = tokens.elastic;
  process.env.SCALE_TEST_ROGUE_TOKEN = tokens.rogue;
  writeFileSync(k8sTokenFile, `${tokens.k8s}\n`, { mode: 0o600 });
  h = await startHarness({
    policies: POLICIES,
    config: {
      server: { listen: '127.0.0.1:0', public_url: 'https://port.acme.test', log_level: 'silent', refusal_rate_limit: { burst: 12, per_minute: 1 } },
      scaling: {
        autoscalers: {
          elastic: { token: 'env:SCALE_TEST_ELASTIC_TOKEN' },
          k8s: { token: `file:${k8sTokenFile}` },
          rogue: { token: 'env:SCALE_TEST_ROGUE_TOKEN' },
        },
      },
      pools: {
        'linux/deploy': { attestation: ['aws_iam'], host_bound: true, aws: { accounts: ['123456789012'] }, autoscalers: ['elastic', 'k8s'] },
        'linux/build': { attestation: ['none'], autoscalers: ['elastic', 'k8s'] },
        'gpu/*': { attestation: ['aws_iam'], aws: { accounts: ['123456789012'] }, autoscalers: ['elastic'] },
      },
    },
  });
}, 60_000);

afterAll(async () => {
  await h?.close();
  rmSync(secretsDir, { recursive: true, force: true });
});

interface Answer {
  status: number;
  body: any;
  headers: Headers;
}

async function scale(pool: string, body: unknown, opts: { token?: string | null; authorization?: string; contentType?: string; raw?: string } = {}): Promise<Answer> {
  const headers: Record<string, string> = { 'content-type': opts.contentType ?? 'application/json' };
  if (opts.authorization !== undefined) headers.authorization = opts.authorization;
  else if (opts.token !== null) headers.authorization = `Bearer ${opts.token ?? tokens.elastic}`;
  const res = await fetch(`${h.url}/v1/pools/${pool}/scale`, { method: 'POST', headers, body: opts.raw ?? JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined, headers: res.headers };
}

async function decisions(): Promise<DecisionRecord[]> {
  return (await h.port.store.decisions.read(0, 100_000)).map((e) => e.record);
}

async function logged(id: string): Promise<DecisionRecord> {
  const record = (await decisions()).find((r) => r.id === id);
  expect(record, `decision ${id} in the log`).toBeDefined();
  return record!;
}

describe('scale decisions', () => {
  it('allows what a policy permits, and logs it with the autoscaler and the request id', async () => {
    const res = await scale('linux/deploy', { desired: 10, current: 3 });
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.body).toEqual({
      decision: 'allow',
      pool: 'linux/deploy',
      desired: 10,
      current: 3,
      policies: [{ id: 'elastic-deploy-up-to-10', reason: 'the elastic stack may run up to 10 deploy agents' }],
      decision_id: expect.any(String),
    });
    const record = await logged(res.body.decision_id);
    expect(record).toMatchObject({
      principal: 'Port::Autoscaler::"elastic"',
      action: 'scale',
      resource: 'Port::Pool::"linux/deploy"',
      decision: 'allow',
      policies: [{ id: 'elastic-deploy-up-to-10', reason: 'the elastic stack may run up to 10 deploy agents' }],
      context: {
        autoscaler: 'elastic',
        request_id: res.headers.get('x-request-id'),
        scale: { desired: 10, current: 3 },
        pool: { key: 'linux/deploy', attestation: ['aws_iam'], enforcement: 'enforce', host_bound: true },
      },
    });
    expect(record.policyRevision).toBe(h.port.policy.revision);
  });

  it('denies above the limit with the reason, and logs the deny', async () => {
    const res = await scale('linux/deploy', { desired: 11, current: 10 });
    expect(res.status).toBe(403);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.body).toMatchObject({ error: 'access_denied', decision: 'deny', pool: 'linux/deploy', desired: 11, current: 10, policies: [] });
    expect(res.body.error_description).toContain('elastic-deploy-up-to-10');
    const record = await logged(res.body.decision_id);
    expect(record).toMatchObject({ decision: 'deny', principal: 'Port::Autoscaler::"elastic"', resource: 'Port::Pool::"linux/deploy"', reason: res.body.error_description });
    expect(record.context.unmatched_permits).toContainEqual({ id: 'elastic-deploy-up-to-10', reason: 'the elastic stack may run up to 10 deploy agents' });
    // Shrinking back under the limit is allowed by the same policy.
    expect((await scale('linux/deploy', { desired: 0, current: 11 })).body.decision).toBe('allow');
  });

  it('a forbid wins over a permit', async () => {
    const res = await scale('linux/build', { desired: 41, current: 40 });
    expect(res.status).toBe(403);
    expect(res.body.policies).toEqual([{ id: 'build-pool-cap', reason: 'the build pool never grows past 40 agents' }]);
    expect(res.body.error_description).toContain('the build pool never grows past 40 agents');
    expect((await logged(res.body.decision_id)).policies).toEqual([{ id: 'build-pool-cap', reason: 'the build pool never grows past 40 agents' }]);
    expect((await scale('linux/build', { desired: 40, current: 12 })).body).toMatchObject({ decision: 'allow', policies: [{ id: 'build-pool-elastic' }] });
  });

  it("lets a policy require the pool's attestation: only attested pools grow", async () => {
    const attested = await scale('linux/deploy', { desired: 50, current: 2 }, { token: tokens.k8s });
    expect(attested.status).toBe(200);
    expect(attested.body.policies).toEqual([{ id: 'k8s-attested-pools', reason: 'the Kubernetes controller grows only pools whose agents prove their instance role' }]);
    const unattested = await scale('linux/build', { desired: 5, current: 2 }, { token: tokens.k8s });
    expect(unattested.status).toBe(403);
    expect(unattested.body.error_description).toContain('k8s-attested-pools');
    expect((await logged(unattested.body.decision_id)).context).toMatchObject({ autoscaler: 'k8s', pool: { key: 'linux/build', attestation: [] } });
  });

  it("decides a queue of a CLUSTER/* pool as that queue, with the entry's rules", async () => {
    const res = await scale('gpu/a100', { desired: 4, current: 1 });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ pool: 'gpu/a100', policies: [{ id: 'gpu-unbound-pools' }] });
    const record = await logged(res.body.decision_id);
    expect(record.resource).toBe('Port::Pool::"gpu/a100"');
    expect(record.context.pool).toMatchObject({ key: 'gpu/*', attestation: ['aws_iam'] });
  });

  it('refuses an autoscaler the pool does not list, whatever policy says, naming the key to add', async () => {
    const res = await scale('linux/deploy', { desired: 1, current: 0 }, { token: tokens.rogue });
    expect(res.status).toBe(403);
    expect(res.body).toMatchObject({ error: 'access_denied', decision: 'deny', pool: 'linux/deploy', policies: [] });
    expect(res.body.error_description).toContain('pools.linux/deploy.autoscalers');
    const record = await logged(res.body.decision_id);
    expect(record).toMatchObject({ principal: 'Port::Autoscaler::"rogue"', decision: 'deny', context: { check: 'autoscaler_not_listed', autoscaler: 'rogue' } });

    const wildcard = await scale('gpu/a100', { desired: 1, current: 0 }, { token: tokens.k8s });
    expect(wildcard.status).toBe(403);
    expect(wildcard.body.error_description).toContain('pools.gpu/*.autoscalers');
  });

  it('answers 404 for a pool no pools: entry covers, and logs it', async () => {
    const res = await scale('macos/ios', { desired: 1, current: 0 });
    expect(res.status).toBe(404);
    expect(res.body.error).toBe('unknown_pool');
    expect(res.body.error_description).toContain('pools.macos/ios');
    expect(res.headers.get('cache-control')).toBe('no-store');
    const record = (await decisions()).filter((r) => r.resource === 'Port::Pool::"macos/ios"').at(-1)!;
    expect(record).toMatchObject({ principal: 'Port::Autoscaler::"elastic"', decision: 'deny', context: { check: 'unknown_pool', request_id: res.headers.get('x-request-id') } });
  });
});

describe('scale authentication', () => {
  it.each([
    ['no Authorization header', { token: null }],
    ['a wrong token', { token: randomBytes(32).toString('hex') }],
    ['a prefix of a real token', { token: tokens.elastic.slice(0, 32) }],
    ['a real token with a suffix', { token: `${tokens.elastic}x` }],
    ['a real token as Basic auth', { authorization: `Basic ${Buffer.from(`elastic:${tokens.elastic}`).toString('base64')}` }],
    ['a real token after another scheme', { authorization: `Token ${tokens.elastic}` }],
  ])('refuses %s with 401 and a Bearer challenge', async (_name, opts) => {
    const res = await scale('linux/deploy', { desired: 1, current: 0 }, opts);
    expect(res.status).toBe(401);
    expect(res.body.error).toBe('invalid_token');
    expect(res.headers.get('www-authenticate')).toBe('Bearer error="invalid_token"');
    expect(res.headers.get('cache-control')).toBe('no-store');
  });

  it('checks the token before the pool or the body', async () => {
    expect((await scale('macos/ios', { desired: 1, current: 0 }, { token: 'nope' })).status).toBe(401);
    expect((await scale('linux/deploy', { desired: -1 }, { token: 'nope' })).status).toBe(401);
    expect((await scale('linux/deploy', null, { token: 'nope', raw: 'desired=1', contentType: 'application/x-www-form-urlencoded' })).status).toBe(401);
  });

  it('logs refusals about nobody, naming the check', async () => {
    const refusals = (await decisions()).filter((r) => r.action === 'scale' && r.principal === null);
    const checks = new Set(refusals.map((r) => r.context.check));
    expect(checks).toEqual(new Set(['autoscaler_token_missing', 'autoscaler_token_invalid']));
    expect(refusals.find((r) => r.context.check === 'autoscaler_token_invalid')).toMatchObject({ decision: 'deny', resource: 'Port::Pool::"linux/deploy"', policies: [] });
  });

  it('reads a file token on each request, so a rotation applies at once', async () => {
    const rotated = randomBytes(32).toString('hex');
    writeFileSync(k8sTokenFile, rotated);
    try {
      expect((await scale('linux/deploy', { desired: 2, current: 1 }, { token: tokens.k8s })).status).toBe(401);
      expect((await scale('linux/deploy', { desired: 2, current: 1 }, { token: rotated })).status).toBe(200);
    } finally {
      writeFileSync(k8sTokenFile, tokens.k8s);
    }
  });
});

describe('scale request validation', () => {
  it.each([
    ['a negative desired', { desired: -1, current: 0 }, 'desired must be a whole number from 0 to 100000.'],
    ['a negative current', { desired: 1, current: -5 }, 'current must be a whole number from 0 to 100000.'],
    ['a fraction', { desired: 2.5, current: 0 }, 'desired must be a whole number from 0 to 100000.'],
    ['a count as a string', { desired: '5', current: 0 }, 'desired must be a whole number from 0 to 100000.'],
    ['a boolean', { desired: true, current: 0 }, 'desired must be a whole number from 0 to 100000.'],
    ['a count over the limit', { desired: 100_001, current: 0 }, 'desired must be a whole number from 0 to 100000.'],
    ['a huge count', { desired: 1e300, current: 0 }, 'desired must be a whole number from 0 to 100000.'],
    ['a count past 2^53', { desired: 1, current: 2 ** 60 }, 'current must be a whole number from 0 to 100000.'],
    ['a missing current', { desired: 3 }, 'current is missing: The body must be the JSON object {"desired": N, "current": N}.'],
    ['an extra member', { desired: 3, current: 1, force: true }, 'The body must be the JSON object {"desired": N, "current": N}. It may hold only desired and current.'],
    ['a prototype key', JSON.parse('{"desired": 3, "current": 1, "__proto__": {"x": 1}}'), 'The body must be the JSON object {"desired": N, "current": N}. It may hold only desired and current.'],
    ['an array', [3, 1], 'The body must be the JSON object {"desired": N, "current": N}.'],
    ['null', null, 'The body must be the JSON object {"desired": N, "current": N}.'],
  ])('refuses %s with a specific 400', async (_name, body, message) => {
    const res = await scale('linux/deploy', body);
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error: 'invalid_request', error_description: message });
    expect(res.headers.get('cache-control')).toBe('no-store');
  });

  it('refuses a member named twice (another parser would read the other value)', async () => {
    const res = await scale('linux/deploy', null, { raw: '{"desired": 5, "current": 1, "desired": 500}' });
    expect(res.status).toBe(400);
    expect(res.body.error_description).toBe('The body names a member twice; send desired and current once each.');
  });

  it('refuses bodies that are not JSON, empty or too large', async () => {
    expect((await scale('linux/deploy', null, { raw: '{"desired": 5,' })).body.error_description).toMatch(/^The body is not valid JSON\./);
    expect((await scale('linux/deploy', null, { raw: '' })).body).toEqual({ error: 'invalid_request', error_description: 'The body must be the JSON object {"desired": N, "current": N}.' });
    const form = await scale('linux/deploy', null, { raw: 'desired=5&current=1', contentType: 'application/x-www-form-urlencoded' });
    expect(form.status).toBe(415);
    expect(form.body).toEqual({ error: 'unsupported_media_type', error_description: 'The body must be application/json.' });
    const big = await scale('linux/deploy', null, { raw: `{"desired": 5, "current": 1${' '.repeat(2048)}}` });
    expect(big.status).toBe(413);
  });

  it.each([
    ['a space in the cluster', 'linux%20box/deploy', 'cluster name'],
    ['an encoded slash in the queue', 'linux/de%2Fploy', 'queue key'],
    ['a queue starting with a dot', 'linux/.deploy', 'queue key'],
    ['a * queue (a pattern, not a queue)', 'linux/*', 'queue key'],
  ])('refuses %s in the path with 400 invalid_path', async (_name, pool, which) => {
    const res = await scale(pool, { desired: 1, current: 0 });
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_path');
    expect(res.body.error_description).toContain(which);
  });

  it('refuses a name longer than 100 characters', async () => {
    expect((await scale(`${'c'.repeat(100)}/deploy`, { desired: 1, current: 0 })).status).toBe(404);
    const res = await scale(`${'c'.repeat(101)}/deploy`, { desired: 1, current: 0 });
    // Fastify's router refuses it before Port sees the request (maxParamLength).
    expect(res.status).toBe(414);
  });

  it('accepts JSON with a charset parameter', async () => {
    expect((await scale('linux/deploy', { desired: 1, current: 0 }, { contentType: 'application/json; charset=utf-8' })).status).toBe(200);
  });
});

describe('the decision log', () => {
  it('never holds an autoscaler token', async () => {
    const text = JSON.stringify(await decisions());
    expect(text).toContain('"action":"scale"');
    for (const token of Object.values(tokens)) {
      expect(text).not.toContain(token);
      expect(text).not.toContain(token.slice(0, 32));
    }
  });
});

describe('scale refusal throttling', () => {
  // Last: it spends this address's refusal budget.
  it('answers 429 to an address guessing tokens, and still serves a valid token from it', async () => {
    let throttled: Answer | undefined;
    for (let i = 0; i < 40 && throttled === undefined; i++) {
      const res = await scale('linux/deploy', { desired: 1, current: 0 }, { token: `guess-${i}` });
      if (res.status === 429) throttled = res;
      else expect(res.status).toBe(401);
    }
    expect(throttled?.body.error).toBe('too_many_requests');
    expect(Number(throttled?.headers.get('retry-after'))).toBeGreaterThan(0);
    expect((await scale('linux/deploy', { desired: 1, current: 0 })).status).toBe(200);
  });
});

describe('without scaling.autoscalers', () => {
  it('the endpoint does not exist', async () => {
    const plain = await startHarness();
    try {
      const res = await fetch(`${plain.url}/v1/pools/linux/deploy/scale`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${tokens.elastic}` },
        body: JSON.stringify({ desired: 1, current: 0 }),
      });
      expect(res.status).toBe(404);
    } finally {
      await plain.close();
    }
  });

  it('refuses to start when two autoscalers share a token', () => {
    const source = (key: string) => ({ ref: 'env:SCALE_TEST_ELASTIC_TOKEN', key, baseDir: secretsDir });
    const auth = new AutoscalerAuthenticator({ elastic: { token: source('scaling.autoscalers.elastic.token') }, twin: { token: source('scaling.autoscalers.twin.token') } });
    expect(() => auth.checkAtStart()).toThrow('"elastic" and "twin" have the same token');
  });
});
