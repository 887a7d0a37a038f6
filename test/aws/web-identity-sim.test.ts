import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AssumeRoleWithWebIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { roleSessionName } from '../../src/broker/credentials/aws-session-name.js';
import { StsSimulator } from '../../src/sim/aws-sts/index.js';

/** The simulated IAM checks web identity tokens as IAM does; Port's tests rely on it refusing these. */
describe('STS simulator: AssumeRoleWithWebIdentity refusals', () => {
  let issuerServer: Server;
  let sts: StsSimulator;
  let es: { key: CryptoKey; kid: string };
  let ed: { key: CryptoKey; kid: string };
  const ISS = 'https://idp.example.test';

  beforeAll(async () => {
    const a = await generateKeyPair('ES256');
    const b = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
    es = { key: a.privateKey, kid: 'es' };
    ed = { key: b.privateKey, kid: 'ed' };
    const jwks = { keys: [{ ...(await exportJWK(a.publicKey)), kid: 'es', alg: 'ES256' }, { ...(await exportJWK(b.publicKey)), kid: 'ed', alg: 'EdDSA' }] };
    issuerServer = createServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(req.url === '/.well-known/openid-configuration' ? { issuer: ISS, jwks_uri: `${ISS}/jwks` } : jwks));
    });
    await new Promise<void>((r) => issuerServer.listen(0, '127.0.0.1', r));
    sts = await StsSimulator.start({
      roles: [{ name: 'ci', trust: { webIdentity: { provider: 'idp.example.test', audience: 'sts.amazonaws.com', subjectLike: 'organization:acme:pipeline:deploy:*', requiredTags: { env: 'prod' } } } }],
      oidcProviders: [{ url: ISS, clientIds: ['sts.amazonaws.com'] }],
      originOverrides: { [ISS]: `http://127.0.0.1:${(issuerServer.address() as AddressInfo).port}` },
    });
  });
  afterAll(async () => {
    await sts.close();
    issuerServer.close();
  });

  const token = (claims: Record<string, unknown> = {}, signer = es, iss = ISS, ttl = 300) =>
    new SignJWT({
      sub: 'organization:acme:pipeline:deploy:ref:refs/heads/main:commit:abc:step:',
      aud: 'sts.amazonaws.com',
      'https://aws.amazon.com/tags': { principal_tags: { env: ['prod'] }, transitive_tag_keys: [] },
      ...claims,
    })
      .setProtectedHeader({ alg: signer === es ? 'ES256' : 'EdDSA', kid: signer.kid, typ: 'JWT' })
      .setIssuer(iss)
      .setIssuedAt()
      .setExpirationTime(Math.floor(Date.now() / 1000) + ttl)
      .sign(signer.key);
  const assume = async (jwt: string) =>
    new STSClient({ region: 'us-east-1', endpoint: sts.url, maxAttempts: 1 })
      .send(new AssumeRoleWithWebIdentityCommand({ RoleArn: sts.roleArn('ci'), RoleSessionName: 'bk-ci', WebIdentityToken: jwt }))
      .then(() => 'ok', (e: { name: string }) => e.name);

  it('accepts a good ES256 token and refuses EdDSA, wrong audience, expiry, unknown issuer, trust mismatches', async () => {
    expect(await assume(await token())).toBe('ok');
    expect(await assume(await token({}, ed))).toBe('InvalidIdentityTokenException');
    expect(await assume(await token({ aud: 'someone-else' }))).toBe('InvalidIdentityTokenException');
    expect(await assume(await token({}, es, ISS, -10))).toBe('ExpiredTokenException');
    expect(await assume(await token({}, es, 'https://evil.example.test'))).toBe('InvalidIdentityTokenException');
    expect(await assume(await token({ sub: 'organization:acme:pipeline:other:ref:refs/heads/main:commit:abc:step:' }))).toBe('AccessDenied');
    expect(await assume(await token({ 'https://aws.amazon.com/tags': { principal_tags: { env: ['dev'] }, transitive_tag_keys: [] } }))).toBe('AccessDenied');
    const forged = (await token()).split('.');
    forged[1] = Buffer.from(JSON.stringify({ iss: ISS, sub: 'organization:acme:pipeline:deploy:x', aud: 'sts.amazonaws.com', exp: 9999999999 })).toString('base64url');
    expect(await assume(forged.join('.'))).toBe('InvalidIdentityTokenException');
  });
});

describe('RoleSessionName', () => {
  it('keeps job id and build number whole, shortens the pipeline, and stays within AWS rules', () => {
    const job = { pipeline_slug: 'a-very-long-pipeline-slug-that-goes-on-and-on-and-on', build_number: 123456, job_id: '0190f1e2-3a4b-7c5d-8e9f-0a1b2c3d4e5f' };
    const name = roleSessionName(job);
    expect(name).toMatch(/^[\w+=,.@-]{2,64}$/);
    expect(name.endsWith('-123456-0190f1e2-3a4b-7c5d-8e9f-0a1b2c3d4e5f')).toBe(true);
    expect(name.startsWith('bk-a-very-long')).toBe(true);
    expect(roleSessionName({ pipeline_slug: 'deploy', build_number: 7, job_id: 'j1' })).toBe('bk-deploy-7-j1');
    expect(roleSessionName({ pipeline_slug: 'ünïcode pipe', build_number: 7, job_id: 'j1' })).toMatch(/^[\w+=,.@-]+$/);
  });
});
