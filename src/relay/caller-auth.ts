import type { IncomingHttpHeaders } from 'node:http';
import type { BuildkiteTokenVerifier } from '../identity/buildkite-token-verifier.js';
import { identityFromClaims } from '../identity/claims.js';
import type { JobIdentity } from '../identity/job-identity.js';
import type { PortTokenIssuer } from '../issuer/port-token.js';
import type { BuildCreatorLookup } from '../broker/build-creator.js';
import type { RevocationList } from '../revocation/revocation-list.js';
import { portTokenFacts } from '../revocation/port-token-facts.js';
import { tokenFacts, type TokenFacts } from '../revocation/token-facts.js';
import { RelayError } from './relay-error.js';

/** Who is calling the relay, from a verified token. */
export interface RelayCaller {
  identity: JobIdentity;
  /** The token's `jti` (revocation and decision-cache key); for Buildkite tokens their replay key. */
  tokenId: string;
  kind: 'port' | 'buildkite';
  expiresAt: number;
  /** What revocation checks (job, build, agent, pool, and the build's creator when known). */
  facts: TokenFacts;
}

const CHALLENGE = ['Bearer realm="port"', 'Basic realm="port", charset="UTF-8"'];
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
  ) {}

  async authenticate(headers: IncomingHttpHeaders, now = Date.now()): Promise<RelayCaller> {
    const token = presentedToken(headers.authorization);
    let caller = this.cache.get(token);
    if (caller === undefined) {
      caller = await this.verify(token);
      if (this.cache.size >= MAX_CACHED) this.cache.delete(this.cache.keys().next().value!);
      this.cache.set(token, caller);
    }
    if (caller.expiresAt * 1000 <= now) {
      this.cache.delete(token);
      throw unauthorized('invalid_token', 'The token has expired; exchange a fresh Buildkite token.');
    }
    // Checked on every request, cached or not: a revocation applies to the next request.
    if (this.revocations.isTokenRevoked(caller.facts)) {
      throw unauthorized('invalid_token', 'The token has been revoked.');
    }
    return caller;
  }

  private async verify(token: string): Promise<RelayCaller> {
    const claims = await this.issuer.verify(token, this.audiences);
    if (claims) {
      return { identity: identityFromClaims(claims), tokenId: claims.jti, kind: 'port', expiresAt: claims.exp, facts: portTokenFacts(claims) };
    }
    if (this.buildkite) {
      try {
        const v = await this.buildkite.verify(token);
        const creator = this.creators ? await this.creators.creatorOf(v.identity) : undefined;
        const facts = tokenFacts(v.identity, { jti: v.replayKey, issuedAt: v.identity.issuedAt, creator: creator?.status === 'known' ? creator.email : undefined });
        return { identity: v.identity, tokenId: v.replayKey, kind: 'buildkite', expiresAt: v.identity.expiresAt, facts };
      } catch {
        // Fall through to the generic refusal: which check failed is not the caller's business here.
      }
    }
    throw unauthorized('invalid_token', 'The credential is not a valid Port token for this relay.');
  }
}

function unauthorized(code: string, message: string): RelayError {
  return new RelayError(code, message, 401, { 'www-authenticate': CHALLENGE });
}

/** RFC 6750 §2.1 Bearer, or RFC 7617 Basic with the token as the password. */
function presentedToken(header: string | undefined): string {
  if (header === undefined || header === '') {
    throw unauthorized('invalid_request', 'The relay needs a Port token: Authorization: Bearer <token>, or the token as the Basic-auth password.');
  }
  const bearer = /^Bearer +([A-Za-z0-9._~+/-]+=*)$/i.exec(header);
  if (bearer) return bearer[1]!;
  const basic = /^Basic +([A-Za-z0-9+/]+=*)$/i.exec(header);
  if (basic) {
    const decoded = Buffer.from(basic[1]!, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon >= 0 && colon < decoded.length - 1) return decoded.slice(colon + 1);
  }
  throw unauthorized('invalid_request', 'The Authorization header is neither Bearer nor Basic with a password.');
}
