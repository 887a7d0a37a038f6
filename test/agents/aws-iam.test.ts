import { createServer } from 'node:net';
import { Sha256 } from '@aws-crypto/sha256-js';
import { fromInstanceMetadata } from '@aws-sdk/credential-providers';
import { SignatureV4 } from '@smithy/signature-v4';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AwsIamVerifier, signCallerIdentityRequest, type SignedCallerIdentityRequest } from '../../src/agents/attestation/aws-iam.js';
import { AttestationError } from '../../src/agents/attestation/errors.js';
import { createTestCertificateAuthority, ImdsSimulator } from '../../src/sim/aws-imds/index.js';
import { AwsSimError, StsSimulator, type IssuedSession } from '../../src/sim/aws-sts/index.js';

const SERVER_ID = 'https://port.example.test';
const USER = { name: 'ops', accessKeyId: 'AKIAOPSSIMULATOR001', secretAccessKey: 'ops-sim-secret-0123456789abcdefghijkl' };
const INSTANCE = 'i-0a1b2c3d4e5f60718';

let sts: StsSimulator;
let session: IssuedSession;
let verifier: AwsIamVerifier;

beforeAll(async () => {
  sts = await StsSimulator.start({ users: [USER], roles: [{ name: 'buildkite-agent', trust: { ec2: true } }, { name: 'not-for-ec2', trust: { users: ['ops'] } }] });
  session = sts.issueInstanceRoleSession('buildkite-agent', INSTANCE);
  verifier = new AwsIamVerifier({ stsEndpoint: sts.url, serverId: SERVER_ID, maxAge: 300 });
});
afterAll(() => sts.close());

const creds = (s: IssuedSession = session) => ({ accessKeyId: s.accessKeyId, secretAccessKey: s.secretAccessKey, sessionToken: s.sessionToken });
const sign = (o: Partial<Parameters<typeof signCallerIdentityRequest>[0]> = {}): SignedCallerIdentityRequest =>
  signCallerIdentityRequest({ credentials: creds(), region: 'us-east-1', stsEndpoint: sts.url, serverId: SERVER_ID, ...o });

async function refusal(p: Promise<unknown>): Promise<AttestationError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AttestationError);
  return err as AttestationError;
}

/** The refusal happened before Port sent anything to STS. */
async function refusedLocally(req: SignedCallerIdentityRequest, now?: number): Promise<AttestationError> {
  const before = sts.calls.length;
  const err = await refusal(verifier.verify(req, now));
  expect(sts.calls.length).toBe(before);
  expect(err.code).toBe('invalid_attestation');
  expect(err.status).toBe(400);
  return err;
}

describe('aws_iam attestation: a signed sts:GetCallerIdentity verified through STS', () => {
  it('answers the instance role and the instance id session of an instance profile, credentials read by the AWS SDK from IMDS', async () => {
    const imds = await ImdsSimulator.start({ instance: { region: 'eu-west-1', instanceId: 'i-0fedcba9876543210' }, ca: createTestCertificateAuthority({ modulusLength: 1024 }), sts, roleName: 'buildkite-agent' });
    const saved = process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT;
    process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT = imds.url;
    try {
      const fromHost = await fromInstanceMetadata({ maxRetries: 0 })();
      const req = sign({ credentials: { accessKeyId: fromHost.accessKeyId, secretAccessKey: fromHost.secretAccessKey, sessionToken: fromHost.sessionToken! } });
      const id = await verifier.verify(req);
      expect(id).toMatchObject({
        arn: `arn:aws:sts::${sts.accountId}:assumed-role/buildkite-agent/i-0fedcba9876543210`,
        account: sts.accountId,
        iamRole: `arn:aws:iam::${sts.accountId}:role/buildkite-agent`,
        sessionName: 'i-0fedcba9876543210',
      });
      expect(id.userId).toMatch(/^AROA[A-Z0-9]+:i-0fedcba9876543210$/);
      expect(id.replayKey).toMatch(/^aws_iam:[A-Za-z0-9_-]{43}$/);
      expect(Math.abs(id.signedAt - Date.now())).toBeLessThan(60_000);
      const call = sts.calls.at(-1)!;
      expect(call).toMatchObject({ action: 'GetCallerIdentity', outcome: 'ok', caller: id.arn });
    } finally {
      if (saved === undefined) delete process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT;
      else process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT = saved;
      await imds.close();
    }
  });

  it('signs exactly as the AWS SDK signer does, including the X-Port-Server-ID header', async () => {
    const now = new Date('2030-05-06T07:08:09Z');
    const req = sign({ now });
    expect(req.method).toBe('POST');
    expect(req.url).toBe(`${sts.url}/`);
    expect(Buffer.from(req.body, 'base64').toString()).toBe('Action=GetCallerIdentity&Version=2011-06-15');
    expect(req.headers['X-Port-Server-ID']).toBe(SERVER_ID);
    expect(req.headers['X-Amz-Date']).toBe('20300506T070809Z');
    const host = new URL(sts.url).host;
    const sdk = await new SignatureV4({ credentials: creds(), region: 'us-east-1', service: 'sts', sha256: Sha256, applyChecksum: false }).sign(
      { method: 'POST', protocol: 'http:', hostname: host, path: '/', query: {}, headers: { host, 'content-type': 'application/x-www-form-urlencoded; charset=utf-8', 'x-port-server-id': SERVER_ID }, body: 'Action=GetCallerIdentity&Version=2011-06-15' },
      { signingDate: now },
    );
    expect(req.headers.Authorization).toBe(sdk.headers.authorization);
    expect(req.headers.Authorization).toContain('SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-port-server-id,');
    expect(() => sign({ serverId: 'port\r\nInjected: 1' })).toThrow(AttestationError);
    expect(() => sign({ stsEndpoint: 'https://sts.amazonaws.com/?Action=AssumeRole' })).toThrow(AttestationError);
    expect(() => sign({ region: 'us-east-1/../x' })).toThrow(AttestationError);
  });

  it('forwards only the whitelisted headers and drops what else the client sent', async () => {
    const req = sign();
    await verifier.verify({ ...req, headers: { ...req.headers, 'User-Agent': 'port-agent', Cookie: 'session=1', 'X-Forwarded-For': '10.0.0.1' } });
    const names = sts.calls.at(-1)!.headerNames!;
    expect(names).toEqual(expect.arrayContaining(['authorization', 'host', 'x-amz-date', 'x-amz-security-token', 'x-port-server-id', 'content-type']));
    for (const dropped of ['user-agent', 'cookie', 'x-forwarded-for']) expect(names).not.toContain(dropped);
  });

  it('refuses a request signed for another Port, even with the header value rewritten (the signature covers it)', async () => {
    const forOther = sign({ serverId: 'https://other-port.example.test' });
    const err = await refusedLocally(forOther);
    expect(err.message).toContain('X-Port-Server-ID');
    // Rewriting the header to this Port's value breaks the signature: STS refuses.
    const rewritten = { ...forOther, headers: { ...forOther.headers, 'X-Port-Server-ID': SERVER_ID } };
    const failed = await refusal(verifier.verify(rewritten));
    expect(failed.code).toBe('attestation_failed');
    expect(failed.status).toBe(403);
    expect(failed.message).toContain('SignatureDoesNotMatch');
    expect(sts.calls.at(-1)!.outcome).toBe('SignatureDoesNotMatch');
  });

  it('refuses a request whose server id, host or date header is not signed', async () => {
    const host = new URL(sts.url).host;
    // Signed like a client of another system would (no X-Port-Server-ID signed), header added afterwards.
    const sdk = await new SignatureV4({ credentials: creds(), region: 'us-east-1', service: 'sts', sha256: Sha256, applyChecksum: false }).sign({
      method: 'POST',
      protocol: 'http:',
      hostname: host,
      path: '/',
      query: {},
      headers: { host, 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' },
      body: 'Action=GetCallerIdentity&Version=2011-06-15',
    });
    const unsigned: SignedCallerIdentityRequest = {
      method: 'POST',
      url: `${sts.url}/`,
      headers: { ...(sdk.headers as Record<string, string>), 'x-port-server-id': SERVER_ID },
      body: Buffer.from('Action=GetCallerIdentity&Version=2011-06-15').toString('base64'),
    };
    expect((await refusedLocally(unsigned)).message).toContain('must sign the x-port-server-id header');
    const req = sign();
    const drop = (name: string) => ({ ...req, headers: { ...req.headers, Authorization: req.headers.Authorization!.replace(new RegExp(`(SignedHeaders=[^,]*?)\\b${name};?`), '$1').replace(';,', ',') } });
    expect((await refusedLocally(drop('host'))).message).toContain('host');
    expect((await refusedLocally(drop('x-amz-date'))).message).toContain('x-amz-date');
    expect((await refusedLocally(drop('x-amz-security-token'))).message).toContain('x-amz-security-token without signing it');
    const noAuth = { ...req, headers: { ...req.headers } };
    delete noAuth.headers.Authorization;
    expect((await refusedLocally(noAuth)).message).toContain('AWS4-HMAC-SHA256');
  });

  it('refuses a stale and a future X-Amz-Date (both beyond max_age) but accepts one inside it', async () => {
    const now = Date.now();
    expect((await refusedLocally(sign({ now: new Date(now - 301_000) }), now)).message).toContain('max_age');
    expect((await refusedLocally(sign({ now: new Date(now + 301_000) }), now)).message).toContain('max_age');
    await expect(verifier.verify(sign({ now: new Date(now - 240_000) }), now)).resolves.toMatchObject({ sessionName: INSTANCE });
    // The same request, verified later than max_age after it was signed.
    const req = sign({ now: new Date(now) });
    await refusedLocally(req, now + 301_000);
  });

  it('fails with STS\'s code, never its message or the request, when the signature or the credentials are wrong', async () => {
    const req = sign();
    const sig = /Signature=([0-9a-f]{64})$/.exec(req.headers.Authorization!)![1]!;
    const flipped = sig.slice(0, -1) + (sig.endsWith('0') ? '1' : '0');
    const tampered = { ...req, headers: { ...req.headers, Authorization: req.headers.Authorization!.replace(sig, flipped) } };
    const err = await refusal(verifier.verify(tampered));
    expect(err).toMatchObject({ code: 'attestation_failed', status: 403 });
    expect(err.message).toBe('AWS STS refused the signed sts:GetCallerIdentity request (SignatureDoesNotMatch).');
    const wrongSecret = await refusal(verifier.verify(sign({ credentials: { ...creds(), secretAccessKey: 'wrong-secret' } })));
    expect(wrongSecret.message).toContain('(SignatureDoesNotMatch)');
    const forged = await refusal(verifier.verify(sign({ credentials: { ...creds(), sessionToken: 'forged-token' } })));
    expect(forged.message).toContain('(InvalidClientTokenId)');
    const old = sts.issueInstanceRoleSession('buildkite-agent', 'i-00000000000000001');
    old.expiresAt = Date.now() - 1;
    const expired = await refusal(verifier.verify(sign({ credentials: creds(old) })));
    expect(expired.message).toContain('(ExpiredToken)');
    for (const e of [err, wrongSecret, forged, expired]) {
      expect(e.message).not.toContain(session.sessionToken);
      expect(e.message).not.toContain(flipped);
      expect(e.message).not.toContain('calculate');
    }
  });

  it('refuses a request signed by an IAM user or a role session that is not an instance role\'s', async () => {
    const err = await refusal(verifier.verify(sign({ credentials: { accessKeyId: USER.accessKeyId, secretAccessKey: USER.secretAccessKey } })));
    expect(err).toMatchObject({ code: 'attestation_failed', status: 403 });
    expect(err.message).toContain(`arn:aws:iam::${sts.accountId}:user/ops (an IAM user)`);
    expect(() => sts.issueInstanceRoleSession('not-for-ec2', INSTANCE)).toThrow(AwsSimError);
  });

  it('refuses another endpoint, URL, host or action before sending anything', async () => {
    const req = sign();
    expect((await refusedLocally(sign({ stsEndpoint: 'https://sts.amazonaws.com' }))).message).toContain(`${sts.url}/`);
    await refusedLocally({ ...req, url: `${sts.url}/other` });
    await refusedLocally({ ...req, url: `${sts.url}/?Action=AssumeRole` });
    await refusedLocally({ ...req, url: `${sts.url}/#x` });
    await refusedLocally({ ...req, url: sts.url.replace('http:', 'https:') + '/' });
    await refusedLocally({ ...req, url: 'not a url' });
    expect((await refusedLocally({ ...req, headers: { ...req.headers, Host: 'evil.example' } })).message).toContain('Host header');
    const body = (s: string) => ({ ...req, body: Buffer.from(s).toString('base64') });
    await refusedLocally(body('Action=AssumeRole&Version=2011-06-15&RoleArn=arn:aws:iam::123456789012:role/admin'));
    await refusedLocally(body('Action=GetCallerIdentity&Version=2011-06-15&Action=AssumeRole'));
    await refusedLocally(body('Action=GetCallerIdentity&Version=2011-06-15&DurationSeconds=900'));
    await refusedLocally(body('Action=GetCallerIdentity&Version=2012-01-01'));
    await refusedLocally({ ...req, body: 'not base64!' });
    await refusedLocally({ ...req, method: 'GET' as 'POST' });
    await refusedLocally({ ...req, headers: { ...req.headers, 'Content-Type': 'application/json' } });
    await refusedLocally({ ...req, headers: { ...req.headers, authorization: req.headers.Authorization! } });
    // A signed header Port would not forward.
    const extraSigned = { ...req, headers: { ...req.headers, Authorization: req.headers.Authorization!.replace('SignedHeaders=', 'SignedHeaders=cookie;'), Cookie: 'a=b' } };
    expect((await refusedLocally(extraSigned)).message).toContain('cookie');
  });

  it('refuses oversized input before sending anything', async () => {
    const req = sign();
    await refusedLocally({ ...req, headers: { ...req.headers, 'X-Padding': 'a'.repeat(9000) } });
    await refusedLocally({ ...req, headers: { ...req.headers, ...Object.fromEntries(Array.from({ length: 3 }, (_, i) => [`X-Pad-${i}`, 'a'.repeat(8000)])) } });
    await refusedLocally({ ...req, headers: { ...req.headers, ...Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`X-Pad-${i}`, 'a'])) } });
    await refusedLocally({ ...req, body: Buffer.from(`Action=GetCallerIdentity&Version=2011-06-15&${'a'.repeat(2000)}`).toString('base64') });
    await refusedLocally({ ...req, url: `${sts.url}/${'a'.repeat(3000)}` });
    await refusedLocally({ ...req, headers: { ...req.headers, 'X-Bad': 'line\r\nInjected: 1' } });
    await refusedLocally(null as unknown as SignedCallerIdentityRequest);
  });

  it('is unavailable (503) when STS is down, slow or failing, and never retries into success', async () => {
    const free = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const port = (s.address() as { port: number }).port;
        s.close(() => resolve(port));
      });
    });
    const down = `http://127.0.0.1:${free}`;
    const offline = new AwsIamVerifier({ stsEndpoint: down, serverId: SERVER_ID, maxAge: 300 });
    const err = await refusal(offline.verify(sign({ stsEndpoint: down })));
    expect(err).toMatchObject({ code: 'attestation_unavailable', status: 503 });
    expect(err.message).toContain('ECONNREFUSED');

    sts.failWith = new AwsSimError('ServiceUnavailable', 'down', 503, 'Receiver');
    try {
      expect(await refusal(verifier.verify(sign()))).toMatchObject({ code: 'attestation_unavailable', status: 503 });
    } finally {
      sts.failWith = undefined;
    }
    sts.delayMs = 2000;
    try {
      const quick = new AwsIamVerifier({ stsEndpoint: sts.url, serverId: SERVER_ID, maxAge: 300, timeoutMs: 200 });
      const slow = await refusal(quick.verify(sign()));
      expect(slow).toMatchObject({ code: 'attestation_unavailable' });
      expect(slow.message).toContain('within 200 ms');
    } finally {
      sts.delayMs = undefined;
    }
  });
});

describe('aws_iam attestation: reading what the STS endpoint answers', () => {
  /** An endpoint answering canned bodies, to check the parser on STS's documented layout and on hostile ones. */
  async function cannedSts(status: number, body: string, headers: Record<string, string> = {}) {
    const { createServer: createHttpServer } = await import('node:http');
    let hits = 0;
    const server = createHttpServer((req, res) => {
      hits++;
      req.resume();
      res.writeHead(status, { 'content-type': 'text/xml', ...headers });
      res.end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    const v = new AwsIamVerifier({ stsEndpoint: url, serverId: SERVER_ID, maxAge: 300 });
    const run = () => v.verify(signCallerIdentityRequest({ credentials: creds(), region: 'us-east-1', stsEndpoint: url, serverId: SERVER_ID }));
    return { run, hits: () => hits, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
  }

  it('reads the layout of the API reference example, entities decoded', async () => {
    const ok = await cannedSts(
      200,
      `<?xml version="1.0" encoding="UTF-8"?>
<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <GetCallerIdentityResult>
    <Arn>arn:aws:sts::123456789012:assumed-role/deploy.agent@ci/i-0123456789abcdef0</Arn>
    <UserId>AROA123EXAMPLE123:i-0123456789abcdef0</UserId>
    <Account>123456789012</Account>
  </GetCallerIdentityResult>
  <ResponseMetadata>
    <RequestId>01234567-89ab-cdef-0123-456789abcdef</RequestId>
  </ResponseMetadata>
</GetCallerIdentityResponse>
`,
    );
    try {
      expect(await ok.run()).toMatchObject({ iamRole: 'arn:aws:iam::123456789012:role/deploy.agent@ci', sessionName: 'i-0123456789abcdef0', account: '123456789012' });
    } finally {
      await ok.close();
    }
  });

  it('treats a redirect, a repeated or nested element and a mismatched account as no answer or a failure', async () => {
    const result = (inner: string) => `<GetCallerIdentityResponse><GetCallerIdentityResult>${inner}</GetCallerIdentityResult></GetCallerIdentityResponse>`;
    const arn = '<Arn>arn:aws:sts::123456789012:assumed-role/r/i-0123456789abcdef0</Arn>';
    const user = '<UserId>AROAX:i-0123456789abcdef0</UserId>';
    const cases: [number, string, string, Record<string, string>?][] = [
      [302, '', 'attestation_unavailable', { location: 'http://169.254.169.254/' }],
      [200, result(`${arn}${arn}${user}<Account>123456789012</Account>`), 'attestation_unavailable'],
      [200, result(`<Arn><b>x</b></Arn>${user}<Account>123456789012</Account>`), 'attestation_unavailable'],
      [200, result(`${arn}${user}<Account>123456789012</Account>`).replace('<GetCallerIdentityResult>', '<GetCallerIdentityResult><GetCallerIdentityResult>'), 'attestation_unavailable'],
      [200, result(`${arn}${user}<Account>210987654321</Account>`), 'attestation_failed'],
      [200, result(`${arn}<UserId>AROAX:i-other</UserId><Account>123456789012</Account>`), 'attestation_failed'],
      [200, result(`<Arn>arn:aws:iam::123456789012:root</Arn><UserId>123456789012</UserId><Account>123456789012</Account>`), 'attestation_failed'],
      [400, '<html>bad gateway</html>', 'attestation_unavailable'],
      [400, '<ErrorResponse><Error><Code>Throttling</Code></Error></ErrorResponse>', 'attestation_unavailable'],
      [403, '<ErrorResponse><Error><Code>AccessDenied</Code><Message>secret detail</Message></Error></ErrorResponse>', 'attestation_failed'],
    ];
    for (const [status, body, code, headers] of cases) {
      const sts2 = await cannedSts(status, body, headers);
      try {
        const err = await refusal(sts2.run());
        expect(err.code, body).toBe(code);
        expect(err.message).not.toContain('secret detail');
        expect(sts2.hits()).toBe(1);
      } finally {
        await sts2.close();
      }
    }
  });
});
