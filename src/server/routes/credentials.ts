import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { CredentialService } from '../../broker/credentials/credential-service.js';
import { CredentialError } from '../../broker/credentials/errors.js';
import type { SecretRotation } from '../../broker/credentials/secret-rotation.js';
import type { PortConfig } from '../../config/config.js';
import type { AdminAuthenticator } from '../admin-auth.js';
import { DpopError } from '../../dpop/errors.js';
import { dpopFieldValues } from '../../dpop/sender-constraint.js';
import { sendPortError } from '../error-handler.js';

export interface CredentialRouteDeps {
  config: PortConfig;
  credentials: CredentialService;
  secrets: SecretRotation;
  admin: AdminAuthenticator;
}

function noStore(reply: FastifyReply): void {
  // The answer is a credential (RFC 6749 §5.1's rule for tokens applies to it too).
  reply.header('Cache-Control', 'no-store').header('Pragma', 'no-cache');
}

/**
 * The body of these POSTs carries nothing: none at all, or the JSON object `{}`.
 * Refused before parsing when it is anything else, so no body is ever read or kept.
 */
async function refuseBody(request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const length = request.headers['content-length'];
  const hasBody = (length !== undefined && length !== '0') || request.headers['transfer-encoding'] !== undefined;
  const type = (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (hasBody && type !== 'application/json') {
    noStore(reply);
    throw new CredentialError('invalid_request', 'The request body must be empty or the JSON object {}.');
  }
}

function checkEmptyBody(body: unknown): void {
  const empty = body === undefined || body === null || (typeof body === 'object' && !Array.isArray(body) && Object.keys(body).length === 0);
  if (!empty) throw new CredentialError('invalid_request', 'The request body must be empty or the JSON object {}.');
}

export function credentialRoutes(app: FastifyInstance, deps: CredentialRouteDeps): void {
  app.post<{ Params: { name: string } }>('/v1/credentials/:name', { onRequest: refuseBody }, async (request, reply) => {
    noStore(reply);
    checkEmptyBody(request.body);
    const http = { method: request.method, target: request.url, proofs: dpopFieldValues(request.raw.rawHeaders) };
    try {
      return await deps.credentials.release(request.params.name, request.headers.authorization, { requestId: request.id, remoteAddress: request.ip, http });
    } catch (err) {
      // RFC 9449 §7.1: a bound token's refusal challenges with the DPoP scheme, not Bearer.
      if (err instanceof DpopError) return sendPortError(err, request, reply.header('WWW-Authenticate', err.challenge), { bearerChallenge: false });
      throw err;
    }
  });

  // Admin API (server.admin_token): a rotating secret's versions, and rotation on demand.
  app.get<{ Params: { name: string } }>('/v1/admin/credentials/:name', async (request, reply) => {
    deps.admin.require(request);
    noStore(reply);
    const cred = rotatingSecret(deps.config, request.params.name);
    return { name: cred.name, type: cred.type, versions: await deps.secrets.status(cred.name) };
  });

  app.post<{ Params: { name: string } }>('/v1/admin/credentials/:name/rotate', { onRequest: refuseBody }, async (request, reply) => {
    deps.admin.require(request);
    noStore(reply);
    checkEmptyBody(request.body);
    rotatingSecret(deps.config, request.params.name);
    return deps.secrets.rotate(request.params.name, 'admin');
  });
}

function rotatingSecret(config: PortConfig, name: string) {
  const cred = /^[a-z0-9][a-z0-9_-]{0,127}$/.test(name) ? config.credentials[name] : undefined;
  if (cred === undefined) throw new CredentialError('unknown_credential', /^[a-z0-9][a-z0-9_-]{0,127}$/.test(name) ? `No credential is named "${name}".` : 'No credential has that name.');
  if (cred.type !== 'secret' || cred.rotation === undefined) {
    throw new CredentialError('invalid_request', `The credential "${name}" is not a secret with a rotation hook; add credentials.${name}.rotation to rotate it.`);
  }
  return cred;
}
