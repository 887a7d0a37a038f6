/**
 * Runtime checks of Buildkite's JSON against `types.ts`. Lenient where Buildkite is
 * (missing and null optional fields, unknown enum values, extra keys kept) and strict
 * where Port depends on a field: an id, a build number, `blocked`, a job's `type`.
 */
import { z } from 'zod';
import type {
  BuildkiteAgent,
  BuildkiteBuild,
  BuildkiteJob,
  BuildkiteMember,
  BuildkiteUser,
} from './types.js';

/** Absent or null become null. */
const orNull = <T extends z.ZodType>(schema: T) => schema.nullish().transform((v) => v ?? null);

const userSchema = z.looseObject({
  id: z.string().min(1),
  graphql_id: z.string().nullish(),
  name: orNull(z.string()),
  email: orNull(z.string()),
  avatar_url: z.string().nullish(),
  created_at: z.string().nullish(),
}) satisfies z.ZodType<BuildkiteUser>;

const jobBase = z.looseObject({
  id: z.string().min(1),
  graphql_id: z.string().nullish(),
  type: z.string().min(1),
  state: orNull(z.string()),
  name: z.string().nullish(),
  label: z.string().nullish(),
  step_key: z.string().nullish(),
  web_url: z.string().nullish(),
  unblockable: z.boolean().nullish(),
  unblocked_by: userSchema.nullish(),
  unblocked_at: z.string().nullish(),
  unblock_url: z.string().nullish(),
  fields: z.unknown().optional(),
  // Read by the agent check (src/buildkite/agents.ts); a value of another shape is "unknown", never a parse failure.
  agent_query_rules: z.array(z.string()).nullish().catch(null),
  cluster_id: z.string().nullish().catch(null),
  cluster_queue_id: z.string().nullish().catch(null),
  created_at: z.string().nullish(),
  started_at: z.string().nullish(),
  finished_at: z.string().nullish(),
  exit_status: z.number().nullish(),
});

const agentBase = z.looseObject({
  id: z.string().min(1),
  graphql_id: z.string().nullish(),
  name: orNull(z.string()),
  connection_state: orNull(z.string()),
  hostname: z.string().nullish(),
  ip_address: z.string().nullish(),
  user_agent: z.string().nullish(),
  version: z.string().nullish(),
  os_id: z.string().nullish(),
  arch: z.string().nullish(),
  queue: z.unknown().optional(),
  cluster_id: z.string().nullish().catch(null),
  creator: userSchema.nullish(),
  meta_data: z.array(z.string()).nullish(),
  created_at: z.string().nullish(),
  connected_at: z.string().nullish().catch(null),
  disconnected_at: z.string().nullish().catch(null),
  lost_at: z.string().nullish().catch(null),
});

export const jobSchema: z.ZodType<BuildkiteJob> = jobBase.extend({ agent: agentBase.nullish() });

export const agentSchema: z.ZodType<BuildkiteAgent> = agentBase.extend({ job: jobBase.nullish() });

export const buildSchema: z.ZodType<BuildkiteBuild> = z.looseObject({
  id: z.string().min(1),
  graphql_id: z.string().nullish(),
  url: z.string().nullish(),
  web_url: z.string().nullish(),
  number: z.number().int(),
  state: z.string().min(1),
  blocked: z.boolean(),
  branch: z.string(),
  tag: z.string().nullish(),
  commit: z.string(),
  message: orNull(z.string()),
  source: z.string(),
  creator: orNull(userSchema),
  author: z.looseObject({ name: z.string().nullish(), email: z.string().nullish(), username: z.string().nullish() }).nullish(),
  pipeline: z.looseObject({ id: z.string().nullish(), slug: z.string().min(1), name: z.string().nullish() }).nullish(),
  jobs: z.array(jobSchema).optional(),
  meta_data: z.record(z.string(), z.string()).nullish(),
  created_at: z.string().nullish(),
  finished_at: z.string().nullish(),
});

export const jobListSchema = z.looseObject({
  items: z.array(jobSchema),
  links: z.looseObject({ next: z.string().nullish() }).nullish(),
});

export const memberSchema: z.ZodType<BuildkiteMember> = z.looseObject({
  id: z.string().min(1),
  name: orNull(z.string()),
  email: orNull(z.string()),
  role: z.string().nullish(),
  sso_mode: z.string().nullish(),
});

export const memberListSchema = z.array(memberSchema);

/** Buildkite's error body: `{"message": "…"}` (jobs.md "Error responses"). */
export const errorBodySchema = z.looseObject({ message: z.string() });
