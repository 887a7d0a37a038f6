/**
 * Reading a build's jobs the way buildkite.md §3 "Implication for Port" says: a blocked
 * build's block steps are its `manual` jobs in state `blocked`; `unblockable` says
 * whether one can be unblocked now.
 */
import type { BuildkiteJob } from './types.js';

/** The block-step jobs waiting for someone: `type: "manual"`, `state: "blocked"`. */
export function blockedManualJobs(jobs: readonly BuildkiteJob[]): BuildkiteJob[] {
  return jobs.filter((job) => job.type === 'manual' && job.state === 'blocked');
}

/** Whether Buildkite will accept an unblock of this job now (§3: check `unblockable`). */
export function isUnblockable(job: BuildkiteJob): boolean {
  return job.type === 'manual' && job.state === 'blocked' && job.unblockable === true;
}
