import type { PortConfig } from '../config/config.js';
import { OAuthError } from '../errors.js';
import type { DecisionLog } from '../audit/decision-log.js';
import { decisionRecord } from '../audit/decision-from-policy.js';
import { jtiHash } from '../audit/token-hash.js';
import type { BuildkiteTokenVerifier } from '../identity/buildkite-token-verifier.js';
import type { PortTokenIssuer } from '../issuer/port-token.js';
import type { RevocationList } from '../revocation/revocation-list.js';
import type { PolicyEngine } from '../policy/engine.js';
import { unmatchedPermitsContext } from '../policy/unmatched-permits.js';
import { ACCESS_TOKEN_TYPE, type ExchangeRequest } from './exchange-request.js';
import type { BuildCreatorLookup } from './build-creator.js';
import { BuildkiteTokenAdmission, decideExchange, type RequestMeta } from './buildkite-admission.js';
import { agentFactsClaim } from '../identity/agent-facts.js';
import { mergeObjects } from '../merge-objects.js';
import type { AgentGate } from '../agents/agent-gate.js';

export type { RequestMeta } from './buildkite-admission.js';

export interface TokenResponse {
  access_token: string;
  issued_token_type: string;
  /** `DPoP` when the token is bound to a key (RFC 9449 §5), else `Bearer` (RFC 6750). */
  token_type: 'Bearer' | 'DPoP';
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
  /** The agent checks of `pools:`; needed when any pool is configured. */
  agents?: AgentGate;
}

/**
 * RFC 8693 token exchange: verify the Buildkite token, decide
 * `exchange` on the organization, then `assume` for each requested scope — all or
 * nothing — mint a Port token carrying only what was granted, and refuse a replay.
 * Every decision, allow or deny, is in the decision log before the answer leaves.
 */
export class TokenExchange {
  private readonly admission: BuildkiteTokenAdmission;

  constructor(private readonly deps: ExchangeDeps) {
    this.admission = new BuildkiteTokenAdmission(deps);
  }

  async exchange(req: ExchangeRequest, meta: RequestMeta): Promise<TokenResponse> {
    const { config, policy, issuer } = this.deps;
    const audience = req.audience ?? config.issuer.audiences[0]!;
    if (!config.issuer.audiences.includes(audience)) {
      throw new OAuthError('invalid_target', `The audience "${audience.slice(0, 128)}" is not one Port issues tokens for.`);
    }
    const unknown = req.scopes.find((s) => !(s in config.credentials));
    if (unknown !== undefined) throw new OAuthError('invalid_scope', `The scope "${unknown}" is not a configured credential.`);

    const target = { action: 'exchange', resource: null } as const;
    const job = await this.admission.admit(req.subjectToken, meta, target);
    const { verified, creatorEmail, principal, context } = job;
    const { results, denied } = decideExchange(policy, job, audience, req.scopes);

    // Bound to a key (RFC 9449 §6.1 cnf.jkt): a host-bound pool's host key, else the key of a
    // proof the request came with (§5: a DPoP proof at the token endpoint asks for a bound token).
    const { agentCheck } = job;
    const jkt = agentCheck.jkt ?? meta.dpop?.jkt;
    let minted: Awaited<ReturnType<PortTokenIssuer['mint']>> | undefined;
    if (!denied) {
      minted = await issuer.mint(verified.identity, {
        audience,
        scopes: req.scopes,
        ttl: config.issuer.tokenTtl,
        ...(creatorEmail !== undefined ? { creator: creatorEmail } : job.creatorUnknown ? { creatorUnknown: true } : {}),
        // What Port verified about the agent travels with the token: the relay decides on it without a lookup.
        ...(agentCheck.facts !== undefined ? { agent: agentFactsClaim(agentCheck.facts) } : {}),
        ...(jkt !== undefined ? { jkt } : {}),
      });
    }
    const portToken = minted ? { port_token: { jti_sha256: jtiHash(minted.jti), exp: minted.expiresAt, aud: audience } } : {};
    const records = results.map((r) =>
      // A default deny also lists the permits that did not match (ids and @reasons).
      decisionRecord(r.decision, principal, r.action, r.resource, mergeObjects(context, unmatchedPermitsContext(r.decision), portToken)),
    );
    // The replay check and the decisions commit together: one durable write per exchange.
    // A replayed token's decisions and minted token are discarded, never logged or sent.
    await this.admission.consumeOnce(job, records, meta, target);

    if (denied) {
      const what = denied.action === 'exchange' ? 'the token exchange' : `the grant "${denied.resource.id}"`;
      throw new OAuthError('access_denied', `Policy denied ${what}: ${denied.decision.reason}`);
    }
    return {
      access_token: minted!.token,
      issued_token_type: ACCESS_TOKEN_TYPE,
      token_type: jkt !== undefined ? 'DPoP' : 'Bearer',
      expires_in: config.issuer.tokenTtl,
      scope: req.scopes.join(' '),
    };
  }
}
