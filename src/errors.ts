/**
 * Port's error classes. Every error Port raises on purpose carries a stable `code`
 * and a one-sentence message that names the problem and never contains a token,
 * a secret or a request body.
 */
export class PortError extends Error {
  /** Stable, machine-readable code (e.g. `invalid_grant`, `config_invalid`). */
  readonly code: string;
  /** HTTP status to answer with when this error reaches the edge. */
  readonly status: number;

  constructor(code: string, message: string, status = 500, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.status = status;
  }
}

/** RFC 6749 §5.2 / RFC 8693 §2.2.2 error codes Port answers with. */
export type OAuthErrorCode =
  | 'invalid_request'
  | 'invalid_grant'
  | 'invalid_scope'
  | 'invalid_target'
  | 'invalid_client'
  | 'unsupported_grant_type'
  | 'unsupported_token_type'
  | 'access_denied'
  | 'server_error'
  | 'temporarily_unavailable';

/** An OAuth error answered as `{error, error_description}` (RFC 6749 §5.2). */
export class OAuthError extends PortError {
  declare readonly code: OAuthErrorCode;
  constructor(code: OAuthErrorCode, description: string, status?: number, options?: { cause?: unknown }) {
    super(code, description, status ?? defaultStatus(code), options);
  }
}

function defaultStatus(code: OAuthErrorCode): number {
  switch (code) {
    case 'access_denied':
      return 403;
    case 'invalid_client':
      return 401;
    case 'server_error':
      return 500;
    case 'temporarily_unavailable':
      return 503;
    default:
      return 400;
  }
}

/** The configuration file is unreadable or invalid; the message names the key and the fix. */
export class ConfigError extends PortError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('config_invalid', message, 500, options);
  }
}

/** The store failed or its contents are inconsistent. */
export class StoreError extends PortError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('store_error', message, 503, options);
  }
}
