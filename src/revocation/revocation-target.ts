/**
 * What can be revoked and how each id is spelled (the entity ids of Port's Cedar schema,
 * src/policy/schema.ts). One zod schema, used at the HTTP edge, in the CLI and by the service.
 */
import { z } from 'zod';
import { formatDuration, parseDuration } from '../config/duration.js';
import { PortError } from '../errors.js';
import { REVOCATION_SCOPES, type RevocationScope } from './revocation-keys.js';

/** The longest a revocation may be asked to last (`expires_in`, `port revoke --for`): 90 days. */
export const MAX_REVOCATION_SECONDS = 90 * 86400;

/** A revocation request that doesn't name a revocable thing (400). */
export class InvalidRevocationError extends PortError {
  constructor(message: string) {
    super('invalid_request', message, 400);
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
// Buildkite slugs: lower-case letters, digits and dashes (the example tokens in
// https://buildkite.com/docs/agent/v3/cli-oidc).
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

const targetFields = {
  scope: z.enum(REVOCATION_SCOPES, { message: `scope must be one of ${REVOCATION_SCOPES.join(', ')}` }),
  id: z.string({ message: 'id must be a string' }).min(1, 'id must not be empty').max(320, 'id is longer than 320 characters'),
  reason: z.string({ message: 'reason must be a string' }).max(500, 'reason is longer than 500 characters').optional(),
};

/** What `expires_in` (and `port revoke --for`) accepts, in words. */
export const EXPIRES_IN_RULE = `seconds (1 to ${MAX_REVOCATION_SECONDS}) or a duration such as 30m, 24h or 7d (at most ${formatDuration(MAX_REVOCATION_SECONDS)})`;

/** A revocation's requested lifetime in seconds, or undefined when it isn't one (EXPIRES_IN_RULE). */
export function revocationLifetime(value: string | number): number | undefined {
  const seconds = parseDuration(value);
  return seconds === undefined || seconds < 1 || seconds > MAX_REVOCATION_SECONDS ? undefined : seconds;
}

export const revocationRequestSchema = z
  .object({
    ...targetFields,
    expires_in: z
      .union([z.number(), z.string()], { message: `expires_in must be ${EXPIRES_IN_RULE}` })
      .transform((value, ctx) => {
        const seconds = revocationLifetime(value);
        if (seconds === undefined) {
          ctx.addIssue({ code: 'custom', message: `expires_in must be ${EXPIRES_IN_RULE}` });
          return z.NEVER;
        }
        return seconds;
      })
      .optional(),
  })
  .strict();

export const liftRequestSchema = z.object(targetFields).strict();

export interface RevocationTarget {
  scope: RevocationScope;
  /** Normalised: e-mails lower-cased, UUIDs lower-cased. */
  id: string;
  reason?: string;
  /** How long the revocation lasts (seconds), when asked; else the scope's default. */
  expiresIn?: number;
}

/** Parses `{scope, id, reason?, expires_in?}`; throws InvalidRevocationError naming the first problem. */
export function parseRevocationRequest(body: unknown): RevocationTarget {
  const data = parseWith(revocationRequestSchema, body, '{scope, id, reason?, expires_in?}');
  const { scope, reason } = data;
  const id = normaliseId(scope, data.id);
  return {
    scope,
    id,
    ...(reason !== undefined && reason.trim() !== '' ? { reason: reason.trim() } : {}),
    ...(data.expires_in !== undefined ? { expiresIn: data.expires_in } : {}),
  };
}

/** Parses a lift (`DELETE /v1/revocations`): `{scope, id, reason?}`. */
export function parseLiftRequest(body: unknown): RevocationTarget {
  const data = parseWith(liftRequestSchema, body, '{scope, id, reason?}');
  const id = normaliseId(data.scope, data.id);
  return { scope: data.scope, id, ...(data.reason !== undefined && data.reason.trim() !== '' ? { reason: data.reason.trim() } : {}) };
}

function parseWith<T extends z.ZodType>(schema: T, body: unknown, shape: string): z.output<T> {
  const parsed = schema.safeParse(body);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  const path = issue.path.join('.');
  const where = path !== '' && !issue.message.startsWith(path) ? `${path}: ` : '';
  throw new InvalidRevocationError(
    issue.code === 'unrecognized_keys' ? `Unknown field(s) ${issue.keys.join(', ')}; send ${shape}.` : `${where}${issue.message}.`.replace(/\.\.$/, '.'),
  );
}

/** The id in its canonical spelling; throws InvalidRevocationError when it isn't one. */
export function normaliseId(scope: RevocationScope, raw: string): string {
  const id = scope === 'user' || UUID.test(raw) ? raw.trim().toLowerCase() : raw;
  const rule = ID_RULES[scope];
  if (!rule.test(id)) throw new InvalidRevocationError(`A ${scope} revocation's id must be ${rule.expected}.`);
  return id;
}
