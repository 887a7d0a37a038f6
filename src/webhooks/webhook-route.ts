import { createHash } from 'node:crypto';
import type { FastifyError, FastifyInstance } from 'fastify';
import { PortError } from '../errors.js';
import { sendPortError } from '../server/error-handler.js';
import type { Store } from '../store/store.js';
import { dispatchFor, type WebhookHandlers } from './dispatch.js';
import { WebhookRejectedError } from './errors.js';
import { deliveryMode, requireCredentialHeader, verifyDelivery } from './verify-delivery.js';
import { WebhookWork, type WebhookWorkOutcome } from './webhook-work.js';

export type { BuildFinishedPayload, JobPayload } from './payloads.js';
export type { WebhookHandlers, WebhookSkipped } from './dispatch.js';

export const WEBHOOK_PATH = '/webhooks/buildkite';

export interface WebhookDispatchInfo {
  event: string;
  requestId: string;
}

export interface WebhookRouteDeps {
  /** The webhook token used as HMAC key (buildkite.webhook_secret), read per delivery. */
  secret: () => string | undefined;
  /** The clear-text webhook token (buildkite.webhook_token), read per delivery. */
  token: () => string | undefined;
  /** Replay cache (`consumeOnce`) and webhook work. */
  store: Store;
  handlers: WebhookHandlers;
  /**
   * Where each delivery's work is kept until done (shared with the WebhookReconciler);
   * by default one made from `store`, `handlers`, `onError` and `dedupeSeconds`.
   */
  work?: WebhookWork;
  /** Largest body accepted, in bytes (default 1 MiB). */
  maxBytes?: number;
  /** Signature timestamp window either way, in seconds (default and maximum 300). */
  windowSeconds?: number;
  /**
   * How long a body is remembered once its work is done (seconds, default 24 h): a re-sent
   * event (Buildkite re-signs it with a new timestamp) is not processed again, and in
   * token mode, which has no timestamp, it is refused as a replay.
   */
  dedupeSeconds?: number;
  /** How long close() waits for handlers still running (ms, default 10 s). */
  drainTimeoutMs?: number;
  /** Clock in ms (tests). */
  now?: () => number;
  /** A handler failed (or threw); its work stays pending and is retried. */
  onError(err: unknown, info?: WebhookDispatchInfo): void;
  /** A verified delivery was accepted but not dispatched because its payload doesn't fit. */
  onDropped?(info: WebhookDispatchInfo & { problems: string[] }): void;
  /** What became of a delivery's work (when the route made `work` itself). */
  onOutcome?(outcome: WebhookWorkOutcome): void;
}

const DEFAULT_MAX_BYTES = 1024 * 1024;
const MAX_WINDOW_SECONDS = 300;
const DEFAULT_DEDUPE_SECONDS = 24 * 60 * 60;

/**
 * Events whose handler takes access away (a finished job's tokens): handled before the
 * answer, so Buildkite hears 503 when it failed and re-sends. Every other event is
 * answered once its work is recorded, and handled after.
 */
const ANSWERED_AFTER_HANDLING: ReadonlySet<string> = new Set(['job.finished']);

/** A handler that must finish before the answer failed (503: its work stays pending; send it again). */
export class WebhookHandlerFailedError extends PortError {
  constructor(event: string, options?: { cause?: unknown }) {
    super('webhook_handler_failed', `Port could not process the ${event} event; it is not marked done, so a re-sent delivery is processed and Port retries it on its own.`, 503, options);
  }
}

/** The store could not record a delivery (503: nothing was spent; send it again). */
export class WebhookStoreUnavailableError extends PortError {
  constructor(options?: { cause?: unknown }) {
    super('webhook_store_unavailable', 'Port could not record the delivery in its store; nothing was spent, so a re-sent delivery is processed.', 503, options);
  }
}

/**
 * `POST /webhooks/buildkite`. Registered in its own encapsulated plugin: it reads the
 * body as raw bytes (the HMAC covers them exactly) with its own size limit, and other
 * routes keep their parsers. Flow: configured? → size → content type → credential
 * present → verify → JSON → replay cache and work claim → answer (202/200) → work.
 *
 * A delivery's dedupe key (a hash of its body) is spent only when its work is done
 * (WebhookWork): until then a re-sent delivery — same body, new signature — is processed
 * again, and Port retries on its own (WebhookReconciler). Once done, a re-send is a 202
 * duplicate and the same signed bytes again (or, in token mode, the same body) a 409
 * replay, as before. Events Port does not act on spend their keys at once.
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

  const work =
    deps.work ??
    new WebhookWork({
      store: deps.store,
      handlers: deps.handlers,
      now,
      dedupeMs,
      onError: (err, info) => reportError(err, { event: info.event, requestId: info.requestId ?? '' }),
      ...(deps.onOutcome ? { onOutcome: deps.onOutcome } : {}),
    });

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
        const event = verified.event;
        const info = { event, requestId: request.id };
        const body = parseJsonObject(rawBody);
        // The event header is not covered by the signature; the body's `event` is.
        if (body.event !== undefined && body.event !== event) {
          throw new WebhookRejectedError('event_mismatch', 'X-Buildkite-Event does not match the event named in the body.', 400);
        }
        const bodyKey = `webhook-body:${createHash('sha256').update(rawBody).digest('hex')}`;
        const signatureKey = `webhook:${verified.deliveryKey}`;
        const replayed = () => new WebhookRejectedError('replayed_delivery', 'This delivery was already received; a replay is not processed again.', 409);
        const dispatch = event === 'ping' ? undefined : dispatchFor(event, body, deps.handlers);

        if (dispatch === undefined || 'problems' in dispatch) {
          // No work: the replay cache is all there is. A signature is remembered for as long
          // as it would pass the window; in token mode the key is the body hash, kept for
          // the dedupe period. Both writes share one commit (the store batches a turn's writes).
          const [firstUse, newBody] = await recorded(
            Promise.all([
              deps.store.replay.consume(signatureKey, verified.replayableUntil ?? at + dedupeMs),
              verified.mode === 'signature' ? deps.store.replay.consume(bodyKey, at + dedupeMs) : Promise.resolve(true),
            ]),
          );
          if (!firstUse) throw replayed();
          if (event === 'ping') return reply.code(200).send({ pong: true });
          if (dispatch !== undefined) {
            request.log.warn({ webhook: { event, problems: dispatch.problems } }, 'webhook delivery dropped: its payload does not have the fields Port needs');
            try {
              deps.onDropped?.({ ...info, problems: dispatch.problems });
            } catch (err) {
              reportError(err, info);
            }
          }
          if (!newBody) return reply.code(202).send({ accepted: true, event, duplicate: true });
          return reply.code(202).send({ accepted: true, event, ignored: true });
        }

        // Work: recorded (pending, leased to this process) before the answer, in the same
        // commit as the signature's replay entry. The same signed bytes again — or in token
        // mode the same body — are a replay; a new signature over the same body is a re-send.
        const [firstSignature, claim] = await recorded(
          Promise.all([
            verified.mode === 'signature' ? deps.store.replay.consume(signatureKey, verified.replayableUntil ?? at + dedupeMs) : Promise.resolve(false),
            work.claim(bodyKey, event, dispatch.payload),
          ]),
        );
        if (claim.outcome !== 'claimed') {
          // Done, or being worked right now (its lease holds): nothing to do twice.
          if (!firstSignature) throw replayed();
          return reply.code(202).send({ accepted: true, event, duplicate: true });
        }
        if (ANSWERED_AFTER_HANDLING.has(event)) {
          if ((await work.run(claim.work, request.id)) === 'failed') throw new WebhookHandlerFailedError(event);
          return reply.code(202).send({ accepted: true, event });
        }
        // Runs after the answer is on its way; tracked from now so close() can wait for it.
        const task: Promise<void> = new Promise<void>((resolve) => setImmediate(resolve))
          .then(async () => void (await work.run(claim.work, request.id)))
          .catch((err: unknown) => reportError(err, info))
          .finally(() => inflight.delete(task));
        inflight.add(task);
        return reply.code(202).send({ accepted: true, event });
      },
    );
  });
}

/** A store write around a delivery: its failure is a 503 that spent nothing. */
async function recorded<T>(write: Promise<T>): Promise<T> {
  try {
    return await write;
  } catch (err) {
    throw new WebhookStoreUnavailableError({ cause: err });
  }
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
