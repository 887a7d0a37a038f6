import { z } from 'zod';

/**
 * The parts of Buildkite's webhook payloads (https://buildkite.com/docs/apis/webhooks/pipelines) that Port's handlers rely
 * on. Objects strip members not named here, so handlers see only validated fields.
 * Optional fields Buildkite may send as null or omit are normalised to null.
 */

const nullableString = z.string().nullish().transform((v) => v ?? null);

const userSchema = z.object({
  id: nullableString,
  /** EventBridge samples name users by `uuid`/`graphql_id`; REST by `id`. */
  uuid: nullableString,
  graphql_id: nullableString,
  name: nullableString,
  email: nullableString,
});

export const buildSchema = z.object({
  id: z.string().min(1),
  number: z.number().int().nonnegative(),
  state: z.string().min(1),
  /** True when the build is waiting on a block step (its `state` keeps its earlier value). */
  blocked: z.boolean(),
  branch: z.string(),
  tag: nullableString,
  commit: z.string(),
  /** `ui`, `api`, `webhook`, `trigger_job`, `schedule`, … */
  source: z.string(),
  message: nullableString,
  web_url: nullableString,
  /** The Buildkite user who created the build; null for builds made by e.g. a VCS webhook. */
  creator: userSchema.nullish().transform((v) => v ?? null),
  /** The commit's author as the VCS named them, when the build names one. */
  author: z
    .object({ username: nullableString, name: nullableString, email: nullableString })
    .nullish()
    .transform((v) => v ?? null),
});

export const pipelineSchema = z.object({
  slug: z.string().min(1),
  id: nullableString,
  name: nullableString,
});

export const senderSchema = z
  .object({ id: nullableString, name: nullableString })
  .nullish()
  .transform((v) => v ?? null);

export const jobSchema = z.object({
  id: z.string().min(1),
  /** `script`, `manual` (block/input step), `waiter`, `trigger`. */
  type: z.string().min(1),
  state: z.string().min(1),
  step_key: nullableString,
  label: nullableString,
  /** For a manual job that was unblocked (`job.activated`): who did it. */
  unblocked_by: userSchema.nullish().transform((v) => v ?? null),
  unblocked_at: nullableString,
});

/** `build.finished` (and the other build events): `build`, `pipeline`, `sender`. */
export const buildFinishedPayloadSchema = z.object({
  event: z.literal('build.finished'),
  build: buildSchema,
  pipeline: pipelineSchema,
  sender: senderSchema,
});

/** Job events: `job`, `build`, `pipeline`, `sender`. */
export const jobPayloadSchema = z.object({
  event: z.enum(['job.finished', 'job.activated']),
  job: jobSchema,
  build: buildSchema,
  pipeline: pipelineSchema,
  sender: senderSchema,
});

export type BuildkiteUser = z.output<typeof userSchema>;
export type WebhookBuild = z.output<typeof buildSchema>;
export type WebhookJob = z.output<typeof jobSchema>;
export type WebhookPipeline = z.output<typeof pipelineSchema>;
export type BuildFinishedPayload = z.output<typeof buildFinishedPayloadSchema>;
export type JobPayload = z.output<typeof jobPayloadSchema>;
