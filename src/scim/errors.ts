import { PortError } from '../errors.js';

/** RFC 7644 §3.12 `scimType` keywords Port answers with. */
export type ScimType =
  | 'invalidFilter'
  | 'tooMany'
  | 'uniqueness'
  | 'mutability'
  | 'invalidSyntax'
  | 'invalidPath'
  | 'noTarget'
  | 'invalidValue'
  | 'invalidVers';

const SCIM_TYPES: ReadonlySet<string> = new Set<ScimType>([
  'invalidFilter',
  'tooMany',
  'uniqueness',
  'mutability',
  'invalidSyntax',
  'invalidPath',
  'noTarget',
  'invalidValue',
  'invalidVers',
]);

/**
 * A SCIM request refused. Answered as an RFC 7644 §3.12 error body; `code` is the
 * `scimType` when there is one, else a stable Port code (`not_found`, `invalid_token`…).
 */
export class ScimError extends PortError {
  constructor(status: number, code: ScimType | string, message: string) {
    super(code, message, status);
  }

  /** The RFC 7644 §3.12 keyword, when the code is one. */
  get scimType(): ScimType | undefined {
    return SCIM_TYPES.has(this.code) ? (this.code as ScimType) : undefined;
  }

  static isScimType(code: string): code is ScimType {
    return SCIM_TYPES.has(code);
  }
}

export const notFound = (what: 'User' | 'Group'): ScimError => new ScimError(404, 'not_found', `No ${what} with this id exists.`);
