import { randomUUID } from 'node:crypto';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { entityString } from '../../audit/decision-from-policy.js';
import type { RefusalThrottle } from '../../audit/refusal-log.js';
import type { DecisionLog } from '../../audit/decision-log.js';
import { jtiHash } from '../../audit/token-hash.js';
import { PortError } from '../../errors.js';
import { identityFromClaims } from '../../identity/claims.js';
import { identityClaims, type PortTokenClaims, type PortTokenIssuer } from '../../issuer/port-token.js';
import { revocationEnd, type RevocationOrigin } from '../../revocation/revocation-list.js';
import type { RevocationService } from '../../revocation/revocation-service.js';
import { parseLiftRequest, parseRevocationRequest } from '../../revocation/revocation-target.js';
import type { AdminAuthenticator } from '../admin-auth.js';
import { sendPortError } from '../error-handler.js';

export const REVOCATIONS_PATH = '/v1/revocations';

/** Largest request body accepted (bytes): `{scope, id, reason, expires_in}` fits in far less. */
const MAX_BODY_BYTES = 4096;

/** The revocation API refused the request. */
export class RevocationApiError extends PortError {}

export interface RevocationRouteDeps {
  service: RevocationService;
  admin: AdminAuthenticator;
  issuer: PortTokenIssuer;
  audiences: string[];
  log: DecisionLog;
  /** Per-source limit on bearer tokens that don't verify, so junk can't fill the decision log: 429 past it. */
  refusals?: RefusalThrottle;
}

/**
 * `POST /v1/revocations` `{scope, id, reason?, expires_in?}`, `DELETE /v1/revocations`
 * `{scope, id, reason?}` (lift) and `GET /v1/revocations`.
 * The admin bearer (`server.admin_token`) may revoke and lift anything. A Port token may
 * revoke only its own job (`{"scope":"job","id":<its job id>}`), for the default time:
 * the Buildkite plugin's `pre-exit` hook ends its job's access this way. Revocation only
 * takes access away, so holding a token of the job is authority enough for that one
 * thing; lifting gives access back, so it is the admin's alone.
 */
export function revocationRoutes(app: FastifyInstance, deps: RevocationRouteDeps): void {
  const errorHandler = (err: FastifyError | Error, request: FastifyRequest, reply: FastifyReply) => {
    if (err instanceof PortError) return sendPortError(err, request, reply);
    const fe = err as FastifyError;
    if (fe.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return sendPortError(tooLarge(), request, reply);
    if (fe.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' || fe.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || (fe.statusCode === 400 && err instanceof SyntaxError)) {
      return sendPortError(new RevocationApiError('invalid_request', 'The request body is not valid JSON.', 400), request, reply);
    }
    throw err;
  };

  const jsonBody = {
    bodyLimit: MAX_BODY_BYTES,
    errorHandler,
    // Checked before the body is read, so a refused request is never parsed.
    onRequest: async (request: FastifyRequest) => {
      if (Number(request.headers['content-length']) > MAX_BODY_BYTES) throw tooLarge();
      const type = (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
      if (type !== 'application/json') throw new RevocationApiError('unsupported_media_type', 'The request body must be application/json.', 415);
    },
  };

  app.post(
    REVOCATIONS_PATH,
    jsonBody,
    async (request, reply) => {
      reply.header('Cache-Control', 'no-store');
      const caller = await authenticate(request, deps);
      const target = parseRevocationRequest(request.body);
      if (caller.kind === 'job') {
        if (target.scope !== 'job' || target.id !== caller.claims.sub) {
          await deps.log.record([
            {
              id: randomUUID(),
              time: new Date().toISOString(),
              principal: entityString({ type: 'Job', id: caller.claims.sub }),
              action: 'revoke',
              resource: null,
              decision: 'deny',
              policies: [],
              reason: 'A Port token may revoke only its own job.',
              context: { ...jobContext(caller.claims), scope: target.scope, request_id: request.id },
            },
          ]);
          throw new RevocationApiError('access_denied', 'A Port token may revoke only its own job: {"scope":"job","id":"<its job id>"}.', 403);
        }
        if (target.expiresIn !== undefined) {
          // A shorter self-revocation would hand the job its tokens back early.
          throw new RevocationApiError('invalid_request', "A job's revocation of itself lasts as long as its tokens can; leave out expires_in.", 400);
        }
        return deps.service.revoke({
          scope: 'job',
          id: target.id,
          reason: target.reason ?? 'the job revoked itself (plugin pre-exit hook)',
          actor: entityString({ type: 'Job', id: caller.claims.sub }),
          context: { ...jobContext(caller.claims), request_id: request.id },
        });
      }
      return deps.service.revoke({ ...target, actor: 'admin', context: { request_id: request.id, remote_address: request.ip } });
    },
  );

  // Lifting: the admin only. Answered once the lift is durable; 404 when nothing was in
  // force; 409 when only a job's own end is (LIFTABLE_ORIGINS: a finished job stays finished).
  app.delete(REVOCATIONS_PATH, jsonBody, async (request, reply) => {
    reply.header('Cache-Control', 'no-store');
    if (!deps.admin.isAdmin(request)) {
      const bearer = /^Bearer +([A-Za-z0-9._~+/-]+=*)$/i.exec(request.headers.authorization ?? '')?.[1];
      if (bearer !== undefined && (await deps.issuer.verify(bearer, deps.audiences)) !== undefined) {
        throw new RevocationApiError('access_denied', 'Only the admin token may lift a revocation.', 403);
      }
      // A bearer that is neither the admin token nor a Port token counts against its address.
      if (bearer !== undefined && deps.admin.enabled) deps.refusals?.charge(request.ip);
      deps.admin.require(request);
    }
    const target = parseLiftRequest(request.body);
    const result = await deps.service.lift({ ...target, actor: 'admin', context: { request_id: request.id, remote_address: request.ip } });
    if (result.lifted === 0) {
      if (result.still_revoked_by.length > 0) throw notLiftable(result.still_revoked_by);
      throw new RevocationApiError('not_revoked', `No ${target.scope} revocation of that id is in force; nothing was lifted.`, 404);
    }
    return result;
  });

  app.get(REVOCATIONS_PATH, async (request, reply) => {
    deps.admin.require(request);
    reply.header('Cache-Control', 'no-store');
    return {
      revocations: deps.service.revocations.list().map((r) => ({
        scope: r.scope,
        id: r.id,
        revoked_at: new Date(r.revokedAt).toISOString(),
        expires_at: revocationEnd(r.expiresAt),
        reason: r.reason,
        by: r.origins,
      })),
    };
  });
}

type Caller = { kind: 'admin' } | { kind: 'job'; claims: PortTokenClaims };

async function authenticate(request: FastifyRequest, deps: RevocationRouteDeps): Promise<Caller> {
  if (deps.admin.isAdmin(request)) return { kind: 'admin' };
  const m = /^Bearer +([A-Za-z0-9._~+/-]+=*)$/i.exec(request.headers.authorization ?? '');
  if (!m) throw new RevocationApiError('invalid_token', 'Revocation needs Authorization: Bearer with the admin token or a Port token of the job.', 401);
  const claims = await deps.issuer.verify(m[1]!, deps.audiences);
  if (!claims) {
    // Counted against the address (429 past its limit); not logged: nobody was identified.
    deps.refusals?.charge(request.ip);
    throw new RevocationApiError('invalid_token', 'The bearer token is neither the admin token nor a valid Port token.', 401);
  }
  // A revoked token still may revoke its own job (and nothing else): that only takes
  // access away, and makes the plugin's pre-exit call idempotent after job.finished.
  return { kind: 'job', claims };
}

/** Decision-log convention: the job's identity claims and the bearer token's jti hash. */
function jobContext(claims: PortTokenClaims): Record<string, unknown> {
  return {
    job: { ...identityClaims(identityFromClaims(claims)), ...(claims.build_creator !== undefined ? { build_creator: claims.build_creator } : {}) },
    port_token: { jti_sha256: jtiHash(claims.jti) },
  };
}

/** 409: what is in force is a job's (or token's) own end, which no lift undoes. */
function notLiftable(by: RevocationOrigin[]): RevocationApiError {
  const why = by.includes('webhook') || by.includes('job')
    ? 'The job has finished (job.finished) or revoked itself, and a finished job stays finished'
    : "The token's holder revoked it (RFC 7009), and a token given up stays given up";
  return new RevocationApiError('not_liftable', `${why}: that revocation can't be lifted; nothing was lifted.`, 409);
}

function tooLarge(): RevocationApiError {
  return new RevocationApiError('request_too_large', `The request body is larger than the ${MAX_BODY_BYTES} bytes a revocation needs.`, 413);
}
