import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { IssuedSession, StsSimulator } from '../aws-sts/index.js';
import type { TestCertificateAuthority } from './test-ca.js';

/** The EC2 instance the simulator describes. */
export interface SimInstance {
  /** Default: a random `i-` id of 17 hex digits. */
  instanceId?: string;
  region: string;
  /** Default: the STS simulator's account, else 123456789012. */
  accountId?: string;
  /** Default: `<region>a`. */
  availabilityZone?: string;
  imageId?: string;
  instanceType?: string;
  privateIp?: string;
  /** When the instance was launched; default: now. */
  pendingTime?: Date;
}

export interface ImdsSimulatorOptions {
  instance: SimInstance;
  /** Signs the identity document (`/signature`). */
  ca: TestCertificateAuthority;
  /** Issues the instance profile's credentials; needed with `roleName`. */
  sts?: StsSimulator;
  /** The instance profile's role (must trust ec2 in the STS simulator). */
  roleName?: string;
  /** `required` (IMDSv2 only, the default) or `optional` (IMDSv1 answered too). */
  httpTokens?: 'required' | 'optional';
}

export interface ImdsRequestRecord {
  method: string;
  path: string;
  status: number;
  /** Whether an IMDSv2 session token came with it. */
  withToken: boolean;
}

const TOKEN_TTL_HEADER = 'x-aws-ec2-metadata-token-ttl-seconds';
const TOKEN_HEADER = 'x-aws-ec2-metadata-token';
const MAX_TOKEN_TTL = 21600;
/** EC2 renews instance profile credentials well before they expire; so does the simulator. */
const RENEW_BEFORE_MS = 15 * 60 * 1000;

/**
 * A local EC2 instance metadata service (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/configuring-instance-metadata-service.html):
 * IMDSv2 session tokens (`PUT /latest/api/token`), the instance identity document and its
 * base64 RSA `signature` (signed by a test certificate authority), and the instance
 * profile's credentials in the format AWS SDKs read. Point an SDK at it with
 * `AWS_EC2_METADATA_SERVICE_ENDPOINT=<url>`.
 */
export class ImdsSimulator {
  readonly requests: ImdsRequestRecord[] = [];
  readonly instanceId: string;
  readonly document: string;
  readonly signature: string;
  private readonly tokens = new Map<string, number>();
  private session: IssuedSession | undefined;

  private constructor(
    private readonly server: Server,
    readonly url: string,
    private readonly o: ImdsSimulatorOptions,
  ) {
    const i = o.instance;
    this.instanceId = i.instanceId ?? `i-${randomBytes(9).toString('hex').slice(0, 17)}`;
    this.document = identityDocument({
      accountId: i.accountId ?? o.sts?.accountId ?? '123456789012',
      architecture: 'x86_64',
      availabilityZone: i.availabilityZone ?? `${i.region}a`,
      billingProducts: null,
      devpayProductCodes: null,
      marketplaceProductCodes: null,
      imageId: i.imageId ?? 'ami-0abcdef1234567890',
      instanceId: this.instanceId,
      instanceType: i.instanceType ?? 't3.micro',
      kernelId: null,
      pendingTime: isoSeconds(i.pendingTime ?? new Date()),
      privateIp: i.privateIp ?? '10.0.1.17',
      ramdiskId: null,
      region: i.region,
      version: '2017-09-30',
    });
    this.signature = o.ca.sign(this.document);
    if (o.roleName !== undefined && o.sts === undefined) throw new TypeError('roleName needs the STS simulator that issues its credentials.');
  }

  static async start(o: ImdsSimulatorOptions): Promise<ImdsSimulator> {
    let sim: ImdsSimulator | undefined;
    const server = createServer((req, res) => sim!.handle(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    sim = new ImdsSimulator(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`, o);
    return sim;
  }

  /** The instance profile credentials IMDS currently hands out (issued, and renewed, on demand). */
  credentials(now = Date.now()): IssuedSession {
    if (this.o.sts === undefined || this.o.roleName === undefined) throw new TypeError('This simulated instance has no instance profile.');
    if (this.session === undefined || this.session.expiresAt - now < RENEW_BEFORE_MS) {
      this.session = this.o.sts.issueInstanceRoleSession(this.o.roleName, this.instanceId);
    }
    return this.session;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0]!;
    const token = req.headers[TOKEN_HEADER];
    const send = (status: number, body: string, headers: Record<string, string> = {}): void => {
      this.requests.push({ method: req.method ?? '', path, status, withToken: token !== undefined });
      res.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body), ...headers });
      res.end(body);
    };
    req.resume();
    if (path === '/latest/api/token') {
      if (req.method !== 'PUT') return send(405, 'Method Not Allowed');
      // IMDS refuses token requests that went through a proxy (X-Forwarded-For), so a
      // misconfigured forwarder on the instance can't hand tokens out.
      if (req.headers['x-forwarded-for'] !== undefined) return send(403, 'Forbidden');
      const ttl = Number(req.headers[TOKEN_TTL_HEADER]);
      if (!Number.isInteger(ttl) || ttl < 1 || ttl > MAX_TOKEN_TTL) return send(400, 'Bad Request');
      const value = randomBytes(42).toString('base64');
      this.tokens.set(value, Date.now() + ttl * 1000);
      return send(200, value, { [TOKEN_TTL_HEADER]: String(ttl) });
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'Method Not Allowed');
    if (token !== undefined) {
      const expires = typeof token === 'string' ? this.tokens.get(token) : undefined;
      if (expires === undefined || expires <= Date.now()) return send(401, 'Unauthorized');
    } else if ((this.o.httpTokens ?? 'required') === 'required') {
      return send(401, 'Unauthorized');
    }
    const body = this.answer(path);
    return body === undefined ? send(404, 'Not Found') : send(200, body.text, body.json ? { 'content-type': 'application/json' } : {});
  }

  private answer(path: string): { text: string; json?: boolean } | undefined {
    const region = this.o.instance.region;
    const role = this.o.roleName;
    const credsPrefix = '/latest/meta-data/iam/security-credentials/';
    switch (path) {
      case '/latest/dynamic/instance-identity/':
        return { text: 'document\nsignature' };
      case '/latest/dynamic/instance-identity/document':
        return { text: this.document };
      case '/latest/dynamic/instance-identity/signature':
        return { text: this.signature };
      case '/latest/meta-data/instance-id':
        return { text: this.instanceId };
      case '/latest/meta-data/placement/region':
        return { text: region };
      case '/latest/meta-data/placement/availability-zone':
        return { text: this.o.instance.availabilityZone ?? `${region}a` };
      case credsPrefix:
        return role === undefined ? undefined : { text: role };
    }
    if (role === undefined || path !== `${credsPrefix}${role}`) return undefined;
    const s = this.credentials();
    // The format AWS SDKs read ("Retrieve security credentials from instance metadata").
    return {
      json: true,
      text: JSON.stringify(
        {
          Code: 'Success',
          LastUpdated: isoSeconds(new Date(s.expiresAt - s.duration * 1000)),
          Type: 'AWS-HMAC',
          AccessKeyId: s.accessKeyId,
          SecretAccessKey: s.secretAccessKey,
          Token: s.sessionToken,
          Expiration: isoSeconds(new Date(s.expiresAt)),
        },
        null,
        2,
      ),
    };
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** Laid out as IMDS serves it: two-space indent and `" : "` between name and value. */
function identityDocument(fields: Record<string, string | null>): string {
  const lines = Object.entries(fields).map(([k, v]) => `  ${JSON.stringify(k)} : ${JSON.stringify(v)}`);
  return `{\n${lines.join(',\n')}\n}`;
}

function isoSeconds(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}
