import { PortError } from '../../errors.js';

/** Why a relay request target was refused; recorded with the denial (never the target itself). */
export type PathRejection =
  | 'too_long'
  | 'too_many_segments'
  | 'not_origin_form'
  | 'fragment'
  | 'not_relay_route'
  | 'invalid_upstream'
  | 'malformed_percent'
  | 'encoded_slash'
  | 'encoded_backslash'
  | 'backslash'
  | 'nul'
  | 'control_character'
  | 'non_ascii'
  | 'invalid_character'
  | 'double_encoding'
  | 'invalid_utf8'
  | 'dot_segment_params'
  | 'climbs_above_root';

/**
 * A relay request target Port will not forward. It answers `400 invalid_path`; the
 * message names the problem and never repeats the target (it may carry secrets in the
 * query, and echoing attacker bytes into logs and bodies helps no one).
 */
export class PathRejectedError extends PortError {
  readonly reason: PathRejection;
  constructor(reason: PathRejection, message: string) {
    super('invalid_path', message, 400);
    this.reason = reason;
  }
}
