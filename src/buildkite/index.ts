/** Port's Buildkite REST API client (https://buildkite.com/docs/apis/rest-api). */
export { BuildkiteApi, type BuildkiteApiOptions, type RetryInfo } from './client.js';
export { BuildkiteApiError, type BuildkiteApiErrorCode, type BuildkiteApiErrorDetails } from './errors.js';
export { buildkiteApiFromConfig } from './from-config.js';
export { blockedManualJobs, isUnblockable } from './jobs.js';
export { agentQueue, isRunning, jobAgentId, jobQueue, queueTag, RUNNING_JOB_STATES, type QueueRef } from './agents.js';
export { backoffDelayMs, parseRateLimit, rateLimitWaitMs } from './backoff.js';
export type {
  BuildkiteAgent,
  BuildkiteAgentConnectionState,
  BuildkiteAuthor,
  BuildkiteBuild,
  BuildkiteBuildSource,
  BuildkiteBuildState,
  BuildkiteJob,
  BuildkiteJobPage,
  BuildkiteJobState,
  BuildkiteJobType,
  BuildkiteMember,
  BuildkitePipelineRef,
  BuildkiteRateLimit,
  BuildkiteUser,
  Open,
  UnblockJobRequest,
} from './types.js';
