import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AwsIidVerifier } from '../../src/agents/attestation/aws-iid.js';
import { AttestationError } from '../../src/agents/attestation/errors.js';
import { ConfigError } from '../../src/errors.js';
import { createTestCertificateAuthority, ImdsSimulator, type TestCertificateAuthority } from '../../src/sim/aws-imds/index.js';

let aws: TestCertificateAuthority;
let other: TestCertificateAuthority;
let imds: ImdsSimulator;
const PENDING = new Date('2031-02-03T04:05:06Z');

beforeAll(async () => {
  aws = createTestCertificateAuthority();
  other = createTestCertificateAuthority({ organization: 'Not AWS' });
  imds = await ImdsSimulator.start({
    instance: { region: 'eu-west-1', instanceId: 'i-0123456789abcdef0', accountId: '210987654321', pendingTime: PENDING, instanceType: 'c7g.large' },
    ca: aws,
  });
});
afterAll(() => imds.close());

/** The document and signature as an agent host reads them (IMDSv2). */
async function fromImds(): Promise<{ document: string; signature: string }> {
  const token = await (await fetch(`${imds.url}/latest/api/token`, { method: 'PUT', headers: { 'X-aws-ec2-metadata-token-ttl-seconds': '60' } })).text();
  const get = async (p: string) => (await fetch(`${imds.url}/latest/dynamic/instance-identity/${p}`, { headers: { 'X-aws-ec2-metadata-token': token } })).text();
  return { document: await get('document'), signature: await get('signature') };
}

function refusal(f: () => unknown): AttestationError {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(AttestationError);
    return err as AttestationError;
  }
  throw new Error('expected a refusal');
}

describe('aws_iid attestation: the instance identity document and its base64 RSA signature', () => {
  it('verifies a document served by IMDS with the region\'s certificate', async () => {
    const { document, signature } = await fromImds();
    const id = new AwsIidVerifier({ certificates: { 'eu-west-1': aws.certificatePem } }).verify(document, signature);
    expect(id).toEqual({
      instanceId: 'i-0123456789abcdef0',
      accountId: '210987654321',
      region: 'eu-west-1',
      pendingTime: PENDING.getTime(),
      availabilityZone: 'eu-west-1a',
      imageId: 'ami-0abcdef1234567890',
      instanceType: 'c7g.large',
    });
    // `default` covers regions not listed; a line-wrapped signature is the same signature.
    const wrapped = signature.replace(/(.{64})/g, '$1\n');
    expect(new AwsIidVerifier({ certificates: { 'us-east-1': other.certificatePem, default: aws.certificatePem } }).verify(document, wrapped).instanceId).toBe('i-0123456789abcdef0');
  });

  it('refuses a tampered document, even a re-indented one', async () => {
    const { document, signature } = await fromImds();
    const v = new AwsIidVerifier({ certificates: { default: aws.certificatePem } });
    for (const doc of [document.replace('i-0123456789abcdef0', 'i-0fffffffffffffff0'), document.replace('210987654321', '123456789012'), JSON.stringify(JSON.parse(document))]) {
      const err = refusal(() => v.verify(doc, signature));
      expect(err).toMatchObject({ code: 'attestation_failed', status: 403 });
      expect(err.message).toBe("The instance identity document's signature does not verify with the certificate for eu-west-1.");
    }
  });

  it('refuses a signature made with another key, and the region certificate wins over default', async () => {
    const { document } = await fromImds();
    const forged = other.sign(document);
    expect(refusal(() => new AwsIidVerifier({ certificates: { default: aws.certificatePem } }).verify(document, forged)).code).toBe('attestation_failed');
    expect(refusal(() => new AwsIidVerifier({ certificates: { 'eu-west-1': other.certificatePem, default: aws.certificatePem } }).verify(document, aws.sign(document))).code).toBe('attestation_failed');
  });

  it('refuses with a certificate outside its validity window', async () => {
    const { document } = await fromImds();
    const expired = createTestCertificateAuthority({ notBefore: new Date('2020-01-01T00:00:00Z'), notAfter: new Date('2021-01-01T00:00:00Z'), modulusLength: 1024 });
    const err = refusal(() => new AwsIidVerifier({ certificates: { 'eu-west-1': expired.certificatePem } }).verify(document, expired.sign(document)));
    expect(err).toMatchObject({ code: 'attestation_failed', status: 403 });
    expect(err.message).toContain('is not valid now');
    const notYet = createTestCertificateAuthority({ notBefore: new Date(Date.now() + 86400_000), modulusLength: 1024 });
    expect(refusal(() => new AwsIidVerifier({ certificates: { 'eu-west-1': notYet.certificatePem } }).verify(document, notYet.sign(document))).message).toContain('is not valid now');
    // The same certificate verifies at a time inside its window.
    expect(new AwsIidVerifier({ certificates: { 'eu-west-1': expired.certificatePem } }).verify(document, expired.sign(document), Date.parse('2020-06-01T00:00:00Z')).region).toBe('eu-west-1');
  });

  it('refuses a region Port has no certificate for, naming it', async () => {
    const { document, signature } = await fromImds();
    const err = refusal(() => new AwsIidVerifier({ certificates: { 'us-east-1': aws.certificatePem } }).verify(document, signature));
    expect(err).toMatchObject({ code: 'attestation_failed', status: 403 });
    expect(err.message).toContain('attestation.aws_iid.certificates.eu-west-1');
  });

  it('refuses malformed, incomplete, duplicated and oversized input as invalid, even when signed', () => {
    const v = new AwsIidVerifier({ certificates: { default: aws.certificatePem } });
    const signed = (doc: string) => refusal(() => v.verify(doc, aws.sign(doc)));
    const base = { accountId: '210987654321', instanceId: 'i-0123456789abcdef0', region: 'eu-west-1', pendingTime: '2031-02-03T04:05:06Z' };
    const cases = [
      '{"accountId" : "210987654321", "region" : "eu-west-1"',
      '[]',
      'null',
      JSON.stringify({ ...base, instanceId: undefined }),
      JSON.stringify({ ...base, pendingTime: 'yesterday' }),
      JSON.stringify({ ...base, accountId: 210987654321 }),
      JSON.stringify({ ...base, instanceId: 'i-XYZ' }),
      JSON.stringify({ ...base, region: 'Mars' }),
      JSON.stringify({ ...base, availabilityZone: 'us-east-1a' }),
      JSON.stringify(base).replace('{', '{"region":"us-east-1",'),
      JSON.stringify({ ...base, padding: 'x'.repeat(9000) }),
    ];
    for (const doc of cases) {
      const err = signed(doc);
      expect(err.code, doc.slice(0, 80)).toBe('invalid_attestation');
      expect(err.status).toBe(400);
    }
    expect(v.verify(JSON.stringify(base), aws.sign(JSON.stringify(base))).instanceId).toBe('i-0123456789abcdef0');
    const doc = JSON.stringify(base);
    expect(refusal(() => v.verify(doc, 'not base64!')).code).toBe('invalid_attestation');
    expect(refusal(() => v.verify(doc, '')).code).toBe('invalid_attestation');
    expect(refusal(() => v.verify(doc, 'A'.repeat(2000))).code).toBe('invalid_attestation');
    expect(refusal(() => v.verify(doc, undefined as unknown as string)).code).toBe('invalid_attestation');
  });

  it('refuses a configuration that is not an RSA certificate per region', () => {
    expect(() => new AwsIidVerifier({ certificates: { default: 'not a certificate' } })).toThrow(ConfigError);
    expect(() => new AwsIidVerifier({ certificates: { Mars: aws.certificatePem } })).toThrow(/attestation\.aws_iid\.certificates\.Mars/);
  });
});
