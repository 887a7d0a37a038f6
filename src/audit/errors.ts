import { PortError } from '../errors.js';

/** Stable codes for what the audit module refuses or fails to do. */
export type AuditErrorCode =
  /** A checkpoint could not be signed or stored. */
  | 'audit_checkpoint_failed'
  /** An option (time range, line count, key file) is not usable. */
  | 'audit_invalid_option'
  /** The output stream closed or failed while writing. */
  | 'audit_output_closed'
  /** A checkpoint could not be shipped to a checkpoint sink (file or URL). */
  | 'audit_sink_failed';

export class AuditError extends PortError {
  declare readonly code: AuditErrorCode;
  constructor(code: AuditErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, 500, options);
  }
}
