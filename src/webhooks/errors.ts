import { PortError } from '../errors.js';

/** Codes a refused webhook delivery is answered with (`{error, error_description}`). */
export type WebhookRejectionCode =
  | 'webhooks_not_configured'
  | 'missing_signature'
  | 'malformed_signature'
  | 'bad_signature'
  | 'stale_delivery'
  | 'missing_token'
  | 'bad_token'
  | 'missing_event'
  | 'unsupported_event'
  | 'event_mismatch'
  | 'not_json'
  | 'unsupported_media_type'
  | 'delivery_too_large'
  | 'replayed_delivery';

/**
 * A webhook delivery Port refuses. The message names the problem and the fix and
 * never repeats the secret, the token, the signature or the body.
 */
export class WebhookRejectedError extends PortError {
  declare readonly code: WebhookRejectionCode;
  constructor(code: WebhookRejectionCode, message: string, status: number, options?: { cause?: unknown }) {
    super(code, message, status, options);
  }
}
