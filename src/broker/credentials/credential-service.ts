import { randomUUID } from 'node:crypto';
import { decisionRecord, entityString } from '../../audit/decision-from-policy.js';
import type { DecisionLog } from '../../audit/decision-log.js';
import type { DecisionRecord } from '../../audit/decision-record.js';
import { jtiHash } from '../../audit/token-hash.js';
import type { PortConfig } from '../../config/config.js';
import { identityFromClaims } from '../../identity/claims.js';
import { poolId, type JobIdentity } from '../../identity/job-identity.js';
import { identityClaims, type PortTokenClaims, type PortTokenIssuer } from '../../issuer/port-token.js';
import type { PolicyEngine } from '../../policy/engine.js';
import { credentialRef, jobRequestParts, type CreatorInfo } from '../../policy/entities.js';
import { portTokenFacts } from '../../revocation/port-token-facts.js';
import type { RevocationList } from '../../revocation/revocation-list.js';
import type { Store } from '../../store/store.js';
import type { IssuedCredential } from './credential-provider.js';
import { CredentialError } from './errors.js';
import type { CredentialProviders } from './providers.js';

export interface CredentialServiceDeps {
  config: PortConfig;
  issuer: PortTokenIssuer;
  revocations: RevocationList;
  policy: PolicyEngine;
  log: DecisionLog;
  store: Store;
  providers: CredentialProviders;
  /** An unexpected provider failure (its message is logged, never answered). */
  onError(err: unknown, message: string): void;
}

export interface ReleaseMeta {
  requestId: string;
  remoteAddress?: string;
}

/** Config credential names (src/config/schema.ts); anything else is not echoed anywhere. */
const CREDENTIAL_NAME = /^[a-z0-9][a-z0-9_-]{0,127}$/;

/**
 * `POST /v1/credentials/{name}` (DESIGN capability 2): a bearer Port token, unrevoked,
 * whose scope holds the credential; `assume` decided again now (policy, or the build
 * creator's standing, may have changed since the exchange); then the credential's
 * provider issues it. Every allow and deny is one decision record, durable before the
 * answer; each issued credential is recorded for revocation results and lineage.
 */
export class CredentialService {
  constructor(private readonly deps: CredentialServiceDeps) {}

  async release(name: string, authorization: string | undefined, meta: ReleaseMeta): Promise<Record<string, unknown>> {
    const { config, log } = this.deps;
    const resource = CREDENTIAL_NAME.test(name) ? entityString(credentialRef(name)) : null;
    const now = Date.now();

    const claims = await this.authenticate(authorization, resource, meta);
    const identity = identityFromClaims(claims);
    const creator = await this.creatorOf(claims);
    const principal = { type: 'Job' as const, id: identity.jobId };
    const context = {
      job: { ...identityClaims(identity), ...(creator ? { build_creator: creator.email } : {}) },
      port_token: { jti_sha256: jtiHash(claims.jti) },
      request_id: meta.requestId,
      ...(meta.remoteAddress ? { remote_address: meta.remoteAddress } : {}),
    };
    const refuse = async (err: CredentialError, extra: Record<string, unknown> = {}): Promise<never> => {
      await log.record([bare(entityString(principal), resource, err.message, { ...context, ...extra })]);
      throw err;
    };

    if (this.deps.revocations.isTokenRevoked(portTokenFacts(claims))) {
      return refuse(new CredentialError('invalid_token', 'The Port token has been revoked.'), { check: 'revoked' });
    }
    const cred = resource === null ? undefined : config.credentials[name];
    if (cred === undefined) {
      return refuse(new CredentialError('unknown_credential', resource === null ? 'No credential has that name.' : `No credential is named "${name}".`));
    }
    const scopes = typeof claims.scope === 'string' ? claims.scope.split(' ') : [];
    if (!scopes.includes(name)) {
      return refuse(new CredentialError('access_denied', `The Port token's scope does not hold "${name}"; exchange a Buildkite token with scope=${name}.`), { check: 'scope' });
    }

    const ref = credentialRef(name);
    const { principal: job, entities } = jobRequestParts(identity, creator?.user ? { creator: creator.user } : undefined);
    const decision = this.deps.policy.decide({ principal: job, action: 'assume', resource: ref, context: {}, entities });
    if (decision.decision === 'deny') {
      await log.record([decisionRecord(decision, job, 'assume', ref, context)]);
      throw new CredentialError('access_denied', `Policy denied the credential "${name}": ${decision.reason}`);
    }

    const provider = this.deps.providers[cred.type];
    let issued: IssuedCredential;
    try {
      if (provider === undefined) throw new CredentialError('credential_unavailable', `The credential "${name}" (${cred.type}) is not available in this Port.`);
      issued = await provider.issue({ credential: cred, claims, identity, requestId: meta.requestId, now });
    } catch (err) {
      const failure =
        err instanceof CredentialError ? err : new CredentialError('credential_unavailable', `The credential "${name}" could not be issued; see Port's log.`, { cause: err });
      if (!(err instanceof CredentialError)) this.deps.onError(err, `credential ${name} could not be issued`);
      // Policy allowed it, but the job gets nothing: logged as a deny with the cause.
      await log.record([{ ...decisionRecord(decision, job, 'assume', ref, { ...context, failure: failure.code }), decision: 'deny', reason: failure.message }]);
      throw failure;
    }

    const expiresAtIso = new Date(issued.expiresAt * 1000).toISOString();
    await Promise.all([
      log.record([decisionRecord(decision, job, 'assume', ref, { ...context, credential: { type: cred.type, expires_at: expiresAtIso, ...issued.facts } })]),
      this.deps.store.recordIssuedCredential({
        id: randomUUID(),
        credential: name,
        type: cred.type,
        jobId: identity.jobId,
        build: buildId(identity),
        agentId: identity.agentId,
        ...optional('pool', poolId(identity)),
        ...optional('creator', creator?.email),
        tokenJtiHash: jtiHash(claims.jti),
        issuedAt: now,
        expiresAt: issued.expiresAt * 1000,
        recallable: issued.recallable,
        facts: issued.facts,
      }),
    ]);
    return issued.body;
  }

  /** A verified Port token for one of Port's audiences (RFC 6750 §2.1 bearer), else 401. */
  private async authenticate(authorization: string | undefined, resource: string | null, meta: ReleaseMeta): Promise<PortTokenClaims> {
    const m = /^Bearer +([A-Za-z0-9._~+/-]+=*)$/i.exec(authorization ?? '');
    const claims = m ? await this.deps.issuer.verify(m[1]!, this.deps.config.issuer.audiences) : undefined;
    let identityOk = false;
    if (claims) {
      try {
        identityFromClaims(claims);
        identityOk = true;
      } catch {
        // A Port-signed token without a job identity is no bearer for a credential.
      }
    }
    if (claims && identityOk) return claims;
    const message = m
      ? 'The bearer is not a valid Port token (signature, issuer, audience, type or lifetime); exchange a fresh Buildkite token.'
      : 'A Port token is needed: Authorization: Bearer <Port token>.';
    const check = m ? 'bearer_invalid' : 'bearer_missing';
    await this.deps.log.record([bare(null, resource, message, { check, request_id: meta.requestId, ...(meta.remoteAddress ? { remote_address: meta.remoteAddress } : {}) })]);
    throw new CredentialError('invalid_token', message);
  }

  /** The build's creator from the token's `build_creator`, with their current standing in Port's directory. */
  private async creatorOf(claims: PortTokenClaims): Promise<{ email: string; user?: CreatorInfo } | undefined> {
    const email = claims.build_creator;
    if (typeof email !== 'string' || email === '') return undefined;
    // Not cached: a deactivation applies to the next release (as at exchange, src/broker/build-creator.ts).
    const user = await this.deps.store.getUser(email);
    return user ? { email, user: { email: user.email, active: user.active, groups: user.groups } } : { email };
  }
}

/** A deny decided before policy (bad bearer, revoked, scope, unknown name). */
function bare(principal: string | null, resource: string | null, reason: string, context: Record<string, unknown>): DecisionRecord {
  return { id: randomUUID(), time: new Date().toISOString(), principal, action: 'assume', resource, decision: 'deny', policies: [], reason, context };
}

function buildId(identity: JobIdentity): string {
  return `${identity.organizationSlug}/${identity.pipelineSlug}/${identity.buildNumber}`;
}

function optional<K extends string>(key: K, value: string | undefined): Partial<Record<K, string>> {
  return value === undefined ? {} : ({ [key]: value } as Record<K, string>);
}
