import { poolId, type JobIdentity } from '../identity/job-identity.js';

/**
 * What a revocation check needs to know about a presented token: every scope it can
 * be revoked by (DESIGN capability 6: token, job, build, user, agent, pool).
 */
export interface TokenFacts {
  jti: string;
  /** The job the token belongs to (Port tokens: `sub`). */
  jobId: string;
  /** `iat`, seconds since the epoch. */
  issuedAt: number;
  /** `org/pipeline/number`, the Cedar Build id. */
  build?: string;
  agentId?: string;
  /** `cluster_name/queue_key`, the Cedar Pool id. */
  pool?: string;
  /** The build creator's lower-cased e-mail, when Port knew it at exchange (claim `build_creator`). */
  creator?: string;
}

/** Facts of a token from the identity it carries and its own id and issue time. */
export function tokenFacts(identity: JobIdentity, token: { jti: string; issuedAt: number; creator?: string | undefined }): TokenFacts {
  const pool = poolId(identity);
  return {
    jti: token.jti,
    jobId: identity.jobId,
    issuedAt: token.issuedAt,
    build: `${identity.organizationSlug}/${identity.pipelineSlug}/${identity.buildNumber}`,
    agentId: identity.agentId,
    ...(pool !== undefined ? { pool } : {}),
    ...(token.creator !== undefined ? { creator: token.creator.toLowerCase() } : {}),
  };
}
