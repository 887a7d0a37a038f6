import type { FastifyInstance } from 'fastify';
import { RefusalThrottledError } from '../audit/refusal-log.js';
import { TokenRejectedError } from '../identity/errors.js';

/**
 * A throttled refusal tells the caller when to come back: `Retry-After` (RFC 9110
 * §10.2.3) on the 429 (RFC 6585 §4). Set in onError, which Fastify runs before the
 * error handler answers (https://fastify.dev/docs/latest/Reference/Hooks/#onerror).
 */
export function installRetryAfter(app: FastifyInstance): void {
  app.addHook('onError', async (_request, reply, err) => {
    if (err instanceof RefusalThrottledError) reply.header('Retry-After', String(err.retryAfterSeconds));
    // A 503 for what only Buildkite can settle (its REST API for the agent check), directly or as the cause of a credential's refusal.
    const rejected = err instanceof TokenRejectedError ? err : err.cause instanceof TokenRejectedError ? err.cause : undefined;
    if (rejected?.retryAfterSeconds !== undefined) reply.header('Retry-After', String(rejected.retryAfterSeconds));
  });
}
