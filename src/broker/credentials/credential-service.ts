import { randomUUID } from 'node:crypto';
import { decisionRecord, entityString } from '../../audit/decision-from-policy.js';
import type { DecisionLog } from '../../audit/decision-log.js';
import type { DecisionRecord } from '../../store/records/decisions.js';
import { jtiHash } from '../../audit/token-hash.js';
import type { CredentialConfig, PortConfig } from '../../config/config.js';
import type { BuildkiteTokenVerifier } from '../../identity/buildkite-token-verifier.js';
import { identityFromClaims } from '../../identity/claims.js';
import { isAgentCheck, TokenRejectedError } from '../../identity/errors.js';
import { poolId, type JobIdentity } from '../../identity/job-identity.js';
import { identityClaims, PORT_TOKEN_TYP, type PortTokenClaims, type PortTokenIssuer } from '../../issuer/port-token.js';
import type { PolicyEngine } from '../../policy/engine.js';
import { credentialRef, jobRequestParts, type CreatorInfo } from '../../policy/entities.js';
import type { Decision, EntityRef } from '../../policy/types.js';
import { unmatchedPermitsContext } from '../../policy/unmatched-permits.js';
import { portTokenFacts } from '../../revocation/port-token-facts.js';
import { refusalContext, refusalMessage } from '../../revocation/refusal.js';
import type { RevocationList } from '../../revocation/revocation-list.js';
import type { Store } from '../../store/store.js';
import type { BuildCreatorLookup } from '../build-creator.js';
import { BuildkiteTokenAdmission, decideExchange, type AdmittedJob, type RefusalTarget } from '../buildkite-admission.js';
import type { IssuedCredential } from './credential-provider.js';
import { CredentialError } from './errors.js';
import type { CredentialProviders } from './providers.js';
import { agentFactsFromClaim } from '../../identity/agent-facts.js';
import { tokenAgentContext } from '../../agents/agent-context.js';
import type { AgentGate } from '../../agents/agent-gate.js';
import { poolFor } from '../../agents/pool-match.js';
import { DpopError } from '../../dpop/errors.js';
import { requestHtu } from '../../dpop/htu.js';
import type { DpopVerifier } from '../../dpop/proof-verifier.js';
import { checkSenderConstraint, dpopAuthorization, type TokenScheme } from '../../dpop/sender-constraint.js';
import { mergeObjects } from '../../merge-objects.js';

export interface CredentialServiceDeps {
  config: PortConfig;
  issuer: PortTokenIssuer;
  revocations: RevocationList;
  policy: PolicyEngine;
  log: DecisionLog;
  store: Store;
  providers: CredentialProviders;
  /** Verifies a Buildkite token presented as the bearer: the exchange's verifier. */
  verifier: BuildkiteTokenVerifier;
  /** Who started the build, for a Buildkite bearer (as at exchange); without it the creator is unknown. */
  creators?: BuildCreatorLookup | undefined;
  /** An unexpected provider failure (its message is logged, never answered). */
  onError(err: unknown, message: string): void;
  /** The agent checks of `pools:` for a Buildkite bearer (as at exchange); needed when any pool is configured. */
  agents?: AgentGate | undefined;
  /** RFC 9449 proofs for Port tokens bound to a key (`cnf.jkt`); without it such tokens are refused. */
  dpop?: DpopVerifier;
}

export interface ReleaseMeta {
  requestId: string;
  remoteAddress?: string;
  /** The request as a DPoP proof names it: method, target as received, every `DPoP` field value. */
  http?: { method: string; target: string; proofs: readonly string[] };
}

/** Config credential names (src/config/schema.ts); anything else is not echoed anywhere. */
const CREDENTIAL_NAME = /^[a-z0-9][a-z0-9_-]{0,127}$/;

/** RFC 6750 §2.1 `Authorization: Bearer b64token`. */
const BEARER = /^Bearer +([A-Za-z0-9._~+/-]+=*)$/i;

/** Everything a release needs once the bearer is known and `assume` was allowed. */
interface Release {
  name: string;
  cred: CredentialConfig;
  decision: Decision;
  job: EntityRef;
  /** The decision-log context of this request (job, bearer token hash, request id). */
  context: Record<string, unknown>;
  /** What the provider reads of the bearer: the job's identity claims and `exp`. */
  claims: PortTokenClaims;
  identity: JobIdentity;
  creatorEmail: string | undefined;
  /** SHA-256 of the bearer's jti (Port token) or of the Buildkite token's jti. */
  tokenJtiHash: string;
  now: number;
  meta: ReleaseMeta;
}

/**
 * `POST /v1/credentials/{name}`. The bearer is either
 * - a Port token, unrevoked, whose scope holds the credential; `assume` is decided again
 *   now (policy, or the build creator's standing, may have changed since the exchange); or
 * - a Buildkite OIDC token for Port's audience: the exchange and the release in one round
 *   trip, with every rule of the exchange (src/broker/buildkite-admission.ts): verified,
 *   single use, refused when its job, build, creator, agent or pool is revoked, `exchange`
 *   on the Organization and `assume` on the credential decided. Always accepted: the same
 *   token buys a Port token with scope=<name> at /oauth/token anyway, so this grants
 *   nothing more (unlike relay.accept_buildkite_tokens, where the token is not single use).
 * Then the credential's provider issues it. Every allow and deny is one decision record,
 * durable before the answer; each issued credential is recorded for revocation results
 * and lineage.
 */
export class CredentialService {
  private readonly admission: BuildkiteTokenAdmission;

  constructor(private readonly deps: CredentialServiceDeps) {
    this.admission = new BuildkiteTokenAdmission(deps);
  }

  async release(name: string, authorization: string | undefined, meta: ReleaseMeta): Promise<Record<string, unknown>> {
    const resource = CREDENTIAL_NAME.test(name) ? entityString(credentialRef(name)) : null;
    const dpop = dpopAuthorization(authorization);
    const scheme: TokenScheme = dpop !== undefined ? 'dpop' : 'bearer';
    const bearer = dpop ?? BEARER.exec(authorization ?? '')?.[1];
    const claims = bearer === undefined ? undefined : await this.portToken(bearer);
    // RFC 9449 §7: a bound token only with the DPoP scheme and a proof; the DPoP scheme only for a bound token.
    if (claims && (claims.cnf?.jkt !== undefined || scheme === 'dpop')) await this.checkBinding(bearer!, scheme, claims, resource, meta);
    if (claims) return this.releaseForPortToken(name, resource, claims, meta);
    // A Buildkite token is a bearer token: the DPoP scheme never carries one.
    if (bearer !== undefined && scheme === 'bearer' && mayBeBuildkiteToken(bearer)) return this.releaseForBuildkiteToken(name, resource, bearer, meta);

    const message =
      bearer !== undefined
        ? 'The bearer is not a valid Port token (signature, issuer, audience, type or lifetime); exchange a fresh Buildkite token.'
        : "A Port token, or a Buildkite token for Port's audience, is needed: Authorization: Bearer <token>.";
    const check = bearer !== undefined ? 'bearer_invalid' : 'bearer_missing';
    await this.deps.log.record([bare(null, resource, message, { check, ...requestContext(meta) })]);
    throw new CredentialError('invalid_token', message);
  }

  private async releaseForPortToken(name: string, resource: string | null, claims: PortTokenClaims, meta: ReleaseMeta): Promise<Record<string, unknown>> {
    const { config, log } = this.deps;
    const now = Date.now();
    const identity = identityFromClaims(claims);
    const creator = await this.creatorOf(claims);
    const principal = { type: 'Job' as const, id: identity.jobId };
    // What Port verified about the agent at exchange, signed into the token: no lookup now.
    const agentFacts = agentFactsFromClaim(claims.agent_attestation);
    const agent = tokenAgentContext(identity, agentFacts, claims.cnf?.jkt !== undefined);
    const context = {
      job: creator ? mergeObjects(identityClaims(identity), { build_creator: creator.email }) : identityClaims(identity),
      port_token: { jti_sha256: jtiHash(claims.jti) },
      ...(agent !== undefined ? { agent } : {}),
      ...requestContext(meta),
    };
    const refuse = async (err: CredentialError, extra: Record<string, unknown> = {}): Promise<never> => {
      await log.record([bare(entityString(principal), resource, err.message, mergeObjects(context, extra))]);
      throw err;
    };

    const refusal = this.deps.revocations.refusalOf(portTokenFacts(claims), now);
    if (refusal !== undefined) {
      // The plugin's renewal keys on "revoked": a revoked token is never renewed, while a
      // token refused for a missing pool claim or an unknown creator may be exchanged afresh.
      const message =
        refusal.kind !== 'revoked'
          ? `The Port token is refused: ${refusalMessage(refusal)}`
          : refusal.revocation.scope === 'token'
            ? 'The Port token has been revoked.'
            : `The Port token has been revoked: ${refusalMessage(refusal)}`;
      return refuse(new CredentialError('invalid_token', message), {
        check: 'revoked',
        revocation: refusalContext(refusal),
      });
    }
    const cred = resource === null ? undefined : config.credentials[name];
    if (cred === undefined) return refuse(unknownCredential(name, resource));
    const scopes = typeof claims.scope === 'string' ? claims.scope.split(' ') : [];
    if (!scopes.includes(name)) {
      return refuse(new CredentialError('access_denied', `The Port token's scope does not hold "${name}"; exchange a Buildkite token with scope=${name}.`), { check: 'scope' });
    }

    const ref = credentialRef(name);
    const match = poolFor(config, identity);
    const { principal: job, entities } = jobRequestParts(identity, { creator: creator?.user, agent: agentFacts, pool: match.kind === 'pool' ? match.pool : undefined });
    const decision = this.deps.policy.decide({ principal: job, action: 'assume', resource: ref, context: {}, entities });
    if (decision.decision === 'deny') {
      await log.record([decisionRecord(decision, job, 'assume', ref, mergeObjects(context, unmatchedPermitsContext(decision)))]);
      throw new CredentialError('access_denied', `Policy denied the credential "${name}": ${decision.reason}`);
    }
    return this.deliver({ name, cred, decision, job, context, claims, identity, creatorEmail: creator?.email, tokenJtiHash: jtiHash(claims.jti), now, meta });
  }

  /**
   * The proof a bound Port token needs (src/dpop/sender-constraint.ts), for this request's URL
   * (`<public_url>/v1/credentials/<name>`); a refusal is a decision record, then DpopError (401).
   */
  private async checkBinding(token: string, scheme: TokenScheme, claims: PortTokenClaims, resource: string | null, meta: ReleaseMeta): Promise<void> {
    const http = meta.http;
    const target = { method: http?.method ?? '', url: http ? requestHtu(this.deps.config.server.publicUrl, http.target) : '', proofs: http?.proofs ?? [] };
    try {
      await checkSenderConstraint(http ? this.deps.dpop : undefined, { scheme, token }, claims.cnf?.jkt, target);
    } catch (err) {
      if (!(err instanceof DpopError)) throw err;
      const context = { check: `dpop_${err.check}`, job: identityClaims(identityFromClaims(claims)), port_token: { jti_sha256: jtiHash(claims.jti) }, ...requestContext(meta) };
      await this.deps.log.record([bare(entityString({ type: 'Job', id: claims.sub }), resource, err.message, context)]);
      throw err;
    }
  }

  /** A Buildkite token as the bearer: the token exchange with scope=<name> and the release, in one request. */
  private async releaseForBuildkiteToken(name: string, resource: string | null, token: string, meta: ReleaseMeta): Promise<Record<string, unknown>> {
    const { config, log } = this.deps;
    const now = Date.now();
    const target: RefusalTarget = { action: 'assume', resource };
    const admitted = await this.admission.admit(token, meta, target).catch((err: unknown) => {
      throw asCredentialError(err);
    });
    const { verified, principal } = admitted;
    const context = mergeObjects(admitted.context, requestContext(meta), { bearer: 'buildkite_token' });
    const cred = resource === null ? undefined : config.credentials[name];
    if (cred === undefined) {
      // Nothing was decided or released: the token is not consumed.
      const err = unknownCredential(name, resource);
      await log.record([bare(entityString(principal), resource, err.message, context)]);
      throw err;
    }

    // Exactly what an exchange with scope=<name> and Port's default audience decides.
    const { results, denied } = decideExchange(this.deps.policy, admitted, config.issuer.audiences[0]!, [name]);
    const [exchange, assume] = results;
    // The exchange decisions (and a denied assume) commit with the replay check; an allowed
    // assume is logged once the credential is issued, with what was issued (as for a Port token).
    const first = denied ? results : [exchange!];
    const records = first.map((r) => decisionRecord(r.decision, principal, r.action, r.resource, mergeObjects(context, unmatchedPermitsContext(r.decision))));
    await this.admission.consumeOnce(admitted, records, meta, target).catch((err: unknown) => {
      throw asCredentialError(err);
    });
    if (denied) {
      const what = denied.action === 'exchange' ? 'the token exchange' : `the credential "${name}"`;
      throw new CredentialError('access_denied', `Policy denied ${what}: ${denied.decision.reason}`);
    }
    const identity = verified.identity;
    const claims = impliedClaims(admitted, name, config, now);
    const tokenJtiHash = jtiHash(identity.jti ?? verified.replayKey);
    return this.deliver({ name, cred, decision: assume!.decision, job: principal, context, claims, identity, creatorEmail: admitted.creatorEmail, tokenJtiHash, now, meta });
  }

  /** `assume` was allowed: the provider issues the credential; logged and recorded before it is answered. */
  private async deliver(r: Release): Promise<Record<string, unknown>> {
    const { log } = this.deps;
    const ref = credentialRef(r.name);
    const provider = this.deps.providers[r.cred.type];
    let issued: IssuedCredential;
    try {
      if (provider === undefined) throw new CredentialError('credential_unavailable', `The credential "${r.name}" (${r.cred.type}) is not available in this Port.`);
      issued = await provider.issue({ credential: r.cred, claims: r.claims, identity: r.identity, requestId: r.meta.requestId, now: r.now });
    } catch (err) {
      const failure =
        err instanceof CredentialError ? err : new CredentialError('credential_unavailable', `The credential "${r.name}" could not be issued; see Port's log.`, { cause: err });
      if (!(err instanceof CredentialError)) this.deps.onError(err, `credential ${r.name} could not be issued`);
      // Policy allowed it, but the job gets nothing: logged as a deny with the cause.
      await log.record([{ ...decisionRecord(r.decision, r.job, 'assume', ref, mergeObjects(r.context, { failure: failure.code })), decision: 'deny', reason: failure.message }]);
      throw failure;
    }

    const expiresAtIso = new Date(issued.expiresAt * 1000).toISOString();
    await Promise.all([
      log.record([decisionRecord(r.decision, r.job, 'assume', ref, mergeObjects(r.context, { credential: { type: r.cred.type, expires_at: expiresAtIso, ...issued.facts } }))]),
      this.deps.store.issued.record({
        id: randomUUID(),
        credential: r.name,
        type: r.cred.type,
        jobId: r.identity.jobId,
        build: buildId(r.identity),
        agentId: r.identity.agentId,
        ...optional('pool', poolId(r.identity)),
        ...optional('creator', r.creatorEmail),
        tokenJtiHash: r.tokenJtiHash,
        issuedAt: r.now,
        expiresAt: issued.expiresAt * 1000,
        recallable: issued.recallable,
        facts: issued.facts,
      }),
    ]);
    return issued.body;
  }

  /** A verified Port token for one of Port's audiences carrying a job identity, else undefined. */
  private async portToken(bearer: string): Promise<PortTokenClaims | undefined> {
    const claims = await this.deps.issuer.verify(bearer, this.deps.config.issuer.audiences);
    if (claims === undefined) return undefined;
    try {
      identityFromClaims(claims);
      return claims;
    } catch {
      // A Port-signed token without a job identity is no bearer for a credential.
      return undefined;
    }
  }

  /** The build's creator from the token's `build_creator`, with their current standing in Port's directory. */
  private async creatorOf(claims: PortTokenClaims): Promise<{ email: string; user?: CreatorInfo } | undefined> {
    const email = claims.build_creator;
    if (typeof email !== 'string' || email === '') return undefined;
    // Not cached: a deactivation applies to the next release (as at exchange, src/broker/build-creator.ts).
    const user = await this.deps.store.users.get(email);
    return user ? { email, user: { email: user.email, active: user.active, groups: user.groups } } : { email };
  }
}

/**
 * Whether a bearer that is not a valid Port token should be tried as a Buildkite token:
 * a JWT whose header does not declare Port's own type. Port tokens are explicitly typed
 * `at+jwt` (RFC 8725 §3.11) and Buildkite's are not, so an expired or foreign-audience
 * Port token is refused as a Port token, with the advice that fits it.
 */
function mayBeBuildkiteToken(bearer: string): boolean {
  const dot = bearer.indexOf('.');
  if (dot <= 0) return false;
  let header: unknown;
  try {
    header = JSON.parse(Buffer.from(bearer.slice(0, dot), 'base64url').toString('utf8'));
  } catch {
    return false;
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) return false;
  const typ = (header as Record<string, unknown>).typ;
  return !(typeof typ === 'string' && [PORT_TOKEN_TYP, `application/${PORT_TOKEN_TYP}`].includes(typ.toLowerCase()));
}

/**
 * What the providers read of the bearer (CredentialGrant.claims): the job's identity claims
 * and `exp`. For a Buildkite bearer, the claims an exchange with scope=<name> would mint now,
 * with `exp` also capped by the Buildkite token's own `exp`: nothing released for it (a
 * secret's expires_at, a port_token's exp) outlives the token that asked, nor token_ttl.
 */
function impliedClaims(admitted: AdmittedJob, name: string, config: PortConfig, now: number): PortTokenClaims {
  const { identity, replayKey } = admitted.verified;
  const iat = Math.floor(now / 1000);
  return mergeObjects(identityClaims(identity), {
    iss: config.server.publicUrl,
    sub: identity.jobId,
    aud: config.issuer.audiences[0]!,
    iat,
    nbf: iat,
    exp: Math.min(identity.expiresAt, iat + config.issuer.tokenTtl),
    jti: identity.jti ?? replayKey,
    scope: name,
    ...(admitted.creatorEmail !== undefined ? { build_creator: admitted.creatorEmail } : admitted.creatorUnknown ? { build_creator_unknown: true } : {}),
  });
}

/**
 * A refused Buildkite bearer, as this endpoint answers it (RFC 6750 §3.1 invalid_token, 401):
 * the exchange's check in the description; what only Buildkite can settle is a 503.
 */
function asCredentialError(err: unknown): unknown {
  if (!(err instanceof TokenRejectedError)) return err;
  // Buildkite's keys, or who started the build while a user revocation is in force, or its agent, unknown for now: retry.
  if (err.check === 'jwks_unavailable' || err.check === 'creator_unknown' || err.check === 'buildkite_unavailable') return new CredentialError('credential_unavailable', err.message, { cause: err });
  // The token is valid, its agent is not one its pool serves: the reason, as at exchange.
  if (isAgentCheck(err.check)) return new CredentialError('access_denied', err.message, { cause: err });
  // A revoked or replayed token verified; any other check means it is no valid token at all.
  const verified = err.check === 'job_revoked' || err.check === 'replayed';
  return new CredentialError('invalid_token', verified ? err.message : `The bearer is not a valid Port token, and Port refused it as a Buildkite token: ${err.message}`, { cause: err });
}

function unknownCredential(name: string, resource: string | null): CredentialError {
  return new CredentialError('unknown_credential', resource === null ? 'No credential has that name.' : `No credential is named "${name}".`);
}

function requestContext(meta: ReleaseMeta): Record<string, unknown> {
  return { request_id: meta.requestId, ...(meta.remoteAddress ? { remote_address: meta.remoteAddress } : {}) };
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
