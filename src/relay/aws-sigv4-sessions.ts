import { randomUUID } from 'node:crypto';
import type { DecisionLog } from '../audit/decision-log.js';
import { entityString } from '../audit/decision-from-policy.js';
import type { AwsRoleProvider, AwsSession } from '../broker/credentials/aws-role-provider.js';
import { CredentialError } from '../broker/credentials/errors.js';
import type { AwsRoleCredentialConfig, PortConfig } from '../config/config.js';
import { identityClaims } from '../issuer/port-token.js';
import { credentialRef } from '../policy/entities.js';
import { mergeObjects } from '../merge-objects.js';
import type { RelayCaller } from './caller-auth.js';
import { RelayError } from './relay-error.js';

/** Where the relay gets the calling job's AWS session for an `aws_sigv4` upstream. */
export interface AwsSessionSource {
  session(credential: string, caller: RelayCaller, upstream: string): Promise<AwsSession>;
}

/**
 * The relay's AWS sessions: the calling job's session of the upstream's credential, from
 * the cache `POST /v1/credentials` uses too (src/broker/credentials/aws-session-cache.ts):
 * one per (job, credential, parameters), assumed with that job's session name, tags and
 * policy, no longer than the caller's token (at least AWS's 15 minutes), never shared
 * across jobs. A revoked job never reaches here (the relay refuses its token first). Each
 * session this relay assumes is one decision-log entry (lineage: credentials issued →
 * relay use), with the session's facts, never its secrets.
 */
export class AwsRelaySessions implements AwsSessionSource {
  constructor(
    private readonly provider: AwsRoleProvider,
    private readonly config: PortConfig,
    private readonly log: DecisionLog,
  ) {}

  async session(credential: string, caller: RelayCaller, upstream: string, now = Date.now()): Promise<AwsSession> {
    const cred = this.config.credentials[credential];
    if (cred?.type !== 'aws_role') throw new RelayError('credential_unavailable', `The upstream's credential "${credential}" is not an aws_role credential.`, 503);
    const job = identityClaims(caller.identity);
    let got: { session: AwsSession; fresh: boolean };
    try {
      got = await this.provider.session(cred, job, { now, bearerExpiresAt: caller.expiresAt });
    } catch (err) {
      if (err instanceof CredentialError) {
        // STS down, refusing or busy: 503; a job that lacks what the session needs: its status (400).
        throw new RelayError(err.code, `Cannot sign for this upstream: ${err.message}`, err.status);
      }
      throw err;
    }
    if (got.fresh) await this.record(cred, caller, upstream, got.session, now);
    return got.session;
  }

  private async record(cred: AwsRoleCredentialConfig, caller: RelayCaller, upstream: string, s: AwsSession, now: number): Promise<void> {
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
        // The caller's job (with its creator) and token hash, as on the relay's own records.
        context: mergeObjects(caller.recordContext, {
          relay: { upstream },
          credential: {
            type: 'aws_role',
            role_arn: cred.roleArn,
            mode: cred.mode,
            session_name: s.sessionName,
            duration: s.duration,
            session_tags: Object.fromEntries(s.tags.map((t) => [t.Key, t.Value])),
            expiration: new Date(s.expiresAt).toISOString(),
            ...(s.requestId ? { sts_request_id: s.requestId } : {}),
          },
        }),
      },
    ]);
  }
}
