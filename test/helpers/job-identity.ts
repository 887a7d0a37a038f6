import type { JobIdentity } from '../../src/identity/job-identity.js';

/** A verified Buildkite job (pipeline `deploy`, step `ship`, build 7 from main) for tests that sign its tokens. */
export const JOB_IDENTITY: JobIdentity = {
  subject: 's', organizationSlug: 'acme', pipelineSlug: 'deploy', buildNumber: 7, branch: 'main', tag: null, commit: 'a'.repeat(40),
  stepKey: 'ship', jobId: 'job-1', agentId: 'agent-1', buildSource: 'ui', runnerEnvironment: 'self-hosted', agentTags: {}, issuedAt: 0, expiresAt: 0,
  clusterName: 'default', queueKey: 'deploy',
};
