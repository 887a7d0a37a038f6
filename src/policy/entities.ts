/**
 * Cedar entities for a verified job (entity ids and attributes as Port's schema,
 * schema.ts, defines them). Only what the token asserts goes in; anything unknown stays absent so
 * policies that need it don't match (fail closed).
 */
import type { JobIdentity } from '../identity/job-identity.js';
import { poolId } from '../identity/job-identity.js';
import type { CedarEntity, CedarValue, EntityRef } from './types.js';
import type { AgentFacts } from '../identity/agent-facts.js';
import type { PoolConfig } from '../config/config.js';

/** The build's creator, when the Buildkite API told us (the token doesn't). */
export type { CreatorInfo } from '../store/records/approvals.js';
import type { CreatorInfo } from '../store/records/approvals.js';

export interface JobRequestParts {
  principal: EntityRef;
  entities: CedarEntity[];
}

export function organizationRef(slug: string): EntityRef {
  return { type: 'Organization', id: slug };
}

export function pipelineRef(organizationSlug: string, pipelineSlug: string): EntityRef {
  return { type: 'Pipeline', id: `${organizationSlug}/${pipelineSlug}` };
}

export function buildRef(organizationSlug: string, pipelineSlug: string, number: number): EntityRef {
  return { type: 'Build', id: `${organizationSlug}/${pipelineSlug}/${number}` };
}

export function poolRef(id: string): EntityRef {
  return { type: 'Pool', id };
}

export function credentialRef(name: string): EntityRef {
  return { type: 'Credential', id: name };
}

export function upstreamRef(name: string): EntityRef {
  return { type: 'Upstream', id: name };
}

export function userRef(email: string): EntityRef {
  return { type: 'User', id: email.toLowerCase() };
}

export function groupRef(name: string): EntityRef {
  return { type: 'Group', id: name };
}

/**
 * The Pool as Cedar sees it: its `pools:` entry's `attestation` (what its agents must prove,
 * `[]` for `none`) and `host_bound`. `id` is the pool asked about (`cluster/queue`), so a
 * `cluster/*` entry's rules apply to each of its queues.
 */
export function poolEntity(id: string, pool: Pick<PoolConfig, 'attestation' | 'hostBound'>): CedarEntity {
  return { uid: poolRef(id), attrs: { attestation: [...pool.attestation], host_bound: pool.hostBound }, parents: [] };
}

/** An entity with no attributes and no parents (e.g. a Credential resource). */
export function bareEntity(ref: EntityRef): CedarEntity {
  return { uid: ref, attrs: {}, parents: [] };
}

function entityValue(ref: EntityRef): CedarValue {
  return { __entity: ref };
}

/**
 * Principal and entities for a request made by this job. `agent`: what Port verified about
 * its agent (src/identity/agent-facts.ts), the Agent's attributes — only facts present;
 * `pool`: the job's `pools:` entry, a Pool entity with `attestation` and `host_bound`.
 */
export function jobRequestParts(identity: JobIdentity, opts?: { creator?: CreatorInfo | undefined; agent?: AgentFacts | undefined; pool?: PoolConfig | undefined }): JobRequestParts {
  const org = organizationRef(identity.organizationSlug);
  const pipeline = pipelineRef(identity.organizationSlug, identity.pipelineSlug);
  const build = buildRef(identity.organizationSlug, identity.pipelineSlug, identity.buildNumber);
  const pool = poolId(identity);
  const poolUid = pool === undefined ? undefined : poolRef(pool);
  const agent: EntityRef = { type: 'Agent', id: identity.agentId };
  const job: EntityRef = { type: 'Job', id: identity.jobId };
  const tag = identity.tag ?? '';

  const creator = opts?.creator;
  const creatorUid = creator === undefined ? undefined : userRef(creator.email);

  const jobAttrs: Record<string, CedarValue> = {
    branch: identity.branch,
    tag,
    commit: identity.commit,
    step_key: identity.stepKey ?? '',
    build_number: identity.buildNumber,
    build_source: identity.buildSource,
    runner_environment: identity.runnerEnvironment,
    pipeline_slug: identity.pipelineSlug,
    organization_slug: identity.organizationSlug,
    agent: entityValue(agent),
  };
  const optional: [string, string | undefined][] = [
    ['pipeline_id', identity.pipelineId],
    ['organization_id', identity.organizationId],
    ['build_id', identity.buildId],
    ['cluster_id', identity.clusterId],
    ['cluster_name', identity.clusterName],
    ['queue_id', identity.queueId],
    ['queue_key', identity.queueKey],
  ];
  for (const [name, value] of optional) if (value !== undefined) jobAttrs[name] = value;
  if (creatorUid !== undefined) {
    jobAttrs.creator = entityValue(creatorUid);
  }

  // Only entities with attributes or tags are passed; ancestors are listed directly as
  // parents (already transitively closed), so `principal in Pipeline::"acme/deploy"`
  // holds without Build, Pipeline, Organization, Pool or Group entities of their own.
  const ancestors = poolUid ? [build, pipeline, org, poolUid] : [build, pipeline, org];
  const entities: CedarEntity[] = [
    { uid: job, attrs: jobAttrs, parents: ancestors },
    { uid: agent, attrs: agentAttrs(opts?.agent), parents: poolUid ? [poolUid] : [], tags: { ...identity.agentTags } },
  ];
  if (poolUid !== undefined && opts?.pool !== undefined) {
    entities.push(poolEntity(poolUid.id, opts.pool));
  }
  if (creator !== undefined && creatorUid !== undefined) {
    const groups = [...new Set(creator.groups)].map(groupRef);
    entities.push({ uid: creatorUid, attrs: { active: creator.active }, parents: groups });
  }
  return { principal: job, entities };
}

/** The Agent's attributes: exactly the verified facts (an absent fact stays absent, so policies needing it don't match). */
function agentAttrs(facts: AgentFacts | undefined): Record<string, CedarValue> {
  if (facts === undefined) return {};
  const attrs: Record<string, CedarValue> = { attested: facts.attested, attestation: [...facts.attestation] };
  if (facts.instanceId !== undefined) attrs.instance_id = facts.instanceId;
  if (facts.account !== undefined) attrs.account = facts.account;
  if (facts.region !== undefined) attrs.region = facts.region;
  if (facts.iamRole !== undefined) attrs.iam_role = facts.iamRole;
  if (facts.connected !== undefined) attrs.connected = facts.connected;
  return attrs;
}
