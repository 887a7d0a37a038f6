import { AssumeRoleCommand, GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StsSimulator } from '../../src/sim/aws-sts/index.js';

const USER = { name: 'port', accessKeyId: 'AKIAPORTSIMULATOR01', secretAccessKey: 'port-sim-secret-key-0123456789abcdefghij' };

describe('STS simulator with the real @aws-sdk/client-sts', () => {
  let sts: StsSimulator;
  beforeAll(async () => {
    sts = await StsSimulator.start({ users: [USER, { name: 'other', accessKeyId: 'AKIAOTHERSIMULATOR1', secretAccessKey: 'other-secret' }], roles: [{ name: 'deploy', maxSessionDuration: 7200, trust: { users: ['port'] } }] });
  });
  afterAll(() => sts.close());
  const client = (creds: { accessKeyId: string; secretAccessKey: string; sessionToken?: string }) =>
    new STSClient({ region: 'us-east-1', endpoint: sts.url, credentials: creds, maxAttempts: 1 });

  it('assumes a role with a correctly signed request and the session then signs GetCallerIdentity', async () => {
    const out = await client(USER).send(
      new AssumeRoleCommand({ RoleArn: sts.roleArn('deploy'), RoleSessionName: 'bk-test-1', DurationSeconds: 1800, Tags: [{ Key: 'pipeline', Value: 'deploy' }], TransitiveTagKeys: ['pipeline'] }),
    );
    expect(out.AssumedRoleUser?.Arn).toBe(`arn:aws:sts::123456789012:assumed-role/deploy/bk-test-1`);
    const c = out.Credentials!;
    expect(c.Expiration!.getTime() - Date.now()).toBeGreaterThan(1790_000);
    const who = await client({ accessKeyId: c.AccessKeyId!, secretAccessKey: c.SecretAccessKey!, sessionToken: c.SessionToken! }).send(new GetCallerIdentityCommand({}));
    expect(who.Arn).toBe(out.AssumedRoleUser?.Arn);
    const call = sts.succeeded('AssumeRole').at(-1)!;
    expect(call).toMatchObject({ caller: sts.userArn('port'), sessionName: 'bk-test-1', duration: 1800, tags: [{ Key: 'pipeline', Value: 'deploy' }], transitiveTagKeys: ['pipeline'] });
  });

  it('refuses a wrong secret, a wrong session token, an untrusted user and rule-breaking parameters with AWS error codes', async () => {
    const code = (p: Promise<unknown>) => p.then(() => 'ok', (e: { name: string }) => e.name);
    const assume = (extra: Partial<ConstructorParameters<typeof AssumeRoleCommand>[0]> = {}, creds: { accessKeyId: string; secretAccessKey: string } = USER) =>
      code(client(creds).send(new AssumeRoleCommand({ RoleArn: sts.roleArn('deploy'), RoleSessionName: 'bk-x', ...extra })));
    expect(await assume({}, { ...USER, secretAccessKey: 'wrong' })).toBe('SignatureDoesNotMatch');
    expect(await assume({}, { accessKeyId: 'AKIAUNKNOWNKEY00001', secretAccessKey: 'x' })).toBe('InvalidClientTokenId');
    expect(await assume({}, { accessKeyId: 'AKIAOTHERSIMULATOR1', secretAccessKey: 'other-secret' })).toBe('AccessDenied');
    expect(await assume({ RoleSessionName: 'has space' })).toBe('ValidationError');
    expect(await assume({ DurationSeconds: 7201 })).toBe('ValidationError');
    expect(await assume({ DurationSeconds: 899 })).toBe('ValidationError');
    expect(await assume({ Tags: [{ Key: 'a', Value: 'bad*value' }] })).toBe('ValidationError');
    expect(await assume({ Tags: [{ Key: 'a', Value: 'v' }], TransitiveTagKeys: ['b'] })).toBe('InvalidParameterValue');
    expect(await assume({ Tags: Array.from({ length: 51 }, (_, i) => ({ Key: `k${i}`, Value: 'v' })) })).toBe('ValidationError');
    expect(await assume({ Policy: '{"Version":' })).toBe('MalformedPolicyDocumentException') // the SDK's class for AWS's MalformedPolicyDocument code;
    expect(await assume({ Policy: JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 's3:GetObject', Resource: 'x'.repeat(2100) }] }) })).toBe('ValidationError');
    const out = await client(USER).send(new AssumeRoleCommand({ RoleArn: sts.roleArn('deploy'), RoleSessionName: 'bk-y' }));
    const c = out.Credentials!;
    expect(await code(client({ accessKeyId: c.AccessKeyId!, secretAccessKey: c.SecretAccessKey!, sessionToken: 'forged' }).send(new GetCallerIdentityCommand({})))).toBe('InvalidClientTokenId');
    sts.sessions.get(c.AccessKeyId!)!.expiresAt = Date.now() - 1;
    expect(await code(client({ accessKeyId: c.AccessKeyId!, secretAccessKey: c.SecretAccessKey!, sessionToken: c.SessionToken! }).send(new GetCallerIdentityCommand({})))).toBe('ExpiredToken');
  });
});

describe('AWS service simulator refuses what AWS would', () => {
  it('accepts only requests signed with an issued session over the exact path, query and body', async () => {
    const { Sha256 } = await import('@aws-crypto/sha256-js');
    const { SignatureV4 } = await import('@smithy/signature-v4');
    const { AwsServiceSimulator } = await import('../../src/sim/aws-sts/index.js');
    const sts = await StsSimulator.start({ users: [USER], roles: [{ name: 'svc', trust: { users: ['port'] } }] });
    const svc = await AwsServiceSimulator.start(sts, { service: 'execute-api' });
    try {
      const out = await new STSClient({ region: 'us-east-1', endpoint: sts.url, credentials: USER, maxAttempts: 1 }).send(new AssumeRoleCommand({ RoleArn: sts.roleArn('svc'), RoleSessionName: 'bk-svc' }));
      const session = { accessKeyId: out.Credentials!.AccessKeyId!, secretAccessKey: out.Credentials!.SecretAccessKey!, sessionToken: out.Credentials!.SessionToken! };
      const host = new URL(svc.url).host;
      const send = async (creds: typeof session | typeof USER, signedPath: string, sentPath: string, body = 'payload', sentBody = body) => {
        const signer = new SignatureV4({ credentials: creds, region: 'us-east-1', service: 'execute-api', sha256: Sha256 });
        const signed = await signer.sign({ method: 'POST', protocol: 'http:', hostname: host, path: signedPath, query: {}, headers: { host }, body });
        const res = await fetch(`${svc.url}${sentPath}`, { method: 'POST', headers: signed.headers as Record<string, string>, body: sentBody });
        return ((await res.json()) as { outcome?: string; __type?: string }).__type ?? 'ok';
      };
      expect(await send(session, '/a', '/a')).toBe('ok');
      expect(await send(session, '/a', '/b')).toBe('SignatureDoesNotMatch');
      expect(await send(session, '/a', '/a', 'payload', 'tampered')).toBe('XAmzContentSHA256Mismatch');
      expect(await send({ ...session, secretAccessKey: 'wrong' }, '/a', '/a')).toBe('SignatureDoesNotMatch');
      expect(await send({ ...session, sessionToken: 'forged' }, '/a', '/a')).toBe('InvalidClientTokenId');
      expect(await send(USER, '/a', '/a')).toBe('AccessDenied');
      const unsigned = await fetch(`${svc.url}/a`);
      expect(unsigned.status).toBe(403);
    } finally {
      await svc.close();
      await sts.close();
    }
  });
});
