import { verify as verifySignature, X509Certificate } from 'node:crypto';
import { ConfigError } from '../../errors.js';
import { hasDuplicateMembers } from '../../identity/json-duplicates.js';
import { AttestationError } from './errors.js';

/** What a verified EC2 instance identity document says. */
export interface InstanceIdentity {
  instanceId: string;
  accountId: string;
  region: string;
  /** When the instance was launched, milliseconds since the epoch. */
  pendingTime: number;
  availabilityZone?: string;
  imageId?: string;
  instanceType?: string;
}

export interface AwsIidVerifierOptions {
  /** Region (or `default`) → PEM of AWS's RSA certificate for that region. */
  certificates: Record<string, string>;
}

/** IMDS documents are ~500 bytes. */
const MAX_DOCUMENT_BYTES = 8 * 1024;
/** Base64 of an RSA signature of up to 4096 bits, with line breaks. */
const MAX_SIGNATURE_CHARS = 1024;
const REGION = /^[a-z]{2}(-[a-z]+)+-\d+$/;
const INSTANCE_ID = /^i-(?:[0-9a-f]{8}|[0-9a-f]{17})$/;
const ACCOUNT_ID = /^\d{12}$/;
const PENDING_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?Z$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Verifies an EC2 instance identity document with its base64 `signature`
 * (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/verify-iid.html, option "base64-encoded
 * signature"): an RSA PKCS #1 v1.5 signature over the SHA-256 of the document's exact bytes,
 * verified with the public key of AWS's RSA certificate for the document's region
 * (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/regions-certs.html). This variant,
 * because node:crypto verifies it directly; the `pkcs7` variant is SHA-1 with DSA and the
 * `rsa2048` one is a CMS structure that would need a CMS parser.
 *
 * A valid document alone is NOT proof that the caller is that instance: it is static for the
 * instance's whole life, and any process on the instance (or anything that can make it fetch
 * a URL, SSRF) can read it and replay it from anywhere, forever. So Port binds the instance
 * to a host key the first time it attests, and only within `attestation.aws_iid.max_age` of
 * `pendingTime` (a fresh instance, before jobs ran on it); later attestations must prove
 * possession of that same key (DPoP). The attestation service does that binding with the
 * store; this class only says whether AWS signed the document.
 */
export class AwsIidVerifier {
  private readonly certificates = new Map<string, X509Certificate>();

  constructor(o: AwsIidVerifierOptions) {
    for (const [region, pem] of Object.entries(o.certificates)) {
      const at = `attestation.aws_iid.certificates.${region}`;
      if (region !== 'default' && !REGION.test(region)) throw new ConfigError(`${at}: the key must be an AWS region name or default.`);
      let cert: X509Certificate;
      try {
        cert = new X509Certificate(pem);
      } catch (err) {
        throw new ConfigError(`${at}: not a PEM X.509 certificate; use the region's RSA certificate from the EC2 documentation.`, { cause: err });
      }
      if (cert.publicKey.asymmetricKeyType !== 'rsa') {
        throw new ConfigError(`${at}: the certificate's key is not RSA; the base64 signature variant needs the region's RSA certificate (not DSA).`);
      }
      this.certificates.set(region, cert);
    }
  }

  verify(document: string, signatureBase64: string, now = Date.now()): InstanceIdentity {
    if (typeof document !== 'string' || Buffer.byteLength(document) > MAX_DOCUMENT_BYTES) {
      throw invalid(`The instance identity document must be text of at most ${MAX_DOCUMENT_BYTES} bytes.`);
    }
    const signature = decodeSignature(signatureBase64);
    const doc = parseDocument(document);
    const region = doc.region;
    if (typeof region !== 'string' || !REGION.test(region)) throw invalid('The instance identity document has no valid region.');

    const cert = this.certificates.get(region) ?? this.certificates.get('default');
    if (cert === undefined) {
      throw new AttestationError('attestation_failed', `Port has no certificate for the region ${region}; add attestation.aws_iid.certificates.${region} (or default).`);
    }
    const from = Date.parse(cert.validFrom);
    const to = Date.parse(cert.validTo);
    if (!(now >= from && now <= to)) {
      throw new AttestationError('attestation_failed', `The certificate Port has for the region ${region} is not valid now (valid ${cert.validFrom} to ${cert.validTo}); update attestation.aws_iid.certificates.`);
    }
    if (!verifySignature('sha256', Buffer.from(document, 'utf8'), cert.publicKey, signature)) {
      throw new AttestationError('attestation_failed', `The instance identity document's signature does not verify with the certificate for ${region}.`);
    }
    return identityOf(doc, region);
  }
}

function decodeSignature(raw: unknown): Buffer {
  if (typeof raw !== 'string' || raw.length > MAX_SIGNATURE_CHARS) throw invalid(`The instance identity signature must be base64 of at most ${MAX_SIGNATURE_CHARS} characters.`);
  // IMDS may wrap the base64; line breaks are not part of the signature.
  const compact = raw.replace(/[\r\n]/g, '');
  if (compact === '' || !BASE64.test(compact)) throw invalid('The instance identity signature is not base64.');
  return Buffer.from(compact, 'base64');
}

function parseDocument(text: string): Record<string, unknown> {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw invalid('The instance identity document is not JSON.');
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw invalid('The instance identity document is not a JSON object.');
  if (hasDuplicateMembers(text)) throw invalid('The instance identity document names a field twice.');
  return doc as Record<string, unknown>;
}

/** Required fields must be present and well formed; optional ones, when present, too. */
function identityOf(doc: Record<string, unknown>, region: string): InstanceIdentity {
  const field = (name: string, re: RegExp): string => {
    const v = doc[name];
    if (typeof v !== 'string' || !re.test(v)) throw invalid(`The instance identity document's ${name} is missing or malformed.`);
    return v;
  };
  const optional = (name: string, ok: (v: string) => boolean): string | undefined => {
    const v = doc[name];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string' || !ok(v)) throw invalid(`The instance identity document's ${name} is malformed.`);
    return v;
  };
  const pendingTime = Date.parse(field('pendingTime', PENDING_TIME));
  if (Number.isNaN(pendingTime)) throw invalid("The instance identity document's pendingTime is not a date.");
  const availabilityZone = optional('availabilityZone', (v) => v.startsWith(region) && /^[a-z0-9-]{1,40}$/.test(v));
  const imageId = optional('imageId', (v) => /^ami-[0-9a-f]{8,17}$/.test(v));
  const instanceType = optional('instanceType', (v) => /^[a-z0-9][a-z0-9.-]{0,39}$/.test(v));
  return {
    instanceId: field('instanceId', INSTANCE_ID),
    accountId: field('accountId', ACCOUNT_ID),
    region,
    pendingTime,
    ...(availabilityZone !== undefined ? { availabilityZone } : {}),
    ...(imageId !== undefined ? { imageId } : {}),
    ...(instanceType !== undefined ? { instanceType } : {}),
  };
}

function invalid(message: string): AttestationError {
  return new AttestationError('invalid_attestation', message);
}
