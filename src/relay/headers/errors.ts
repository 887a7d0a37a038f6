import { PortError } from '../../errors.js';

/** Which framing or header check refused a request; recorded with the denial. */
export type HeaderCheck =
  | 'invalid_header_name'
  | 'invalid_header_value'
  | 'duplicate_host'
  | 'duplicate_authorization'
  | 'duplicate_content_length'
  | 'duplicate_transfer_encoding'
  | 'content_length_and_transfer_encoding'
  | 'invalid_content_length'
  | 'invalid_transfer_encoding';

/**
 * A request whose headers or framing Port will not forward: `400 invalid_request`. The
 * message names the header and the problem, never a header value.
 */
export class HeaderRejectedError extends PortError {
  readonly check: HeaderCheck;
  constructor(check: HeaderCheck, message: string) {
    super('invalid_request', message, 400);
    this.check = check;
  }
}
