import type { ServerResponse } from 'node:http';
import { PortError } from '../errors.js';

/** A refusal by the relay: JSON `{error, error_description}` with a specific status. */
export class RelayError extends PortError {
  constructor(
    code: string,
    message: string,
    status: number,
    readonly headers: Record<string, string | string[]> = {},
  ) {
    super(code, message, status);
  }
}

/** Answers with a JSON error unless the response has started; then the stream is cut. */
export function sendRelayError(res: ServerResponse, err: PortError, extra: Record<string, unknown> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify({ error: err.code, error_description: err.message, ...extra });
  const headers: Record<string, string | string[] | number> = {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    ...(err instanceof RelayError ? err.headers : {}),
  };
  // After a framing error the rest of the connection can't be trusted (RFC 9112 §6.3).
  if (err.status === 400 || err.status === 413 || err.status === 408) headers.connection = 'close';
  res.writeHead(err.status, headers);
  res.end(body);
}
