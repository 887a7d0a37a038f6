/**
 * The agent gate: before a job gets anything (a Port token at `/oauth/token`, a credential
 * for a Buildkite bearer at `/v1/credentials`, the relay for a Buildkite token), Port checks
 * the agent the token names against the rules of its pool (`pools:`, matched by the
 * token's `cluster_name` and `queue_key` claims: src/agents/pool-match.ts):
 *
 * - `buildkite`: a live check with Buildkite's REST API (src/agents/buildkite-check.ts);
 * - `aws_iam` / `aws_iid`: a current attestation of the agent (`POST /v1/agents/attest`)
 *   for the same pool, covering every AWS method the pool requires, still within the
 *   pool's `aws` rules (they may have been tightened since it was made);
 * - `host_bound`: the token is bound (RFC 9449 §6, `cnf.jkt`) to the host key that
 *   attestation registered, so the request must prove that key with a DPoP proof.
 *
 * What was verified becomes the Cedar `Agent`'s attributes and the Port token's
 * `agent_attestation`, so the relay decides on them without a lookup. With
 * `enforcement: audit` nothing is refused: the decision log's `context.agent` says what was
 * missing and what enforcing would refuse (`would_refuse`), for `port agents audit`.
 */
import type { AttestationMethod, PoolConfig, PortConfig } from '../config/config.js';
import { TokenRejectedError, type AgentCheck as AgentCheckCode } from '../identity/errors.js';
import type { JobIdentity } from '../identity/job-identity.js';
import type { AgentAttestationRecord, AgentAttestationStore } from '../store/repositories/agent-attestations.js';
import type { AgentFacts } from '../identity/agent-facts.js';
import { configuredPoolContext, unconfiguredPoolContext } from './agent-context.js';
import { roleMatches } from './attestation-rules.js';
import { BUILDKITE_RETRY_AFTER_SECONDS, BuildkiteLiveCheck } from './buildkite-check.js';
import { buildkiteApiFromConfig } from '../buildkite/from-config.js';
import { poolFor } from './pool-match.js';

/** The gate's answer for a job it lets through. */
export interface AgentCheck {
  /** The matching `pools:` entry. */
  pool?: PoolConfig;
  /** What was verified (absent when no pool rule applies). */
  facts?: AgentFacts;
  /** Host-bound pool: the token must be bound to this key (`cnf.jkt`). */
  jkt?: string;
  /** The decision log's `context.agent`; undefined when no pools are configured. */
  context: Record<string, unknown> | undefined;
}

export interface AgentGateDeps {
  config: Pick<PortConfig, 'pools'>;
  attestations: Pick<AgentAttestationStore, 'get'>;
  /** The live check; needed when any pool requires `buildkite`. */
  live?: BuildkiteLiveCheck | undefined;
  now?: () => number;
}

/** Canonical order of methods in facts and context. */
const METHOD_ORDER: readonly AttestationMethod[] = ['buildkite', 'aws_iam', 'aws_iid'];
const AWS_METHODS: readonly AttestationMethod[] = ['aws_iam', 'aws_iid'];

interface Refusal {
  check: AgentCheckCode;
  message: string;
}

export class AgentGate {
  private readonly now: () => number;

  constructor(private readonly deps: AgentGateDeps) {
    this.now = deps.now ?? Date.now;
  }

  /**
   * Pools requiring `buildkite` while Port has no Buildkite API token to check with: their
   * jobs are refused (fail closed), and Port says so when it starts.
   */
  get uncheckable(): string[] {
    if (this.deps.live !== undefined) return [];
    return Object.values(this.deps.config.pools)
      .filter((p) => p.attestation.includes('buildkite'))
      .map((p) => p.key);
  }

  /** Whether any `pools:` entry exists (with none, the gate lets everything through unchecked). */
  get configured(): boolean {
    return Object.keys(this.deps.config.pools).length > 0;
  }

  /**
   * Lets the job through (with what was verified) or throws TokenRejectedError with the
   * first enforced failure; `opts.dpopJkt` is the thumbprint of the request's verified
   * DPoP proof, if it came with one.
   */
  async check(identity: JobIdentity, opts: { dpopJkt?: string | undefined } = {}): Promise<AgentCheck> {
    const match = poolFor(this.deps.config, identity);
    switch (match.kind) {
      case 'none':
        return { context: undefined };
      case 'missing_claims': {
        const absent = (['cluster_name', 'queue_key'] as const).filter((c) => (c === 'cluster_name' ? identity.clusterName : identity.queueKey) === undefined);
        throw new TokenRejectedError(
          'pool_claims_missing',
          `Port has agent pools, and the token lacks the ${absent.join(' and ')} claim${absent.length > 1 ? 's' : ''} naming its pool; request it with --claim cluster_name,queue_key.`,
          { context: { agent: { id: identity.agentId, configured: false, required: [], missing_claims: absent } } },
        );
      }
      case 'unconfigured':
        return { context: unconfiguredPoolContext(identity) };
      case 'pool':
        return this.checkPool(identity, match.key, match.pool, opts.dpopJkt);
    }
  }

  private async checkPool(identity: JobIdentity, key: string, pool: PoolConfig, dpopJkt: string | undefined): Promise<AgentCheck> {
    const refusals: Refusal[] = [];
    const verified = new Set<AttestationMethod>();
    let connected: boolean | undefined;

    if (pool.attestation.includes('buildkite') && this.deps.live === undefined) {
      refusals.push({ check: 'buildkite_unavailable', message: `Pool ${key} requires the buildkite check, and Port has no buildkite.api_token to ask Buildkite's REST API with (scopes read_builds and read_agents).` });
    } else if (pool.attestation.includes('buildkite')) {
      const live = await this.deps.live!.verify(identity);
      if (live.passed) {
        verified.add('buildkite');
        connected = true;
      } else {
        if (live.connected !== undefined) connected = live.connected;
        refusals.push({ check: live.check, message: live.message });
      }
    }

    // The attestation is read for every pools: entry (its facts serve policies even where
    // the pool requires none); a store that does not answer fails the request (fail closed).
    const record = usableRecord(await this.deps.attestations.get(identity.agentId, this.now()), key, pool);
    for (const m of AWS_METHODS) if (record?.methods.includes(m)) verified.add(m);
    const missingAws = pool.attestation.filter((m) => AWS_METHODS.includes(m) && !verified.has(m));
    if (missingAws.length > 0) {
      refusals.push({
        check: 'agent_not_attested',
        message: `Agent ${identity.agentId} has no current ${missingAws.join(' and ')} attestation for pool ${key}; run \`port agent attest\` on the agent host (its environment or pre-bootstrap hook).`,
      });
    }

    let jkt: string | undefined;
    if (pool.hostBound) {
      if (record?.jkt === undefined) {
        if (missingAws.length === 0) {
          refusals.push({ check: 'agent_not_attested', message: `Pool ${key} is host-bound, and agent ${identity.agentId}'s attestation registered no host key; run \`port agent attest\` with its host key.` });
        }
      } else if (dpopJkt === undefined) {
        refusals.push({ check: 'dpop_required', message: `Pool ${key} is host-bound: the token must be bound to the agent host's key with a DPoP proof (port token exchange --dpop-key, or port agent proxy).` });
      } else if (dpopJkt !== record.jkt) {
        refusals.push({ check: 'dpop_key_mismatch', message: `The DPoP proof's key is not the host key agent ${identity.agentId} registered when it attested; sign proofs with that host's key.` });
      } else {
        jkt = record.jkt;
      }
    }

    const facts: AgentFacts = {
      attested: record !== undefined,
      attestation: METHOD_ORDER.filter((m) => verified.has(m)),
      ...(record?.instanceId !== undefined ? { instanceId: record.instanceId } : {}),
      ...(record?.account !== undefined ? { account: record.account } : {}),
      ...(record?.region !== undefined ? { region: record.region } : {}),
      ...(record?.iamRole !== undefined ? { iamRole: record.iamRole } : {}),
      ...(connected !== undefined ? { connected } : {}),
    };
    const missing = pool.attestation.filter((m) => !verified.has(m));
    const first = refusals[0];
    // Only an explicit `audit` serves a refused job: any other value (a pool built without it) enforces.
    if (first !== undefined && pool.enforcement !== 'audit') {
      const agent = configuredPoolContext(identity, pool, facts, { missing, hostBound: false });
      throw new TokenRejectedError(first.check, first.message, {
        context: { agent },
        ...(first.check === 'buildkite_unavailable' ? { retryAfterSeconds: BUILDKITE_RETRY_AFTER_SECONDS } : {}),
      });
    }
    const context = configuredPoolContext(identity, pool, facts, {
      missing,
      hostBound: jkt !== undefined,
      ...(refusals.length > 0 ? { wouldRefuse: [...new Set(refusals.map((r) => r.check))] } : {}),
    });
    return { pool, facts, ...(jkt !== undefined ? { jkt } : {}), context };
  }
}

/**
 * The gate for Port's configuration: the live check when a pool requires `buildkite` (with
 * `buildkite.api_token`; a short deadline and one retry, as an exchange waits on it), its
 * answers reused for `attestation.buildkite_cache_ttl`.
 */
export function agentGateFromConfig(config: Pick<PortConfig, 'pools' | 'buildkite' | 'attestation'>, store: { attestations: Pick<AgentAttestationStore, 'get'> }): AgentGate {
  const needsLive = Object.values(config.pools).some((p) => p.attestation.includes('buildkite'));
  const live =
    needsLive && config.buildkite.apiToken !== undefined
      ? new BuildkiteLiveCheck(buildkiteApiFromConfig(config.buildkite, { timeoutMs: 3000, maxRetries: 1 }), { cacheTtl: config.attestation.buildkiteCacheTtl })
      : undefined;
  return new AgentGate({ config, attestations: store.attestations, live });
}

/**
 * The agent's attestation when it speaks for this pool: made for the same `cluster/queue`,
 * and still within the pool's `aws` rules as they are now (an account, region or role the
 * pool no longer allows is no attestation). A rule the record can't show a fact for — a
 * region listed since an attestation without `aws_iid`, a role listed since one without
 * `aws_iam` — is not met either: the attest endpoint would refuse that attestation now
 * (`region_unproven`, `role_unproven`), so it doesn't serve until it expires.
 */
function usableRecord(record: AgentAttestationRecord | undefined, key: string, pool: PoolConfig): AgentAttestationRecord | undefined {
  if (record === undefined || record.pool !== key) return undefined;
  const { accounts, regions, roles } = pool.aws;
  if (accounts.length > 0 && (record.account === undefined || !accounts.includes(record.account))) return undefined;
  if (regions.length > 0 && (record.region === undefined || !regions.includes(record.region))) return undefined;
  // An assumed-role pattern names the session ARN, which the record does not keep: the attest endpoint checked it.
  const role = record.iamRole;
  if (roles.length > 0 && (role === undefined || !roles.some((p) => p.includes(':assumed-role/') || roleMatches(p, { arn: role, iamRole: role })))) return undefined;
  return record;
}
