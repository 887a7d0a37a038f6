import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { PortError } from '../errors.js';

/**
 * Every error leaves Port as RFC 6749 §5.2-style JSON `{error, error_description}`
 * with a specific status; never a stack trace, a token or a body.
 */
/** Answers a PortError as `{error, error_description}` with its status. */
export function sendPortError(err: PortError, request: FastifyRequest, reply: FastifyReply, opts: { bearerChallenge?: boolean } = {}): FastifyReply {
  if (err.status >= 500) request.log.error({ err: { code: err.code, message: err.message } }, 'request failed');
  if (err.status === 401 && opts.bearerChallenge !== false) reply.header('WWW-Authenticate', `Bearer error="${err.code}"`);
  return reply.code(err.status).send({ error: err.code, error_description: err.message });
}

export function installErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError | PortError | Error, request, reply) => {
    if (err instanceof PortError) return sendPortError(err, request, reply);
    const fe = err as FastifyError;
    if (fe.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      return reply.code(413).send({ error: 'invalid_request', error_description: 'The request body is larger than Port accepts.' });
    }
    if (fe.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      return reply.code(415).send({ error: 'invalid_request', error_description: 'The request body must be application/x-www-form-urlencoded.' });
    }
    if (fe.validation || (fe.statusCode !== undefined && fe.statusCode >= 400 && fe.statusCode < 500)) {
      return reply.code(fe.statusCode ?? 400).send({ error: 'invalid_request', error_description: 'The request is malformed.' });
    }
    request.log.error({ err }, 'unexpected error');
    return reply.code(500).send({ error: 'server_error', error_description: 'Port failed to handle the request; see its log.' });
  });
  app.setNotFoundHandler((request, reply) =>
    // The target is not repeated: it is the caller's input and may hold anything.
    reply.code(404).send({ error: 'not_found', error_description: `Port has no ${request.method} endpoint at this path.` }),
  );
}
