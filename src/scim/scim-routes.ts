/**
 * SCIM 2.0 service provider at `/scim/v2` (RFC 7644 §3): Users, Groups,
 * ServiceProviderConfig, Schemas, ResourceTypes. Registered only when `scim:` is
 * configured (otherwise the paths do not exist). Every request needs
 * `Authorization: Bearer <scim.token>` (RFC 7644 §2; compared in constant time, read
 * from its reference on each request so a rotated file applies at once). Bodies are
 * `application/scim+json` or `application/json` (RFC 7644 §3.1), at most 1 MiB. Every
 * error is an RFC 7644 §3.12 error body; nothing of a request body is logged.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { SecretSource } from '../config/config.js';
import { resolveSecretRef } from '../config/secret-ref.js';
import { PortError } from '../errors.js';
import { notFound, ScimError } from './errors.js';
import { attributesOf, groupListRequest, MAX_RESULTS, userListRequest } from './list-query.js';
import { etag, toScimGroup, toScimUser } from './mapping.js';
import type { ScimProvisioning } from './provisioning.js';
import { CORE_GROUP, CORE_USER, ENTERPRISE_USER, ERROR_SCHEMA, scimmy } from './scimmy.js';

export const SCIM_PREFIX = '/scim/v2';
/** Largest request body (also advertised as bulk.maxPayloadSize, though Bulk is off). */
export const SCIM_BODY_LIMIT = 1024 * 1024;
const SCIM_CONTENT_TYPE = 'application/scim+json; charset=utf-8';
const LIST_RESPONSE = 'urn:ietf:params:scim:api:messages:2.0:ListResponse';

export interface ScimRoutesOptions {
  token: SecretSource;
  provisioning: ScimProvisioning;
}

export async function scimRoutes(app: FastifyInstance, opts: ScimRoutesOptions): Promise<void> {
  // Fail at start, not on the IdP's first call, when the token reference does not resolve.
  resolveSecretRef(opts.token.ref, opts.token.key, opts.token.baseDir);
  await app.register(async (scope) => scimScope(scope, opts), { prefix: SCIM_PREFIX });
}

async function scimScope(scope: FastifyInstance, { token, provisioning }: ScimRoutesOptions): Promise<void> {
  const S = scimmy();
  const base = provisioning.baseUrl;
  scope.addContentTypeParser('application/scim+json', { parseAs: 'string', bodyLimit: SCIM_BODY_LIMIT }, scope.getDefaultJsonParser('error', 'error'));

  scope.setErrorHandler((err: FastifyError | PortError | Error, request, reply) => sendScimError(err, request, reply));
  scope.setNotFoundHandler((_request, reply) => sendScimError(new ScimError(404, 'not_found', 'This SCIM endpoint has no such resource or path.'), _request, reply));

  scope.addHook('onRequest', async (request) => {
    const m = /^Bearer +(\S+)$/i.exec(request.headers.authorization ?? '');
    const expected = resolveSecretRef(token.ref, token.key, token.baseDir);
    if (!m || !sameSecret(m[1]!, expected)) {
      throw new ScimError(401, 'invalid_token', 'SCIM requests need Authorization: Bearer <scim.token>.');
    }
    // RFC 7644 §3.1: SCIM bodies are application/scim+json (application/json accepted); nothing else is parsed.
    const type = (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (['POST', 'PUT', 'PATCH'].includes(request.method) && type !== 'application/scim+json' && type !== 'application/json') {
      throw new ScimError(415, 'unsupported_media_type', 'The request body must be application/scim+json or application/json.');
    }
  });
  scope.addHook('onSend', async (_request, reply, payload) => {
    if (payload !== null && payload !== undefined && payload !== '') reply.header('content-type', SCIM_CONTENT_TYPE);
    reply.header('cache-control', 'no-store');
    return payload;
  });

  const route = { bodyLimit: SCIM_BODY_LIMIT };
  const params = (r: FastifyRequest) => r.params as Record<string, string>;
  const query = (r: FastifyRequest) => r.query as Record<string, unknown>;
  const ifMatch = (r: FastifyRequest): string | undefined => {
    const v = r.headers['if-match'];
    return typeof v === 'string' ? v : undefined;
  };

  // Users (RFC 7644 §3.3, §3.4.1, §3.4.2, §3.5, §3.6)
  scope.get('/Users', async (request) => {
    const list = userListRequest(query(request));
    const page = await provisioning.listUsers(list.query);
    return listResponse(page.items.map((u) => toScimUser(u, base, list.attributes)), page.total, list.startIndex);
  });
  scope.get('/Users/:id', async (request, reply) => {
    const user = await provisioning.getUser(params(request).id!);
    if (!user) throw notFound('User');
    reply.header('etag', etag(user.version));
    return toScimUser(user, base, attributesOf(query(request)).attributes);
  });
  scope.post('/Users', route, async (request, reply) => {
    const user = await provisioning.createUser(request.body);
    const resource = toScimUser(user, base);
    return reply.code(201).header('location', `${base}/Users/${user.id}`).header('etag', etag(user.version)).send(resource);
  });
  scope.put('/Users/:id', route, async (request, reply) => {
    const user = await provisioning.replaceUser(params(request).id!, request.body, ifMatch(request));
    return reply.header('etag', etag(user.version)).send(toScimUser(user, base));
  });
  scope.patch('/Users/:id', route, async (request, reply) => {
    const user = await provisioning.patchUser(params(request).id!, request.body, ifMatch(request));
    return reply.header('etag', etag(user.version)).send(toScimUser(user, base));
  });
  scope.delete('/Users/:id', async (request, reply) => {
    await provisioning.deleteUser(params(request).id!, ifMatch(request));
    return reply.code(204).send();
  });

  // Groups
  scope.get('/Groups', async (request) => {
    const list = groupListRequest(query(request));
    const page = await provisioning.listGroups(list.query);
    return listResponse(page.items.map((g) => toScimGroup(g, base, list.attributes)), page.total, list.startIndex);
  });
  scope.get('/Groups/:id', async (request, reply) => {
    const group = await provisioning.getGroup(params(request).id!);
    if (!group) throw notFound('Group');
    reply.header('etag', etag(group.version));
    return toScimGroup(group, base, attributesOf(query(request)).attributes);
  });
  scope.post('/Groups', route, async (request, reply) => {
    const group = await provisioning.createGroup(request.body);
    return reply.code(201).header('location', `${base}/Groups/${group.id}`).header('etag', etag(group.version)).send(toScimGroup(group, base));
  });
  scope.put('/Groups/:id', route, async (request, reply) => {
    const group = await provisioning.replaceGroup(params(request).id!, request.body, ifMatch(request));
    return reply.header('etag', etag(group.version)).send(toScimGroup(group, base));
  });
  scope.patch('/Groups/:id', route, async (request, reply) => {
    const group = await provisioning.patchGroup(params(request).id!, request.body, ifMatch(request));
    return reply.header('etag', etag(group.version)).send(toScimGroup(group, base));
  });
  scope.delete('/Groups/:id', async (request, reply) => {
    await provisioning.deleteGroup(params(request).id!, ifMatch(request));
    return reply.code(204).send();
  });

  // Discovery (RFC 7644 §4)
  scope.get('/ServiceProviderConfig', async () => serviceProviderConfig(base));
  const resourceTypes = () =>
    [S.Resources.User, S.Resources.Group].map((r) => new S.Schemas.ResourceType(r.describe(), `${base}/ResourceTypes`));
  scope.get('/ResourceTypes', async () => listResponse(resourceTypes(), 2, 1));
  scope.get('/ResourceTypes/:id', async (request) => {
    const found = resourceTypes().find((r) => (r as unknown as { id: string }).id === params(request).id);
    if (!found) throw new ScimError(404, 'not_found', 'No such resource type; Port serves User and Group.');
    return found;
  });
  const schemas = () => [S.Schemas.User, S.Schemas.EnterpriseUser, S.Schemas.Group].map((s) => s.definition.describe(`${base}/Schemas`));
  const servedSchemas = [CORE_USER, ENTERPRISE_USER, CORE_GROUP];
  scope.get('/Schemas', async () => listResponse(schemas(), servedSchemas.length, 1));
  scope.get('/Schemas/:id', async (request) => {
    const found = schemas().find((s) => s.id === params(request).id);
    if (!found) throw new ScimError(404, 'not_found', 'No such schema.');
    return found;
  });
}

/** RFC 7644 §3.4.2: totalResults counts every match; Resources is this page. */
function listResponse(resources: object[], totalResults: number, startIndex: number): object {
  // Built here: SCIMMY's ListResponse reports itemsPerPage 1 for an empty page.
  return { schemas: [LIST_RESPONSE], totalResults, itemsPerPage: resources.length, startIndex, Resources: resources };
}

function serviceProviderConfig(base: string): object {
  const S = scimmy();
  return new S.Schemas.ServiceProviderConfig(
    {
      documentationUri: 'https://github.com/port/port#scim',
      patch: { supported: true },
      bulk: { supported: false, maxOperations: 0, maxPayloadSize: 0 },
      filter: { supported: true, maxResults: MAX_RESULTS },
      changePassword: { supported: false },
      sort: { supported: false },
      etag: { supported: true },
      authenticationSchemes: [
        { type: 'oauthbearertoken', name: 'Bearer token', description: 'Authorization: Bearer <scim.token> (RFC 6750)', specUri: 'https://www.rfc-editor.org/rfc/rfc6750' },
      ],
    },
    `${base}/ServiceProviderConfig`,
  );
}

/** RFC 7644 §3.12: `schemas`, `status` (a string), `scimType` when one applies, `detail`. */
function sendScimError(err: FastifyError | PortError | Error, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  let status: number;
  let code: string;
  let detail: string;
  if (err instanceof PortError) {
    [status, code, detail] = [err.status, err.code, err.message];
  } else {
    const fe = err as FastifyError;
    if (fe.code === 'FST_ERR_CTP_BODY_TOO_LARGE') [status, code, detail] = [413, 'too_large', `The request body is larger than ${SCIM_BODY_LIMIT} bytes.`];
    else if (fe.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') [status, code, detail] = [415, 'unsupported_media_type', 'The request body must be application/scim+json or application/json.'];
    else if (fe.code === 'FST_ERR_CTP_EMPTY_JSON_BODY') [status, code, detail] = [400, 'invalidSyntax', 'The request body is empty.'];
    else if (fe.statusCode === 400 || fe.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || err instanceof SyntaxError) [status, code, detail] = [400, 'invalidSyntax', 'The request body is not valid JSON.'];
    else if (fe.statusCode !== undefined && fe.statusCode >= 400 && fe.statusCode < 500) [status, code, detail] = [fe.statusCode, 'invalid_request', 'The request is malformed.'];
    else [status, code, detail] = [500, 'server_error', 'Port failed to handle the SCIM request; see its log.'];
  }
  if (status >= 500) request.log.error({ err: { code, message: err instanceof PortError ? err.message : (err as Error).name } }, 'SCIM request failed');
  if (status === 401) reply.header('www-authenticate', 'Bearer realm="Port SCIM"');
  const body: Record<string, unknown> = { schemas: [ERROR_SCHEMA], status: String(status), detail };
  if (ScimError.isScimType(code)) body.scimType = code;
  return reply.code(status).header('content-type', SCIM_CONTENT_TYPE).send(body);
}

/** Constant-time comparison of two secrets of any length (hashing first equalises lengths). */
function sameSecret(a: string, b: string): boolean {
  return timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest());
}
