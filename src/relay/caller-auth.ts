import type { IncomingHttpHeaders } from 'node:http';
import { mergeObjects } from '../merge-objects.js';
import { jtiHash } from '../audit/token-hash.js';
import { identityContext } from '../broker/identity-context.js';
import type { BuildkiteTokenVerifier } from '../identity/buildkite-token-verifier.js';
import { identityFromClaims } from '../identity/claims.js';
import { TokenRejectedError } from '../identity/errors.js';
import type { JobIdentity } from '../identity/job-identity.js';
import { identityClaims, type PortTokenIssuer } from '../issuer/port-token.js';
import { creatorLookupFailed, type BuildCreatorLookup } from '../broker/build-creator.js';
import type { RevocationList } from '../revocation/revocation-list.js';
import { portTokenFacts } from '../revocation/port-token-facts.js';
import { CREATOR_INACTIVE_MESSAGE, refusalMessage } from '../revocation/refusal.js';
import { buildkiteTokenFacts } from '../revocation/buildkite-token-facts.js';
import type { TokenFacts } from '../revocation/token-facts.js';
import { RefusalThrottledError, type RefusalThrottle } from '../audit/refusal-log.js';
import { RelayError } from './relay-error.js';
import { agentFactsFromClaim, type AgentFacts } from '../identity/agent-facts.js';
import { tokenAgentContext } from '../agents/agent-context.js';
import type { AgentCheck, AgentGate } from '../agents/agent-gate.js';
import { dpopChallenge, DpopError } from '../dpop/errors.js';
import { requestHtu } from '../dpop/htu.js';
import type { DpopVerifier } from '../dpop/proof-verifier.js';
import { checkSenderConstraint, dpopAuthorization, dpopFieldValues, type TokenScheme } from '../dpop/sender-constraint.js';

/** Who is calling the relay, from a verified token. */
export interface RelayCaller {
  identity: JobIdentity;
  /** The token's `jti` (revocation and decision-cache key); for Buildkite tokens their replay key. */
  tokenId: string;
  kind: 'port' | 'buildkite';
  expiresAt: number;
  /** What revocation checks (job, build, agent, pool, and the build's creator when known). */
  facts: TokenFacts;
  /** The build creator's lower-cased e-mail when known (Port tokens: `build_creator`). */
  creator?: string;
  /**
   * What every relay decision record about this caller carries (the decision log's convention):
   * `job` (the identity claims, with `build_creator` when known), the token as the SHA-256
   * of its jti — `port_token`, or for a Buildkite token `subject_token` — and `token_kind`.
   * Computed once per verified token, not per request.
   */
  recordContext: Readonly<Record<string, unknown>>;
  /** What Port verified about the job's agent (a Port token's `agent_attestation`); absent when unknown. */
  agent?: AgentFacts;
  /** RFC 9449: the DPoP key thumbprint the token is bound to (`cnf.jkt`); every request needs a proof with it. */
  jkt?: string;
}

const CHALLENGE = ['Bearer realm="port"', 'Basic realm="port", charset="UTF-8"', dpopChallenge()];
const MAX_CACHED = 10_000;

/**
 * Authenticates the relay's caller: a Port token as `Authorization: Bearer`, or as
 * the password of HTTP Basic auth (any username) so git, npm, docker and curl work
 * unchanged; optionally a Buildkite token directly. Verified tokens are cached until
 * they expire; revocation is checked on every request.
 */
export class CallerAuthenticator {
  private readonly cache = new Map<string, RelayCaller>();

  constructor(
    private readonly issuer: PortTokenIssuer,
    private readonly audiences: string[],
    private readonly revocations: RevocationList,
    private readonly buildkite: BuildkiteTokenVerifier | undefined,
    /** The build's creator for Buildkite tokens (a Port token carries it as `build_creator`). */
    private readonly creators?: BuildCreatorLookup,
    /** Per-source limit on tokens that don't verify, so junk can't fill the decision log; verified callers never meet it. */
    private readonly refusals?: RefusalThrottle,
    /** RFC 9449 proofs for tokens bound to a key (`cnf.jkt`); without it such tokens are refused. */
    private readonly dpop?: { verifier: DpopVerifier; publicUrl: string },
    /** The agent checks of `pools:` for Buildkite tokens (a Port token carries what its exchange verified). */
    private readonly agents?: AgentGate,
  ) {}

  /**
   * `source` is the remote address: a token that does not verify counts against it.
   * `request` (method, target as received, raw headers) is what a DPoP proof must match.
   */
  async authenticate(
    headers: IncomingHttpHeaders,
    now = Date.now(),
    source?: string,
    request?: { method: string; target: string; rawHeaders: readonly string[] },
  ): Promise<RelayCaller> {
    const { scheme, token } = presentedToken(headers.authorization);
    let caller = this.cache.get(token);
    if (caller === undefined) {
      caller = await this.verify(token, source);
      if (this.cache.size >= MAX_CACHED) this.cache.delete(this.cache.keys().next().value!);
      this.cache.set(token, caller);
    }
    if (caller.expiresAt * 1000 <= now) {
      this.cache.delete(token);
      throw unauthorized('invalid_token', 'The token has expired; exchange a fresh Buildkite token.');
    }
    // Per request, never cached with the token: each proof is single use (RFC 9449 §11.1).
    await this.checkBinding(caller, scheme, token, request, now, source);
    // Checked on every request, cached or not: a revocation applies to the next request.
    const refused = this.revocations.refusalOf(caller.facts, now);
    if (refused) {
      // The creator unknown for the Buildkite API's outage: retry later (RFC 6750 §3.1 has no code for it).
      if (refused.kind === 'creator_unknown' && refused.since === 'now') {
        // Not remembered with the token: the retry asks the Buildkite API again.
        this.cache.delete(token);
        throw new RelayError('temporarily_unavailable', refusalMessage(refused), 503, { 'retry-after': '5' });
      }
      throw unauthorized('invalid_token', refusalMessage(refused));
    }
    return caller;
  }

  private async verify(token: string, source: string | undefined): Promise<RelayCaller> {
    const claims = await this.issuer.verify(token, this.audiences);
    if (claims) {
      const identity = identityFromClaims(claims);
      // Signed by Port at exchange, so trusted; anything but a non-empty string is no creator.
      const creator = typeof claims.build_creator === 'string' && claims.build_creator !== '' ? claims.build_creator.toLowerCase() : undefined;
      const agent = agentFactsFromClaim(claims.agent_attestation);
      const jkt = typeof claims.cnf?.jkt === 'string' ? claims.cnf.jkt : undefined;
      return {
        identity,
        tokenId: claims.jti,
        kind: 'port',
        expiresAt: claims.exp,
        facts: portTokenFacts(claims),
        ...(creator !== undefined ? { creator } : {}),
        ...(agent !== undefined ? { agent } : {}),
        ...(jkt !== undefined ? { jkt } : {}),
        recordContext: {
          token_kind: 'port',
          job: withCreator(identityClaims(identity), creator),
          port_token: { jti_sha256: jtiHash(claims.jti) },
          ...agentContextOf(tokenAgentContext(identity, agent, jkt !== undefined)),
        },
      };
    }
    if (this.buildkite) {
      try {
        const v = await this.buildkite.verify(token);
        const found = this.creators ? await this.creators.creatorOf(v.identity) : undefined;
        const creator = found?.status === 'known' ? found.email : undefined;
        // As at the exchange: the directory's "inactive" refuses on its own. Not cached: asked again next time.
        if (found?.status === 'known' && found.user?.active === false) throw unauthorized('invalid_token', CREATOR_INACTIVE_MESSAGE);
        // A failed creator lookup is remembered as such: a user revocation then refuses the token (fail closed).
        // The token's own jti, as a token revocation names it; v.replayKey is the replay cache's.
        const facts = buildkiteTokenFacts(v, creator, found !== undefined && creatorLookupFailed(found));
        const { job, subject_token } = identityContext(v);
        // The agent gate, as at exchange; a host-bound pool's job can't bind a Buildkite token, so it is refused there.
        const checked = await this.checkAgent(v.identity);
        return {
          identity: v.identity,
          tokenId: v.replayKey,
          kind: 'buildkite',
          expiresAt: v.identity.expiresAt,
          facts,
          ...(creator !== undefined ? { creator } : {}),
          ...(checked.facts !== undefined ? { agent: checked.facts } : {}),
          recordContext: { token_kind: 'buildkite', job: withCreator(job as Record<string, unknown>, creator), subject_token, ...agentContextOf(checked.context) },
        };
      } catch (err) {
        if (err instanceof RelayError) throw err;
        // Port can't reach Buildkite's keys: its outage, not the caller's fault — 503, never counted as a bad token.
        if (err instanceof TokenRejectedError && err.check === 'jwks_unavailable') {
          throw new RelayError('temporarily_unavailable', err.message, 503, { 'retry-after': '5' });
        }
        // Fall through to the generic refusal: which check failed is not the caller's business here.
      }
    }
    this.throttle(source);
    throw unauthorized('invalid_token', 'The credential is not a valid Port token for this relay.');
  }

  /** The agent checks of `pools:` for a Buildkite token: a refusal answers 403 with its reason (503 for Buildkite's outage). */
  private async checkAgent(identity: JobIdentity): Promise<AgentCheck> {
    if (this.agents === undefined) return { context: undefined };
    try {
      return await this.agents.check(identity, {});
    } catch (err) {
      if (!(err instanceof TokenRejectedError)) throw err;
      if (err.check === 'buildkite_unavailable') throw new RelayError('temporarily_unavailable', err.message, 503, { 'retry-after': String(err.retryAfterSeconds ?? 5) });
      throw new RelayError('access_denied', err.message, 403);
    }
  }

  /** RFC 9449 §7: a bound token needs the DPoP scheme and a proof for this request made with its key. */
  private async checkBinding(
    caller: RelayCaller,
    scheme: TokenScheme,
    token: string,
    request: { method: string; target: string; rawHeaders: readonly string[] } | undefined,
    now: number,
    source: string | undefined,
  ): Promise<void> {
    if (caller.jkt === undefined && scheme !== 'dpop') return;
    try {
      const target = request && this.dpop ? { method: request.method, url: requestHtu(this.dpop.publicUrl, request.target), proofs: dpopFieldValues(request.rawHeaders) } : { method: '', url: '', proofs: [] };
      await checkSenderConstraint(request ? this.dpop?.verifier : undefined, { scheme, token }, caller.jkt, target, now);
    } catch (err) {
      if (!(err instanceof DpopError)) throw err;
      // A copied token tried without its key counts against the source, like a bad token.
      this.throttle(source);
      throw new RelayError(err.code, err.message, 401, { 'www-authenticate': err.challenge });
    }
  }

  /** A token that verified as nothing counts against its source; over the limit, 429 (RFC 6585 §4) with Retry-After. */
  private throttle(source: string | undefined): void {
    try {
      this.refusals?.charge(source);
    } catch (err) {
      if (!(err instanceof RefusalThrottledError)) throw err;
      throw new RelayError(err.code, err.message, 429, { 'retry-after': String(err.retryAfterSeconds) });
    }
  }
}

function agentContextOf(agent: Record<string, unknown> | undefined): { agent?: Record<string, unknown> } {
  return agent === undefined ? {} : { agent };
}

function withCreator(job: object, creator: string | undefined): Record<string, unknown> {
  return creator === undefined ? { ...job } : mergeObjects(job, { build_creator: creator });
}

function unauthorized(code: string, message: string): RelayError {
  return new RelayError(code, message, 401, { 'www-authenticate': CHALLENGE });
}

/** RFC 6750 §2.1 Bearer, RFC 7617 Basic with the token as the password, or RFC 9449 §7.1 DPoP. */
function presentedToken(header: string | undefined): { scheme: TokenScheme; token: string } {
  if (header === undefined || header === '') {
    throw unauthorized('invalid_request', 'The relay needs a Port token: Authorization: Bearer <token>, or the token as the Basic-auth password.');
  }
  const bearer = /^Bearer +([A-Za-z0-9._~+/-]+=*)$/i.exec(header);
  if (bearer) return { scheme: 'bearer', token: bearer[1]! };
  const dpop = dpopAuthorization(header);
  if (dpop !== undefined) return { scheme: 'dpop', token: dpop };
  const basic = /^Basic +([A-Za-z0-9+/]+=*)$/i.exec(header);
  if (basic) {
    const decoded = Buffer.from(basic[1]!, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon >= 0 && colon < decoded.length - 1) return { scheme: 'basic', token: decoded.slice(colon + 1) };
  }
  throw unauthorized('invalid_request', 'The Authorization header is neither Bearer, DPoP, nor Basic with a password.');
}
