/**
 * What can be revoked and how each id is spelled (DESIGN capability 6, "Cedar schema"
 * entity ids). One zod schema, used at the HTTP edge, in the CLI and by the service.
 */
import { z } from 'zod';
import { PortError } from '../errors.js';
import { REVOCATION_SCOPES, type RevocationScope } from './revocation-list.js';

/** A revocation request that doesn't name a revocable thing (400). */
export class InvalidRevocationError extends PortError {
  constructor(message: string) {
    super('invalid_request', message, 400);
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
// Buildkite slugs: lower-case letters, digits and dashes (buildkite.md §1.4 examples).
const SLUG = '[a-z0-9][a-z0-9_-]{0,99}';
const BUILD = new RegExp(`^${SLUG}/${SLUG}/(0|[1-9][0-9]{0,11})$`);
// Cluster names and queue keys are free-form but never contain `/`, control characters or spaces.
const POOL = /^[^\s/\u0000-\u001f\u007f]{1,100}\/[^\s/\u0000-\u001f\u007f]{1,100}$/u;

/** How each scope's id must look, and a sentence saying so. */
const ID_RULES: Record<RevocationScope, { test: (id: string) => boolean; expected: string }> = {
  token: { test: (id) => UUID.test(id), expected: "a Port token's jti (a UUID)" },
  job: { test: (id) => UUID.test(id), expected: 'a Buildkite job id (a UUID)' },
  agent: { test: (id) => UUID.test(id), expected: 'a Buildkite agent id (a UUID)' },
  build: { test: (id) => BUILD.test(id), expected: 'org/pipeline/number (e.g. acme/deploy/42)' },
  user: { test: (id) => id.length <= 254 && z.string().email().safeParse(id).success, expected: 'an e-mail address' },
  pool: { test: (id) => POOL.test(id), expected: 'cluster_name/queue_key' },
};

export const revocationRequestSchema = z
  .object({
    scope: z.enum(REVOCATION_SCOPES, { message: `scope must be one of ${REVOCATION_SCOPES.join(', ')}` }),
    id: z.string({ message: 'id must be a string' }).min(1, 'id must not be empty').max(320, 'id is longer than 320 characters'),
    reason: z.string({ message: 'reason must be a string' }).max(500, 'reason is longer than 500 characters').optional(),
  })
  .strict();

export interface RevocationTarget {
  scope: RevocationScope;
  /** Normalised: e-mails lower-cased, UUIDs lower-cased. */
  id: string;
  reason?: string;
}

/** Parses `{scope, id, reason?}`; throws InvalidRevocationError naming the first problem. */
export function parseRevocationRequest(body: unknown): RevocationTarget {
  const parsed = revocationRequestSchema.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const where = issue.path.length > 0 ? `${issue.path.join('.')}: ` : '';
    throw new InvalidRevocationError(
      issue.code === 'unrecognized_keys' ? `Unknown field(s) ${issue.keys.join(', ')}; send {scope, id, reason?}.` : `${where}${issue.message}.`.replace(/\.\.$/, '.'),
    );
  }
  const { scope, reason } = parsed.data;
  const id = normaliseId(scope, parsed.data.id);
  return { scope, id, ...(reason !== undefined && reason.trim() !== '' ? { reason: reason.trim() } : {}) };
}

/** The id in its canonical spelling; throws InvalidRevocationError when it isn't one. */
export function normaliseId(scope: RevocationScope, raw: string): string {
  const id = scope === 'user' || UUID.test(raw) ? raw.trim().toLowerCase() : raw;
  const rule = ID_RULES[scope];
  if (!rule.test(id)) throw new InvalidRevocationError(`A ${scope} revocation's id must be ${rule.expected}.`);
  return id;
}
