import { PortError } from '../../errors.js';

/**
 * - `invalid_attestation` (400): the proof is malformed or is not the request Port accepts
 *   (wrong URL, action, unsigned header, too large, stale date…). Fix the client.
 * - `attestation_failed` (403): the proof is well formed but does not prove what it must
 *   (AWS refused the signature, the document's signature is wrong, an IAM user instead of a role…).
 * - `attestation_unavailable` (503): Port could not reach AWS to check; try again.
 */
export type AttestationErrorCode = 'invalid_attestation' | 'attestation_failed' | 'attestation_unavailable';

const STATUS: Record<AttestationErrorCode, number> = {
  invalid_attestation: 400,
  attestation_failed: 403,
  attestation_unavailable: 503,
};

/** An agent host's proof of where it runs was refused; the message never quotes the proof itself. */
export class AttestationError extends PortError {
  declare readonly code: AttestationErrorCode;
  constructor(code: AttestationErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, STATUS[code], options);
  }
}
