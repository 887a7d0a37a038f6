/**
 * Generates Cedar policy sets over Port's schema (src/policy/schema.ts): permits and
 * forbids; scopes `==`, `in`, `is`, `is … in`, action lists and unconstrained actions;
 * `when`/`unless` conditions with `like` (wildcards anywhere, escaped `\*`, empty and
 * `*`-only patterns, unicode), `==`/`!=` on strings, `has` on optional attributes, `in`
 * on ancestors and groups, set operations, agent tags, `if-then-else`, `&&`/`||`/`!`, Long
 * comparisons and arithmetic — some of it overflowing for some requests, so the policy
 * errors at run time (Cedar skips it, Port must deny).
 *
 * Candidates the strict validator refuses are regenerated (Port's loader refuses them
 * too: src/policy/loader.ts), so every set loads; the refusals are counted and reported.
 */
import { validate } from '@cedar-policy/cedar-wasm/nodejs';
import { PORT_SCHEMA, type PortAction } from '../../../src/policy/schema.js';
import { entityLiteral, patternFrom, patternLiteral, stringLiteral, type Pattern } from './cedar-text.js';
import type { Rng } from './rng.js';
import {
  ATTESTATION,
  AUTOSCALERS,
  BLOCK_FIELDS,
  BUILD_NUMBERS,
  CLUSTERS,
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

export interface GeneratedPolicy {
  id: string;
  effect: 'permit' | 'forbid';
  /** The policy's full text, annotations included. */
  text: string;
  /** The file it is written to (a name in the set's folder). */
  file: string;
}

export interface GeneratedSet {
  /** Index of the set in the corpus (names its folder and its seed stream). */
  index: number;
  policies: GeneratedPolicy[];
  vocab: SetVocabulary;
  /** Candidates the strict validator refused (and that were regenerated). */
  refused: number;
  /** The first few refusals, for the report. */
  refusalSamples: string[];
  /** The generator, to write more policies over the same vocabulary (reload tests). */
  gen: PolicyGen;
}

type PrincipalKind = 'Job' | 'Build' | 'User' | 'Scaler';
type ResourceKind = 'Organization' | 'Credential' | 'Upstream' | 'Pool' | 'BlockStep' | 'mixed';

/** What a policy's conditions may refer to, given its scope. */
interface Env {
  actions: PortAction[] | 'all';
  principal: PrincipalKind;
  resource: ResourceKind;
}

const JOB_ACTIONS: readonly PortAction[] = ['exchange', 'assume', 'proxy'];
const RESOURCE_OF: Readonly<Record<PortAction, ResourceKind>> = {
  exchange: 'Organization',
  assume: 'Credential',
  proxy: 'Upstream',
  scale: 'Pool',
  unblock: 'BlockStep',
  approve: 'BlockStep',
};
const PRINCIPAL_OF: Readonly<Record<PortAction, PrincipalKind>> = {
  exchange: 'Job',
  assume: 'Job',
  proxy: 'Job',
  scale: 'Scaler',
  unblock: 'Build',
  approve: 'User',
};

const REQUIRED_JOB_STRINGS = ['branch', 'branch', 'branch', 'tag', 'tag', 'step_key', 'build_source', 'runner_environment', 'pipeline_slug', 'organization_slug', 'commit'] as const;
const OPTIONAL_JOB_STRINGS = ['pipeline_id', 'organization_id', 'build_id', 'cluster_id', 'cluster_name', 'queue_id', 'queue_key', 'queue_key', 'cluster_name'] as const;
const AGENT_STRINGS = ['region', 'account', 'instance_id', 'iam_role'] as const;
const BUILD_STRINGS = ['branch', 'branch', 'tag', 'commit', 'source'] as const;

/** Long literals that make `x * K`, `x + K` overflow a signed 64-bit integer for most x. */
const TWO_62 = '4611686018427387904';
const NEAR_MAX = '9223372036854775800';

export interface SetShape {
  /** How many policies. */
  size: number;
  /** Big sets name many credentials and upstreams, one `resource ==` per policy (slicing). */
  big: boolean;
}

export function generateSet(rng: Rng, index: number, shape: SetShape): GeneratedSet {
  const vocab = new SetVocabulary();
  if (shape.big) {
    vocab.credentials = [...vocab.credentials, ...Array.from({ length: 60 }, (_, i) => `cred-${i}`)];
    vocab.upstreams = [...vocab.upstreams, ...Array.from({ length: 30 }, (_, i) => `up-${i}`)];
  }
  const fileCount = Math.max(1, Math.min(4, Math.ceil(shape.size / rng.between(12, 80))));
  const files = Array.from({ length: fileCount }, (_, i) => `${String.fromCharCode(97 + i)}-policies.cedar`);
  const idStyle = rng.int(4);
  const gen = new PolicyGen(rng, vocab, shape.big);
  const policies: GeneratedPolicy[] = [];
  let refused = 0;
  const refusalSamples: string[] = [];
  const make = (k: number): GeneratedPolicy => {
    const id = policyId(idStyle, index, k);
    return { id, effect: rng.chance(shape.big ? 0.25 : 0.35) ? 'forbid' : 'permit', text: '', file: rng.pick(files) };
  };
  for (let k = 0; k < shape.size; k++) {
    const p = make(k);
    policies.push({ ...p, text: gen.policy(p.id, p.effect) });
  }
  // Regenerate what strict validation refuses, a few rounds, then drop the stubborn rest.
  for (let round = 0; round < 6; round++) {
    const bad = refusedIds(policies);
    if (bad.size === 0) break;
    for (const [i, p] of policies.entries()) {
      const why = bad.get(p.id);
      if (why === undefined) continue;
      refused++;
      if (refusalSamples.length < 5) refusalSamples.push(`${why}\n${p.text}`);
      policies[i] = { ...p, text: gen.policy(p.id, p.effect) };
    }
    if (round === 5) {
      const still = refusedIds(policies);
      policies.splice(0, policies.length, ...policies.filter((p) => !still.has(p.id)));
    }
  }
  return { index, policies, vocab, refused, refusalSamples, gen };
}

/** Policy ids in the shapes Port accepts (loader ID_PATTERN): plain, dotted, slashed, unicode. */
function policyId(style: number, set: number, k: number): string {
  switch (style) {
    case 0:
      return `p${k}`;
    case 1:
      return `set${set}.policy-${k}`;
    case 2:
      return `team/\u00fcn\u00ef-${k}`;
    default:
      return `P_${k}_${set}`;
  }
}

/** The ids the strict validator refuses, with the first message for each. */
export function refusedIds(policies: readonly GeneratedPolicy[]): Map<string, string> {
  const answer = validate({
    schema: PORT_SCHEMA,
    policies: { staticPolicies: Object.fromEntries(policies.map((p) => [p.id, p.text])) },
    validationSettings: { mode: 'strict' },
  });
  if (answer.type === 'failure') {
    throw new Error(`generated policies do not parse: ${answer.errors.map((e) => e.message).join('; ')}\n${policies.map((p) => p.text).join('\n')}`);
  }
  const out = new Map<string, string>();
  for (const e of answer.validationErrors) if (!out.has(e.policyId)) out.set(e.policyId, e.error.message);
  return out;
}

/** The folder's files: each policy in its file, with a comment now and then. */
export function renderFiles(policies: readonly GeneratedPolicy[], rng: Rng): Record<string, string> {
  const files: Record<string, string> = {};
  for (const p of policies) {
    const before = rng.chance(0.1) ? `// generated policy ${p.id}\n` : '';
    files[p.file] = `${files[p.file] ?? ''}${before}${p.text}\n\n`;
  }
  return files;
}

export class PolicyGen {
  constructor(
    private readonly rng: Rng,
    private readonly vocab: SetVocabulary,
    private readonly big: boolean,
  ) {}

  policy(id: string, effect: 'permit' | 'forbid'): string {
    const rng = this.rng;
    const env = this.env();
    const principal = this.principalScope(env);
    const action = this.actionScope(env);
    const resource = this.resourceScope(env);
    const clauses: string[] = [];
    const clauseCount = rng.weighted<number>([
      [2, 0],
      [6, 1],
      [2, 2],
      [1, 3],
    ]);
    for (let i = 0; i < clauseCount; i++) {
      const kw = rng.chance(0.25) ? 'unless' : 'when';
      clauses.push(`${kw} { ${this.expr(env, rng.between(0, 2))} }`);
    }
    const reason = rng.chance(0.4) ? `@reason(${stringLiteral(rng.pick(['only main may deploy', 'n\u00fcr prod \u{1F680}', 'say "why"', 'a\\b']))})\n` : '';
    const layout = rng.chance(0.5) ? `(\n  ${principal},\n  ${action},\n  ${resource}\n)` : `(${principal}, ${action}, ${resource})`;
    return `@id(${stringLiteral(id)})\n${reason}${effect} ${layout}${clauses.length > 0 ? `\n${clauses.join('\n')}` : ''};`;
  }

  private env(): Env {
    const env = this.pickEnv();
    if (env.actions !== 'all') for (const a of env.actions) this.vocab.actions.add(a);
    return env;
  }

  private pickEnv(): Env {
    const rng = this.rng;
    const kind = rng.weighted<string>([
      [this.big ? 8 : 3, 'exchange'],
      [this.big ? 14 : 3, 'assume'],
      [this.big ? 14 : 4, 'proxy'],
      [2, 'scale'],
      [2, 'unblock'],
      [2, 'approve'],
      [2, 'job-list'],
      [1, 'all-job'],
    ]);
    if (kind === 'job-list') {
      const actions = rng.shuffle(JOB_ACTIONS).slice(0, rng.between(2, 3));
      return { actions, principal: 'Job', resource: 'mixed' };
    }
    if (kind === 'all-job') return { actions: 'all', principal: 'Job', resource: 'mixed' };
    const action = kind as PortAction;
    return { actions: [action], principal: PRINCIPAL_OF[action], resource: RESOURCE_OF[action] };
  }

  // ---- scopes ----------------------------------------------------------------------

  private principalScope(env: Env): string {
    const rng = this.rng;
    // A condition over Job attributes only validates where the principal is a Job.
    if (env.actions === 'all') return rng.chance(0.7) ? 'principal is Port::Job' : `principal is Port::Job in ${this.ancestorLiteral()}`;
    switch (env.principal) {
      case 'Job':
        return rng.weighted<() => string>([
          [5, () => 'principal'],
          [3, () => 'principal is Port::Job'],
          [2, () => `principal is Port::Job in ${this.ancestorLiteral()}`],
          [2, () => `principal in ${this.ancestorLiteral()}`],
          [1, () => `principal == ${this.entity('Job', rng.pick(LITERAL_JOBS))}`],
        ])();
      case 'Build':
        return rng.weighted<() => string>([
          [5, () => 'principal'],
          [2, () => 'principal is Port::Build'],
          [2, () => `principal in ${this.entity('Pipeline', this.pipelineId())}`],
          [1, () => `principal is Port::Build in ${this.entity('Organization', rng.pick(ORGS))}`],
          [1, () => `principal == ${this.entity('Build', this.buildId())}`],
        ])();
      case 'User':
        return rng.weighted<() => string>([
          [4, () => 'principal'],
          [3, () => `principal in ${this.entity('Group', rng.pick(GROUPS))}`],
          [1, () => `principal is Port::User in ${this.entity('Group', rng.pick(GROUPS))}`],
          [1, () => `principal == ${this.entity('User', rng.pick(EMAILS))}`],
        ])();
      case 'Scaler':
        return rng.weighted<() => string>([
          [4, () => 'principal'],
          [3, () => 'principal is Port::Autoscaler'],
          [2, () => `principal == ${this.entity('Autoscaler', rng.pick(AUTOSCALERS))}`],
          [2, () => 'principal is Port::Job'],
          [1, () => `principal in ${this.entity('Pool', this.poolId())}`],
        ])();
    }
  }

  private actionScope(env: Env): string {
    if (env.actions === 'all') return 'action';
    const [first] = env.actions;
    if (env.actions.length === 1 && first !== undefined && this.rng.chance(0.85)) return `action == Port::Action::${stringLiteral(first)}`;
    return `action in [${env.actions.map((a) => `Port::Action::${stringLiteral(a)}`).join(', ')}]`;
  }

  private resourceScope(env: Env): string {
    const rng = this.rng;
    const eq = (type: 'Credential' | 'Upstream'): string => `resource == ${this.entity(type, rng.pick(type === 'Credential' ? this.vocab.credentials : this.vocab.upstreams))}`;
    switch (env.resource) {
      case 'mixed':
        // `resource == Credential` with [exchange, assume] narrows the policy to assume (slicing).
        return rng.weighted<() => string>([
          [3, () => 'resource'],
          [this.big ? 4 : 1, () => eq('Credential')],
          [this.big ? 3 : 1, () => eq('Upstream')],
          [1, () => `resource is Port::${rng.pick(['Credential', 'Upstream', 'Organization'])}`],
          [1, () => `resource == ${this.entity('Organization', rng.pick(ORGS))}`],
        ])();
      case 'Organization':
        return rng.weighted<() => string>([
          [3, () => 'resource'],
          [3, () => `resource == ${this.entity('Organization', rng.pick(ORGS))}`],
          [1, () => 'resource is Port::Organization'],
          [1, () => `resource in ${this.entity('Organization', rng.pick(ORGS))}`],
        ])();
      case 'Credential':
      case 'Upstream': {
        const type = env.resource;
        return rng.weighted<() => string>([
          [this.big ? 1 : 3, () => 'resource'],
          [this.big ? 8 : 4, () => eq(type)],
          [1, () => `resource is Port::${type}`],
        ])();
      }
      case 'Pool':
        return rng.weighted<() => string>([
          [3, () => 'resource'],
          [3, () => `resource == ${this.entity('Pool', this.poolId())}`],
          [1, () => 'resource is Port::Pool'],
        ])();
      case 'BlockStep':
        return rng.weighted<() => string>([
          [4, () => 'resource'],
          [1, () => `resource == ${this.entity('BlockStep', this.blockStepId())}`],
          [2, () => `resource in ${this.entity('Pipeline', this.pipelineId())}`],
          [1, () => `resource in ${this.entity('Build', this.buildId())}`],
          [1, () => `resource is Port::BlockStep in ${this.entity('Organization', rng.pick(ORGS))}`],
        ])();
    }
  }

  // ---- conditions ------------------------------------------------------------------

  private expr(env: Env, depth: number): string {
    const rng = this.rng;
    if (depth <= 0) return this.atom(env);
    return rng.weighted<() => string>([
      [4, () => this.atom(env)],
      [4, () => `${this.expr(env, depth - 1)} && ${this.expr(env, depth - 1)}`],
      [3, () => `(${this.expr(env, depth - 1)} || ${this.expr(env, depth - 1)})`],
      [2, () => `!(${this.expr(env, depth - 1)})`],
      [1, () => `(if ${this.expr(env, depth - 1)} then ${this.expr(env, depth - 1)} else ${this.expr(env, depth - 1)})`],
    ])();
  }

  private atom(env: Env): string {
    const rng = this.rng;
    const single = env.actions !== 'all' && env.actions.length === 1 ? env.actions[0] : undefined;
    const choices: [number, () => string][] = [[1, () => rng.pick(['true', 'false'])]];
    if (env.principal === 'Job') choices.push([8, () => this.jobAtom('principal')]);
    if (env.principal === 'Build') choices.push([6, () => this.buildAtom()]);
    if (env.principal === 'User') choices.push([4, () => this.userAtom()]);
    if (env.principal === 'Scaler') {
      choices.push([3, () => `(principal is Port::Job && ${this.jobAtom('principal')})`]);
      choices.push([2, () => `principal == ${this.entity('Autoscaler', rng.pick(AUTOSCALERS))}`]);
    }
    if (single !== undefined) {
      const ctx = this.contextAtom(single);
      if (ctx !== undefined) choices.push([single === 'assume' ? 0 : 5, ctx]);
      const res = this.resourceAtom(env);
      if (res !== undefined) choices.push([3, res]);
    }
    if (env.actions === 'all' || env.resource === 'mixed') {
      choices.push([1, () => `resource == ${this.entity('Credential', rng.pick(this.vocab.credentials))}`]);
      choices.push([1, () => `(context has path && context.path like ${this.pattern('path')})`]);
    }
    return rng.weighted(choices)();
  }

  /** A condition over a Job (`p` is how to name it). */
  private jobAtom(p: string): string {
    const rng = this.rng;
    return rng.weighted<() => string>([
      [8, () => this.stringTest(`${p}.${rng.pick(REQUIRED_JOB_STRINGS)}`)],
      [4, () => this.optionalString(p, rng.pick(OPTIONAL_JOB_STRINGS))],
      [3, () => this.longTest(`${p}.build_number`, 'build_number', BUILD_NUMBERS)],
      [1, () => this.overflow(`${p}.build_number`, 'build_number')],
      [3, () => `${p} in ${this.ancestorLiteral()}`],
      [1, () => `${p} in [${this.ancestorLiteral()}, ${this.ancestorLiteral()}]`],
      [3, () => this.creatorAtom(p)],
      [3, () => this.agentAtom(`${p}.agent`)],
      [3, () => this.tagAtom(`${p}.agent`)],
      [2, () => this.crossAtom(p)],
      [1, () => `${p} == ${this.entity('Job', rng.pick(LITERAL_JOBS))}`],
    ])();
  }

  private buildAtom(): string {
    const rng = this.rng;
    return rng.weighted<() => string>([
      [6, () => this.stringTest(`principal.${rng.pick(BUILD_STRINGS)}`)],
      [3, () => this.longTest('principal.number', 'number', BUILD_NUMBERS)],
      [1, () => this.overflow('principal.number', 'number')],
      [3, () => this.creatorAtom('principal')],
      [2, () => `principal in ${this.entity('Pipeline', this.pipelineId())}`],
      [1, () => `principal in ${this.entity('Organization', rng.pick(ORGS))}`],
      [1, () => `principal == ${this.entity('Build', this.buildId())}`],
    ])();
  }

  private userAtom(): string {
    const rng = this.rng;
    this.vocab.reads.add('active');
    return rng.weighted<() => string>([
      [4, () => `principal in ${this.entity('Group', rng.pick(GROUPS))}`],
      [2, () => `principal in [${this.entity('Group', rng.pick(GROUPS))}, ${this.entity('Group', rng.pick(GROUPS))}]`],
      [2, () => 'principal.active'],
      [1, () => '!principal.active'],
      [1, () => `principal == ${this.entity('User', rng.pick(EMAILS))}`],
    ])();
  }

  private contextAtom(action: PortAction): (() => string) | undefined {
    const rng = this.rng;
    const read = (key: string): void => void this.vocab.reads.add(`ctx.${key}`);
    switch (action) {
      case 'exchange':
        return () =>
          rng.weighted<() => string>([
            [3, () => (read('audience'), this.stringTest('context.audience', 'audience'))],
            [2, () => (read('scopes'), `context.scopes.contains(${this.literal('scope')})`)],
            [1, () => (read('scopes'), `context.scopes.containsAny([${this.literal('scope')}, ${this.literal('scope')}])`)],
            [1, () => (read('scopes'), `context.scopes.containsAll([${this.literal('scope')}])`)],
            [1, () => (read('scopes'), 'context.scopes.isEmpty()')],
            [1, () => (read('scopes'), `context.scopes == [${this.literal('scope')}]`)],
            [1, () => (read('scopes'), this.vocab.reads.add('pipeline_slug'), 'context.scopes.contains(principal.pipeline_slug)')],
          ])();
      case 'proxy':
        return () =>
          rng.weighted<() => string>([
            [6, () => (read('path'), this.stringTest('context.path', 'path'))],
            [3, () => (read('method'), this.stringTest('context.method', 'method'))],
            [1, () => (read('aws_target'), 'context has aws_target')],
            [2, () => (read('aws_target'), `(context has aws_target && ${this.stringTest('context.aws_target', 'aws_target')})`)],
            [1, () => (read('aws_query_keys'), `(context has aws_query_keys && context.aws_query_keys.contains(${this.literal('aws_query_key')}))`)],
            [1, () => (read('aws_query_keys'), '(context has aws_query_keys && context.aws_query_keys.isEmpty())')],
            [1, () => (read('aws_query_keys'), `(context has aws_query_keys && context.aws_query_keys.containsAny([${this.literal('aws_query_key')}, ${this.literal('aws_query_key')}]))`)],
          ])();
      case 'scale':
        return () =>
          rng.weighted<() => string>([
            [3, () => (read('desired'), this.longTest('context.desired', 'ctx.desired', SCALE_COUNTS))],
            [1, () => (read('current'), this.longTest('context.current', 'ctx.current', SCALE_COUNTS))],
            [2, () => (read('desired'), read('current'), `context.desired ${rng.pick(['>', '<=', '=='])} context.current`)],
            [2, () => (read('desired'), read('current'), `context.desired - context.current ${rng.pick(['<=', '>'])} ${rng.pick(SCALE_COUNTS.slice(0, 8))}`)],
            [1, () => (read('desired'), this.overflow('context.desired', 'ctx.desired'))],
            [1, () => (read('desired'), read('current'), `context.desired * context.current > ${rng.pick([100, 1000])}`)],
          ])();
      case 'unblock':
        return () =>
          rng.weighted<() => string>([
            [2, () => (read('hour'), `context.hour >= ${rng.between(0, 12)} && context.hour < ${rng.between(12, 24)}`)],
            [1, () => (read('weekday'), `context.weekday ${rng.pick(['==', '!='])} ${rng.between(0, 6)}`)],
            [1, () => (read('weekday'), `[0, 6].contains(context.weekday)`)],
            [1, () => (read('hour'), `context.hour * 1000000000000000000 > 0`)],
            [3, () => (read('step_label'), this.stringTest('context.step_label', 'step_label'))],
            [2, () => (read('step_key'), this.stringTest('context.step_key', 'ctx.step_key'))],
          ])();
      case 'approve':
        return () => (read('is_author'), rng.pick(['context.is_author', '!context.is_author', 'context.is_author == false']));
      case 'assume':
        return undefined;
    }
  }

  private resourceAtom(env: Env): (() => string) | undefined {
    const rng = this.rng;
    switch (env.resource) {
      case 'Organization':
        return () => rng.pick([`resource == ${this.entity('Organization', rng.pick(ORGS))}`, 'principal in resource']);
      case 'Credential':
      case 'Upstream': {
        const type = env.resource;
        const names = type === 'Credential' ? this.vocab.credentials : this.vocab.upstreams;
        return () =>
          rng.pick([
            `resource == ${this.entity(type, rng.pick(names))}`,
            `resource != ${this.entity(type, rng.pick(names))}`,
            `resource in [${this.entity(type, rng.pick(names))}, ${this.entity(type, rng.pick(names))}]`,
          ]);
      }
      case 'Pool':
        return () => {
          const choices: [number, () => string][] = [
            [2, () => `resource == ${this.entity('Pool', this.poolId())}`],
            [2, () => (this.vocab.reads.add('host_bound'), '(resource has host_bound && resource.host_bound)')],
            [2, () => (this.vocab.reads.add('pool.attestation'), `(resource has attestation && resource.attestation.contains(${stringLiteral(rng.pick(ATTESTATION))}))`)],
            [1, () => (this.vocab.reads.add('pool.attestation'), '(resource has attestation && resource.attestation.isEmpty())')],
          ];
          if (env.principal === 'Scaler') {
            choices.push([1, () => '(principal is Port::Job && principal in resource)']);
            choices.push([
              1,
              () => (
                this.vocab.reads.add('pool.attestation'),
                this.vocab.reads.add('agent.attestation'),
                '(principal is Port::Job && resource has attestation && principal.agent has attestation && principal.agent.attestation.containsAll(resource.attestation))'
              ),
            ]);
          }
          return rng.weighted(choices)();
        };
      case 'BlockStep':
        return () => {
          const choices: [number, () => string][] = [
            [4, () => this.tagAtom('resource', 'field')],
            [1, () => `resource in ${this.entity('Build', this.buildId())}`],
            [1, () => `resource in ${this.entity('Pipeline', this.pipelineId())}`],
          ];
          if (env.principal === 'Build') choices.push([1, () => 'resource in principal']);
          return rng.weighted(choices)();
        };
      case 'mixed':
        return undefined;
    }
  }

  // ---- atoms by value kind ---------------------------------------------------------

  /** `x like P`, `x == "s"`, `x != "s"` or `["a", "b"].contains(x)` on a String. */
  private stringTest(expr: string, slot = expr.slice(expr.lastIndexOf('.') + 1)): string {
    const rng = this.rng;
    return rng.weighted<() => string>([
      [5, () => `${expr} like ${this.pattern(slot)}`],
      [3, () => `${expr} == ${this.literal(slot)}`],
      [2, () => `${expr} != ${this.literal(slot)}`],
      [1, () => `[${this.literal(slot)}, ${this.literal(slot)}].contains(${expr})`],
    ])();
  }

  private optionalString(p: string, attr: string): string {
    const rng = this.rng;
    this.vocab.reads.add(attr);
    return rng.weighted<() => string>([
      [1, () => `${p} has ${attr}`],
      [1, () => `!(${p} has ${attr})`],
      [4, () => `(${p} has ${attr} && ${this.stringTest(`${p}.${attr}`, attr)})`],
      [1, () => `(if ${p} has ${attr} then ${p}.${attr} like ${this.pattern(attr)} else ${rng.pick(['true', 'false'])})`],
    ])();
  }

  private longTest(expr: string, read: string, values: readonly number[]): string {
    const rng = this.rng;
    this.vocab.reads.add(read);
    const n = (): number => rng.pick(values.filter((v) => v < 1e6));
    return rng.weighted<() => string>([
      [4, () => `${expr} ${rng.pick(['<', '<=', '>', '>=', '==', '!='])} ${n()}`],
      [2, () => `${expr} + ${n()} ${rng.pick(['<', '>'])} ${n()}`],
      [1, () => `${expr} - ${n()} ${rng.pick(['<', '>='])} ${n()}`],
      [1, () => `-${expr} < -${n()}`],
      [1, () => `${expr} * ${rng.between(2, 3)} ${rng.pick(['<', '>'])} ${n()}`],
    ])();
  }

  /** Arithmetic that overflows for some values: the policy errors at run time then. */
  private overflow(expr: string, read: string): string {
    const rng = this.rng;
    this.vocab.reads.add(read);
    return rng.pick([
      `${expr} * ${TWO_62} > 0`,
      `${expr} + ${NEAR_MAX} > 0`,
      `-${NEAR_MAX} - ${expr} < 0`,
      `(${expr} > 8 && ${expr} * ${TWO_62} > 0)`,
      `(${expr} <= 2 || ${expr} * ${TWO_62} != 0)`,
      `${expr} * ${expr} * ${expr} > 1000`,
    ]);
  }

  private creatorAtom(p: string): string {
    const rng = this.rng;
    this.vocab.reads.add('creator');
    return rng.weighted<() => string>([
      [2, () => (this.vocab.reads.add('active'), `(${p} has creator && ${p}.creator.active)`)],
      [3, () => `(${p} has creator && ${p}.creator in ${this.entity('Group', rng.pick(GROUPS))})`],
      [1, () => `(${p} has creator && ${p}.creator in [${this.entity('Group', rng.pick(GROUPS))}, ${this.entity('Group', rng.pick(GROUPS))}])`],
      [1, () => `(${p} has creator && ${p}.creator == ${this.entity('User', rng.pick(EMAILS))})`],
      [1, () => `!(${p} has creator)`],
      [1, () => (this.vocab.reads.add('active'), `(${p} has creator && !${p}.creator.active)`)],
    ])();
  }

  private agentAtom(a: string): string {
    const rng = this.rng;
    const read = (name: string): void => void this.vocab.reads.add(`agent.${name}`);
    return rng.weighted<() => string>([
      [2, () => (read('attested'), `(${a} has attested && ${a}.attested)`)],
      [2, () => (read('attestation'), `(${a} has attestation && ${a}.attestation.contains(${stringLiteral(rng.pick(ATTESTATION))}))`)],
      [1, () => (read('attestation'), `(${a} has attestation && ${a}.attestation.containsAll([${rng.subset(ATTESTATION, 2).map((m) => stringLiteral(m)).join(', ')}]))`)],
      [1, () => (read('attestation'), `(${a} has attestation && ${a}.attestation.containsAny([${rng.subset(ATTESTATION, 2).map((m) => stringLiteral(m)).join(', ')}]))`)],
      [3, () => {
        const attr = rng.pick(AGENT_STRINGS);
        read(attr);
        return `(${a} has ${attr} && ${this.stringTest(`${a}.${attr}`, attr)})`;
      }],
      [1, () => (read('connected'), `(${a} has connected && ${rng.pick(['', '!'])}${a}.connected)`)],
      [2, () => `${a} in ${this.entity('Pool', this.poolId())}`],
      [1, () => `${a} == ${this.entity('Agent', rng.pick(LITERAL_AGENTS))}`],
    ])();
  }

  /** Tags on an Agent (`tag:NAME` slots) or a BlockStep's fields (`field:NAME`). */
  private tagAtom(e: string, kind: 'tag' | 'field' = 'tag'): string {
    const rng = this.rng;
    const name = rng.pick(kind === 'tag' ? TAG_NAMES : BLOCK_FIELDS);
    const slot = `${kind}:${name}`;
    this.vocab.reads.add(slot);
    const has = `${e}.hasTag(${stringLiteral(name)})`;
    const get = `${e}.getTag(${stringLiteral(name)})`;
    return rng.weighted<() => string>([
      [1, () => has],
      [1, () => `!${has}`],
      [4, () => `(${has} && ${this.stringTest(get, slot)})`],
    ])();
  }

  /** Two request values compared with each other: a projection must keep their equality. */
  private crossAtom(p: string): string {
    const rng = this.rng;
    const reads = (...names: string[]): void => names.forEach((n) => this.vocab.reads.add(n));
    return rng.pick<() => string>([
      () => (reads('branch', 'tag'), `${p}.branch == ${p}.tag`),
      () => (reads('queue_key', 'tag:queue'), `(${p} has queue_key && ${p}.agent.hasTag("queue") && ${p}.agent.getTag("queue") == ${p}.queue_key)`),
      () => (reads('branch', 'tag:branch'), `(${p}.agent.hasTag("branch") && ${p}.agent.getTag("branch") == ${p}.branch)`),
      () => (reads('pipeline_slug', 'organization_slug'), `${p}.pipeline_slug ${rng.pick(['==', '!='])} ${p}.organization_slug`),
      () => (reads('step_key', 'branch'), `${p}.step_key == ${p}.branch`),
    ])();
  }

  // ---- literals --------------------------------------------------------------------

  /** A pattern for a slot: one the set already uses (shared classes), or a new one. */
  private pattern(slot: string): string {
    const rng = this.rng;
    const known = this.vocab.patterns.get(slot);
    let p: Pattern;
    if (known !== undefined && rng.chance(0.35)) p = rng.pick(known);
    else p = patternFrom(rng.pick(slotPool(slot)), rng);
    this.vocab.addPattern(slot, p);
    return patternLiteral(p, rng.chance(0.2) ? 'unicode' : 'raw');
  }

  private literal(slot: string): string {
    const rng = this.rng;
    const known = this.vocab.literals.get(slot);
    const text = known !== undefined && rng.chance(0.35) ? rng.pick(known) : rng.pick(slotPool(slot));
    this.vocab.addLiteral(slot, text);
    return stringLiteral(text, rng.chance(0.2) ? 'unicode' : 'raw');
  }

  private entity(type: Parameters<SetVocabulary['addEntity']>[0], id: string): string {
    this.vocab.addEntity(type, id);
    return entityLiteral(type, id, this.rng.chance(0.15) ? 'unicode' : 'raw');
  }

  private ancestorLiteral(): string {
    const rng = this.rng;
    return rng.weighted<() => string>([
      [3, () => this.entity('Pipeline', this.pipelineId())],
      [2, () => this.entity('Organization', rng.pick(ORGS))],
      [2, () => this.entity('Pool', this.poolId())],
      [1, () => this.entity('Build', this.buildId())],
    ])();
  }

  private pipelineId(): string {
    return `${this.rng.pick(ORGS)}/${this.rng.pick(PIPELINES)}`;
  }

  private poolId(): string {
    return `${this.rng.pick(CLUSTERS)}/${this.rng.pick(QUEUES)}`;
  }

  private buildId(): string {
    return `${this.pipelineId()}/${this.rng.pick(BUILD_NUMBERS.slice(0, 8))}`;
  }

  private blockStepId(): string {
    return `${this.buildId()}/${this.rng.pick(STEP_KEYS)}`;
  }
}
