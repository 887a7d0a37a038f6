import { createHash } from 'node:crypto';
import type { Credentials, STSClient } from '@aws-sdk/client-sts';
import { jtiHash } from '../../audit/token-hash.js';
import type { AwsRoleCredentialConfig } from '../../config/config.js';
import { resolveSecretRef } from '../../config/secret-ref.js';
import type { JobIdentityClaims } from '../../issuer/port-token.js';
import type { SigningKeys } from '../../issuer/signing-keys.js';
import { mergeObjects } from '../../merge-objects.js';
import { AwsSessionCache } from './aws-session-cache.js';
import { roleSessionName } from './aws-session-name.js';
import { renderSessionPolicy } from './aws-session-policy.js';
import { sessionTagsFromClaims, type SessionTag } from './aws-session-tags.js';
import { checkSubjectComponents, mintWebIdentityToken } from './aws-web-identity-token.js';
import type { CredentialGrant, CredentialProvider, IssuedCredential } from './credential-provider.js';
import { CredentialError } from './errors.js';

export interface AwsRoleProviderDeps {
  /** Port's issuer URL (`server.public_url`): `iss` of the web identity token. */
  issuerUrl: string;
  keys: SigningKeys;
  /** Shared with the relay's SigV4 signing; a new one when unset. */
  sessions?: AwsSessionCache;
}

/** AWS's shortest session (STS API reference, `DurationSeconds`: 900 to the role's maximum). */
export const MIN_SESSION_SECONDS = 900;

/** A role session STS issued for one job. */
export interface AwsSession {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
  /** Milliseconds since the epoch. */
  expiresAt: number;
  /** The `DurationSeconds` asked for (see sessionDuration). */
  duration: number;
  sessionName: string;
  assumedRoleArn?: string;
  tags: SessionTag[];
  requestId?: string;
  /** SHA-256 of the web identity token's jti (web_identity mode). */
  webIdentityJtiSha256?: string;
}

/**
 * The AWS SDK's STS client, loaded on the first STS call: the SDK is a large module tree, and
 * a Port without `aws_role` credentials (or before their first use) does without it
 * (bench/startup). A failed load is retried on the next call.
 */
type StsModule = typeof import('@aws-sdk/client-sts');
let stsModule: Promise<StsModule> | undefined;
function loadSts(): Promise<StsModule> {
  stsModule ??= import('@aws-sdk/client-sts').catch((err: unknown) => {
    stsModule = undefined;
    throw err;
  });
  return stsModule;
}

/** The job's claims a session is made from: Port token claim names (`pipeline_slug`, `build_branch`…). */
export type JobClaims = JobIdentityClaims;

/** Who asks for a session, and when. */
export interface SessionAsk {
  /** Milliseconds since the epoch. */
  now: number;
  /** `exp` of the bearer's token (seconds since the epoch): the session is capped by it. */
  bearerExpiresAt: number;
}

/**
 * `DurationSeconds` for a bearer: the credential's `duration`, but no longer than the
 * bearer's token has left — and never under AWS's 900 s minimum, so a session may outlive
 * a token about to expire by at most 15 minutes (grants expire with the job).
 */
export function sessionDuration(configured: number, bearerExpiresAt: number, now: number): number {
  return Math.min(configured, Math.max(MIN_SESSION_SECONDS, Math.floor(bearerExpiresAt - now / 1000)));
}

/** Everything one job's session of one credential is made from, worked out before STS is called. */
interface SessionParameters {
  sessionName: string;
  tags: SessionTag[];
  policy: string | undefined;
  /** The web identity token's job claims (web_identity mode). */
  jobClaims: JobIdentityClaims;
  /** Cache key: job id, credential and a digest of all of the above. */
  key: string;
}

/**
 * `aws_role` credentials: STS through @aws-sdk/client-sts, either
 * AssumeRoleWithWebIdentity with a JWT Port mints as an OIDC issuer (no AWS keys in Port)
 * or AssumeRole with Port's own keys. Per job: RoleSessionName `bk-<pipeline>-<build>-<job>`,
 * session tags from claims, an optional session policy. The body is the AWS
 * `credential_process` JSON (AWS CLI "Sourcing credentials with an external process").
 */
export class AwsRoleProvider {
  private readonly clients = new Map<string, STSClient>();
  /** The sessions handed out, per (job, credential, parameters): see aws-session-cache.ts. */
  readonly sessions: AwsSessionCache;

  constructor(private readonly deps: AwsRoleProviderDeps) {
    this.sessions = deps.sessions ?? new AwsSessionCache();
  }

  async issue(grant: CredentialGrant): Promise<IssuedCredential> {
    const cred = grant.credential;
    if (cred.type !== 'aws_role') throw new CredentialError('credential_unavailable', `Credential ${cred.name} is not an aws_role credential.`);
    const { session: s, fresh } = await this.session(cred, grant.claims, { now: grant.now, bearerExpiresAt: grant.claims.exp });
    const expiration = new Date(s.expiresAt).toISOString();
    return {
      body: { Version: 1, AccessKeyId: s.accessKeyId, SecretAccessKey: s.secretAccessKey, SessionToken: s.sessionToken, Expiration: expiration },
      expiresAt: Math.floor(s.expiresAt / 1000),
      // An STS session can't be recalled from AWS: revocation stops renewing it, no more.
      recallable: false,
      facts: {
        role_arn: cred.roleArn,
        mode: cred.mode,
        session_name: s.sessionName,
        duration: s.duration,
        session_tags: Object.fromEntries(s.tags.map((t) => [t.Key, t.Value])),
        expiration,
        // The job's session from an earlier release or relay request: no STS call this time.
        ...(fresh ? {} : { session_reused: true }),
        ...(s.assumedRoleArn ? { assumed_role_arn: s.assumedRoleArn } : {}),
        ...(s.requestId ? { sts_request_id: s.requestId } : {}),
        ...(s.webIdentityJtiSha256 ? { web_identity_token: { jti_sha256: s.webIdentityJtiSha256 } } : {}),
      },
    };
  }

  /**
   * The job's session of `cred` (also the relay's, for SigV4 signing): the cached one while
   * it is good for this bearer, else assumed now. `fresh` when this call assumed it. A job
   * lacking what the session needs is refused (400) before any cache or STS call.
   */
  async session(cred: AwsRoleCredentialConfig, job: JobClaims, ask: SessionAsk): Promise<{ session: AwsSession; fresh: boolean }> {
    const params = this.parameters(cred, job);
    const duration = sessionDuration(cred.duration, ask.bearerExpiresAt, ask.now);
    return this.sessions.get(
      { key: params.key, credential: cred.name, maxInFlight: cred.stsConcurrency, usableUntil: ask.now + duration * 1000, now: ask.now },
      () => this.assume(cred, params, duration, ask.now),
    );
  }

  private parameters(cred: AwsRoleCredentialConfig, job: JobClaims): SessionParameters {
    const sessionName = roleSessionName(job);
    const claims = job as unknown as Record<string, unknown>;
    const tags = sessionTagsFromClaims(cred.sessionTags, claims, cred.name);
    const policy = cred.sessionPolicy === undefined ? undefined : renderSessionPolicy(cred.sessionPolicy, claims, cred.name);
    if (cred.mode === 'web_identity') checkSubjectComponents(job, cred.name);
    const jobClaims = pickJobClaims(job);
    const digest = createHash('sha256')
      .update(JSON.stringify([cred.roleArn, cred.mode, cred.webIdentityAudience, sessionName, tags, cred.transitiveTagKeys, policy ?? null, jobClaims]))
      .digest('base64url');
    return { sessionName, tags, policy, jobClaims, key: `${job.job_id}\n${cred.name}\n${digest}` };
  }

  private async assume(cred: AwsRoleCredentialConfig, p: SessionParameters, duration: number, now: number): Promise<AwsSession> {
    const { sessionName, tags, policy } = p;
    const common = { RoleArn: cred.roleArn, RoleSessionName: sessionName, DurationSeconds: duration, ...(policy !== undefined ? { Policy: policy } : {}) };
    const sts = await loadSts();
    const client = this.client(sts, cred);
    const action = cred.mode === 'web_identity' ? 'AssumeRoleWithWebIdentity' : 'AssumeRole';
    try {
      if (cred.mode === 'web_identity') {
        const { token, jti } = await mintWebIdentityToken(this.deps.keys, {
          issuer: this.deps.issuerUrl,
          audience: cred.webIdentityAudience,
          job: p.jobClaims,
          tags,
          transitiveTagKeys: cred.transitiveTagKeys,
          now,
        });
        const out = await client.send(new sts.AssumeRoleWithWebIdentityCommand(mergeObjects(common, { WebIdentityToken: token })));
        return session(out.Credentials, { duration, sessionName, tags, assumedRoleArn: out.AssumedRoleUser?.Arn, requestId: out.$metadata.requestId, webIdentityJtiSha256: jtiHash(jti) }, cred);
      }
      const out = await client.send(
        new sts.AssumeRoleCommand(mergeObjects(common, { ...(tags.length > 0 ? { Tags: tags } : {}), ...(cred.transitiveTagKeys.length > 0 ? { TransitiveTagKeys: cred.transitiveTagKeys } : {}) })),
      );
      return session(out.Credentials, { duration, sessionName, tags, assumedRoleArn: out.AssumedRoleUser?.Arn, requestId: out.$metadata.requestId }, cred);
    } catch (err) {
      if (err instanceof CredentialError) throw err;
      throw stsFailure(err, action, cred);
    }
  }

  private client(sts: StsModule, cred: AwsRoleCredentialConfig): STSClient {
    let client = this.clients.get(cred.name);
    if (client === undefined) {
      const keys =
        cred.accessKeyId && cred.secretAccessKey
          ? {
              credentials: {
                accessKeyId: resolveSecretRef(cred.accessKeyId.ref, cred.accessKeyId.key, cred.accessKeyId.baseDir),
                secretAccessKey: resolveSecretRef(cred.secretAccessKey.ref, cred.secretAccessKey.key, cred.secretAccessKey.baseDir),
              },
            }
          : {};
      // web_identity: AssumeRoleWithWebIdentity is unsigned, the SDK asks for no credentials.
      // assume_role without keys: the SDK's default chain (env, profile, instance role…).
      client = new sts.STSClient({ region: cred.region, ...(cred.stsEndpoint ? { endpoint: cred.stsEndpoint } : {}), ...keys, maxAttempts: 2 });
      this.clients.set(cred.name, client);
    }
    return client;
  }

  close(): void {
    for (const c of this.clients.values()) c.destroy();
    this.clients.clear();
  }
}

function session(c: Credentials | undefined, rest: Omit<AwsSession, 'accessKeyId' | 'secretAccessKey' | 'sessionToken' | 'expiresAt'>, cred: AwsRoleCredentialConfig): AwsSession {
  if (!c?.AccessKeyId || !c.SecretAccessKey || !c.SessionToken || !c.Expiration) {
    throw new CredentialError('credential_unavailable', `AWS STS answered without credentials for ${cred.name}.`);
  }
  return { accessKeyId: c.AccessKeyId, secretAccessKey: c.SecretAccessKey, sessionToken: c.SessionToken, expiresAt: c.Expiration.getTime(), ...dropUndefined(rest) };
}

/** STS's refusal, as the job sees it: AWS's error code and request id, never a message that could echo a secret. */
function stsFailure(err: unknown, action: string, cred: AwsRoleCredentialConfig): CredentialError {
  // An STS service exception (the SDK's STSServiceException) carries `$metadata` and the AWS error code as `name`.
  if (typeof err === 'object' && err !== null && '$metadata' in err && 'name' in err) {
    const e = err as { name: string; $metadata?: { requestId?: string; httpStatusCode?: number } };
    const id = e.$metadata?.requestId ? ` (request id ${e.$metadata.requestId})` : '';
    return new CredentialError('credential_unavailable', `AWS STS refused ${action} for credential ${cred.name}: ${e.name}${id}.`);
  }
  const where = cred.stsEndpoint ?? `the ${cred.region} STS endpoint`;
  return new CredentialError('credential_unavailable', `AWS STS (${where}) could not be reached for credential ${cred.name}.`);
}

/** The job identity claims only (not the Port token's scope, jti…), for the web identity token. */
function pickJobClaims(job: JobClaims): JobIdentityClaims {
  const keys: (keyof JobIdentityClaims)[] = [
    'organization_slug', 'pipeline_slug', 'build_number', 'build_branch', 'build_tag', 'build_commit', 'step_key', 'job_id', 'agent_id',
    'build_source', 'runner_environment', 'organization_id', 'pipeline_id', 'build_id', 'cluster_id', 'cluster_name', 'queue_id', 'queue_key',
  ];
  return Object.fromEntries(keys.filter((k) => job[k] !== undefined).map((k) => [k, job[k]])) as unknown as JobIdentityClaims;
}

function dropUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
