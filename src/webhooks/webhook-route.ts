import { createHash } from 'node:crypto';
import type { FastifyError, FastifyInstance } from 'fastify';
import type { z } from 'zod';
import { PortError } from '../errors.js';
import { sendPortError } from '../server/error-handler.js';
import type { Store } from '../store/store.js';
import { WebhookRejectedError } from './errors.js';
import { buildFinishedPayloadSchema, jobPayloadSchema, type BuildFinishedPayload, type JobPayload } from './payloads.js';
import { deliveryMode, requireCredentialHeader, verifyDelivery } from './verify-delivery.js';

export type { BuildFinishedPayload, JobPayload } from './payloads.js';

export const WEBHOOK_PATH = '/webhooks/buildkite';

/**
 * What Port does with each event it acts on. Each runs after the delivery was answered,
 * except `jobFinished` (see ANSWERED_AFTER_HANDLING).
 */
export interface WebhookHandlers {
  /** Every `build.finished`; a build waiting on a block step has `build.blocked: true`. */
  buildFinished?(payload: BuildFinishedPayload): Promise<void>;
  /**
   * Revokes the job's tokens: runs, and must be durable, before the delivery is
   * answered, and runs again for a repeated delivery — so it must be idempotent.
   */
  jobFinished?(payload: JobPayload): Promise<void>;
  /** A block step was unblocked (web or API); `job.unblocked_by` names who. */
  jobActivated?(payload: JobPayload): Promise<void>;
}

export interface WebhookDispatchInfo {
  event: string;
  requestId: string;
}

export interface WebhookRouteDeps {
  /** The webhook token used as HMAC key (buildkite.webhook_secret), read per delivery. */
  secret: () => string | undefined;
  /** The clear-text webhook token (buildkite.webhook_token), read per delivery. */
  token: () => string | undefined;
  /** Replay cache (`consumeOnce`). */
  store: Store;
  handlers: WebhookHandlers;
  /** Largest body accepted, in bytes (default 1 MiB). */
  maxBytes?: number;
  /** Signature timestamp window either way, in seconds (default and maximum 300). */
  windowSeconds?: number;
  /**
   * How long a body is remembered (seconds, default 24 h): a body seen before is not
   * dispatched again (Buildkite re-sending an event re-signs it with a new timestamp),
   * and in token mode, which has no timestamp, it is refused as a replay.
   */
  dedupeSeconds?: number;
  /** How long close() waits for handlers still running (ms, default 10 s). */
  drainTimeoutMs?: number;
  /** Clock in ms (tests). */
  now?: () => number;
  /** A handler failed (or threw); the delivery had already been answered. */
  onError(err: unknown, info?: WebhookDispatchInfo): void;
  /** A verified delivery was accepted but not dispatched because its payload doesn't fit. */
  onDropped?(info: WebhookDispatchInfo & { problems: string[] }): void;
}

const DEFAULT_MAX_BYTES = 1024 * 1024;
const MAX_WINDOW_SECONDS = 300;
const DEFAULT_DEDUPE_SECONDS = 24 * 60 * 60;

type Dispatch = { run: () => Promise<void> } | { problems: string[] } | undefined;

/**
 * Events whose handler takes access away (a finished job's tokens). Handled before the
 * answer and before the delivery's replay keys are spent: if the handler fails, Port
 * answers 503 and a re-sent event (or Buildkite's retry) is processed, not dropped as a
 * duplicate. Their handlers are idempotent, so running one for a replay changes nothing.
 */
const ANSWERED_AFTER_HANDLING: ReadonlySet<string> = new Set(['job.finished']);

/** A handler that must finish before the answer failed (503: nothing was spent; send it again). */
export class WebhookHandlerFailedError extends PortError {
  constructor(event: string, options?: { cause?: unknown }) {
    super('webhook_handler_failed', `Port could not process the ${event} event; it was not recorded, so a re-sent delivery will be.`, 503, options);
  }
}

/**
 * `POST /webhooks/buildkite`. Registered in its own encapsulated plugin: it reads the
 * body as raw bytes (the HMAC covers them exactly) with its own size limit, and other
 * routes keep their parsers. Flow: configured? → size → content type → credential
 * present → verify → replay cache → JSON → answer (202/200) → dispatch on setImmediate.
 */
export function webhookRoutes(app: FastifyInstance, deps: WebhookRouteDeps): void {
  const maxBytes = deps.maxBytes ?? DEFAULT_MAX_BYTES;
  const windowSeconds = deps.windowSeconds ?? MAX_WINDOW_SECONDS;
  const dedupeMs = (deps.dedupeSeconds ?? DEFAULT_DEDUPE_SECONDS) * 1000;
  const now = deps.now ?? Date.now;
  if (!Number.isInteger(maxBytes) || maxBytes <= 0) throw new PortError('config_invalid', 'webhookRoutes: maxBytes must be a positive integer.');
  if (!(windowSeconds > 0 && windowSeconds <= MAX_WINDOW_SECONDS)) {
    throw new PortError('config_invalid', `webhookRoutes: windowSeconds must be in (0, ${MAX_WINDOW_SECONDS}].`);
  }
  if (!(dedupeMs >= windowSeconds * 1000)) throw new PortError('config_invalid', 'webhookRoutes: dedupeSeconds must be at least windowSeconds.');

  const inflight = new Set<Promise<void>>();
  const reportError = (err: unknown, info: WebhookDispatchInfo) => {
    try {
      deps.onError(err, info);
    } catch {
      // The error sink failing must not become an unhandled rejection.
    }
  };

  const credentials = () => ({ secret: deps.secret(), token: deps.token(), windowSeconds });

  void app.register(async (scope) => {
    // Only this scope: take the body as bytes, whatever its type (checked below), within maxBytes.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: maxBytes }, (_req, body, done) => done(null, body));

    scope.setErrorHandler((err: FastifyError, request, reply) => {
      if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
        return sendPortError(new WebhookRejectedError('delivery_too_large', `The delivery is larger than the ${maxBytes} bytes Port accepts.`, 413), request, reply, { bearerChallenge: false });
      }
      // A webhook's 401 is not a Bearer challenge (Buildkite signs; it doesn't log in).
      if (err instanceof PortError) return sendPortError(err, request, reply, { bearerChallenge: false });
      throw err;
    });

    scope.addHook('onClose', async () => {
      if (inflight.size === 0) return;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.allSettled([...inflight]),
        new Promise((resolve) => (timer = setTimeout(resolve, deps.drainTimeoutMs ?? 10_000))),
      ]);
      clearTimeout(timer);
    });

    scope.post(
      WEBHOOK_PATH,
      {
        bodyLimit: maxBytes,
        // Checks that need no body, so refused deliveries are never read into memory.
        onRequest: async (request) => {
          const mode = deliveryMode(credentials());
          if (mode === undefined) {
            throw new WebhookRejectedError('webhooks_not_configured', 'Port has no buildkite.webhook_secret or buildkite.webhook_token configured, so it accepts no webhooks.', 503);
          }
          const length = Number(request.headers['content-length']);
          if (length > maxBytes) {
            throw new WebhookRejectedError('delivery_too_large', `The delivery is larger than the ${maxBytes} bytes Port accepts.`, 413);
          }
          if (!isJson(request.headers['content-type'])) {
            throw new WebhookRejectedError('unsupported_media_type', 'A Buildkite delivery must be sent as application/json.', 415);
          }
          requireCredentialHeader(request.headers, mode);
        },
      },
      async (request, reply) => {
        const rawBody = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
        const at = now();
        const verified = verifyDelivery({ headers: request.headers, rawBody, now: at }, credentials());
        const info = { event: verified.event, requestId: request.id };

        if (ANSWERED_AFTER_HANDLING.has(verified.event)) {
          const body = parseJsonObject(rawBody);
          if (body.event !== undefined && body.event !== verified.event) {
            throw new WebhookRejectedError('event_mismatch', 'X-Buildkite-Event does not match the event named in the body.', 400);
          }
          const dispatch = dispatchFor(verified.event, body, deps.handlers);
          if (dispatch !== undefined && 'run' in dispatch) {
            try {
              await dispatch.run();
            } catch (err) {
              reportError(err, info);
              throw new WebhookHandlerFailedError(verified.event, { cause: err });
            }
          }
        }

        // Replay cache. A signature is remembered for as long as it would pass the
        // window; in token mode the key is the body hash, kept for the dedupe period.
        // The body key makes re-sent events (new signature, same body) idempotent.
        // Both writes share one commit (the store batches writes of the same turn).
        const bodyKey = `webhook-body:${createHash('sha256').update(rawBody).digest('hex')}`;
        const [firstUse, newBody] = await Promise.all([
          deps.store.consumeOnce(`webhook:${verified.deliveryKey}`, verified.replayableUntil ?? at + dedupeMs),
          verified.mode === 'signature' ? deps.store.consumeOnce(bodyKey, at + dedupeMs) : Promise.resolve(true),
        ]);
        if (!firstUse) {
          throw new WebhookRejectedError('replayed_delivery', 'This delivery was already received; a replay is not processed again.', 409);
        }

        const body = parseJsonObject(rawBody);
        const event = verified.event;
        // The event header is not covered by the signature; the body's `event` is.
        if (body.event !== undefined && body.event !== event) {
          throw new WebhookRejectedError('event_mismatch', 'X-Buildkite-Event does not match the event named in the body.', 400);
        }
        if (event === 'ping') return reply.code(200).send({ pong: true });

        const dispatch = dispatchFor(event, body, deps.handlers);
        if (dispatch === undefined) return reply.code(202).send({ accepted: true, event, ignored: true });
        if ('problems' in dispatch) {
          request.log.warn({ webhook: { event, problems: dispatch.problems } }, 'webhook delivery dropped: its payload does not have the fields Port needs');
          try {
            deps.onDropped?.({ ...info, problems: dispatch.problems });
          } catch (err) {
            reportError(err, info);
          }
          return reply.code(202).send({ accepted: true, event, ignored: true });
        }
        if (!newBody) return reply.code(202).send({ accepted: true, event, duplicate: true });
        // Already handled, and durable, before the answer.
        if (ANSWERED_AFTER_HANDLING.has(event)) return reply.code(202).send({ accepted: true, event });

        // Runs after the answer is on its way; tracked from now so close() can wait for it.
        const task: Promise<void> = new Promise<void>((resolve) => setImmediate(resolve))
          .then(() => dispatch.run())
          .catch((err: unknown) => reportError(err, info))
          .finally(() => inflight.delete(task));
        inflight.add(task);
        return reply.code(202).send({ accepted: true, event });
      },
    );
  });
}

function isJson(contentType: string | undefined): boolean {
  if (contentType === undefined) return false;
  return contentType.split(';')[0]!.trim().toLowerCase() === 'application/json';
}

function parseJsonObject(rawBody: Buffer): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(rawBody.toString('utf8'));
  } catch {
    value = undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new WebhookRejectedError('not_json', 'The delivery body is not a JSON object.', 400);
  }
  return value as Record<string, unknown>;
}

/** The handler call for `event`, the reasons the payload doesn't fit, or undefined to ignore it. */
function dispatchFor(event: string, body: Record<string, unknown>, handlers: WebhookHandlers): Dispatch {
  const call = <T>(handler: ((payload: T) => Promise<void>) | undefined, schema: z.ZodType<T>): Dispatch => {
    if (handler === undefined) return undefined;
    const parsed = schema.safeParse(body);
    if (!parsed.success) return { problems: parsed.error.issues.map((i) => `${i.path.map(String).join('.') || '(body)'}: ${i.message}`) };
    const payload = parsed.data;
    // Called as a method so handler classes keep `this`; a synchronous throw becomes a rejection.
    return { run: async () => handler.call(handlers, payload) };
  };
  switch (event) {
    case 'build.finished':
      return call(handlers.buildFinished, buildFinishedPayloadSchema);
    case 'job.finished':
      return call(handlers.jobFinished, jobPayloadSchema);
    case 'job.activated':
      return call(handlers.jobActivated, jobPayloadSchema);
    default:
      return undefined;
  }
}
