/**
 * Reading where a job and its agent run from Buildkite's REST objects (job fields in
 * https://buildkite.com/docs/apis/rest-api/builds, agent fields in
 * https://buildkite.com/docs/apis/rest-api/agents). What the docs leave open is decided
 * here and only here:
 *
 * - A job is running on its agent only in the state `running`: `assigned` and `accepted`
 *   come before the agent starts it, `canceling` and `timing_out` after it stopped being
 *   a job that should get anything new.
 * - A job's queue is the `queue=KEY` rule of its `agent_query_rules` (a cluster job runs in
 *   the queue its `queue` tag names, https://buildkite.com/docs/pipelines/security/clusters);
 *   a job without one (the cluster's default queue) has no key Port can read, only its
 *   `cluster_queue_id`.
 * - An agent's queue: Buildkite documents the agent's `queue` ("Queue the agent is
 *   registered to") without its shape. A string that is a UUID is read as the queue's id,
 *   any other string as its key; an object as `{id, key}`. The `queue=KEY` tag in
 *   `meta_data` (the tag that chose the queue) is read too; when the two name different
 *   keys, the queue is unknown.
 */
import type { BuildkiteAgent, BuildkiteJob } from './types.js';

/** Job states in which the job is running on its agent. */
export const RUNNING_JOB_STATES: ReadonlySet<string> = new Set(['running']);

/** Where an agent or job runs, as far as Buildkite said; absent parts are unknown. */
export interface QueueRef {
  key?: string;
  id?: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isRunning(job: BuildkiteJob): boolean {
  return job.state !== null && RUNNING_JOB_STATES.has(job.state);
}

/** The `queue=KEY` value among `key=value` entries (rules or tags); undefined when none, or when two disagree. */
export function queueTag(entries: readonly string[] | null | undefined): string | undefined {
  const keys = new Set<string>();
  for (const entry of entries ?? []) {
    if (entry.startsWith('queue=') && entry.length > 'queue='.length) keys.add(entry.slice('queue='.length));
  }
  return keys.size === 1 ? [...keys][0] : undefined;
}

/** The job's own queue: its `queue=` rule and `cluster_queue_id`. */
export function jobQueue(job: BuildkiteJob): QueueRef {
  const key = queueTag(job.agent_query_rules);
  const id = nonEmpty(job.cluster_queue_id);
  return { ...(key !== undefined ? { key } : {}), ...(id !== undefined ? { id } : {}) };
}

/** The queue the agent registered into; `conflict` when its `queue` and its `queue=` tag name different keys. */
export function agentQueue(agent: BuildkiteAgent): QueueRef & { conflict?: true } {
  const fromField = queueField(agent.queue);
  const tag = queueTag(agent.meta_data);
  if (fromField.key !== undefined && tag !== undefined && fromField.key !== tag) return { conflict: true };
  const key = fromField.key ?? tag;
  return { ...(key !== undefined ? { key } : {}), ...(fromField.id !== undefined ? { id: fromField.id } : {}) };
}

/** The job's agent id (`agent.id`), when Buildkite names one. */
export function jobAgentId(job: BuildkiteJob): string | undefined {
  return nonEmpty(job.agent?.id);
}

function queueField(value: unknown): QueueRef {
  if (typeof value === 'string' && value !== '') return UUID.test(value) ? { id: value } : { key: value };
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const v = value as Record<string, unknown>;
    const key = nonEmpty(v.key);
    const id = nonEmpty(v.id);
    return { ...(key !== undefined ? { key } : {}), ...(id !== undefined ? { id } : {}) };
  }
  return {};
}

function nonEmpty(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}
