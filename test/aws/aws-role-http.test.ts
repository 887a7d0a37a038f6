import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAwsHarness, WRONG_SECRET, type AwsHarness } from './aws-harness.js';

/** GetCallerIdentity with a credential_process body: proves the session works. */
async function callerArn(h: AwsHarness, body: { AccessKeyId: string; SecretAccessKey: string; SessionToken: string }): Promise<string | undefined> {
  const client = new STSClient({
    region: 'us-east-1',
    endpoint: h.sts.url,
    maxAttempts: 1,
    credentials: { accessKeyId: body.AccessKeyId, secretAccessKey: body.SecretAccessKey, sessionToken: body.SessionToken },
  });
  return (await client.send(new GetCallerIdentityCommand({}))).Arn;
}

describe('aws_role over HTTP: POST /v1/credentials/{name} against the STS simulator', () => {
  let h: AwsHarness;
  beforeAll(async () => {
    h = await startAwsHarness();
  });
  afterAll(() => h.close());

  it('web_identity: Port mints an OIDC token the simulated IAM verifies through Port\'s JWKS; session name, tags, policy and duration reach STS', async () => {
    const job = h.sim.createJob({ pipelineSlug: 'deploy', branch: 'main' });
    const port = await h.exchange(await h.sim.mintToken(job, { audience: h.audience }), { scope: 'aws-web' });
    expect(port.status).toBe(200);
    const res = await h.credential('aws-web', port.body.access_token);
    expect(res.status).toBe(200);
    expect(Object.keys(res.body).sort()).toEqual(['AccessKeyId', 'Expiration', 'SecretAccessKey', 'SessionToken', 'Version']);
    expect(res.body.Version).toBe(1);
    expect(res.body.AccessKeyId).toMatch(/^ASIA/);
    const lifetime = Date.parse(res.body.Expiration) - Date.now();
    expect(lifetime).toBeGreaterThan(1780_000);
    expect(lifetime).toBeLessThanOrEqual(1800_000);

    const call = h.sts.succeeded('AssumeRoleWithWebIdentity').at(-1)!;
    const sessionName = `bk-deploy-${job.buildNumber}-${job.jobId}`;
    expect(call).toMatchObject({
      roleArn: h.sts.roleArn('deploy-web'),
      sessionName,
      duration: 1800,
      tags: [
        { Key: 'pipeline', Value: 'deploy' },
        { Key: 'build', Value: String(job.buildNumber) },
      ],
      transitiveTagKeys: ['pipeline'],
    });
    const claims = call.webIdentityClaims!;
    expect(claims).toMatchObject({
      iss: 'https://port.acme.test',
      aud: 'sts.amazonaws.com',
      sub: `organization:acme:pipeline:deploy:ref:refs/heads/main:commit:${job.commit}:step:${job.stepKey ?? ''}`,
      job_id: job.jobId,
      'https://aws.amazon.com/tags': { principal_tags: { pipeline: ['deploy'], build: [String(job.buildNumber)] }, transitive_tag_keys: ['pipeline'] },
    });
    expect((claims.exp as number) - (claims.iat as number)).toBe(300);
    expect(typeof claims.jti).toBe('string');
    // Port holds no AWS keys in this mode: the call is unsigned.
    expect(call.params.RoleSessionName).toBe(sessionName);
    expect(JSON.parse(call.policy!)).toEqual({
      Version: '2012-10-17',
      Statement: [
        { Effect: 'Allow', Action: 's3:*', Resource: 'arn:aws:s3:::artifacts/deploy/main/*' },
        // IAM's own policy variables pass through untouched.
        { Effect: 'Allow', Action: 's3:ListBucket', Resource: 'arn:aws:s3:::artifacts', Condition: { StringLike: { 's3:prefix': '${aws:PrincipalTag/pipeline}/*' } } },
      ],
    });
    expect(call.policy).not.toMatch(/\s/);
    expect(await callerArn(h, res.body)).toBe(`arn:aws:sts::123456789012:assumed-role/deploy-web/${sessionName}`);
  });

  it('assume_role: AssumeRole signed with Port\'s keys (checked by the simulator), tags and TransitiveTagKeys as parameters', async () => {
    const job = h.sim.createJob({ pipelineSlug: 'deploy', branch: 'release/2.0' });
    const port = await h.exchange(await h.sim.mintToken(job, { audience: h.audience }), { scope: 'aws-keys' });
    const res = await h.credential('aws-keys', port.body.access_token);
    expect(res.status).toBe(200);
    const call = h.sts.succeeded('AssumeRole').at(-1)!;
    expect(call).toMatchObject({
      caller: h.sts.userArn('port'),
      roleArn: h.sts.roleArn('deploy-keys'),
      sessionName: `bk-deploy-${job.buildNumber}-${job.jobId}`,
      duration: 7200,
      tags: [
        { Key: 'pipeline', Value: 'deploy' },
        { Key: 'branch', Value: 'release/2.0' },
      ],
    });
    expect(call.policy).toBeUndefined();
    expect(await callerArn(h, res.body)).toBe(`arn:aws:sts::123456789012:assumed-role/deploy-keys/bk-deploy-${job.buildNumber}-${job.jobId}`);
  });

  it('gives each job its own session', async () => {
    const a = await h.credential('aws-web', await h.portToken('aws-web'));
    const b = await h.credential('aws-web', await h.portToken('aws-web'));
    expect(a.status).toBe(200);
    expect(b.status).toBe(200);
    expect(a.body.AccessKeyId).not.toBe(b.body.AccessKeyId);
    const [ca, cb] = [await callerArn(h, a.body), await callerArn(h, b.body)];
    expect(ca).not.toBe(cb);
  });

  it('bad keys: the simulator refuses the signature and Port answers 503 credential_unavailable with AWS\'s code, leaking nothing', async () => {
    const res = await h.credential('aws-badkeys', await h.portToken('aws-badkeys'));
    expect(res.status).toBe(503);
    expect(res.body.error).toBe('credential_unavailable');
    expect(res.body.error_description).toContain('SignatureDoesNotMatch');
    const text = JSON.stringify(res.body);
    for (const secret of [WRONG_SECRET, 'AKIAPORTSIMULATOR01']) expect(text).not.toContain(secret);
    expect(h.sts.calls.at(-1)).toMatchObject({ action: 'AssumeRole', outcome: 'SignatureDoesNotMatch' });
  });

  it('a job the role\'s trust policy does not cover (sub condition) is refused by STS: 503 with AccessDenied', async () => {
    const res = await h.credential('aws-web', await h.portToken('aws-web', { pipelineSlug: 'other' }));
    expect(res.status).toBe(503);
    expect(res.body).toMatchObject({ error: 'credential_unavailable' });
    expect(res.body.error_description).toContain('AccessDenied');
  });

  it('a session tag whose claim the job lacks is 400 invalid_request naming tag and claim, and STS is never called', async () => {
    const before = h.sts.calls.length;
    const res = await h.credential('aws-queue-tag', await h.portToken('aws-queue-tag'));
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_request');
    expect(res.body.error_description).toContain('queue');
    expect(res.body.error_description).toContain('queue_key');
    expect(h.sts.calls.length).toBe(before);
  });

  it('a tag value AWS would refuse is refused, never rewritten (ABAC conditions must not collide)', async () => {
    const before = h.sts.calls.length;
    const res = await h.credential('aws-keys', await h.portToken('aws-keys', { branch: 'feature/ünïcode*star' }));
    expect(res.status).toBe(400);
    expect(res.body.error_description).toMatch(/branch.*build_branch/);
    expect(h.sts.calls.length).toBe(before);
  });

  it('claim values cannot break out of their place in the session policy: refused, not escaped', async () => {
    const before = h.sts.calls.length;
    const branch = 'x"}],"Statement":[{"Effect":"Allow","Action":"*","Resource":"*';
    const res = await h.credential('aws-web', await h.portToken('aws-web', { branch }));
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_request');
    expect(res.body.error_description).toContain('${build_branch}');
    expect(res.body.error_description).not.toContain('Statement');
    expect(h.sts.calls.length).toBe(before);
  });
});

describe('aws_role: session policy templates that do not render', () => {
  let h: AwsHarness;
  beforeAll(async () => {
    const { writeFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    h = await startAwsHarness({
      credentials: (sts, dir) => {
        writeFileSync(join(dir, 'needs-queue.json'), '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::q/${queue_key}/*"}]}');
        writeFileSync(join(dir, 'huge.json'), JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 's3:GetObject', Resource: Array.from({ length: 60 }, (_, i) => `arn:aws:s3:::bucket-${i}/\${pipeline_slug}/*`) }] }));
        const base = { type: 'aws_role', role_arn: sts.roleArn('deploy-web'), sts_endpoint: sts.url };
        return {
          'aws-needs-queue': { ...base, session_policy: join(dir, 'needs-queue.json') },
          'aws-huge': { ...base, session_policy: join(dir, 'huge.json') },
        };
      },
    });
  });
  afterAll(() => h.close());

  it('a placeholder for a claim the job lacks is 400 naming the claim; STS is not called', async () => {
    const res = await h.credential('aws-needs-queue', await h.portToken('aws-needs-queue'));
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ error: 'invalid_request' });
    expect(res.body.error_description).toContain('${queue_key}');
    expect(h.sts.calls).toHaveLength(0);
  });

  it('a rendered policy over 2,048 packed characters is 400 with the size; STS is not called', async () => {
    const res = await h.credential('aws-huge', await h.portToken('aws-huge'));
    expect(res.status).toBe(400);
    expect(res.body.error_description).toMatch(/session policy is \d+ characters; AWS allows 2048/);
    expect(h.sts.calls).toHaveLength(0);
  });
});
