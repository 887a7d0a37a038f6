/**
 * Webhook bodies in Buildkite's shape (https://buildkite.com/docs/apis/webhooks/pipelines): `event` plus
 * `build`, `pipeline`, `sender` for build events; `job`, `build`, `pipeline`, `sender`
 * for job events; `service`, `organization`, `sender` for `ping`. The build object
 * carries no jobs; `sender` is the webhook's creator, not whoever acted.
 */
import type { SimBuild, SimBuildJob, SimUser } from './build-types.js';
import { buildJson, jobJson, organizationJson, pipelineJson, senderJson, type Json, type RestContext } from './rest-json.js';

export interface WebhookPayload extends Json {
  event: string;
}

/** Any build event; `build.finished` with `build.blocked: true` is how a block step is announced (https://buildkite.com/docs/apis/webhooks/pipelines/build-events). */
export function buildEventPayload(ctx: RestContext, event: string, build: SimBuild, sender: SimUser): WebhookPayload {
  return { event, build: buildJson(ctx, build, { jobs: false }), pipeline: pipelineJson(ctx, build), sender: senderJson(sender) };
}

/** Any job event: `job.finished`, `job.activated` (a block step was unblocked, https://buildkite.com/docs/apis/webhooks/pipelines/job-events), … */
export function jobEventPayload(ctx: RestContext, event: string, job: SimBuildJob, build: SimBuild, sender: SimUser): WebhookPayload {
  return {
    event,
    job: { ...jobJson(ctx, build, job), retry_source: null },
    build: buildJson(ctx, build, { jobs: false }),
    pipeline: pipelineJson(ctx, build),
    sender: senderJson(sender),
  };
}

/** `ping`: sent when the webhook's settings change (`ping_events.md`). */
export function pingPayload(ctx: RestContext, serviceId: string, url: string, sender: SimUser): WebhookPayload {
  return {
    event: 'ping',
    service: { id: serviceId, provider: 'webhook', settings: { url } },
    organization: organizationJson(ctx),
    sender: senderJson(sender),
  };
}
