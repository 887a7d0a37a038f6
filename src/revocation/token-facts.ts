import { poolId, type JobIdentity } from '../identity/job-identity.js';

/**
 * Why Port doesn't know a token's build creator although it has the Buildkite API:
 * `now` — the lookup for this very use failed (a Buildkite token at the exchange, the
 * relay or /v1/credentials); `at_exchange` — a Port token minted while the lookup
 * failed (claim `build_creator_unknown`).
 */
export type CreatorUnknown = 'now' | 'at_exchange';

/** The optional claims that name a job's pool (Cedar `Pool` id `cluster_name/queue_key`). */
export const POOL_CLAIMS = ['cluster_name', 'queue_key'] as const;

/**
 * What a revocation check needs to know about a presented token: every scope it can
 * be revoked by (token, job, build, user, agent, pool).
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
  /** `cluster_name/queue_key`, the Cedar Pool id; absent when the token lacks either claim. */
  pool?: string;
  /** Which pool claims the token lacks (when `pool` is absent); both when not said. */
  poolClaimsMissing?: string[];
  /** The build creator's lower-cased e-mail, when Port knew it at exchange (claim `build_creator`). */
  creator?: string;
  /** Set when Port asked the Buildkite API who started the build and got no answer. */
  creatorUnknown?: CreatorUnknown;
}

/** Facts of a token from the identity it carries and its own id and issue time. */
export function tokenFacts(
  identity: JobIdentity,
  token: { jti: string; issuedAt: number; creator?: string | undefined; creatorUnknown?: CreatorUnknown | undefined },
): TokenFacts {
  const pool = poolId(identity);
  const missing = [identity.clusterName === undefined ? 'cluster_name' : undefined, identity.queueKey === undefined ? 'queue_key' : undefined].filter(
    (c): c is string => c !== undefined,
  );
  return {
    jti: token.jti,
    jobId: identity.jobId,
    issuedAt: token.issuedAt,
    build: `${identity.organizationSlug}/${identity.pipelineSlug}/${identity.buildNumber}`,
    agentId: identity.agentId,
    ...(pool !== undefined ? { pool } : { poolClaimsMissing: missing }),
    ...(token.creator !== undefined ? { creator: token.creator.toLowerCase() } : {}),
    ...(token.creator === undefined && token.creatorUnknown !== undefined ? { creatorUnknown: token.creatorUnknown } : {}),
  };
}
