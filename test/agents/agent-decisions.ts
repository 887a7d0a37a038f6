import { randomUUID } from 'node:crypto';
import type { DecisionRecord } from '../../src/store/records/decisions.js';

/**
 * Decision records shaped as Port writes them for a job on an agent: the token exchange
 * (src/broker/token-exchange.ts), a credential release (src/broker/credentials), an
 * aggregated relay allow (src/relay/allow-log.ts), with `context.agent` as the agent gate
 * records it — or without it, as decisions made before Port checked agents.
 */
export interface AgentJob {
  agentId: string;
  /** `cluster/queue`; absent: a token without pool claims. */
  pool?: string;
  jobId?: string;
}

/** `context.agent` as the gate records it. */
export interface AgentSeen {
  required: string[];
  attestation: string[];
  attested?: boolean;
  enforcement?: 'enforce' | 'audit';
  missing?: string[];
}

function context(job: AgentJob, agent: AgentSeen | undefined, extra: Record<string, unknown>): Record<string, unknown> {
  const [cluster, queue] = job.pool?.split('/') ?? [];
  return {
    job: {
      organization_slug: 'acme',
      pipeline_slug: 'deploy',
      build_number: 7,
      job_id: job.jobId ?? `job-of-${job.agentId}`,
      agent_id: job.agentId,
      ...(cluster !== undefined ? { cluster_name: cluster, queue_key: queue } : {}),
    },
    subject_token: { kid: 'bk', jti_sha256: 'a'.repeat(64), iat: 1, exp: 2 },
    ...(agent !== undefined
      ? {
          agent: {
            id: job.agentId,
            pool: job.pool,
            configured: true,
            required: agent.required,
            enforcement: agent.enforcement ?? 'enforce',
            attested: agent.attested ?? agent.attestation.some((m) => m !== 'buildkite'),
            attestation: agent.attestation,
            missing: agent.missing ?? agent.required.filter((m) => !agent.attestation.includes(m)),
            host_bound: false,
          },
        }
      : {}),
    ...extra,
  };
}

function record(at: number, job: AgentJob, action: string, resource: string | null, decision: 'allow' | 'deny', ctx: Record<string, unknown>): DecisionRecord {
  return {
    id: randomUUID(),
    time: new Date(at).toISOString(),
    principal: `Port::Job::"${job.jobId ?? `job-of-${job.agentId}`}"`,
    action,
    resource,
    decision,
    policies: [{ id: decision === 'allow' ? 'permit-deploy' : 'forbid-deploy' }],
    reason: decision === 'allow' ? 'permitted by permit-deploy' : 'forbidden by forbid-deploy',
    policyRevision: 'rev-1',
    context: ctx,
  };
}

/** An allowed exchange that minted a Port token with `scopes` (one `assume` decision per scope). */
export function exchange(at: number, job: AgentJob, agent: AgentSeen | undefined, scopes: string[] = []): DecisionRecord[] {
  const ctx = context(job, agent, { request_id: randomUUID(), port_token: { jti_sha256: 'b'.repeat(64), exp: 9, aud: 'https://port.acme.test' } });
  return [record(at, job, 'exchange', 'Port::Organization::"acme"', 'allow', ctx), ...scopes.map((s) => record(at, job, 'assume', `Port::Credential::"${s}"`, 'allow', ctx))];
}

/** An exchange whose second scope policy denied: the exchange and first scope are allowed decisions, but no token was minted. */
export function exchangeRefused(at: number, job: AgentJob, agent: AgentSeen | undefined, allowed: string, denied: string): DecisionRecord[] {
  const ctx = context(job, agent, { request_id: randomUUID() });
  return [
    record(at, job, 'exchange', 'Port::Organization::"acme"', 'allow', ctx),
    record(at, job, 'assume', `Port::Credential::"${allowed}"`, 'allow', ctx),
    record(at, job, 'assume', `Port::Credential::"${denied}"`, 'deny', ctx),
  ];
}

/** A credential released to the job (`/v1/credentials`). */
export function release(at: number, job: AgentJob, agent: AgentSeen | undefined, name: string): DecisionRecord {
  return record(at, job, 'assume', `Port::Credential::"${name}"`, 'allow', context(job, agent, { credential: { type: 'secret', expires_at: new Date(at + 3_600_000).toISOString() } }));
}

/** A credential refused by policy. */
export function refusedRelease(at: number, job: AgentJob, agent: AgentSeen | undefined, name: string): DecisionRecord {
  return record(at, job, 'assume', `Port::Credential::"${name}"`, 'deny', context(job, agent, {}));
}

/** The relay's aggregated allow entry for `requests` requests to `upstream`. */
export function relayed(at: number, job: AgentJob, agent: AgentSeen | undefined, upstream: string, requests = 3): DecisionRecord {
  return record(
    at,
    job,
    'proxy',
    `Port::Upstream::"${upstream}"`,
    'allow',
    context(job, agent, { token_kind: 'port', port_token: { jti_sha256: 'c'.repeat(64) }, upstream, method: 'GET', requests, window_start: new Date(at - 1000).toISOString() }),
  );
}
