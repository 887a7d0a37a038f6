import type { PoolConfig, PortConfig } from '../config/config.js';
import type { JobIdentity } from '../identity/job-identity.js';

/**
 * The `pools:` entry that governs a job's agent: `CLUSTER/QUEUE` exactly, else `CLUSTER/*`.
 * The pool is named by the token's `cluster_name` and `queue_key` claims
 * (https://buildkite.com/docs/agent/v3/cli-oidc), which the agent adds only when asked
 * (`--claim cluster_name,queue_key`); `missing_claims` when pools are configured and the
 * token lacks them — a job could otherwise leave its pool's rules behind by not asking.
 */
export type PoolMatch = { kind: 'none' } | { kind: 'missing_claims' } | { kind: 'unconfigured'; key: string } | { kind: 'pool'; key: string; pool: PoolConfig };

export function poolFor(config: Pick<PortConfig, 'pools'>, identity: Pick<JobIdentity, 'clusterName' | 'queueKey'>): PoolMatch {
  const configured = Object.keys(config.pools).length > 0;
  if (identity.clusterName === undefined || identity.queueKey === undefined) return configured ? { kind: 'missing_claims' } : { kind: 'none' };
  const key = `${identity.clusterName}/${identity.queueKey}`;
  const pool = config.pools[key] ?? config.pools[`${identity.clusterName}/*`];
  if (pool === undefined) return configured ? { kind: 'unconfigured', key } : { kind: 'none' };
  return { kind: 'pool', key, pool };
}

/** A pool by `CLUSTER/QUEUE` (the scale endpoint's path), exact or by its cluster's `*` entry. */
export function poolByKey(config: Pick<PortConfig, 'pools'>, clusterName: string, queueKey: string): PoolConfig | undefined {
  return config.pools[`${clusterName}/${queueKey}`] ?? config.pools[`${clusterName}/*`];
}
