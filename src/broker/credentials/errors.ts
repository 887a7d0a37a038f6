import { PortError } from '../../errors.js';

export type CredentialErrorCode =
  /** The bearer is missing, invalid, expired or revoked (401). */
  | 'invalid_token'
  /** The token's scope lacks the credential, or policy denies `assume` now (403). */
  | 'access_denied'
  /** No credential of that name (404). */
  | 'unknown_credential'
  /** The job lacks something the credential needs, e.g. a claim for a session tag (400). */
  | 'invalid_request'
  /** The source of the credential (STS, a command, a rotation hook) failed (503). */
  | 'credential_unavailable';

const STATUS: Record<CredentialErrorCode, number> = {
  invalid_token: 401,
  access_denied: 403,
  unknown_credential: 404,
  invalid_request: 400,
  credential_unavailable: 503,
};

/** A credential request refused or failed; the message names the problem, never a secret. */
export class CredentialError extends PortError {
  declare readonly code: CredentialErrorCode;
  constructor(code: CredentialErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, STATUS[code], options);
  }
}
