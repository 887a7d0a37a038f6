import { randomUUID } from 'node:crypto';
import type { DecisionLog } from '../audit/decision-log.js';
import { entityString } from '../audit/decision-from-policy.js';
import { jtiHash } from '../audit/token-hash.js';
import type { AwsRoleProvider, AwsSession } from '../broker/credentials/aws-role-provider.js';
import { CredentialError } from '../broker/credentials/errors.js';
import type { PortConfig } from '../config/config.js';
import { identityClaims } from '../issuer/port-token.js';
import { credentialRef } from '../policy/entities.js';
import type { RelayCaller } from './caller-auth.js';
import { RelayError } from './relay-error.js';

/** A session is renewed this long before it expires, so no request is signed with one about to lapse. */
export const RENEW_BEFORE_MS = 5 * 60 * 1000;
const MAX_ENTRIES = 10_000;

/** Where the relay gets the calling job's AWS session for an `aws_sigv4` upstream. */
export interface AwsSessionSource {
  session(credential: string, caller: RelayCaller, upstream: string): Promise<AwsSession>;
}

/**
 * The relay's AWS sessions: one per (job, credential), assumed with that job's session
 * name, tags and policy, reused until 5 minutes before it expires, never shared across
 * jobs. A revoked job never reaches here (the relay refuses its token first), and its
 * entry is never renewed. Each session assumed is one decision-log entry (lineage:
 * credentials issued → relay use), with the session's facts, never its secrets.
 */
export class AwsRelaySessions implements AwsSessionSource {
  private readonly sessions = new Map<string, Promise<AwsSession>>();

  constructor(
    private readonly provider: AwsRoleProvider,
    private readonly config: PortConfig,
    private readonly log: DecisionLog,
  ) {}

  async session(credential: string, caller: RelayCaller, upstream: string, now = Date.now()): Promise<AwsSession> {
    const key = `${caller.identity.jobId}\n${credential}`;
    const cached = this.sessions.get(key);
    if (cached) {
      const s = await cached.catch(() => undefined);
      if (s && s.expiresAt - RENEW_BEFORE_MS > now) return s;
      if (this.sessions.get(key) === cached) this.sessions.delete(key);
    }
    const cred = this.config.credentials[credential];
    if (cred?.type !== 'aws_role') throw new RelayError('credential_unavailable', `The upstream's credential "${credential}" is not an aws_role credential.`, 503);
    const pending = this.assume(cred, caller, upstream, now);
    this.prune(now);
    this.sessions.set(key, pending);
    // A failure is not cached: the next request tries STS again.
    pending.catch(() => {
      if (this.sessions.get(key) === pending) this.sessions.delete(key);
    });
    return pending;
  }

  private async assume(cred: Parameters<AwsRoleProvider['assume']>[0], caller: RelayCaller, upstream: string, now: number): Promise<AwsSession> {
    const job = identityClaims(caller.identity);
    let s: AwsSession;
    try {
      s = await this.provider.assume(cred, job, now);
    } catch (err) {
      if (err instanceof CredentialError) {
        // STS down or refusing: 503; a job that lacks what the session needs: its status (400).
        throw new RelayError(err.code, `Cannot sign for this upstream: ${err.message}`, err.status);
      }
      throw err;
    }
    await this.log.record([
      {
        id: randomUUID(),
        time: new Date(now).toISOString(),
        principal: entityString({ type: 'Job', id: caller.identity.jobId }),
        action: 'assume',
        resource: entityString(credentialRef(cred.name)),
        decision: 'allow',
        policies: [],
        reason: `AWS session for SigV4 signing on upstream ${upstream} (the request was allowed by proxy)`,
        context: {
          job,
          ...(caller.kind === 'port' ? { port_token: { jti_sha256: jtiHash(caller.tokenId) } } : {}),
          relay: { upstream },
          credential: {
            type: 'aws_role',
            role_arn: cred.roleArn,
            mode: cred.mode,
            session_name: s.sessionName,
            session_tags: Object.fromEntries(s.tags.map((t) => [t.Key, t.Value])),
            expiration: new Date(s.expiresAt).toISOString(),
            ...(s.requestId ? { sts_request_id: s.requestId } : {}),
          },
        },
      },
    ]);
    return s;
  }

  /** Bounded: sessions that need renewing go first, then the oldest. */
  private prune(now: number): void {
    if (this.sessions.size < MAX_ENTRIES) return;
    for (const [key, p] of this.sessions) {
      void p.then((s) => {
        if (s.expiresAt - RENEW_BEFORE_MS <= now && this.sessions.get(key) === p) this.sessions.delete(key);
      }, () => undefined);
    }
    if (this.sessions.size >= MAX_ENTRIES) this.sessions.delete(this.sessions.keys().next().value!);
  }
}
