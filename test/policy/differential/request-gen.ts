/**
 * Requests for a generated policy set, built as Port builds them (jobRequestParts,
 * poolEntity, unblockRequestParts, approveRequestParts, credentialRef/upstreamRef) from
 * specs drawn from the set's vocabulary. A family is one spec and its variants:
 *
 * - `repeat`: the same request again, rebuilt from scratch;
 * - `unread`: only what the set does not read changed (job and agent ids that are no
 *   policy's literal, commits, unread claims, tags, facts, context keys) — a memo keyed by
 *   the projection answers these from memory;
 * - `same-class`: one string the set reads only through `like`/`==`/`!=` replaced by
 *   another with the same outcome on each of them;
 * - `read`: one value the set does read redrawn;
 * - `edge:*`: mutations (mutations.ts), valid and invalid, of the same request, so that a
 *   request Cedar refuses shares its projection with one it accepts.
 */
import type { PoolConfig } from '../../../src/config/config.js';
import type { AgentFacts } from '../../../src/identity/agent-facts.js';
import type { JobIdentity } from '../../../src/identity/job-identity.js';
import { approveRequestParts, unblockRequestParts, type BlockStepFacts, type BuildFacts } from '../../../src/policy/block-step-entities.js';
import { credentialRef, jobRequestParts, organizationRef, poolEntity, upstreamRef, type CreatorInfo } from '../../../src/policy/entities.js';
import { PORT_ACTIONS, type PortAction } from '../../../src/policy/schema.js';
import type { AuthzRequest, EntityRef } from '../../../src/policy/types.js';
import { instantiate, nearMiss, type Pattern } from './cedar-text.js';
import { applyMutation, MUTATIONS, type MutationKind } from './mutations.js';
import type { Rng } from './rng.js';
import {
  ATTESTATION,
  AUTOSCALERS,
  BLOCK_FIELDS,
  BUILD_NUMBERS,
  CLUSTERS,
  EDGE_STRINGS,
  EMAILS,
  GROUPS,
  LITERAL_AGENTS,
  LITERAL_JOBS,
  ORGS,
  PIPELINES,
  QUEUES,
  SCALE_COUNTS,
  SetVocabulary,
  slotPool,
  STEP_KEYS,
  TAG_NAMES,
} from './vocabulary.js';

export interface JobSpec {
  identity: JobIdentity;
  creator?: CreatorInfo;
  agent?: AgentFacts;
  pool?: PoolConfig;
}

export type RequestSpec =
  | { action: 'exchange'; job: JobSpec; org: string; audience: string; scopes: string[] }
  | { action: 'assume'; job: JobSpec; credential: string }
  | { action: 'proxy'; job: JobSpec; upstream: string; method: string; path: string; awsTarget?: string; awsQueryKeys?: string[] }
  | { action: 'scale'; job?: JobSpec; autoscaler: string; pool: string; poolConfig: PoolConfig; desired: number; current: number }
  | { action: 'unblock'; build: BuildFacts; step: BlockStepFacts; hour: number; weekday: number; label: string; stepKey: string }
  | { action: 'approve'; build: BuildFacts; step: BlockStepFacts; user: CreatorInfo; isAuthor: boolean };

/** One request of the corpus: a spec, maybe mutated, and what kind of variant it is. */
export interface Probe {
  spec: RequestSpec;
  variant: string;
  mutation?: { kind: MutationKind; seed: number };
}

/** The request a probe stands for: fresh objects every time. */
export function buildRequest(probe: Probe, vocab: SetVocabulary): AuthzRequest {
  const req = fromSpec(structuredClone(probe.spec));
  return probe.mutation === undefined ? req : applyMutation(req, probe.mutation.kind, probe.mutation.seed, vocab);
}

function fromSpec(spec: RequestSpec): AuthzRequest {
  switch (spec.action) {
    case 'exchange': {
      const { principal, entities } = jobParts(spec.job);
      return { principal, action: 'exchange', resource: organizationRef(spec.org), context: { audience: spec.audience, scopes: spec.scopes }, entities };
    }
    case 'assume': {
      const { principal, entities } = jobParts(spec.job);
      return { principal, action: 'assume', resource: credentialRef(spec.credential), context: {}, entities };
    }
    case 'proxy': {
      const { principal, entities } = jobParts(spec.job);
      const context = {
        method: spec.method,
        path: spec.path,
        ...(spec.awsTarget !== undefined ? { aws_target: spec.awsTarget } : {}),
        ...(spec.awsQueryKeys !== undefined ? { aws_query_keys: spec.awsQueryKeys } : {}),
      };
      return { principal, action: 'proxy', resource: upstreamRef(spec.upstream), context, entities };
    }
    case 'scale': {
      const resource: EntityRef = { type: 'Pool', id: spec.pool };
      const context = { desired: spec.desired, current: spec.current };
      if (spec.job === undefined) {
        return { principal: { type: 'Autoscaler', id: spec.autoscaler }, action: 'scale', resource, context, entities: [poolEntity(spec.pool, spec.poolConfig)] };
      }
      const { principal, entities } = jobParts(spec.job);
      if (!entities.some((e) => e.uid.type === 'Pool' && e.uid.id === spec.pool)) entities.push(poolEntity(spec.pool, spec.poolConfig));
      return { principal, action: 'scale', resource, context, entities };
    }
    case 'unblock': {
      const parts = unblockRequestParts(spec.build, spec.step);
      return { ...parts, action: 'unblock', context: { hour: spec.hour, weekday: spec.weekday, step_label: spec.label, step_key: spec.stepKey } };
    }
    case 'approve': {
      const parts = approveRequestParts(spec.build, spec.step, spec.user);
      return { ...parts, action: 'approve', context: { is_author: spec.isAuthor } };
    }
  }
}

function jobParts(job: JobSpec): ReturnType<typeof jobRequestParts> {
  return jobRequestParts(job.identity, {
    ...(job.creator !== undefined ? { creator: job.creator } : {}),
    ...(job.agent !== undefined ? { agent: job.agent } : {}),
    ...(job.pool !== undefined ? { pool: job.pool } : {}),
  });
}

export interface FamilyShape {
  repeats: number;
  unread: number;
  sameClass: number;
  read: number;
  edges: number;
  /** The mutations edges draw from (default: all of them). */
  edgeKinds?: readonly MutationKind[];
}

export class RequestGen {
  constructor(
    private readonly rng: Rng,
    private readonly vocab: SetVocabulary,
  ) {}

  /** One family: a base request and its variants. */
  family(shape: FamilyShape): Probe[] {
    const rng = this.rng;
    const base = this.spec();
    const probes: Probe[] = [{ spec: base, variant: 'base' }];
    for (let i = 0; i < shape.repeats; i++) probes.push({ spec: base, variant: 'repeat' });
    for (let i = 0; i < shape.unread; i++) probes.push({ spec: this.unread(base), variant: 'unread' });
    for (let i = 0; i < shape.sameClass; i++) {
      const v = this.sameClass(base);
      if (v !== undefined) probes.push({ spec: v, variant: 'same-class' });
    }
    for (let i = 0; i < shape.read; i++) probes.push({ spec: this.readVariant(base), variant: 'read' });
    for (let i = 0; i < shape.edges; i++) {
      const kind = rng.pick(shape.edgeKinds ?? MUTATIONS);
      // On the base or on an unread variant: either way it shares the family's projection.
      const spec = rng.chance(0.5) ? base : this.unread(base);
      probes.push({ spec, variant: `edge:${kind}`, mutation: { kind, seed: rng.nextU32() } });
    }
    return probes;
  }

  // ---- base specs ------------------------------------------------------------------

  private spec(): RequestSpec {
    const rng = this.rng;
    const named = [...this.vocab.actions];
    const action: PortAction = named.length > 0 && rng.chance(0.85) ? rng.pick(named) : rng.pick(PORT_ACTIONS);
    switch (action) {
      case 'exchange':
        return { action, job: this.job(), org: rng.pick(ORGS), audience: this.slot('audience'), scopes: this.scopes() };
      case 'assume':
        return { action, job: this.job(), credential: this.credential() };
      case 'proxy': {
        const aws = rng.chance(0.35);
        return {
          action,
          job: this.job(),
          upstream: this.upstream(),
          method: this.slot('method'),
          path: this.slot('path'),
          ...(aws && rng.chance(0.6) ? { awsTarget: this.slot('aws_target') } : {}),
          ...(aws ? { awsQueryKeys: this.queryKeys() } : {}),
        };
      }
      case 'scale': {
        const pool = this.poolId();
        return {
          action,
          ...(rng.chance(0.35) ? { job: this.job() } : {}),
          autoscaler: this.autoscaler(),
          pool,
          poolConfig: this.poolConfig(pool),
          desired: rng.pick(SCALE_COUNTS),
          current: rng.pick(SCALE_COUNTS),
        };
      }
      case 'unblock': {
        const build = this.build();
        return { action, build, step: this.blockStep(), hour: rng.between(0, 23), weekday: rng.between(0, 6), label: this.slot('step_label'), stepKey: this.slot('ctx.step_key') };
      }
      case 'approve': {
        const build = this.build();
        const user = this.user();
        return { action, build, step: this.blockStep(), user, isAuthor: build.creator?.email === user.email || rng.chance(0.3) };
      }
    }
  }

  private job(): JobSpec {
    const rng = this.rng;
    const org = rng.pick(ORGS);
    const pipeline = rng.pick(PIPELINES);
    const tag = rng.chance(0.4) ? this.slot('tag') : null;
    const stepKey = rng.chance(0.6) ? this.slot('step_key') : null;
    const identity: JobIdentity = {
      subject: `organization:${org}:pipeline:${pipeline}:ref:refs/heads/x:commit:y:step:z`,
      organizationSlug: org,
      pipelineSlug: pipeline,
      buildNumber: this.buildNumber(),
      branch: this.slot('branch'),
      tag,
      commit: rng.chance(0.5) ? rng.hex(40) : this.slot('commit'),
      stepKey,
      jobId: this.entityId('Job', LITERAL_JOBS),
      agentId: this.entityId('Agent', LITERAL_AGENTS),
      buildSource: this.slot('build_source'),
      runnerEnvironment: this.slot('runner_environment'),
      agentTags: this.agentTags(),
      issuedAt: 1_700_000_000 + rng.int(1000),
      expiresAt: 1_700_000_300 + rng.int(1000),
    };
    this.optionalClaims(identity);
    const job: JobSpec = { identity };
    if (rng.chance(0.55)) job.creator = this.user();
    if (rng.chance(0.6)) job.agent = this.agentFacts();
    if (identity.clusterName !== undefined && identity.queueKey !== undefined && rng.chance(0.5)) job.pool = this.poolConfig(`${identity.clusterName}/${identity.queueKey}`);
    return job;
  }

  private optionalClaims(identity: JobIdentity): void {
    const rng = this.rng;
    const set = (key: 'pipelineId' | 'organizationId' | 'buildId' | 'clusterId' | 'queueId', slot: string): void => {
      if (rng.chance(0.5)) identity[key] = this.slot(slot);
      else delete identity[key];
    };
    set('pipelineId', 'pipeline_id');
    set('organizationId', 'organization_id');
    set('buildId', 'build_id');
    set('clusterId', 'cluster_id');
    set('queueId', 'queue_id');
    if (rng.chance(0.7)) {
      identity.clusterName = rng.chance(0.7) ? rng.pick(CLUSTERS) : this.slot('cluster_name');
      identity.queueKey = rng.chance(0.7) ? rng.pick(QUEUES) : this.slot('queue_key');
    } else {
      delete identity.clusterName;
      delete identity.queueKey;
      // One without the other: no Pool (poolId needs both).
      if (rng.chance(0.3)) identity.queueKey = this.slot('queue_key');
    }
  }

  private agentTags(): Record<string, string> {
    const tags: Record<string, string> = {};
    for (const name of this.rng.subset(TAG_NAMES, 4)) tags[name] = this.slot(`tag:${name}`);
    return tags;
  }

  private agentFacts(): AgentFacts {
    const rng = this.rng;
    const facts: AgentFacts = { attested: rng.chance(0.6), attestation: rng.subset(ATTESTATION) };
    if (rng.chance(0.5)) facts.region = this.slot('region');
    if (rng.chance(0.5)) facts.account = this.slot('account');
    if (rng.chance(0.4)) facts.instanceId = this.slot('instance_id');
    if (rng.chance(0.4)) facts.iamRole = this.slot('iam_role');
    if (rng.chance(0.5)) facts.connected = rng.chance(0.7);
    return facts;
  }

  private poolConfig(key: string): PoolConfig {
    const rng = this.rng;
    const [clusterName = '', queueKey = ''] = key.split('/');
    return {
      key,
      clusterName,
      queueKey,
      attestation: rng.subset(ATTESTATION),
      enforcement: 'enforce',
      aws: { accounts: ['123456789012'], regions: [], roles: [] },
      hostBound: rng.chance(0.4),
      attestationTtl: 3600,
      autoscalers: ['karpenter'],
    };
  }

  private user(): CreatorInfo {
    const rng = this.rng;
    const email = rng.chance(0.7) ? rng.pick(EMAILS) : `user-${rng.hex(6)}@acme.test`;
    const groups: string[] = rng.subset(GROUPS, 3);
    if (rng.chance(0.3)) groups.push(`team-${rng.hex(4)}`);
    return { email, active: rng.chance(0.8), groups };
  }

  private build(): BuildFacts {
    const rng = this.rng;
    const build: BuildFacts = {
      organization: rng.pick(ORGS),
      pipeline: rng.pick(PIPELINES),
      number: this.buildNumber(),
      branch: this.slot('branch'),
      tag: rng.chance(0.4) ? this.slot('tag') : null,
      commit: rng.hex(40),
      source: this.slot('source'),
    };
    if (rng.chance(0.6)) build.creator = this.user();
    return build;
  }

  private blockStep(): BlockStepFacts {
    const rng = this.rng;
    const fields: Record<string, string> = {};
    for (const name of rng.subset(BLOCK_FIELDS)) fields[name] = this.slot(`field:${name}`);
    return { step: rng.chance(0.8) ? rng.pick(STEP_KEYS) : rng.uuid(), fields };
  }

  private buildNumber(): number {
    const rng = this.rng;
    return rng.chance(0.05) ? 9007199254740991 : rng.pick(BUILD_NUMBERS.slice(0, -1));
  }

  private scopes(): string[] {
    return this.rng.subset(this.vocab.credentials.slice(0, 12), 3);
  }

  private queryKeys(): string[] {
    return this.rng.subset(slotPool('aws_query_key'), 3);
  }

  private credential(): string {
    const rng = this.rng;
    const literal = this.vocab.literalIds('Credential');
    return literal.length > 0 && rng.chance(0.6) ? rng.pick(literal) : rng.chance(0.8) ? rng.pick(this.vocab.credentials) : `other-${rng.hex(4)}`;
  }

  private upstream(): string {
    const rng = this.rng;
    const literal = this.vocab.literalIds('Upstream');
    return literal.length > 0 && rng.chance(0.6) ? rng.pick(literal) : rng.chance(0.8) ? rng.pick(this.vocab.upstreams) : `other-${rng.hex(4)}`;
  }

  private autoscaler(): string {
    const rng = this.rng;
    return rng.chance(0.8) ? rng.pick(AUTOSCALERS) : `scaler-${rng.hex(4)}`;
  }

  private poolId(): string {
    const literal = this.vocab.literalIds('Pool');
    const rng = this.rng;
    return literal.length > 0 && rng.chance(0.5) ? rng.pick(literal) : `${rng.pick(CLUSTERS)}/${rng.pick(QUEUES)}`;
  }

  /** An entity id: one of the set's literals (or a well-known one) some of the time, else fresh. */
  private entityId(type: 'Job' | 'Agent', known: readonly string[]): string {
    const rng = this.rng;
    const literal = this.vocab.literalIds(type);
    if (rng.chance(0.2)) return rng.pick(literal.length > 0 ? literal : known);
    return type === 'Job' ? rng.uuid() : `agent-${rng.hex(8)}`;
  }

  /**
   * A value for a string slot: a match for one of the set's patterns, one of its literals,
   * something just beside them, a pool value, or an edge-case string.
   */
  slot(slot: string): string {
    const rng = this.rng;
    const patterns = this.vocab.patterns.get(slot) ?? [];
    const literals = this.vocab.literals.get(slot) ?? [];
    const pick = rng.weighted<string>([
      [patterns.length > 0 ? 35 : 0, 'pattern'],
      [literals.length > 0 ? 15 : 0, 'literal'],
      [patterns.length + literals.length > 0 ? 12 : 0, 'near'],
      [30, 'pool'],
      [8, 'edge'],
    ]);
    switch (pick) {
      case 'pattern':
        return instantiate(rng.pick(patterns), rng);
      case 'literal':
        return rng.pick(literals);
      case 'near':
        return nearMiss(patterns.length > 0 && rng.chance(0.6) ? instantiate(rng.pick(patterns), rng) : rng.pick(literals.length > 0 ? literals : slotPool(slot)), rng);
      case 'edge':
        return rng.pick(EDGE_STRINGS);
      default:
        return rng.pick(slotPool(slot));
    }
  }

  // ---- variants --------------------------------------------------------------------

  private reads(name: string): boolean {
    return this.vocab.reads.has(name) || this.vocab.reads.has(`ctx.${name}`);
  }

  /** The same request but for what the set never reads. */
  private unread(base: RequestSpec): RequestSpec {
    const rng = this.rng;
    const spec = structuredClone(base);
    const r = (n: string): boolean => this.reads(n);
    const job = 'job' in spec ? spec.job : undefined;
    if (job !== undefined) {
      const id = job.identity;
      if (!this.vocab.isLiteral('Job', id.jobId)) id.jobId = rng.uuid();
      if (!this.vocab.isLiteral('Agent', id.agentId)) id.agentId = `agent-${rng.hex(8)}`;
      id.subject = `subject-${rng.hex(6)}`;
      id.issuedAt += rng.int(100);
      if (!r('commit')) id.commit = rng.hex(40);
      if (!r('build_number') && this.vocab.literalIds('Build').length === 0) id.buildNumber = rng.pick(BUILD_NUMBERS.slice(0, -1));
      for (const [key, slot] of [
        ['pipelineId', 'pipeline_id'],
        ['organizationId', 'organization_id'],
        ['buildId', 'build_id'],
        ['clusterId', 'cluster_id'],
        ['queueId', 'queue_id'],
      ] as const) {
        if (r(slot) || !rng.chance(0.5)) continue;
        if (rng.chance(0.5)) id[key] = `${slot}-${rng.hex(5)}`;
        else delete id[key];
      }
      for (const name of TAG_NAMES) {
        if (r(`tag:${name}`) || !rng.chance(0.5)) continue;
        if (rng.chance(0.5)) id.agentTags[name] = `v-${rng.hex(3)}`;
        else delete id.agentTags[name];
      }
      if (job.agent !== undefined) {
        if (!r('agent.region') && rng.chance(0.5)) job.agent.region = `region-${rng.hex(3)}`;
        if (!r('agent.instance_id') && rng.chance(0.5)) job.agent.instanceId = `i-${rng.hex(10)}`;
        if (!r('agent.account') && rng.chance(0.3)) delete job.agent.account;
        if (!r('agent.connected') && rng.chance(0.3)) job.agent.connected = rng.chance(0.5);
      }
      if (job.creator !== undefined) {
        if (!this.vocab.isLiteral('User', job.creator.email)) job.creator.email = `user-${rng.hex(6)}@acme.test`;
        const literalGroups = new Set(this.vocab.literalIds('Group'));
        job.creator.groups = job.creator.groups.map((g) => (literalGroups.has(g) ? g : `team-${rng.hex(4)}`));
        if (!r('active')) job.creator.active = rng.chance(0.5);
      }
      if (job.pool !== undefined && spec.action !== 'scale') {
        job.pool.hostBound = rng.chance(0.5);
        job.pool.attestation = rng.subset(ATTESTATION);
      }
    }
    switch (spec.action) {
      case 'exchange':
        if (!r('audience')) spec.audience = `aud-${rng.hex(4)}`;
        if (!r('scopes')) spec.scopes = rng.subset(this.vocab.credentials, 3);
        break;
      case 'proxy':
        if (!r('path')) spec.path = `/unread/${rng.hex(6)}`;
        if (!r('method')) spec.method = rng.pick(['GET', 'POST', 'OPTIONS']);
        if (!r('aws_target') && spec.awsTarget !== undefined) spec.awsTarget = `Svc.${rng.hex(4)}`;
        if (!r('aws_query_keys') && spec.awsQueryKeys !== undefined) spec.awsQueryKeys = [`k${rng.hex(2)}`];
        break;
      case 'scale':
        if (!this.vocab.isLiteral('Autoscaler', spec.autoscaler)) spec.autoscaler = `scaler-${rng.hex(4)}`;
        if (!r('desired') && !r('current')) {
          spec.desired = rng.pick(SCALE_COUNTS.slice(0, 8));
          spec.current = rng.pick(SCALE_COUNTS.slice(0, 8));
        }
        break;
      case 'unblock':
      case 'approve': {
        spec.build.commit = rng.hex(40);
        if (spec.build.creator !== undefined && !this.vocab.isLiteral('User', spec.build.creator.email) && spec.action === 'unblock') {
          spec.build.creator.email = `user-${rng.hex(6)}@acme.test`;
        }
        for (const name of BLOCK_FIELDS) {
          if (!r(`field:${name}`) && rng.chance(0.5)) spec.step.fields[name] = `f-${rng.hex(3)}`;
        }
        if (spec.action === 'unblock') {
          if (!r('hour')) spec.hour = rng.between(0, 23);
          if (!r('weekday')) spec.weekday = rng.between(0, 6);
          if (!r('step_label')) spec.label = `label ${rng.hex(3)}`;
        }
        break;
      }
      case 'assume':
        break;
    }
    return spec;
  }

  /**
   * One string the set reads only through `like`/`==`/`!=` against literals, replaced by
   * another with the same outcome on every such predicate of the set (computed here with
   * Cedar's `like` semantics: `*` any sequence of characters, the rest literal).
   */
  private sameClass(base: RequestSpec): RequestSpec | undefined {
    const rng = this.rng;
    const spec = structuredClone(base);
    const candidates: { slot: string; get: () => string; set: (v: string) => void }[] = [];
    if ('job' in spec && spec.job !== undefined) {
      const id = spec.job.identity;
      candidates.push({ slot: 'branch', get: () => id.branch, set: (v) => (id.branch = v) });
      candidates.push({ slot: 'build_source', get: () => id.buildSource, set: (v) => (id.buildSource = v) });
      for (const name of TAG_NAMES) {
        const v = id.agentTags[name];
        if (v !== undefined) candidates.push({ slot: `tag:${name}`, get: () => id.agentTags[name] ?? '', set: (x) => (id.agentTags[name] = x) });
      }
    }
    if (spec.action === 'proxy') {
      candidates.push({ slot: 'path', get: () => spec.path, set: (v) => (spec.path = v) });
      candidates.push({ slot: 'method', get: () => spec.method, set: (v) => (spec.method = v) });
    }
    if (spec.action === 'exchange') candidates.push({ slot: 'audience', get: () => spec.audience, set: (v) => (spec.audience = v) });
    if (spec.action === 'unblock') candidates.push({ slot: 'step_label', get: () => spec.label, set: (v) => (spec.label = v) });
    const usable = candidates.filter((c) => this.vocab.patterns.has(c.slot) || this.vocab.literals.has(c.slot));
    if (usable.length === 0) return undefined;
    const c = rng.pick(usable);
    const current = c.get();
    const signature = this.outcomes(c.slot, current);
    const patterns = this.vocab.patterns.get(c.slot) ?? [];
    for (let attempt = 0; attempt < 24; attempt++) {
      const next = patterns.length > 0 && rng.chance(0.7) ? instantiate(rng.pick(patterns), rng) : this.slot(c.slot);
      if (next !== current && this.outcomes(c.slot, next) === signature) {
        c.set(next);
        return spec;
      }
    }
    return undefined;
  }

  private outcomes(slot: string, value: string): string {
    const p = (this.vocab.patterns.get(slot) ?? []).map((pat) => (likeMatches(pat, value) ? '1' : '0')).join('');
    const l = (this.vocab.literals.get(slot) ?? []).map((lit) => (lit === value ? '1' : '0')).join('');
    return `${p}|${l}`;
  }

  /** One value the set reads, redrawn. */
  private readVariant(base: RequestSpec): RequestSpec {
    const rng = this.rng;
    const spec = structuredClone(base);
    const job = 'job' in spec ? spec.job : undefined;
    const options: (() => void)[] = [];
    if (job !== undefined) {
      const id = job.identity;
      options.push(() => (id.branch = this.slot('branch')));
      options.push(() => (id.tag = rng.chance(0.3) ? null : this.slot('tag')));
      options.push(() => (id.buildNumber = this.buildNumber()));
      options.push(() => (id.jobId = this.entityId('Job', LITERAL_JOBS)));
      options.push(() => (id.agentId = this.entityId('Agent', LITERAL_AGENTS)));
      options.push(() => this.optionalClaims(id));
      options.push(() => (id.agentTags = this.agentTags()));
      options.push(() => (job.creator = rng.chance(0.3) ? undefined : this.user()));
      options.push(() => (job.agent = rng.chance(0.3) ? undefined : this.agentFacts()));
      options.push(() => (id.stepKey = rng.chance(0.3) ? null : this.slot('step_key')));
    }
    switch (spec.action) {
      case 'exchange':
        options.push(() => (spec.audience = this.slot('audience')), () => (spec.scopes = this.scopes()), () => (spec.org = rng.pick(ORGS)));
        break;
      case 'assume':
        options.push(() => (spec.credential = this.credential()));
        break;
      case 'proxy':
        options.push(() => (spec.path = this.slot('path')), () => (spec.method = this.slot('method')), () => (spec.upstream = this.upstream()));
        break;
      case 'scale':
        options.push(() => (spec.desired = rng.pick(SCALE_COUNTS)), () => (spec.autoscaler = this.autoscaler()), () => (spec.poolConfig = this.poolConfig(spec.pool)));
        break;
      case 'unblock':
        options.push(() => (spec.hour = rng.between(0, 23)), () => (spec.label = this.slot('step_label')), () => (spec.step = this.blockStep()), () => (spec.build = this.build()));
        break;
      case 'approve':
        options.push(() => (spec.user = this.user()), () => (spec.isAuthor = !spec.isAuthor), () => (spec.step = this.blockStep()));
        break;
    }
    rng.pick(options)();
    return spec;
  }
}

/** Cedar's `like`: `*` matches any sequence of characters (Unicode scalar values); everything else itself. */
export function likeMatches(pattern: Pattern, text: string): boolean {
  const t = [...text];
  // Tokens: a character to match, or a wildcard.
  const toks: (string | null)[] = [];
  for (const seg of pattern) {
    if (seg.kind === 'star') toks.push(null);
    else for (const ch of seg.text) toks.push(ch);
  }
  let row = new Array<boolean>(t.length + 1).fill(false);
  row[0] = true;
  for (const tok of toks) {
    const next = new Array<boolean>(t.length + 1).fill(false);
    if (tok === null) {
      let any = false;
      for (let j = 0; j <= t.length; j++) {
        any = any || (row[j] as boolean);
        next[j] = any;
      }
    } else {
      for (let j = 1; j <= t.length; j++) next[j] = (row[j - 1] as boolean) && t[j - 1] === tok;
    }
    row = next;
  }
  return row[t.length] as boolean;
}
