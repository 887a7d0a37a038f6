import { createSign, generateKeyPairSync, randomBytes, X509Certificate, type KeyObject } from 'node:crypto';
import { bitString, nullValue, objectIdentifier, printableString, sequence, set, time, unsignedInteger, utf8String } from './der.js';

/**
 * A stand-in for the AWS key that signs instance identity documents: an RSA key and a
 * self-signed X.509 certificate for it, shaped like the per-region "RSA" certificates AWS
 * publishes for the base64 `/signature` variant
 * (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/regions-certs.html).
 */
export interface TestCertificateAuthority {
  certificatePem: string;
  certificate: X509Certificate;
  /** The base64 RSA-SHA256 (PKCS #1 v1.5) signature of a document, as IMDS serves `/signature`. */
  sign(document: string): string;
}

const SHA256_WITH_RSA = '1.2.840.113549.1.1.11';

export function createTestCertificateAuthority(o: { notBefore?: Date; notAfter?: Date; organization?: string; modulusLength?: number } = {}): TestCertificateAuthority {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: o.modulusLength ?? 2048 });
  const notBefore = o.notBefore ?? new Date(Date.now() - 86400_000);
  const notAfter = o.notAfter ?? new Date(Date.now() + 10 * 365 * 86400_000);
  const certificatePem = selfSignedCertificate(privateKey, publicKey, { notBefore, notAfter, organization: o.organization ?? 'Port test EC2 identity' });
  return {
    certificatePem,
    certificate: new X509Certificate(certificatePem),
    sign: (document) => createSign('sha256').update(document).sign(privateKey).toString('base64'),
  };
}

/** An X.509 v1 certificate (no extensions, like AWS's identity certificates), RFC 5280 §4.1. */
function selfSignedCertificate(privateKey: KeyObject, publicKey: KeyObject, o: { notBefore: Date; notAfter: Date; organization: string }): string {
  const algorithm = sequence(objectIdentifier(SHA256_WITH_RSA), nullValue());
  const name = sequence(
    set(sequence(objectIdentifier('2.5.4.6'), printableString('US'))),
    set(sequence(objectIdentifier('2.5.4.8'), utf8String('Washington State'))),
    set(sequence(objectIdentifier('2.5.4.7'), utf8String('Seattle'))),
    set(sequence(objectIdentifier('2.5.4.10'), utf8String(o.organization))),
  );
  const tbs = sequence(
    unsignedInteger(Buffer.concat([Buffer.from([0x01]), randomBytes(15)])),
    algorithm,
    name,
    sequence(time(o.notBefore), time(o.notAfter)),
    name,
    publicKey.export({ type: 'spki', format: 'der' }),
  );
  const signature = createSign('sha256').update(tbs).sign(privateKey);
  const cert = sequence(tbs, algorithm, bitString(signature));
  const b64 = cert.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`;
}
