/**
 * The decision log's `context.agent`: which agent a decision was about, its pool, what the
 * pool requires and what Port verified — read by `port agents audit` to show every agent
 * that got something and whether it was attested. Facts Port did not verify are left out,
 * never guessed; nothing secret is in it (a DPoP key appears only as its thumbprint's absence or presence).
 */
import type { AttestationMethod, PoolConfig } from '../config/config.js';
import type { JobIdentity } from '../identity/job-identity.js';
import { poolId } from '../identity/job-identity.js';
import type { AgentFacts } from '../identity/agent-facts.js';

export type AgentLogContext = Record<string, unknown>;

/** The facts as the context names them (snake_case, only those present). */
function factFields(facts: AgentFacts | undefined): Record<string, unknown> {
  if (facts === undefined) return {};
  return {
    attested: facts.attested,
    attestation: [...facts.attestation],
    ...(facts.connected !== undefined ? { connected: facts.connected } : {}),
    ...(facts.instanceId !== undefined ? { instance_id: facts.instanceId } : {}),
    ...(facts.account !== undefined ? { account: facts.account } : {}),
    ...(facts.region !== undefined ? { region: facts.region } : {}),
    ...(facts.iamRole !== undefined ? { iam_role: facts.iamRole } : {}),
  };
}

/** A job in a pool with a `pools:` entry: what it requires, what was verified and what is missing. */
export function configuredPoolContext(
  identity: Pick<JobIdentity, 'agentId' | 'clusterName' | 'queueKey'>,
  pool: PoolConfig,
  facts: AgentFacts,
  o: { missing: AttestationMethod[]; hostBound: boolean; wouldRefuse?: string[] },
): AgentLogContext {
  return {
    id: identity.agentId,
    pool: `${identity.clusterName}/${identity.queueKey}`,
    configured: true,
    required: [...pool.attestation],
    enforcement: pool.enforcement,
    ...factFields(facts),
    missing: [...o.missing],
    host_bound: o.hostBound,
    ...(o.wouldRefuse !== undefined && o.wouldRefuse.length > 0 ? { would_refuse: [...o.wouldRefuse] } : {}),
  };
}

/** A job whose pool has no `pools:` entry (or a token without the pool claims, when no pools are configured). */
export function unconfiguredPoolContext(identity: JobIdentity): AgentLogContext {
  const pool = poolId(identity);
  return { id: identity.agentId, ...(pool !== undefined ? { pool } : {}), configured: false, required: [] };
}

/**
 * For a Port token's use (relay, `/v1/credentials`): the facts Port signed into it at
 * exchange (`agent_attestation`) and whether it is bound to a host key (`cnf.jkt`).
 */
export function tokenAgentContext(identity: JobIdentity, facts: AgentFacts | undefined, bound: boolean): AgentLogContext | undefined {
  if (facts === undefined && !bound) return undefined;
  const pool = poolId(identity);
  return { id: identity.agentId, ...(pool !== undefined ? { pool } : {}), ...factFields(facts), host_bound: bound };
}
