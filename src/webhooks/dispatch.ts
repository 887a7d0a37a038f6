import type { z } from 'zod';
import { buildFinishedPayloadSchema, jobPayloadSchema, type BuildFinishedPayload, type JobPayload } from './payloads.js';

/**
 * What a handler may say instead of finishing the work: it was moot (e.g. the build is no
 * longer blocked when Port asked Buildkite again). The work is dropped, and `skipped` —
 * one sentence, no payload — is logged.
 */
export interface WebhookSkipped {
  skipped: string;
}

/**
 * What Port does with each event it acts on. A handler may run more than once for one
 * event (a re-sent delivery of work that failed, Port's own retries, two Ports on one
 * store after a lease lapsed), so each must be idempotent.
 */
export interface WebhookHandlers {
  /** Every `build.finished`; a build waiting on a block step has `build.blocked: true`. */
  buildFinished?(payload: BuildFinishedPayload): Promise<void | WebhookSkipped>;
  /** Revokes the job's tokens: runs, and must be durable, before the delivery is answered. */
  jobFinished?(payload: JobPayload): Promise<void | WebhookSkipped>;
  /** A block step was unblocked (web or API); `job.unblocked_by` names who. */
  jobActivated?(payload: JobPayload): Promise<void | WebhookSkipped>;
}

/** The handler call for an event, the reasons its payload doesn't fit, or undefined when Port ignores the event. */
export type Dispatch = { payload: unknown; run: () => Promise<void | WebhookSkipped> } | { problems: string[] } | undefined;

/** The handler call for `event` with `body` validated against the event's schema. */
export function dispatchFor(event: string, body: unknown, handlers: WebhookHandlers): Dispatch {
  const call = <T>(handler: ((payload: T) => Promise<void | WebhookSkipped>) | undefined, schema: z.ZodType<T>): Dispatch => {
    if (handler === undefined) return undefined;
    const parsed = schema.safeParse(body);
    if (!parsed.success) return { problems: parsed.error.issues.map((i) => `${i.path.map(String).join('.') || '(body)'}: ${i.message}`) };
    const payload = parsed.data;
    // Called as a method so handler classes keep `this`; a synchronous throw becomes a rejection.
    return { payload, run: async () => handler.call(handlers, payload) };
  };
  switch (event) {
    case 'build.finished':
      return call(handlers.buildFinished, buildFinishedPayloadSchema);
    case 'job.finished':
      return call(handlers.jobFinished, jobPayloadSchema);
    case 'job.activated':
      return call(handlers.jobActivated, jobPayloadSchema);
    default:
      return undefined;
  }
}
