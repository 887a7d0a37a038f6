import { randomUUID } from 'node:crypto';
import type { PortConfig } from '../config/config.js';
import { OAuthError } from '../errors.js';
import type { DecisionLog } from '../audit/decision-log.js';
import type { DecisionRecord } from '../audit/decision-record.js';
import { decisionRecord, entityString } from '../audit/decision-from-policy.js';
import { jtiHash } from '../audit/token-hash.js';
import type { BuildkiteTokenVerifier, VerifiedJobToken } from '../identity/buildkite-token-verifier.js';
import { TokenRejectedError } from '../identity/errors.js';
import type { PortTokenIssuer } from '../issuer/port-token.js';
import type { Revocation, RevocationList } from '../revocation/revocation-list.js';
import { tokenFacts } from '../revocation/token-facts.js';
import { credentialRef, jobRequestParts, organizationRef } from '../policy/entities.js';
import type { PolicyEngine } from '../policy/engine.js';
import type { AuthzRequest, EntityRef } from '../policy/types.js';
import { ACCESS_TOKEN_TYPE, type ExchangeRequest } from './exchange-request.js';
import type { BuildCreator, BuildCreatorLookup } from './build-creator.js';
import { identityContext } from './identity-context.js';

export interface TokenResponse {
  access_token: string;
  issued_token_type: string;
  token_type: 'Bearer';
  expires_in: number;
  scope: string;
}

export interface ExchangeDeps {
  config: PortConfig;
  verifier: BuildkiteTokenVerifier;
  policy: PolicyEngine;
  issuer: PortTokenIssuer;
  log: DecisionLog;
  revocations: RevocationList;
  /** Who started the build (Buildkite API); without it the creator is unknown. */
  creators?: BuildCreatorLookup;
}

/** Identifies the request in decision log entries (never the token). */
export interface RequestMeta {
  requestId: string;
  remoteAddress?: string;
}

/**
 * RFC 8693 token exchange (DESIGN capability 1): verify the Buildkite token, decide
 * `exchange` on the organization, then `assume` for each requested scope — all or
 * nothing — mint a Port token carrying only what was granted, and refuse a replay.
 * Every decision, allow or deny, is in the decision log before the answer leaves.
 */
export class TokenExchange {
  constructor(private readonly deps: ExchangeDeps) {}

  async exchange(req: ExchangeRequest, meta: RequestMeta): Promise<TokenResponse> {
    const { config, verifier, policy, issuer, log } = this.deps;
    const audience = req.audience ?? config.issuer.audiences[0]!;
    if (!config.issuer.audiences.includes(audience)) {
      throw new OAuthError('invalid_target', `The audience "${audience.slice(0, 128)}" is not one Port issues tokens for.`);
    }
    const unknown = req.scopes.find((s) => !(s in config.credentials));
    if (unknown !== undefined) throw new OAuthError('invalid_scope', `The scope "${unknown}" is not a configured credential.`);

    let verified: VerifiedJobToken;
    try {
      verified = await verifier.verify(req.subjectToken);
    } catch (err) {
      if (err instanceof TokenRejectedError) await log.record([refusal(err, meta, undefined)]);
      throw err;
    }
    const creator: BuildCreator = this.deps.creators ? await this.deps.creators.creatorOf(verified.identity) : { status: 'unavailable' };
    const creatorEmail = creator.status === 'known' ? creator.email : undefined;
    // A job or build revoked at any time, or a user, agent or pool revoked after this
    // Buildkite token was issued: the token buys nothing (src/revocation/revocation-list.ts).
    const revoked = this.deps.revocations.revokedBy(
      tokenFacts(verified.identity, { jti: verified.replayKey, issuedAt: verified.identity.issuedAt, creator: creatorEmail }),
    );
    if (revoked) {
      const err = new TokenRejectedError('job_revoked', revokedMessage(revoked));
      await log.record([refusal(err, meta, verified, { revocation: { scope: revoked.scope }, build_creator: creatorContext(creator) })]);
      throw err;
    }

    const { principal, entities } = jobRequestParts(verified.identity, creator.status === 'known' && creator.user ? { creator: creator.user } : undefined);
    const identityCtx = identityContext(verified);
    const context = {
      ...identityCtx,
      // DESIGN decision-log convention: context.job carries build_creator when known.
      job: { ...(identityCtx.job as Record<string, unknown>), ...(creatorEmail !== undefined ? { build_creator: creatorEmail } : {}) },
      build_creator: creatorContext(creator),
      request_id: meta.requestId,
    };
    const decide = (action: AuthzRequest['action'], resource: EntityRef, ctx: AuthzRequest['context']) =>
      ({ action, resource, decision: policy.decide({ principal, action, resource, context: ctx, entities }) }) as const;

    const results = [decide('exchange', organizationRef(verified.identity.organizationSlug), { audience, scopes: req.scopes })];
    if (results[0]!.decision.decision === 'allow') {
      for (const scope of req.scopes) results.push(decide('assume', credentialRef(scope), {}));
    }
    const denied = results.find((r) => r.decision.decision === 'deny');

    let minted: Awaited<ReturnType<PortTokenIssuer['mint']>> | undefined;
    if (!denied) {
      minted = await issuer.mint(verified.identity, {
        audience,
        scopes: req.scopes,
        ttl: config.issuer.tokenTtl,
        ...(creatorEmail !== undefined ? { creator: creatorEmail } : {}),
      });
    }
    const records = results.map((r) =>
      decisionRecord(r.decision, principal, r.action, r.resource, {
        ...context,
        ...(minted ? { port_token: { jti_sha256: jtiHash(minted.jti), exp: minted.expiresAt, aud: audience } } : {}),
      }),
    );
    // Single use (buildkite.md §1.5), remembered until the token expires anyway. The
    // replay check and the decisions commit together: one durable write per exchange.
    // A replayed token's decisions and minted token are discarded, never logged or sent.
    const replayed = new TokenRejectedError('replayed', 'The subject token was already exchanged; request a fresh one from the agent.');
    const firstUse = await log.recordFirstUse(
      verified.replayKey,
      (verified.identity.expiresAt + config.buildkite.clockSkew) * 1000,
      records,
      [refusal(replayed, meta, verified)],
    );
    if (!firstUse) throw replayed;

    if (denied) {
      const what = denied.action === 'exchange' ? 'the token exchange' : `the grant "${denied.resource.id}"`;
      throw new OAuthError('access_denied', `Policy denied ${what}: ${denied.decision.reason}`);
    }
    return {
      access_token: minted!.token,
      issued_token_type: ACCESS_TOKEN_TYPE,
      token_type: 'Bearer',
      expires_in: config.issuer.tokenTtl,
      scope: req.scopes.join(' '),
    };
  }
}

/** A refused subject token: logged with the failed check, and the job only if the token verified. */
function refusal(err: TokenRejectedError, meta: RequestMeta, verified: VerifiedJobToken | undefined, extra: Record<string, unknown> = {}): DecisionRecord {
  return {
    id: randomUUID(),
    time: new Date().toISOString(),
    principal: verified ? entityString({ type: 'Job', id: verified.identity.jobId }) : null,
    action: 'exchange',
    resource: null,
    decision: 'deny',
    policies: [],
    reason: err.message,
    context: {
      check: err.check,
      request_id: meta.requestId,
      ...(meta.remoteAddress ? { remote_address: meta.remoteAddress } : {}),
      ...(verified ? identityContext(verified) : {}),
      ...extra,
    },
  };
}

/** Whether the exchange knew the build's creator (recorded with every exchange decision). */
function creatorContext(creator: BuildCreator): Record<string, unknown> {
  if (creator.status !== 'known') return { known: false, status: creator.status };
  return { known: true, in_directory: creator.user !== undefined, ...(creator.user ? { active: creator.user.active } : {}) };
}

function revokedMessage(r: Revocation): string {
  switch (r.scope) {
    case 'job':
      return 'The job this token belongs to has finished or was revoked; it gets no Port token.';
    case 'build':
      return 'The build this token belongs to was revoked; its jobs get no Port token.';
    case 'user':
      return "The build's creator was revoked after this token was issued; request a fresh token.";
    case 'agent':
      return 'The agent this token names was revoked after this token was issued; request a fresh token.';
    case 'pool':
      return "The agent's pool was revoked after this token was issued; request a fresh token.";
    default:
      return 'This token was revoked.';
  }
}
