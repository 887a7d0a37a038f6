import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AwsSimError } from './aws-sim-error.js';
import { verifySigV4, type SigningSecret } from './sigv4-verify.js';
import { checkDuration, checkPolicyAndPack, checkSessionName, checkTags, listParams, type SimTag } from './sts-params.js';
import { stringLike, verifyWebIdentityToken, type SimOidcProvider } from './web-identity.js';

export interface SimIamUser {
  name: string;
  accessKeyId: string;
  secretAccessKey: string;
}

/** An IAM role and its trust policy, reduced to what Port's flows need. */
export interface SimRole {
  name: string;
  /** MaxSessionDuration, seconds (IAM default 3600). */
  maxSessionDuration?: number;
  trust: {
    /** IAM user names allowed `sts:AssumeRole` (and `sts:TagSession`). */
    users?: string[];
    /** Allowed `sts:AssumeRoleWithWebIdentity` from this OIDC provider (`host/path` of its URL). */
    webIdentity?: {
      provider: string;
      /** Condition `<provider>:aud` StringEquals. */
      audience?: string;
      /** Condition `<provider>:sub` StringLike. */
      subjectLike?: string;
      /** Condition `aws:RequestTag/<key>` StringEquals. */
      requiredTags?: Record<string, string>;
    };
    /** Trusts the EC2 service (`ec2.amazonaws.com`): an instance profile may carry the role. */
    ec2?: boolean;
  };
}

export interface StsSimulatorOptions {
  accountId?: string;
  users?: SimIamUser[];
  roles?: SimRole[];
  oidcProviders?: SimOidcProvider[];
  /** Like a hosts file: an issuer origin (`https://port.acme.test`) → where it really listens. */
  originOverrides?: Record<string, string>;
}

/** Session credentials the simulator issued; remembered so later signed calls can be checked. */
export interface IssuedSession {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
  /** Milliseconds since the epoch. */
  expiresAt: number;
  roleArn: string;
  sessionName: string;
  assumedRoleArn: string;
  tags: SimTag[];
  transitiveTagKeys: string[];
  policy?: string;
  duration: number;
}

/** One call the simulator answered, for assertions. */
export interface StsCallRecord {
  action: string;
  /** Form parameters as received, minus the web identity token (kept as its claims). */
  params: Record<string, string>;
  caller?: string;
  roleArn?: string;
  sessionName?: string;
  duration?: number;
  tags: SimTag[];
  transitiveTagKeys: string[];
  policy?: string;
  webIdentityClaims?: Record<string, unknown>;
  /** `ok`, or the AWS error code answered. */
  outcome: string;
  requestId: string;
  /** Header names as received (values are not kept: they hold credentials). */
  headerNames?: string[];
}

const NS = 'https://sts.amazonaws.com/doc/2011-06-15/';
const MAX_BODY = 1024 * 1024;

/**
 * A local endpoint speaking the STS Query API (POST form, `Version=2011-06-15`, XML;
 * STS API reference) faithfully enough for `@aws-sdk/client-sts`: AssumeRole (SigV4
 * verified), AssumeRoleWithWebIdentity (token verified like IAM) and GetCallerIdentity.
 */
export class StsSimulator {
  readonly calls: StsCallRecord[] = [];
  readonly sessions = new Map<string, IssuedSession>();
  readonly accountId: string;
  private readonly users = new Map<string, SimIamUser>();
  private readonly roles = new Map<string, SimRole>();
  private readonly providers: SimOidcProvider[] = [];
  private readonly origins: Record<string, string>;
  /** When set, every call fails with this error (an STS outage). */
  failWith: AwsSimError | undefined;
  /** When set, every call is answered this many milliseconds late (a slow STS). */
  delayMs: number | undefined;

  private constructor(
    private readonly server: Server,
    readonly url: string,
    opts: StsSimulatorOptions,
  ) {
    this.accountId = opts.accountId ?? '123456789012';
    for (const u of opts.users ?? []) this.addUser(u);
    for (const r of opts.roles ?? []) this.addRole(r);
    for (const p of opts.oidcProviders ?? []) this.addOidcProvider(p);
    this.origins = { ...opts.originOverrides };
  }

  static async start(opts: StsSimulatorOptions = {}): Promise<StsSimulator> {
    let sim: StsSimulator | undefined;
    const server = createServer((req, res) => void sim!.handle(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    sim = new StsSimulator(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`, opts);
    return sim;
  }

  addUser(u: SimIamUser): void {
    this.users.set(u.accessKeyId, u);
  }
  addRole(r: SimRole): void {
    this.roles.set(this.roleArn(r.name), r);
  }
  addOidcProvider(p: SimOidcProvider): void {
    this.providers.push(p);
  }
  setOriginOverride(origin: string, target: string): void {
    this.origins[origin] = target;
  }
  roleArn(name: string): string {
    return `arn:aws:iam::${this.accountId}:role/${name}`;
  }
  userArn(name: string): string {
    return `arn:aws:iam::${this.accountId}:user/${name}`;
  }

  /** The key's secret: an IAM user's, or an issued session's (refused once expired). */
  secretFor(accessKeyId: string, now = Date.now()): SigningSecret & { principalArn: string; session?: IssuedSession } {
    const user = this.users.get(accessKeyId);
    if (user) return { secretAccessKey: user.secretAccessKey, principalArn: this.userArn(user.name) };
    const session = this.sessions.get(accessKeyId);
    if (!session) throw new AwsSimError('InvalidClientTokenId', 'The security token included in the request is invalid.', 403);
    if (session.expiresAt <= now) throw new AwsSimError('ExpiredToken', 'The security token included in the request is expired', 403);
    return { secretAccessKey: session.secretAccessKey, sessionToken: session.sessionToken, principalArn: session.assumedRoleArn, session };
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const requestId = randomUUID();
    const record: StsCallRecord = { action: '', params: {}, tags: [], transitiveTagKeys: [], outcome: 'ok', requestId, headerNames: Object.keys(req.headers) };
    try {
      const body = await readBody(req, MAX_BODY);
      if (req.method !== 'POST') throw new AwsSimError('InvalidAction', 'Only POST is supported by this simulator.', 400);
      const form = new URLSearchParams(body.toString('utf8'));
      record.action = form.get('Action') ?? '';
      for (const [k, v] of form) if (k !== 'WebIdentityToken') record.params[k] = v;
      if (form.get('Version') !== '2011-06-15') throw new AwsSimError('InvalidParameterValue', 'Version must be 2011-06-15.', 400);
      if (this.delayMs) await new Promise((resolve) => setTimeout(resolve, this.delayMs));
      if (this.failWith) throw this.failWith;
      const xml = await this.dispatch(req, body, form, record);
      this.calls.push(record);
      send(res, 200, `<${record.action}Response xmlns="${NS}"><${record.action}Result>${xml}</${record.action}Result><ResponseMetadata><RequestId>${requestId}</RequestId></ResponseMetadata></${record.action}Response>`, requestId);
    } catch (err) {
      const e = err instanceof AwsSimError ? err : new AwsSimError('InternalFailure', 'The simulator failed.', 500, 'Receiver');
      record.outcome = e.code;
      this.calls.push(record);
      send(res, e.status, `<ErrorResponse xmlns="${NS}"><Error><Type>${e.type}</Type><Code>${esc(e.code)}</Code><Message>${esc(e.message)}</Message></Error><RequestId>${requestId}</RequestId></ErrorResponse>`, requestId);
    }
  }

  private async dispatch(req: IncomingMessage, body: Buffer, form: URLSearchParams, record: StsCallRecord): Promise<string> {
    switch (record.action) {
      case 'AssumeRole': {
        const caller = await this.signedCaller(req, body);
        record.caller = caller.principalArn;
        const role = this.role(form.get('RoleArn'), record);
        const userName = [...this.users.values()].find((u) => this.userArn(u.name) === caller.principalArn)?.name;
        if (userName === undefined || !(role.trust.users ?? []).includes(userName)) {
          throw new AwsSimError('AccessDenied', `User: ${caller.principalArn} is not authorized to perform: sts:AssumeRole on resource: ${record.roleArn}`, 403);
        }
        const { tags, transitive } = listParams(form);
        return this.issue(role, form, tags, transitive, record);
      }
      case 'AssumeRoleWithWebIdentity': {
        // Unsigned: the token is the authentication (STS API reference).
        const token = form.get('WebIdentityToken');
        if (!token) throw new AwsSimError('ValidationError', "1 validation error detected: Value null at 'webIdentityToken' failed to satisfy constraint: Member must not be null", 400);
        const role = this.role(form.get('RoleArn'), record);
        const identity = await verifyWebIdentityToken(token, this.providers, (url) => fetch(this.resolve(url)));
        record.webIdentityClaims = identity.claims;
        record.caller = `${identity.providerKey}:${String(identity.claims.sub)}`;
        const trust = role.trust.webIdentity;
        const aud = Array.isArray(identity.claims.aud) ? identity.claims.aud : [identity.claims.aud];
        const denied =
          !trust ||
          trust.provider !== identity.providerKey ||
          (trust.audience !== undefined && !aud.includes(trust.audience)) ||
          (trust.subjectLike !== undefined && !stringLike(trust.subjectLike, String(identity.claims.sub ?? ''))) ||
          Object.entries(trust.requiredTags ?? {}).some(([k, v]) => identity.tags.find((t) => t.Key === k)?.Value !== v);
        if (denied) throw new AwsSimError('AccessDenied', 'Not authorized to perform sts:AssumeRoleWithWebIdentity', 403);
        const xml = this.issue(role, form, identity.tags, identity.transitive, record);
        return `${xml}<SubjectFromWebIdentityToken>${esc(String(identity.claims.sub))}</SubjectFromWebIdentityToken><Audience>${esc(String(aud[0]))}</Audience><Provider>${esc(identity.provider.url)}</Provider>`;
      }
      case 'GetCallerIdentity': {
        const caller = await this.signedCaller(req, body);
        record.caller = caller.principalArn;
        const userId = caller.session ? `AROA${caller.session.roleArn.length}SIM:${caller.session.sessionName}` : `AIDA${caller.principalArn.length}SIM`;
        return `<Arn>${esc(caller.principalArn)}</Arn><UserId>${esc(userId)}</UserId><Account>${this.accountId}</Account>`;
      }
      default:
        throw new AwsSimError('InvalidAction', `Could not find operation ${record.action} for version 2011-06-15`, 400);
    }
  }

  private async signedCaller(req: IncomingMessage, body: Buffer) {
    let found: ReturnType<StsSimulator['secretFor']> | undefined;
    await verifySigV4({ method: req.method ?? 'POST', url: req.url ?? '/', headers: req.headers, body }, { service: 'sts', uriEscapePath: true, allowUnsignedPayload: false }, (id) => (found = this.secretFor(id)));
    return found!;
  }

  private role(arn: string | null, record: StsCallRecord): SimRole {
    record.roleArn = arn ?? undefined;
    const role = arn === null ? undefined : this.roles.get(arn);
    if (!role) throw new AwsSimError('AccessDenied', `Not authorized to perform sts:AssumeRole on resource: ${arn ?? '(none)'}`, 403);
    return role;
  }

  private issue(role: SimRole, form: URLSearchParams, tags: SimTag[], transitive: string[], record: StsCallRecord): string {
    const sessionName = checkSessionName(form.get('RoleSessionName') ?? undefined);
    const duration = checkDuration(form.get('DurationSeconds') ?? undefined, role.maxSessionDuration ?? 3600);
    checkTags(tags, transitive);
    const policy = form.get('Policy') ?? undefined;
    const packed = checkPolicyAndPack(policy, tags);
    Object.assign(record, { sessionName, duration, tags, transitiveTagKeys: transitive, ...(policy !== undefined ? { policy } : {}) });
    const session: IssuedSession = {
      accessKeyId: `ASIA${randomBytes(8).toString('hex').toUpperCase()}`,
      secretAccessKey: randomBytes(30).toString('base64'),
      sessionToken: randomBytes(96).toString('base64'),
      expiresAt: Date.now() + duration * 1000,
      roleArn: this.roleArn(role.name),
      sessionName,
      assumedRoleArn: `arn:aws:sts::${this.accountId}:assumed-role/${role.name}/${sessionName}`,
      tags,
      transitiveTagKeys: transitive,
      ...(policy !== undefined ? { policy } : {}),
      duration,
    };
    this.sessions.set(session.accessKeyId, session);
    const expiration = new Date(Math.floor(session.expiresAt / 1000) * 1000).toISOString().replace('.000Z', 'Z');
    return (
      `<Credentials><AccessKeyId>${session.accessKeyId}</AccessKeyId><SecretAccessKey>${esc(session.secretAccessKey)}</SecretAccessKey>` +
      `<SessionToken>${esc(session.sessionToken)}</SessionToken><Expiration>${expiration}</Expiration></Credentials>` +
      `<AssumedRoleUser><Arn>${esc(session.assumedRoleArn)}</Arn><AssumedRoleId>AROA${role.name.length}SIM:${esc(sessionName)}</AssumedRoleId></AssumedRoleUser>` +
      `<PackedPolicySize>${packed}</PackedPolicySize>`
    );
  }

  private resolve(url: string): string {
    const u = new URL(url);
    const target = this.origins[u.origin];
    return target === undefined ? url : `${target.replace(/\/+$/, '')}${u.pathname}${u.search}`;
  }

  /**
   * What EC2 does for an instance with an instance profile: it assumes the profile's role for
   * the instance, with the instance id as the role session name, and the instance metadata
   * service hands out those credentials (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/iam-roles-for-amazon-ec2.html).
   * The role must trust ec2.amazonaws.com. Not an STS action: EC2 does it on its own.
   */
  issueInstanceRoleSession(roleName: string, instanceId: string, durationSeconds = 6 * 3600): IssuedSession {
    const role = this.roles.get(this.roleArn(roleName));
    if (!role?.trust.ec2) throw new AwsSimError('AccessDenied', `Role ${roleName} does not trust ec2.amazonaws.com, so no instance profile can carry it.`, 403);
    const sessionName = checkSessionName(instanceId);
    const session: IssuedSession = {
      accessKeyId: `ASIA${randomBytes(8).toString('hex').toUpperCase()}`,
      secretAccessKey: randomBytes(30).toString('base64'),
      sessionToken: randomBytes(96).toString('base64'),
      expiresAt: Date.now() + durationSeconds * 1000,
      roleArn: this.roleArn(role.name),
      sessionName,
      assumedRoleArn: `arn:aws:sts::${this.accountId}:assumed-role/${role.name}/${sessionName}`,
      tags: [],
      transitiveTagKeys: [],
      duration: durationSeconds,
    };
    this.sessions.set(session.accessKeyId, session);
    return session;
  }

  /** Calls of one action that succeeded. */
  succeeded(action: string): StsCallRecord[] {
    return this.calls.filter((c) => c.action === action && c.outcome === 'ok');
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

export function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > max) {
        reject(new AwsSimError('RequestEntityTooLarge', 'The request body is too large.', 413));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function send(res: ServerResponse, status: number, xml: string, requestId: string): void {
  res.writeHead(status, { 'content-type': 'text/xml', 'x-amzn-requestid': requestId });
  res.end(xml);
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}
