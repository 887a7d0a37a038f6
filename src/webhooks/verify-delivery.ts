import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { WebhookRejectedError } from './errors.js';

export { WebhookRejectedError, type WebhookRejectionCode } from './errors.js';

/** Request headers as Node gives them (lower-case names). */
export type DeliveryHeaders = Record<string, string | string[] | undefined>;

export interface Delivery {
  headers: DeliveryHeaders;
  /** The request body exactly as received: the signature covers these bytes. */
  rawBody: Buffer;
  /** Milliseconds since the epoch. */
  now: number;
}

export interface DeliveryCredentials {
  /** The webhook's token used as HMAC key (`X-Buildkite-Signature` mode). */
  secret?: string | undefined;
  /** The webhook's token sent in clear (`X-Buildkite-Token` mode). */
  token?: string | undefined;
  /** Largest accepted distance between the signature's timestamp and `now`, either way. */
  windowSeconds: number;
}

export interface VerifiedDelivery {
  /** `X-Buildkite-Event` (not covered by the signature; compare it with the body's `event`). */
  event: string;
  /**
   * What makes this delivery unique, for the replay cache: the SHA-256 of the
   * signature in signature mode, of the body in token mode. Never the secret.
   */
  deliveryKey: string;
  mode: 'signature' | 'token';
  /**
   * When the replay-cache entry for `deliveryKey` may be dropped (ms): the last
   * moment the signature would still pass the window. Undefined in token mode,
   * where nothing expires the delivery; the caller picks a retention.
   */
  replayableUntil?: number;
}

export const SIGNATURE_HEADER = 'x-buildkite-signature';
export const TOKEN_HEADER = 'x-buildkite-token';
export const EVENT_HEADER = 'x-buildkite-event';

const TIMESTAMP = /^[0-9]{1,15}$/;
const SIGNATURE = /^[0-9a-fA-F]{64}$/;
const EVENT = /^[a-z][a-z_]*(\.[a-z][a-z_]*)*$/;

/** Which credential the configuration asks deliveries to carry, if any. */
export function deliveryMode(creds: Pick<DeliveryCredentials, 'secret' | 'token'>): 'signature' | 'token' | undefined {
  // An empty secret would make every signature computable: treat it as unset.
  if (creds.secret) return 'signature';
  if (creds.token) return 'token';
  return undefined;
}

/**
 * Verifies a Buildkite webhook delivery (https://buildkite.com/docs/apis/webhooks/pipelines,
 * "Webhook signature"). With a secret, requires
 * `X-Buildkite-Signature: timestamp=<unix seconds>,signature=<hex HMAC-SHA256>` over
 * `<timestamp>.<raw body>` with the timestamp within `windowSeconds` of `now`; with a
 * token, requires `X-Buildkite-Token` equal to it. When both are configured (the
 * config loader refuses that) the signature is required. Pure: no I/O, no logging.
 */
export function verifyDelivery(delivery: Delivery, creds: DeliveryCredentials): VerifiedDelivery {
  const mode = deliveryMode(creds);
  if (mode === undefined) {
    throw new WebhookRejectedError('webhooks_not_configured', 'Port has no buildkite.webhook_secret or buildkite.webhook_token configured, so it accepts no webhooks.', 503);
  }
  let verified: Omit<VerifiedDelivery, 'event'>;
  if (mode === 'signature') {
    verified = verifySignature(delivery, creds.secret!, creds.windowSeconds);
  } else {
    verified = verifyToken(delivery, creds.token!);
  }
  return { event: eventOf(delivery.headers), ...verified };
}

function single(headers: DeliveryHeaders, name: string): string | undefined {
  const v = headers[name];
  if (v === undefined) return undefined;
  // Node joins repeated custom headers with ", "; an array only comes from a caller.
  return Array.isArray(v) ? v.join(', ') : v;
}

function eventOf(headers: DeliveryHeaders): string {
  const event = single(headers, EVENT_HEADER);
  if (event === undefined || event === '') {
    throw new WebhookRejectedError('missing_event', 'The delivery has no X-Buildkite-Event header.', 400);
  }
  if (event.length > 100 || !EVENT.test(event)) {
    throw new WebhookRejectedError('unsupported_event', 'The X-Buildkite-Event header is not a Buildkite event name.', 400);
  }
  return event;
}

/** Parses `timestamp=<digits>,signature=<64 hex>`: both once, nothing else, no spaces. */
export function parseSignatureHeader(value: string): { timestamp: string; signature: string } {
  const malformed = () =>
    new WebhookRejectedError('malformed_signature', 'X-Buildkite-Signature must be "timestamp=<unix seconds>,signature=<64 hex digits>".', 400);
  const parts = value.split(',');
  if (parts.length !== 2) throw malformed();
  const fields = new Map<string, string>();
  for (const part of parts) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw malformed();
    const key = part.slice(0, eq);
    if ((key !== 'timestamp' && key !== 'signature') || fields.has(key)) throw malformed();
    fields.set(key, part.slice(eq + 1));
  }
  const timestamp = fields.get('timestamp');
  const signature = fields.get('signature');
  if (timestamp === undefined || signature === undefined || !TIMESTAMP.test(timestamp) || !SIGNATURE.test(signature)) throw malformed();
  return { timestamp, signature: signature.toLowerCase() };
}

/**
 * Refuses a delivery without the header `mode` needs — callable before the body is
 * read. Returns the header's value.
 */
export function requireCredentialHeader(headers: DeliveryHeaders, mode: 'signature' | 'token'): string {
  const value = single(headers, mode === 'signature' ? SIGNATURE_HEADER : TOKEN_HEADER);
  if (value !== undefined && value !== '') return value;
  throw mode === 'signature'
    ? new WebhookRejectedError('missing_signature', 'The delivery is not signed: X-Buildkite-Signature is missing.', 401)
    : new WebhookRejectedError('missing_token', 'The delivery carries no X-Buildkite-Token header.', 401);
}

function verifySignature(delivery: Delivery, secret: string, windowSeconds: number): Omit<VerifiedDelivery, 'event'> {
  const header = requireCredentialHeader(delivery.headers, 'signature');
  const { timestamp, signature } = parseSignatureHeader(header);
  // The signed message is `<timestamp>.<raw body>` — the timestamp exactly as sent —
  // as in Buildkite's Ruby example and go-buildkite (the docs' prose omits the prefix).
  const expected = createHmac('sha256', secret).update(`${timestamp}.`).update(delivery.rawBody).digest();
  const presented = Buffer.from(signature, 'hex');
  // Both are 32 bytes (the header parser demands 64 hex digits), so this is constant-time.
  if (presented.length !== expected.length || !timingSafeEqual(presented, expected)) {
    throw new WebhookRejectedError('bad_signature', 'X-Buildkite-Signature does not match the body; check buildkite.webhook_secret.', 401);
  }
  // Checked after the MAC so "stale" is only ever said of genuine deliveries (a clock problem).
  const sentAt = Number(timestamp) * 1000;
  const windowMs = windowSeconds * 1000;
  if (Math.abs(delivery.now - sentAt) > windowMs) {
    throw new WebhookRejectedError(
      'stale_delivery',
      `The delivery's timestamp is more than ${windowSeconds} s from Port's clock (replayed, delayed, or a clock is wrong).`,
      401,
    );
  }
  return {
    mode: 'signature',
    deliveryKey: `sig:${sha256(signature)}`,
    // A timestamp in the future stays acceptable until sentAt + window, past now + window.
    replayableUntil: Math.max(delivery.now, sentAt) + windowMs,
  };
}

function verifyToken(delivery: Delivery, token: string): Omit<VerifiedDelivery, 'event'> {
  const presented = requireCredentialHeader(delivery.headers, 'token');
  // Compare digests: equal length whatever was presented, so constant-time.
  if (!timingSafeEqual(createHash('sha256').update(presented).digest(), createHash('sha256').update(token).digest())) {
    throw new WebhookRejectedError('bad_token', 'X-Buildkite-Token is not the configured webhook token; check buildkite.webhook_token.', 401);
  }
  // Token mode has no timestamp and no MAC: anyone who captured one delivery (the
  // token travels in clear) can resend it, or forge new ones. The only replay defence
  // is the body hash below — an identical body seen before is refused for as long as
  // the cache keeps it. Prefer signature mode (buildkite.webhook_secret).
  return { mode: 'token', deliveryKey: `body:${sha256(delivery.rawBody)}` };
}

function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}
