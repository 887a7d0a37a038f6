/**
 * `scale` decisions: may an autoscaler grow (or shrink) a pool from `current` to
 * `desired` agents? Asked by the autoscaler before it changes a fleet
 * (`POST /v1/pools/{cluster}/{queue}/scale`); Port answers and logs, it never scales
 * anything itself. Two gates, both logged, allow or deny:
 * 1. the config: the pool (`pools.<cluster>/<queue>`, or its cluster's `*` entry) must
 *    list the autoscaler in `autoscalers` — so a policy written for one pool can't be
 *    used by an autoscaler nobody assigned to it;
 * 2. policy: `scale` on `Port::Pool::"<cluster>/<queue>"`, principal
 *    `Port::Autoscaler::"<name>"`, context `{desired, current}`; the Pool carries its
 *    config's `attestation` and `host_bound`, so a policy can let only attested pools grow.
 */
import { randomUUID } from 'node:crypto';
import type { DecisionLog } from '../audit/decision-log.js';
import { decisionRecord, determiningPolicies, entityString } from '../audit/decision-from-policy.js';
import type { PoolConfig, PortConfig } from '../config/config.js';
import { PortError } from '../errors.js';
import type { PolicyEngine } from '../policy/engine.js';
import { poolEntity, poolRef } from '../policy/entities.js';
import type { EntityRef } from '../policy/types.js';
import { unmatchedPermitsContext } from '../policy/unmatched-permits.js';
import type { DecisionRecord } from '../store/records/decisions.js';
import { mergeObjects } from '../merge-objects.js';
import { poolByKey } from './pool-match.js';

/** Largest agent count a scale request may name (far above any Buildkite fleet; keeps Cedar's Long arithmetic trivially safe). */
export const MAX_AGENT_COUNT = 100_000;

/** A scale request refused before policy: `unknown_pool` (404), `invalid_request` (400). */
export class ScaleError extends PortError {}

export interface ScaleRequest {
  /** A name of `scaling.autoscalers`, already authenticated. */
  autoscaler: string;
  clusterName: string;
  queueKey: string;
  desired: number;
  current: number;
  requestId: string;
  remoteAddress?: string;
}

export interface ScaleOutcome {
  decision: 'allow' | 'deny';
  /** `cluster/queue` as asked (the Cedar Pool id). */
  pool: string;
  desired: number;
  current: number;
  /** The determining policies: the satisfied permits on allow, the satisfied forbids on deny (none for a default deny or a config refusal). */
  policies: { id: string; reason?: string }[];
  /** One sentence: why. */
  reason: string;
  /** The decision-log entry's id. */
  decisionId: string;
}

export interface ScaleDeps {
  config: Pick<PortConfig, 'pools' | 'scaling'>;
  policy: PolicyEngine;
  log: DecisionLog;
}

export class ScaleDecisions {
  constructor(private readonly deps: ScaleDeps) {}

  /**
   * Decides and logs (durably, before it returns). Throws ScaleError `unknown_pool` —
   * logged too — when no `pools:` entry covers the pool.
   */
  async decide(req: ScaleRequest): Promise<ScaleOutcome> {
    checkCount('desired', req.desired);
    checkCount('current', req.current);
    if (!Object.hasOwn(this.deps.config.scaling.autoscalers, req.autoscaler)) {
      // The caller authenticated it; reaching here is a wiring bug, never an allow.
      throw new ScaleError('server_error', `"${req.autoscaler}" is not under scaling.autoscalers.`, 500);
    }
    const id = `${req.clusterName}/${req.queueKey}`;
    const principal: EntityRef = { type: 'Autoscaler', id: req.autoscaler };
    const resource = poolRef(id);
    const pool = poolByKey(this.deps.config, req.clusterName, req.queueKey);
    const context = requestContext(req, pool);

    if (pool === undefined) {
      const reason = `No pools: entry covers ${id}; add pools.${id} (with autoscalers: [${req.autoscaler}]) to let autoscalers ask about it.`;
      await this.deps.log.record([configRefusal(principal, resource, reason, 'unknown_pool', context)]);
      throw new ScaleError('unknown_pool', reason, 404);
    }
    if (!pool.autoscalers.includes(req.autoscaler)) {
      const reason = `The autoscaler "${req.autoscaler}" is not assigned to this pool; add it to pools.${pool.key}.autoscalers.`;
      const record = configRefusal(principal, resource, reason, 'autoscaler_not_listed', context);
      await this.deps.log.record([record]);
      return { decision: 'deny', pool: id, desired: req.desired, current: req.current, policies: [], reason, decisionId: record.id };
    }

    const decision = this.deps.policy.decide({
      principal,
      action: 'scale',
      resource,
      context: { desired: req.desired, current: req.current },
      entities: [poolEntity(id, pool)],
    });
    const record = decisionRecord(decision, principal, 'scale', resource, mergeObjects(context, unmatchedPermitsContext(decision)));
    await this.deps.log.record([record]);
    return {
      decision: decision.decision,
      pool: id,
      desired: req.desired,
      current: req.current,
      policies: determiningPolicies(decision),
      reason: decision.reason,
      decisionId: record.id,
    };
  }
}

function checkCount(name: 'desired' | 'current', value: number): void {
  if (!Number.isSafeInteger(value) || value < 0 || value > MAX_AGENT_COUNT) {
    throw new ScaleError('invalid_request', `${name} must be a whole number from 0 to ${MAX_AGENT_COUNT}.`, 400);
  }
}

/** What the decision log records about a scale request: who, which pool and its rules, the counts — never the token. */
function requestContext(req: ScaleRequest, pool: PoolConfig | undefined): Record<string, unknown> {
  return {
    request_id: req.requestId,
    ...(req.remoteAddress !== undefined ? { remote_address: req.remoteAddress } : {}),
    autoscaler: req.autoscaler,
    scale: { desired: req.desired, current: req.current },
    ...(pool !== undefined
      ? { pool: { key: pool.key, attestation: [...pool.attestation], enforcement: pool.enforcement, host_bound: pool.hostBound, autoscalers: [...pool.autoscalers] } }
      : {}),
  };
}

/** A deny by the config, before policy: no policy determined it. */
function configRefusal(principal: EntityRef, resource: EntityRef, reason: string, check: string, context: Record<string, unknown>): DecisionRecord {
  return {
    id: randomUUID(),
    time: new Date().toISOString(),
    principal: entityString(principal),
    action: 'scale',
    resource: entityString(resource),
    decision: 'deny',
    policies: [],
    reason,
    context: mergeObjects(context, { check }),
  };
}
