import type { FastifyInstance } from 'fastify';

/** Liveness (`/healthz`) and readiness (`/readyz`: store answers, policies loaded and warm). */
export function healthRoutes(app: FastifyInstance, readiness: () => Promise<{ ready: boolean; checks: Record<string, string> }>): void {
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) => {
    const r = await readiness();
    reply.code(r.ready ? 200 : 503);
    return { status: r.ready ? 'ready' : 'not_ready', checks: r.checks };
  });
}
