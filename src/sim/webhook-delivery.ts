/**
 * Sending a webhook the way Buildkite does (https://buildkite.com/docs/apis/webhooks/pipelines): a JSON POST
 * with `X-Buildkite-Event` and either `X-Buildkite-Token: <token>` or
 * `X-Buildkite-Signature: timestamp=<unix seconds>,signature=<lowercase hex
 * HMAC-SHA256 keyed with the webhook token over "<timestamp>.<raw body>">`.
 */
import { createHmac } from 'node:crypto';
import { request } from 'undici';
import type { DeliverWebhookOptions, WebhookAuth, WebhookDelivery } from './build-types.js';

/** The hex HMAC-SHA256 of `<timestamp>.<raw body>` keyed with the secret (Buildkite's webhook signature). */
export function webhookSignature(secret: string, timestamp: number, rawBody: string): string {
  return createHmac('sha256', secret).update(`${timestamp}.${rawBody}`).digest('hex');
}

/** The `X-Buildkite-Signature` header value. */
export function signatureHeader(secret: string, timestamp: number, rawBody: string): string {
  return `timestamp=${timestamp},signature=${webhookSignature(secret, timestamp, rawBody)}`;
}

/** Same JSON meaning, different bytes: a signature over the original no longer matches. */
function defaultTamper(rawBody: string): string {
  return rawBody.startsWith('{') ? `{ ${rawBody.slice(1)}` : `${rawBody} `;
}

export async function deliverWebhook(
  url: string,
  event: string,
  payload: unknown,
  auth: WebhookAuth,
  opts: DeliverWebhookOptions = {},
): Promise<WebhookDelivery> {
  const signed = opts.rawBody ?? JSON.stringify(payload);
  const tamper = opts.tamper === true ? defaultTamper : opts.tamper === false ? undefined : opts.tamper;
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    // Unconfirmed: the User-Agent Buildkite's webhook sender uses.
    'user-agent': 'Buildkite-Request',
    'x-buildkite-event': event,
  };
  let body = signed;
  if ('secret' in auth) {
    headers['x-buildkite-signature'] = signatureHeader(auth.secret, opts.timestamp ?? Math.floor(Date.now() / 1000), signed);
    if (tamper !== undefined) body = tamper(signed);
  } else {
    headers['x-buildkite-token'] = opts.tamper === true ? `${auth.token}x` : auth.token;
  }
  Object.assign(headers, lowerKeys(opts.headers ?? {}));
  const at = new Date();
  try {
    const res = await request(url, {
      method: 'POST',
      headers,
      body,
      headersTimeout: opts.timeoutMs ?? 10_000,
      bodyTimeout: opts.timeoutMs ?? 10_000,
    });
    const text = await res.body.text();
    return { at, url, event, request: { headers, body }, status: res.statusCode, body: text, headers: flatten(res.headers) };
  } catch (err) {
    const reason = (err as { code?: unknown }).code;
    return { at, url, event, request: { headers, body }, status: 0, body: '', headers: {}, error: typeof reason === 'string' ? reason : String(err) };
  }
}

function lowerKeys(h: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(h).map(([k, v]) => [k.toLowerCase(), v]));
}

function flatten(h: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined) out[k] = Array.isArray(v) ? v.join(', ') : v;
  return out;
}
