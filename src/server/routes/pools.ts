/**
 * `POST /v1/pools/{cluster}/{queue}/scale`: a `scale` decision for an autoscaler
 * (src/agents/scale-decision.ts). Registered only when `scaling.autoscalers` names one.
 *
 * The edge, in order: the bearer token (RFC 6750 §2.1) must be an autoscaler's — else
 * 401 before anything of the request is read; the body must be `application/json`
 * (415), at most 1 KiB (413), without a member named twice (a proxy reading the first
 * and Port the last would disagree on the counts); the path and body must match the
 * schemas below, checked with Port's own validator — not Fastify's default Ajv, which
 * coerces `"5"` to 5 and silently drops unknown members instead of refusing them — each
 * refusal a 400 naming what is wrong. Every answer is `Cache-Control: no-store`.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest, FastifySchemaCompiler } from 'fastify';
import { z } from 'zod';
import { entityString } from '../../audit/decision-from-policy.js';
import type { DecisionLog } from '../../audit/decision-log.js';
import type { AutoscalerAuthenticator } from '../../agents/scale-auth.js';
import { MAX_AGENT_COUNT, ScaleError, type ScaleDecisions } from '../../agents/scale-decision.js';
import { hasDuplicateMembers } from '../../identity/json-duplicates.js';
import { poolRef } from '../../policy/entities.js';
import type { DecisionRecord } from '../../store/records/decisions.js';
import { randomUUID } from 'node:crypto';

export interface PoolRouteDeps {
  autoscalers: AutoscalerAuthenticator;
  scale: ScaleDecisions;
  /** Unauthenticated refusals go here (a RefusalLog throttles their sources and counts them). */
  log: DecisionLog;
}

/** `{"desired": 100000, "current": 100000}` with room for whitespace; anything longer is not a scale request. */
const BODY_LIMIT = 1024;

/**
 * Same characters as a `pools:` key's halves (a concrete queue: no `*`); at most 100,
 * Fastify's `maxParamLength` (a longer one is answered 414 before routing).
 */
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/;

const paramsSchema = z.strictObject({ cluster: z.string().regex(NAME), queue: z.string().regex(NAME) });
const count = z.int().min(0).max(MAX_AGENT_COUNT);
const bodySchema = z.strictObject({ desired: count, current: count });
type ScaleBody = z.infer<typeof bodySchema>;
type ScaleParams = z.infer<typeof paramsSchema>;

const BODY_SHAPE = 'The body must be the JSON object {"desired": N, "current": N}.';

/** Port's validator for this route's schemas; the first problem, as one sentence, is the 400. */
const validatorCompiler: FastifySchemaCompiler<unknown> = ({ httpPart }) => {
  if (httpPart === 'params') {
    return (data: unknown) => {
      const r = paramsSchema.safeParse(data);
      if (r.success) return { value: r.data };
      const which = r.error.issues[0]?.path[0] === 'queue' ? 'queue key' : 'cluster name';
      return { error: new ScaleError('invalid_path', `The ${which} in the path must be 1–100 letters, digits, ".", "_" or "-", as in a pools: key.`, 400) };
    };
  }
  if (httpPart === 'body') {
    return (data: unknown) => {
      const r = bodySchema.safeParse(data);
      return r.success ? { value: r.data } : { error: new ScaleError('invalid_request', bodyProblem(data, r.error.issues), 400) };
    };
  }
  return () => ({ error: new ScaleError('invalid_request', 'This endpoint takes no query string or headers schema.', 400) });
};

function bodyProblem(data: unknown, issues: readonly z.core.$ZodIssue[]): string {
  if (data === null || typeof data !== 'object' || Array.isArray(data)) return BODY_SHAPE;
  // Member names are the caller's input: counted, never repeated.
  if (issues.some((i) => i.code === 'unrecognized_keys')) return `${BODY_SHAPE} It may hold only desired and current.`;
  for (const name of ['desired', 'current'] as const) {
    if (!issues.some((i) => i.path[0] === name)) continue;
    if ((data as Record<string, unknown>)[name] === undefined) return `${name} is missing: ${BODY_SHAPE}`;
    return `${name} must be a whole number from 0 to ${MAX_AGENT_COUNT}.`;
  }
  return BODY_SHAPE;
}

export async function poolRoutes(app: FastifyInstance, deps: PoolRouteDeps): Promise<void> {
  deps.autoscalers.checkAtStart();
  await app.register(async (scope) => poolScope(scope, deps));
}

async function poolScope(scope: FastifyInstance, deps: PoolRouteDeps): Promise<void> {
  /** The autoscaler each authenticated request came from. */
  const callers = new WeakMap<FastifyRequest, string>();

  // Only JSON is read here: not the form parser the OAuth endpoints need.
  scope.removeAllContentTypeParsers();
  scope.addContentTypeParser('application/json', { parseAs: 'string', bodyLimit: BODY_LIMIT }, (_request, text, done) => {
    const body = String(text);
    if (body.trim() === '') return done(new ScaleError('invalid_request', BODY_SHAPE, 400), undefined);
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch {
      return done(new ScaleError('invalid_request', `The body is not valid JSON. ${BODY_SHAPE}`, 400), undefined);
    }
    if (hasDuplicateMembers(body)) return done(new ScaleError('invalid_request', 'The body names a member twice; send desired and current once each.', 400), undefined);
    done(null, parsed);
  });
  scope.addHook('onSend', async (_request, reply, payload) => {
    // A decision is for this request only (RFC 9111 §5.2.2.5).
    reply.header('Cache-Control', 'no-store');
    return payload;
  });

  const authenticate = async (request: FastifyRequest): Promise<void> => {
    const caller = deps.autoscalers.identify(request.headers.authorization);
    if (caller.kind === 'autoscaler') {
      callers.set(request, caller.name);
      return;
    }
    const err =
      caller.kind === 'missing'
        ? new ScaleError('invalid_token', "Scale requests need Authorization: Bearer <the autoscaler's token from scaling.autoscalers>.", 401)
        : new ScaleError('invalid_token', 'The bearer token is not the token of any autoscaler in scaling.autoscalers.', 401);
    // Logged about nobody (principal null): a RefusalLog counts these per source and
    // answers 429 to a source over server.refusal_rate_limit, so tokens can't be guessed at speed.
    await deps.log.record([unauthenticatedRefusal(request, caller.kind === 'missing' ? 'autoscaler_token_missing' : 'autoscaler_token_invalid', err.message)]);
    throw err;
  };

  const requireJson = async (request: FastifyRequest): Promise<void> => {
    const length = request.headers['content-length'];
    const hasBody = (length !== undefined && length !== '0') || request.headers['transfer-encoding'] !== undefined;
    const type = (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (hasBody && type !== 'application/json') throw new ScaleError('unsupported_media_type', 'The body must be application/json.', 415);
  };

  scope.post<{ Params: ScaleParams; Body: ScaleBody }>(
    '/v1/pools/:cluster/:queue/scale',
    {
      bodyLimit: BODY_LIMIT,
      schema: { params: z.toJSONSchema(paramsSchema), body: z.toJSONSchema(bodySchema) },
      validatorCompiler,
      onRequest: authenticate,
      preParsing: async (request) => requireJson(request),
    },
    async (request, reply: FastifyReply) => {
      const autoscaler = callers.get(request);
      if (autoscaler === undefined) throw new ScaleError('invalid_token', "Scale requests need Authorization: Bearer <the autoscaler's token from scaling.autoscalers>.", 401);
      const outcome = await deps.scale.decide({
        autoscaler,
        clusterName: request.params.cluster,
        queueKey: request.params.queue,
        desired: request.body.desired,
        current: request.body.current,
        requestId: request.id,
        remoteAddress: request.ip,
      });
      const body = {
        decision: outcome.decision,
        pool: outcome.pool,
        desired: outcome.desired,
        current: outcome.current,
        policies: outcome.policies,
        decision_id: outcome.decisionId,
      };
      if (outcome.decision === 'allow') return body;
      return reply.code(403).send({ error: 'access_denied', error_description: outcome.reason, ...body });
    },
  );
}

/** A refusal of a caller Port could not identify: the check that failed, never the token. */
function unauthenticatedRefusal(request: FastifyRequest, check: string, reason: string): DecisionRecord {
  const params = request.params as Partial<Record<string, string>>;
  const pool = params.cluster !== undefined && params.queue !== undefined && NAME.test(params.cluster) && NAME.test(params.queue) ? `${params.cluster}/${params.queue}` : undefined;
  return {
    id: randomUUID(),
    time: new Date().toISOString(),
    principal: null,
    action: 'scale',
    resource: pool === undefined ? null : entityString(poolRef(pool)),
    decision: 'deny',
    policies: [],
    reason,
    context: { check, request_id: request.id, ...(request.ip ? { remote_address: request.ip } : {}) },
  };
}
