import { request } from 'undici';
import { checkSignedRequest } from './aws-iam-checks.js';
import type { SignedCallerIdentityRequest } from './aws-iam-request.js';
import { AttestationError } from './errors.js';
import { parseCallerIdentity, parseErrorCode } from './sts-answer.js';
import { readCappedBody } from '../../http-body.js';

export { signCallerIdentityRequest, SERVER_ID_HEADER, CALLER_IDENTITY_BODY, type SignedCallerIdentityRequest, type CallerIdentitySigningOptions } from './aws-iam-request.js';

/** What STS said about who signed: always an assumed-role session (an instance role's). */
export interface AwsIamIdentity {
  /** As STS answered: `arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION`. */
  arn: string;
  account: string;
  /**
   * `arn:aws:iam::ACCOUNT:role/NAME`. An assumed-role ARN does not carry the role's IAM path,
   * so neither does this: a role `/ci/deploy-agent` is `role/deploy-agent` here.
   */
  iamRole: string;
  /** The role session name; EC2 names an instance profile's session after the instance id. */
  sessionName?: string;
  userId: string;
  /** X-Amz-Date of the signed request, milliseconds since the epoch. */
  signedAt: number;
  /**
   * Identifies this signed request (a hash of its signature): consume it once, until
   * `signedAt + maxAge`, so the same signed request can't attest twice at this Port.
   */
  replayKey: string;
}

export interface AwsIamVerifierOptions {
  /** `attestation.aws_iam.sts_endpoint`. */
  stsEndpoint: string;
  /** `attestation.aws_iam.server_id`: the value X-Port-Server-ID must carry. */
  serverId: string;
  /** Seconds a signed request's X-Amz-Date may be off Port's clock, either way. */
  maxAge: number;
  /** The whole STS exchange, milliseconds (default 10 s). */
  timeoutMs?: number;
}

/** GetCallerIdentity's answer is a few hundred bytes. */
const MAX_ANSWER_BYTES = 64 * 1024;
/** STS codes that mean "try again", not "this signature proves nothing" ("Common Errors"). */
const TRANSIENT = new Set(['Throttling', 'ThrottlingException', 'RequestLimitExceeded', 'ServiceUnavailable', 'InternalFailure', 'InternalError', 'RequestTimeout']);
const ASSUMED_ROLE = /^arn:(aws|aws-cn|aws-us-gov|aws-iso(?:-[a-z])?):sts::(\d{12}):assumed-role\/([\w+=,.@-]{1,64})\/([\w+=,.@-]{2,64})$/;

/**
 * Verifies an agent host's `aws_iam` proof: a signed sts:GetCallerIdentity it made with its
 * instance role's credentials but did not send. Port checks the request is exactly that
 * call, for this Port (X-Port-Server-ID) and recent, then sends it to the configured STS
 * endpoint itself: STS checks the signature, and its answer names the role that signed.
 * The credentials never leave the host; the signature is only good for this one call.
 * (The approach of Vault's aws auth IAM method, https://developer.hashicorp.com/vault/docs/auth/aws#iam-auth-method.)
 */
export class AwsIamVerifier {
  private readonly endpoint: URL;
  private readonly timeoutMs: number;

  constructor(private readonly o: AwsIamVerifierOptions) {
    this.endpoint = new URL(o.stsEndpoint);
    this.timeoutMs = o.timeoutMs ?? 10_000;
  }

  async verify(req: SignedCallerIdentityRequest, now = Date.now()): Promise<AwsIamIdentity> {
    const fwd = checkSignedRequest(req, { endpoint: this.endpoint, serverId: this.o.serverId, maxAgeMs: this.o.maxAge * 1000, now });
    const { status, text } = await this.send(fwd.headers, fwd.body);
    if (status !== 200) {
      const code = parseErrorCode(text);
      if (code === undefined || status >= 500 || TRANSIENT.has(code)) {
        throw new AttestationError('attestation_unavailable', `AWS STS at ${this.endpoint.host} could not check the signed request (HTTP ${status}${code ? `, ${code}` : ''}); try again.`);
      }
      // STS's message is not repeated: for SignatureDoesNotMatch it can quote the canonical request.
      throw new AttestationError('attestation_failed', `AWS STS refused the signed sts:GetCallerIdentity request (${code}).`);
    }
    const answer = parseCallerIdentity(text);
    if (answer === undefined) {
      throw new AttestationError('attestation_unavailable', `AWS STS at ${this.endpoint.host} answered something that is not a GetCallerIdentity result.`);
    }
    return { ...identityOf(answer), signedAt: fwd.signedAt, replayKey: fwd.replayKey };
  }

  /** One POST under a total deadline; redirects are not followed (undici's request follows none). */
  private async send(headers: Record<string, string>, body: Buffer): Promise<{ status: number; text: string }> {
    const deadline = AbortSignal.timeout(this.timeoutMs);
    try {
      const res = await request(this.endpoint, { method: 'POST', headers, body, signal: deadline, headersTimeout: this.timeoutMs, bodyTimeout: this.timeoutMs });
      const answer = await readCappedBody(res.body as typeof res.body & AsyncIterable<Buffer>, MAX_ANSWER_BYTES);
      if (answer === undefined) throw new AttestationError('attestation_unavailable', `AWS STS at ${this.endpoint.host} answered more than ${MAX_ANSWER_BYTES} bytes.`);
      return { status: res.statusCode, text: answer.toString('utf8') };
    } catch (err) {
      if (err instanceof AttestationError) throw err;
      const why = deadline.aborted ? `no answer within ${this.timeoutMs} ms` : networkCode(err);
      throw new AttestationError('attestation_unavailable', `AWS STS at ${this.endpoint.host} could not be reached (${why}); try again.`, { cause: err });
    }
  }
}

/** The caller must be an assumed-role session: an IAM user, the root user or a federated user is not an instance role. */
function identityOf(a: { arn: string; account: string; userId: string }): Omit<AwsIamIdentity, 'signedAt' | 'replayKey'> {
  const m = ASSUMED_ROLE.exec(a.arn);
  if (!m) {
    const what = /^arn:[\w-]+:iam::\d{12}:user\//.test(a.arn) ? 'an IAM user' : /^arn:[\w-]+:iam::\d{12}:root$/.test(a.arn) ? 'the account root user' : 'not an assumed-role session';
    throw new AttestationError(
      'attestation_failed',
      `The request was signed by ${a.arn.slice(0, 256)} (${what}); an agent host must sign with its instance role's credentials (from the instance metadata service).`,
    );
  }
  const [, partition, account, role, session] = m as unknown as [string, string, string, string, string];
  if (a.account !== account) throw new AttestationError('attestation_failed', 'AWS STS answered an account that does not match the caller ARN.');
  if (!/^[A-Z0-9]{4,128}:/.test(a.userId) || !a.userId.endsWith(`:${session}`)) {
    throw new AttestationError('attestation_failed', 'AWS STS answered a UserId that does not match the role session.');
  }
  return { arn: a.arn, account, iamRole: `arn:${partition}:iam::${account}:role/${role}`, sessionName: session, userId: a.userId };
}

function networkCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[A-Z_]{2,40}$/.test(code) ? code : 'network error';
}
