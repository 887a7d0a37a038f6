import { timingSafeEqual, createHash, randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { DecisionLog } from '../../audit/decision-log.js';
import { jtiHash } from '../../audit/token-hash.js';
import { parseExchangeRequest } from '../../broker/exchange-request.js';
import { entityString } from '../../audit/decision-from-policy.js';
import type { TokenExchange } from '../../broker/token-exchange.js';
import { OAuthError } from '../../errors.js';
import type { PortTokenClaims, PortTokenIssuer } from '../../issuer/port-token.js';
import type { RefusalThrottle } from '../../audit/refusal-log.js';
import type { RevocationList } from '../../revocation/revocation-list.js';
import { portTokenFacts } from '../../revocation/port-token-facts.js';
import { DpopError } from '../../dpop/errors.js';
import type { DpopVerifier } from '../../dpop/proof-verifier.js';
import { dpopFieldValues } from '../../dpop/sender-constraint.js';

export interface OAuthRouteDeps {
  exchange: TokenExchange;
  issuer: PortTokenIssuer;
  revocations: RevocationList;
  log: DecisionLog;
  audiences: string[];
  /** Secret resource servers present to introspect any token. */
  introspectionToken?: string;
  /** Per-source limit on bearer tokens that don't verify, so junk can't fill the decision log: 429 past it. */
  refusals?: RefusalThrottle;
  /** RFC 9449 §5: a `DPoP` proof at /oauth/token binds the Port token to its key; without a verifier, proofs are refused. */
  dpop?: DpopVerifier;
  /** `server.public_url`: a proof at the token endpoint names `<public_url>/oauth/token`. */
  publicUrl?: string;
}

const FORM = 'application/x-www-form-urlencoded';

/** RFC 6749 §3.2 / RFC 7009 §2.1 / RFC 7662 §2.1: these endpoints take form-encoded POST bodies. */
function formBody(request: FastifyRequest): Record<string, unknown> {
  const type = (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== FORM) throw new OAuthError('invalid_request', `The request body must be ${FORM}.`, 415);
  return (request.body ?? {}) as Record<string, unknown>;
}

function noStore(reply: FastifyReply): void {
  // RFC 6749 §5.1: responses carrying tokens must not be cached.
  reply.header('Cache-Control', 'no-store').header('Pragma', 'no-cache');
}

function singleParam(body: Record<string, unknown>, name: string): string {
  const v = body[name];
  if (v === undefined || v === '') throw new OAuthError('invalid_request', `The ${name} parameter is missing.`);
  if (typeof v !== 'string') throw new OAuthError('invalid_request', `The ${name} parameter must appear once, as a string.`);
  return v;
}

export function oauthRoutes(app: FastifyInstance, deps: OAuthRouteDeps): void {
  app.post('/oauth/token', async (request, reply) => {
    noStore(reply);
    const req = parseExchangeRequest(formBody(request));
    const proof = await tokenRequestProof(request, deps);
    return deps.exchange.exchange(req, { requestId: request.id, remoteAddress: request.ip, ...(proof ? { dpop: { jkt: proof.jkt } } : {}) });
  });

  // RFC 7009. Holding a token is the authority to revoke it: revocation can only
  // take access away, so no client authentication is asked. Invalid tokens get 200
  // (§2.2) and are not recorded, so the list can't be filled with junk.
  app.post('/oauth/revoke', async (request, reply) => {
    noStore(reply);
    const token = singleParam(formBody(request), 'token');
    const claims = await deps.issuer.verify(token, deps.audiences);
    if (claims && !deps.revocations.isTokenRevoked(tokenFacts(claims))) {
      const now = Date.now();
      await deps.revocations.revokeToken({ jti: claims.jti, expiresAt: claims.exp * 1000, revokedAt: now, subject: claims.sub, reason: 'revoked by token holder (RFC 7009)' });
      await deps.log.record([
        {
          id: randomUUID(),
          time: new Date(now).toISOString(),
          principal: entityString({ type: 'Job', id: claims.sub }),
          action: 'revoke',
          resource: null,
          decision: 'allow',
          policies: [],
          reason: 'The token holder revoked the token.',
          context: { port_token: { jti_sha256: jtiHash(claims.jti), exp: claims.exp }, request_id: request.id },
        },
      ]);
    }
    return reply.code(200).send();
  });

  // RFC 7662. §2.1 asks for caller authorization: either the introspection secret
  // (resource servers; any token) or a valid Port token of the same job as the token
  // being introspected (a job checking its own tokens).
  app.post('/oauth/introspect', async (request, reply) => {
    noStore(reply);
    const body = formBody(request);
    const caller = await authorizeIntrospection(request, deps);
    const token = singleParam(body, 'token');
    const claims = await deps.issuer.verify(token, deps.audiences);
    if (!claims || deps.revocations.isTokenRevoked(tokenFacts(claims))) return { active: false };
    if (caller !== 'any' && caller !== claims.sub) return { active: false };
    return introspection(claims);
  });
}

/**
 * RFC 9449 §5: a token request with a `DPoP` field asks for a token bound to the proof's key.
 * The proof names POST and `<public_url>/oauth/token`; an invalid one is refused with 400
 * `invalid_dpop_proof` before the subject token is looked at, and logged as an
 * unauthenticated refusal (counted per source, so junk can't fill the log).
 */
async function tokenRequestProof(request: FastifyRequest, deps: OAuthRouteDeps): Promise<{ jkt: string } | undefined> {
  const proofs = dpopFieldValues(request.raw.rawHeaders);
  if (proofs.length === 0) return undefined;
  try {
    if (deps.dpop === undefined || deps.publicUrl === undefined) throw new DpopError('proof_missing', 'This Port does not bind tokens to keys (no DPoP verifier); send the request without a DPoP header.');
    return await deps.dpop.verify(proofs, { method: request.method, url: `${deps.publicUrl.replace(/\/+$/, '')}/oauth/token` });
  } catch (err) {
    if (!(err instanceof DpopError)) throw err;
    await deps.log.record([
      {
        id: randomUUID(),
        time: new Date().toISOString(),
        principal: null,
        action: 'exchange',
        resource: null,
        decision: 'deny',
        policies: [],
        reason: err.message,
        context: { check: `dpop_${err.check}`, request_id: request.id, ...(request.ip ? { remote_address: request.ip } : {}) },
      },
    ]);
    throw err;
  }
}

async function authorizeIntrospection(request: FastifyRequest, deps: OAuthRouteDeps): Promise<'any' | string> {
  const header = request.headers.authorization;
  const m = typeof header === 'string' ? /^Bearer ([A-Za-z0-9._~+/=-]+)$/.exec(header) : null;
  if (!m) throw new OAuthError('invalid_client', 'Introspection needs Authorization: Bearer with the introspection secret or a Port token.');
  const presented = m[1]!;
  if (deps.introspectionToken !== undefined && sameSecret(presented, deps.introspectionToken)) return 'any';
  const claims = await deps.issuer.verify(presented, deps.audiences);
  if (!claims || deps.revocations.isTokenRevoked(tokenFacts(claims))) {
    // Not logged; only counted against the address, so guessing can't go on at full speed.
    deps.refusals?.charge(request.ip);
    throw new OAuthError('invalid_client', 'The bearer credential for introspection is not valid.');
  }
  return claims.sub;
}

/** Every scope the token can be revoked by (token, job, build, user, agent, pool). */
const tokenFacts = portTokenFacts;

function sameSecret(a: string, b: string): boolean {
  // Compare digests so the comparison is constant-time whatever the lengths.
  const da = createHash('sha256').update(a).digest();
  const db = createHash('sha256').update(b).digest();
  return timingSafeEqual(da, db);
}

function introspection(claims: PortTokenClaims): Record<string, unknown> {
  const { iss, sub, aud, exp, iat, nbf, jti, scope, ...job } = claims;
  // RFC 9449 §6.2: a bound token introspects as token_type DPoP, with its cnf (kept in `job`'s rest).
  return { active: true, token_type: claims.cnf?.jkt !== undefined ? 'DPoP' : 'Bearer', iss, sub, aud, exp, iat, nbf, jti, scope, ...job };
}
