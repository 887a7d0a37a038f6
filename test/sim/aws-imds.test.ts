import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { fromInstanceMetadata, fromNodeProviderChain } from '@aws-sdk/credential-providers';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createTestCertificateAuthority, ImdsSimulator } from '../../src/sim/aws-imds/index.js';
import { StsSimulator } from '../../src/sim/aws-sts/index.js';

const ROLE = 'buildkite-agent';
let sts: StsSimulator;
let imds: ImdsSimulator;

beforeAll(async () => {
  sts = await StsSimulator.start({ roles: [{ name: ROLE, trust: { ec2: true } }] });
  imds = await ImdsSimulator.start({ instance: { region: 'eu-west-1' }, ca: createTestCertificateAuthority({ modulusLength: 1024 }), sts, roleName: ROLE });
});
afterAll(async () => {
  await imds.close();
  await sts.close();
});

/** Environment of a bare EC2 host: nothing but IMDS for the SDK's default chain to find. */
const HOST_ENV: Record<string, string | undefined> = {
  AWS_EC2_METADATA_SERVICE_ENDPOINT: undefined,
  AWS_EC2_METADATA_DISABLED: undefined,
  AWS_ACCESS_KEY_ID: undefined,
  AWS_SECRET_ACCESS_KEY: undefined,
  AWS_SESSION_TOKEN: undefined,
  AWS_PROFILE: undefined,
  AWS_WEB_IDENTITY_TOKEN_FILE: undefined,
  AWS_ROLE_ARN: undefined,
  AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: undefined,
  AWS_CONTAINER_CREDENTIALS_FULL_URI: undefined,
  AWS_CONFIG_FILE: '/nonexistent/port-test/aws-config',
  AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/port-test/aws-credentials',
};
const saved = new Map<string, string | undefined>();
function useEnv(env: Record<string, string | undefined>): void {
  for (const [k, v] of Object.entries(env)) {
    if (!saved.has(k)) saved.set(k, process.env[k]);
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
}
afterEach(() => {
  for (const [k, v] of saved) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  saved.clear();
});

const token = async (ttl = '21600', headers: Record<string, string> = {}) =>
  fetch(`${imds.url}/latest/api/token`, { method: 'PUT', headers: { 'X-aws-ec2-metadata-token-ttl-seconds': ttl, ...headers } });
const get = (path: string, t?: string) => fetch(`${imds.url}${path}`, t === undefined ? {} : { headers: { 'X-aws-ec2-metadata-token': t } });

describe('EC2 instance metadata service simulator', () => {
  it('serves IMDSv2 only: a session token first, then metadata with it', async () => {
    const res = await token('60');
    expect(res.status).toBe(200);
    expect(res.headers.get('x-aws-ec2-metadata-token-ttl-seconds')).toBe('60');
    const t = await res.text();
    expect((await get('/latest/dynamic/instance-identity/document')).status).toBe(401);
    expect((await get('/latest/dynamic/instance-identity/document', 'forged')).status).toBe(401);
    const doc = JSON.parse(await (await get('/latest/dynamic/instance-identity/document', t)).text()) as Record<string, unknown>;
    expect(doc).toMatchObject({ instanceId: imds.instanceId, accountId: sts.accountId, region: 'eu-west-1', availabilityZone: 'eu-west-1a', version: '2017-09-30' });
    expect(await (await get('/latest/dynamic/instance-identity/document', t)).text()).toBe(imds.document);
    expect(await (await get('/latest/dynamic/instance-identity/signature', t)).text()).toBe(imds.signature);
    expect(await (await get('/latest/meta-data/instance-id', t)).text()).toBe(imds.instanceId);
    expect(await (await get('/latest/meta-data/placement/region', t)).text()).toBe('eu-west-1');
    expect(await (await get('/latest/meta-data/iam/security-credentials/', t)).text()).toBe(ROLE);
    expect((await get('/latest/meta-data/iam/security-credentials/other-role', t)).status).toBe(404);
    expect((await get('/latest/dynamic/instance-identity/pkcs7', t)).status).toBe(404);
  });

  it('refuses bad token requests as IMDS does', async () => {
    expect((await token('0')).status).toBe(400);
    expect((await token('21601')).status).toBe(400);
    expect((await fetch(`${imds.url}/latest/api/token`, { method: 'PUT' })).status).toBe(400);
    expect((await token('60', { 'X-Forwarded-For': '203.0.113.9' })).status).toBe(403);
    expect((await fetch(`${imds.url}/latest/api/token`)).status).toBe(405);
    const t = await (await token('60')).text();
    expect((await fetch(`${imds.url}/latest/meta-data/instance-id`, { method: 'POST', headers: { 'X-aws-ec2-metadata-token': t } })).status).toBe(405);
  });

  it('answers IMDSv1 requests when the instance allows them (http-tokens optional)', async () => {
    const v1 = await ImdsSimulator.start({ instance: { region: 'us-east-2', instanceId: 'i-0aaaaaaaaaaaaaaa1' }, ca: createTestCertificateAuthority({ modulusLength: 1024 }), httpTokens: 'optional' });
    try {
      expect(await (await fetch(`${v1.url}/latest/meta-data/instance-id`)).text()).toBe('i-0aaaaaaaaaaaaaaa1');
      expect((await fetch(`${v1.url}/latest/meta-data/iam/security-credentials/`)).status).toBe(404);
    } finally {
      await v1.close();
    }
  });

  it('hands the AWS SDK (fromInstanceMetadata) instance profile credentials that STS knows as the instance\'s role session', async () => {
    useEnv({ ...HOST_ENV, AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.url });
    const before = imds.requests.length;
    const creds = await fromInstanceMetadata({ maxRetries: 0 })();
    expect(creds.accessKeyId).toBe(imds.credentials().accessKeyId);
    expect(creds.sessionToken).toBe(imds.credentials().sessionToken);
    expect(creds.expiration!.getTime()).toBe(Math.floor(imds.credentials().expiresAt / 1000) * 1000);
    const seen = imds.requests.slice(before);
    expect(seen[0]).toMatchObject({ method: 'PUT', path: '/latest/api/token', status: 200 });
    expect(seen.slice(1).every((r) => r.withToken && r.status === 200)).toBe(true);
    const who = await new STSClient({ region: 'us-east-1', endpoint: sts.url, credentials: creds, maxAttempts: 1 }).send(new GetCallerIdentityCommand({}));
    expect(who.Arn).toBe(`arn:aws:sts::${sts.accountId}:assumed-role/${ROLE}/${imds.instanceId}`);
    expect(who.UserId).toMatch(new RegExp(`:${imds.instanceId}$`));
  });

  it('is found by the SDK\'s default credential chain on a host with no other credentials', async () => {
    useEnv({ ...HOST_ENV, AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.url });
    const creds = await fromNodeProviderChain({ maxRetries: 0 })();
    expect(creds.accessKeyId).toBe(imds.credentials().accessKeyId);
    const who = await new STSClient({ region: 'us-east-1', endpoint: sts.url, credentials: fromNodeProviderChain({ maxRetries: 0 }), maxAttempts: 1 }).send(new GetCallerIdentityCommand({}));
    expect(who.Arn).toBe(`arn:aws:sts::${sts.accountId}:assumed-role/${ROLE}/${imds.instanceId}`);
  });

  it('renews the instance profile credentials before they expire', () => {
    const first = imds.credentials();
    expect(imds.credentials()).toBe(first);
    const renewed = imds.credentials(first.expiresAt - 60_000);
    expect(renewed.accessKeyId).not.toBe(first.accessKeyId);
    expect(renewed.sessionName).toBe(imds.instanceId);
  });
});
