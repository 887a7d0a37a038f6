/**
 * Reading a build's jobs: a blocked build's block steps are its `manual` jobs in state
 * `blocked`; `unblockable` says whether one can be unblocked now (job fields in
 * https://buildkite.com/docs/apis/rest-api/builds and .../rest-api/jobs).
 */
import type { BuildkiteJob } from './types.js';

/** The block-step jobs waiting for someone: `type: "manual"`, `state: "blocked"`. */
export function blockedManualJobs(jobs: readonly BuildkiteJob[]): BuildkiteJob[] {
  return jobs.filter((job) => job.type === 'manual' && job.state === 'blocked');
}

/** Whether Buildkite will accept an unblock of this job now (its `unblockable` field). */
export function isUnblockable(job: BuildkiteJob): boolean {
  return job.type === 'manual' && job.state === 'blocked' && job.unblockable === true;
}
