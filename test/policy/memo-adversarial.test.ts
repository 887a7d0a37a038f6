/**
 * Adversarial tests for the decision memo and policy slices: each attack decides
 * "priming" requests with the fast engine (memo and slices on, as shipped), then a "victim"
 * request, and compares the victim's decision with the plain engine's
 * (`{ decisionMemo: 0, slicing: false }`): same decision, same determining policies, same
 * errors, whatever was decided before. A stale or wrong memo answer would be an allow that
 * should be a deny.
 *
 * Each is a regression test. Review found one bug, now fixed (the last describe): the key
 * was read from the request separately from what Cedar was given.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { unblockRequestParts } from '../../src/policy/block-step-entities.js';
import { PolicyEngine, type EngineOptions } from '../../src/policy/engine.js';
import { credentialRef, jobRequestParts, organizationRef, upstreamRef, userRef } from '../../src/policy/entities.js';
import type { AuthzRequest, CedarEntity, CedarValue, Decision } from '../../src/policy/types.js';
import { cleanup, identity, policyDir, writeFiles } from './fixtures.js';

afterEach(cleanup);

type Make = () => AuthzRequest;
type Over = Parameters<typeof identity>[0];

interface Pair {
  fast: PolicyEngine;
  plain: PolicyEngine;
  dir: string;
}

async function engines(policies: string, fastOptions: EngineOptions = {}): Promise<Pair> {
  const dir = await policyDir({ 'p.cedar': policies });
  const fast = await PolicyEngine.open(dir, fastOptions);
  const plain = await PolicyEngine.open(dir, { decisionMemo: 0, slicing: false });
  return { fast, plain, dir };
}

/** The victim's decision from both engines; they must be equal. */
function compare(pair: Pair, victim: Make, label = ''): Decision {
  const got = pair.fast.decide(victim());
  const want = pair.plain.decide(victim());
  expect({ label, ...got }).toEqual({ label, ...want });
  return got;
}

/**
 * Primes the fast engine with each priming request, then compares every victim; twice, so
 * the second round also meets the victims' own memo entries.
 */
async function attack(policies: string, priming: Make[], victims: Make[], fastOptions: EngineOptions = {}): Promise<Pair> {
  const pair = await engines(policies, fastOptions);
  for (let round = 0; round < 2; round++) {
    for (const p of priming) pair.fast.decide(p());
    victims.forEach((v, i) => compare(pair, v, `round ${round} victim ${i}`));
  }
  return pair;
}

function job(over: Over = {}): ReturnType<typeof jobRequestParts> {
  return jobRequestParts(identity(over));
}

function proxy(path: string, over: Over = {}, method = 'GET', extra: Record<string, CedarValue> = {}): AuthzRequest {
  const { principal, entities } = job(over);
  return { principal, action: 'proxy', resource: upstreamRef('npm'), context: { method, path, ...extra }, entities };
}

function exchange(scopes: CedarValue[], over: Over = {}): AuthzRequest {
  const { principal, entities } = job(over);
  return { principal, action: 'exchange', resource: organizationRef('acme'), context: { audience: 'port', scopes }, entities };
}

function assume(credential: string, over: Over = {}): AuthzRequest {
  const { principal, entities } = job(over);
  return { principal, action: 'assume', resource: credentialRef(credential), context: {}, entities };
}

function unblock(fields: Record<string, string>, o: { branch?: string; stepKey?: string; step?: string; number?: number } = {}): AuthzRequest {
  const parts = unblockRequestParts(
    { organization: 'acme', pipeline: 'deploy', number: o.number ?? 7, branch: o.branch ?? 'main', tag: null, commit: 'abc', source: 'ui' },
    { step: o.step ?? 'release', fields },
  );
  return { ...parts, action: 'unblock', context: { hour: 10, weekday: 2, step_label: 'Release', step_key: o.stepKey ?? 'release' } };
}

/** A job whose build was created by `email`, in `groups`. */
function withCreator(req: AuthzRequest, email: string, groups: string[], present = true): AuthzRequest {
  const jobEntity = req.entities.find((e) => e.uid.type === 'Job') as CedarEntity;
  jobEntity.attrs.creator = { __entity: userRef(email) };
  if (present) req.entities.push({ uid: userRef(email), attrs: { active: true }, parents: groups.map((g) => ({ type: 'Group', id: g })) });
  return req;
}

function entityOf(req: AuthzRequest, type: string): CedarEntity {
  return req.entities.find((e) => e.uid.type === type) as CedarEntity;
}

/** A Cedar string literal: JSON's escapes, but NUL as `\\0` (Cedar has no `\\u0000`). */
function cedarString(s: string): string {
  return JSON.stringify(s).replace(/\\u0000/g, '\\0');
}

const PERMIT_NPM = `@id("npm") permit (principal, action == Port::Action::"proxy", resource == Port::Upstream::"npm");\n`;

describe('string tests reduced to their outcomes (like, ==, !=)', () => {
  it('like with an escaped star is a literal star, not a wildcard', async () => {
    const policies = `${PERMIT_NPM}@id("star") forbid (principal, action == Port::Action::"proxy", resource) when { context.path like "/npm/\\*secret*" };`;
    const a = () => proxy('/npm/*secret-x');
    const b = () => proxy('/npm/Xsecret-x');
    const c = () => proxy('/npm/secret-x');
    await attack(policies, [a], [b, c]);
    await attack(policies, [b], [a, c]);
    await attack(policies, [c], [a, b]);
  });

  it('like matches code points exactly: NFC and NFD, astral characters, lone surrogates', async () => {
    const policies = `${PERMIT_NPM}@id("cafe") forbid (principal, action == Port::Action::"proxy", resource) when { context.path like "*caf\u00e9*" || context.path like "*\u{1F680}" };`;
    const values = ['/npm/cafe\u0301', '/npm/caf\u00e9', '/npm/x\u{1F680}', '/npm/x\ud83d', '/npm/x\ude80', '/npm/x\u{1F680}\u0301', '/npm/\u{1F681}', '/npm/x\u{1F680}y'];
    for (const prime of values) {
      await attack(policies, [() => proxy(prime)], values.map((v) => () => proxy(v)));
    }
  });

  it('== and != against literals: case, NUL, trailing space, empty string', async () => {
    const policies = `${PERMIT_NPM}@id("not-get") forbid (principal, action == Port::Action::"proxy", resource) when { context.method != "GET" };
@id("main-only") forbid (principal, action == Port::Action::"proxy", resource) when { "main" != principal.branch };`;
    const methods = ['GET', 'get', 'GET\u0000', 'GET ', ''];
    const branches = ['main', 'main\u0000', 'Main', '', 'main\u200b'];
    const all: Make[] = [];
    for (const m of methods) for (const b of branches) all.push(() => proxy('/npm/a', { branch: b }, m));
    await attack(policies, [() => proxy('/npm/a')], all);
  });

  it('the same attribute name tested in context and in an entity (step_key) is one set of outcomes', async () => {
    const policies = `@id("release") permit (principal, action == Port::Action::"unblock", resource) when { context.step_key == "release" };
@id("job-step") forbid (principal, action == Port::Action::"unblock", resource) when { resource has step_key };`;
    const withJob = (stepKey: string, jobStep: string): Make => () => {
      const r = unblock({}, { stepKey });
      // An extra Job entity whose step_key shares the name the policy tests in context.
      r.entities.push(...job({ stepKey: jobStep }).entities);
      return r;
    };
    await attack(policies, [withJob('release', 'other')], [withJob('other', 'release'), withJob('release', 'release'), withJob('other', 'other')]);
  });
});

describe('Longs: bounds, overflow, values outside the safe range', () => {
  it('ordering tests, the literal on either side', async () => {
    const policies = `${PERMIT_NPM}@id("old") forbid (principal, action == Port::Action::"proxy", resource) when { principal.build_number <= 10 || 1000 < principal.build_number };`;
    const values = [10, 11, 999, 1000, 1001, 0, -1, 2 ** 53 - 1];
    for (const prime of values) await attack(policies, [() => proxy('/npm/a', { buildNumber: prime })], values.map((v) => () => proxy('/npm/a', { buildNumber: v })));
  });

  it('values a double cannot hold exactly, or that are not integers, are read whole', async () => {
    const policies = `${PERMIT_NPM}@id("big") forbid (principal, action == Port::Action::"proxy", resource) when { principal.build_number > 9007199254740991 };`;
    // 2^53 is not a safe integer but is a valid i64 once JSON-encoded for Cedar.
    const values = [2 ** 53 - 1, 2 ** 53, 2 ** 60, 10.5, -0, 1e21, Number.NaN];
    for (const prime of values) await attack(policies, [() => proxy('/npm/a', { buildNumber: prime })], values.map((v) => () => proxy('/npm/a', { buildNumber: v })));
  });

  it('arithmetic that overflows for one value and not another', async () => {
    const policies = `${PERMIT_NPM}@id("ovf") forbid (principal, action == Port::Action::"proxy", resource) when { principal.build_number * 1000000000000 < 0 || principal.build_number + 9223372036854775000 < 0 };`;
    const values = [1, 807, 808, 9_223_372, 9_223_373, -5];
    for (const prime of values) await attack(policies, [() => proxy('/npm/a', { buildNumber: prime })], values.map((v) => () => proxy('/npm/a', { buildNumber: v })));
  });

  it('context Longs of scale: bounds from both sides and a comparison between attributes', async () => {
    const policies = `@id("grow") permit (principal, action == Port::Action::"scale", resource) when { context.desired <= 10 && context.current < context.desired };`;
    const scale = (desired: number, current: number): Make => () => ({ principal: { type: 'Autoscaler', id: 'asg' }, action: 'scale', resource: { type: 'Pool', id: 'prod/default' }, context: { desired, current }, entities: [] });
    await attack(policies, [scale(5, 4)], [scale(5, 6), scale(5, 5), scale(11, 4), scale(10, 9)]);
  });
});

describe('records, sets, entities and their hierarchy', () => {
  it('record equality on the whole context', async () => {
    // proxy's context has optional keys, which strict validation will not compare with a literal record; scale's has none.
    const policies = `@id("exact") permit (principal, action == Port::Action::"scale", resource) when { context == {"desired": 5, "current": 4} };`;
    const scale = (desired: number, current: number): Make => () => ({ principal: { type: 'Autoscaler', id: 'asg' }, action: 'scale', resource: { type: 'Pool', id: 'prod/default' }, context: { desired, current }, entities: [] });
    const all = [scale(5, 4), scale(4, 5), scale(5, 5), scale(-5, 4)];
    for (const prime of all) await attack(policies, [prime], all);
  });

  it('set containment: contains, containsAll, containsAny, duplicates, empty', async () => {
    const policies = `@id("ex") permit (principal, action == Port::Action::"exchange", resource);
@id("no-admin") forbid (principal, action == Port::Action::"exchange", resource) when { context.scopes.contains("admin") || context.scopes.containsAll(["a", "b"]) || ["x", "y"].containsAny(context.scopes) };`;
    const sets: CedarValue[][] = [['read'], ['admin'], ['read', 'read'], [], ['a'], ['a', 'b'], ['b', 'a', 'a'], ['y'], ['admin', 'admin']];
    for (const prime of sets) await attack(policies, [() => exchange(prime)], sets.map((s) => () => exchange(s)));
  });

  it('a set of entity literals containing an entity-valued attribute', async () => {
    const policies = `${PERMIT_NPM}@id("agents") forbid (principal, action == Port::Action::"proxy", resource) when { [Port::Agent::"agent-1", Port::Agent::"agent-2"].contains(principal.agent) };`;
    const agents = ['agent-1', 'agent-2', 'agent-3', 'agent-4'];
    for (const prime of agents) await attack(policies, [() => proxy('/npm/a', { agentId: prime, jobId: `job-${prime}` })], agents.map((a) => () => proxy('/npm/a', { agentId: a })));
  });

  it('in through an entity-valued attribute, with the entity present, absent, or in another group', async () => {
    const policies = `${PERMIT_NPM}@id("admins") forbid (principal, action == Port::Action::"proxy", resource) when { principal has creator && principal.creator in Port::Group::"admins" };`;
    const variants: Make[] = [
      () => withCreator(proxy('/npm/a'), 'a@x.test', ['admins']),
      () => withCreator(proxy('/npm/a'), 'b@x.test', ['ops']),
      () => withCreator(proxy('/npm/a'), 'c@x.test', ['ops', 'admins']),
      () => withCreator(proxy('/npm/a'), 'd@x.test', ['admins'], false),
      () => withCreator(proxy('/npm/a'), 'e@x.test', []),
      () => proxy('/npm/a'),
    ];
    for (const prime of variants) await attack(policies, [prime], variants);
  });

  it('in with a set of entities, is, and is … in', async () => {
    const policies = `@id("a") permit (principal, action == Port::Action::"proxy", resource) when { principal in [Port::Pipeline::"acme/deploy", Port::Pipeline::"acme/x"] || principal in [Port::Build::"acme/web/1"] };
@id("b") forbid (principal, action == Port::Action::"proxy", resource) when { principal is Port::Job in Port::Organization::"evil" };
@id("c") permit (principal is Port::Job in Port::Pipeline::"acme/web", action == Port::Action::"proxy", resource is Port::Upstream);`;
    const r = (org: string, pipeline: string, build: number): Make => () => proxy('/x', { organizationSlug: org, pipelineSlug: pipeline, buildNumber: build });
    const all = [r('acme', 'deploy', 1), r('acme', 'web', 1), r('acme', 'web', 2), r('evil', 'deploy', 1), r('acme', 'other', 1), r('evil', 'web', 1)];
    for (const prime of all) await attack(policies, [prime], all);
  });

  it('has on a nested path, and a bool read after it', async () => {
    const policies = `${PERMIT_NPM}@id("attested") forbid (principal, action == Port::Action::"proxy", resource) when { !(principal.agent has attested && principal.agent.attested) };
@id("region") forbid (principal, action == Port::Action::"proxy", resource) when { principal.agent has region };`;
    const agent = (attrs: Record<string, CedarValue> | undefined): Make => () => {
      const r = proxy('/npm/a');
      if (attrs !== undefined) entityOf(r, 'Agent').attrs = attrs;
      else r.entities = r.entities.filter((e) => e.uid.type !== 'Agent');
      return r;
    };
    const all = [agent({ attested: true }), agent({ attested: false }), agent({}), agent({ attested: true, region: 'x' }), agent(undefined), agent({ attested: 'true' })];
    for (const prime of all) await attack(policies, [prime], all);
  });

  it('if-then-else: a value that flows out of a branch', async () => {
    const policies = `@id("flow") permit (principal, action == Port::Action::"proxy", resource) when { (if principal.branch == "main" then context.path else "/none") like "/npm/*" };`;
    const all = [() => proxy('/npm/a'), () => proxy('/npm/a', { branch: 'dev' }), () => proxy('/x', { branch: 'main' }), () => proxy('/x', { branch: 'dev' })];
    for (const prime of all) await attack(policies, [prime], all);
  });

  it('entity tags: getTag and hasTag on the agent, tags absent, extra tags', async () => {
    const policies = `${PERMIT_NPM}@id("os") forbid (principal, action == Port::Action::"proxy", resource) when { !(principal.agent.hasTag("os") && principal.agent.getTag("os") like "linux*") };`;
    const tags = (t: Record<string, string> | undefined): Make => () => {
      const r = proxy('/npm/a');
      const agent = entityOf(r, 'Agent');
      if (t === undefined) delete agent.tags;
      else agent.tags = t;
      return r;
    };
    const all = [tags({ os: 'linux' }), tags({ os: 'windows' }), tags({}), tags(undefined), tags({ os: 'linux-arm', arch: 'x' }), tags({ OS: 'linux' }), tags({ 'o"s': 'linux' })];
    for (const prime of all) await attack(policies, [prime], all);
  });

  it('block step tags read by the unblock policies', async () => {
    const policies = `@id("rel") permit (principal, action == Port::Action::"unblock", resource) when { resource.hasTag("release-name") && resource.getTag("release-name") like "v*" };`;
    const fields: Record<string, string>[] = [{ 'release-name': 'v1' }, { 'release-name': 'hotfix' }, {}, { 'release-name': 'v1', other: 'x' }];
    const all = fields.map((f): Make => () => unblock(f));
    for (const prime of all) await attack(policies, [prime], all);
  });

  it('extension functions: the validator refuses them on request values; on literals they leave the set analysable', async () => {
    const onRequest = `${PERMIT_NPM}@id("net") forbid (principal, action == Port::Action::"proxy", resource) when { context has aws_target && ip(context.aws_target).isInRange(ip("10.0.0.0/8")) };`;
    await expect(engines(onRequest)).rejects.toThrow(/extension constructors may not be called with non-literal expressions/);
    const onLiterals = `${PERMIT_NPM}@id("dec") forbid (principal, action == Port::Action::"proxy", resource) when { decimal("1.5").lessThan(decimal("2.0")) && ip("10.1.2.3").isInRange(ip("10.0.0.0/8")) && context.path like "/npm/secret*" };`;
    const pair = await attack(onLiterals, [() => proxy('/npm/a')], [() => proxy('/npm/secret'), () => proxy('/npm/b')]);
    expect(pair.fast.memoStats.hits).toBeGreaterThan(0);
  });
});

describe('the entity list', () => {
  const policies = `${PERMIT_NPM}@id("main") forbid (principal, action == Port::Action::"proxy", resource) when { principal.branch != "main" };`;

  it('the principal missing from the entity list, or another job in its place', async () => {
    const missing: Make = () => {
      const r = proxy('/npm/a');
      r.entities = r.entities.filter((e) => e.uid.type !== 'Job');
      return r;
    };
    const otherJob: Make = () => {
      const r = proxy('/npm/a');
      r.principal = { type: 'Job', id: 'job-elsewhere' };
      return r;
    };
    const impostor: Make = () => {
      // The principal is job-2; the listed Job (branch main) is job-1.
      const r = proxy('/npm/a');
      r.principal = { type: 'Job', id: 'job-2' };
      r.entities.push({ ...entityOf(r, 'Job'), uid: { type: 'Job', id: 'job-3' }, attrs: { ...entityOf(r, 'Job').attrs, branch: 'dev' } });
      return r;
    };
    const pair = await attack(policies, [() => proxy('/npm/a')], [missing, otherJob, impostor, () => proxy('/npm/a', { branch: 'dev' })]);
    // The second round answers clean victims from their own entries.
    expect(pair.fast.memoStats.hits).toBeGreaterThan(0);
  });

  it('duplicate entities, and the same uid spelled as two types', async () => {
    const dup: Make = () => {
      const r = proxy('/npm/a');
      r.entities.push({ ...entityOf(r, 'Job'), attrs: { ...entityOf(r, 'Job').attrs, branch: 'dev' } });
      return r;
    };
    const twoTypes: Make = () => {
      const r = proxy('/npm/a');
      r.entities.push({ uid: { type: 'Build', id: 'job-1' }, attrs: {}, parents: [] });
      return r;
    };
    await attack(policies, [() => proxy('/npm/a')], [dup, twoTypes]);
  });

  it('action entities in the entity list, and parents that would make an action group', async () => {
    const withAction = (parents: { type: string; id: string }[]): Make => () => {
      const r = proxy('/npm/a', { branch: 'dev' });
      r.entities.push({ uid: { type: 'Action' as never, id: 'proxy' }, attrs: {}, parents: parents as never });
      return r;
    };
    const group = `${PERMIT_NPM}@id("no-ex") forbid (principal, action in [Port::Action::"exchange"], resource);`;
    await attack(group, [() => proxy('/npm/a')], [withAction([]), withAction([{ type: 'Action', id: 'exchange' }])]);
  });

  it('entity order and renaming: the same structure under other ids, and a different one', async () => {
    const swapped = (jobId: string, agentId: string, pointAt: string): Make => () => {
      const r = proxy('/npm/a', { jobId, agentId });
      entityOf(r, 'Job').attrs.agent = { __entity: { type: 'Agent', id: pointAt } };
      return r;
    };
    const p = `${PERMIT_NPM}@id("linux") forbid (principal, action == Port::Action::"proxy", resource) when { !principal.agent.hasTag("os") };`;
    const tagged = (jobId: string, agentId: string, pointAt: string): Make => () => {
      const r = swapped(jobId, agentId, pointAt)();
      entityOf(r, 'Agent').tags = { os: 'linux' };
      return r;
    };
    const pair = await attack(p, [tagged('j1', 'a1', 'a1')], [tagged('j2', 'a2', 'a2'), tagged('j2', 'a2', 'a3'), tagged('a1', 'j1', 'j1'), tagged('x', 'x', 'x')]);
    // j2/a2 is j1/a1 renamed: answered from the priming request's entry, and correctly.
    expect(pair.fast.memoStats.hits).toBeGreaterThan(0);
  });
});

describe('names: prototype keys, Cedar escapes, delimiters of the key', () => {
  it('attribute and context keys named __proto__, constructor, toString, __entity, type, id', async () => {
    const policies = `${PERMIT_NPM}@id("main") forbid (principal, action == Port::Action::"proxy", resource) when { principal.branch != "main" || context.method != "GET" };`;
    const keys = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', '__entity', '__extn', '__expr', 'type', 'id'];
    const victims: Make[] = [];
    for (const k of keys) {
      for (const value of ['"x"', '{"branch": "main"}', '{"type": "Job", "id": "job-1"}', '{"__entity": {"type": "Job", "id": "job-1"}}']) {
        victims.push(() => {
          const r = proxy('/npm/a', { branch: 'dev' });
          r.context = JSON.parse(`{"method": "GET", "path": "/npm/a", "${k}": ${value}}`) as Record<string, CedarValue>;
          return r;
        });
        victims.push(() => {
          const r = proxy('/npm/a', { branch: 'dev' });
          const jobEntity = entityOf(r, 'Job');
          jobEntity.attrs = { ...(JSON.parse(`{"${k}": ${value}}`) as Record<string, CedarValue>), ...jobEntity.attrs };
          return r;
        });
      }
    }
    await attack(policies, [() => proxy('/npm/a')], victims);
  });

  it('tags and a whole context holding __entity or __proto__ keys, where the projection reads them whole', async () => {
    const policies = `${PERMIT_NPM}@id("proto-tag") forbid (principal, action == Port::Action::"proxy", resource) when { principal.agent.hasTag("__proto__") || principal.agent.hasTag("os") };
@id("ctx") permit (principal, action == Port::Action::"scale", resource) when { context == {"desired": 1, "current": 0} };`;
    const tags = (json: string): Make => () => {
      const r = proxy('/npm/a');
      entityOf(r, 'Agent').tags = JSON.parse(json) as Record<string, CedarValue>;
      return r;
    };
    const tagVictims = ['{}', '{"__proto__": "x"}', '{"__proto__": {"os": "linux"}}', '{"__entity": {"type": "Agent", "id": "agent-1"}, "os": "linux"}', '{"__entity": {"type": "Agent", "id": "agent-1"}}', '{"os": "linux"}'].map(tags);
    for (const prime of tagVictims) await attack(policies, [prime], tagVictims);
    const scale = (json: string): Make => () => ({ principal: { type: 'Autoscaler', id: 'asg' }, action: 'scale', resource: { type: 'Pool', id: 'p' }, context: JSON.parse(json) as Record<string, CedarValue>, entities: [] });
    const ctxVictims = ['{"desired": 1, "current": 0}', '{"__entity": {"type": "Pool", "id": "p"}, "desired": 1, "current": 0}', '{"__entity": {"type": "Pool", "id": "p"}}', '{"desired": 1, "current": 0, "__proto__": {"desired": 2}}'].map(scale);
    for (const prime of ctxVictims) await attack(policies, [prime], ctxVictims);
  });

  it('a Cedar record literal with a __proto__ field is read like any other', async () => {
    const policies = `${PERMIT_NPM}@id("proto") forbid (principal, action == Port::Action::"proxy", resource) when { {"__proto__": principal.branch}["__proto__"] like "dev*" };`;
    await attack(policies, [() => proxy('/npm/a', { branch: 'main' })], [() => proxy('/npm/a', { branch: 'dev' }), () => proxy('/npm/a', { branch: 'develop' })]);
  });

  it('tag names that look like the key\'s delimiters, tags read whole', async () => {
    const policies = `${PERMIT_NPM}@id("t") forbid (principal, action == Port::Action::"proxy", resource) when { principal.agent.hasTag("a\\",\\"b") };`;
    const tags = (t: Record<string, string>): Make => () => {
      const r = proxy('/npm/a');
      entityOf(r, 'Agent').tags = t;
      return r;
    };
    const all = [tags({ 'a","b': 'x' }), tags({ a: '","b":"x' }), tags({ a: 'x', b: 'x' }), tags({ 'a|b': 'x' }), tags({ 'a,"b': 'x' }), tags({ '}<>|': '{' })];
    for (const prime of all) await attack(policies, [prime], all);
  });

  it('entity ids holding the key\'s delimiters, NUL, or the renamed form itself', async () => {
    const ids = ['npm', 'a|b', 'a,b', 'a{b}', 'a<b>', 'a:b', 'a"b', 'a\u0000b', 'a', '#0:Port::Upstream', 'LPort::Upstream::"npm"', 'Port::Upstream::"npm"', 'npm\u0000'];
    const literals = ids.slice(0, 8).map((id, i) => `@id("u${i}") permit (principal, action == Port::Action::"proxy", resource == Port::Upstream::${cedarString(id)}) when { principal.branch == "main" };`).join('\n');
    const policies = `${literals}\n@id("deny-b") forbid (principal, action == Port::Action::"proxy", resource) when { resource == Port::Upstream::"a,b" && principal.branch == "main" };`;
    const to = (id: string, branch = 'main'): Make => () => ({ ...proxy('/npm/a', { branch }), resource: upstreamRef(id) });
    const all = [...ids.map((id) => to(id)), ...ids.map((id) => to(id, 'dev'))];
    for (const prime of all) await attack(policies, [prime], all);
  });

  it('a policy literal whose id is equal to a renamed entity\'s, in attributes as well as in the scope', async () => {
    const policies = `${PERMIT_NPM}@id("lit") forbid (principal, action == Port::Action::"proxy", resource) when { principal.agent == Port::Agent::"agent-evil" || principal == Port::Job::"job-evil" };`;
    const all = [
      () => proxy('/npm/a'),
      () => proxy('/npm/a', { agentId: 'agent-evil' }),
      () => proxy('/npm/a', { jobId: 'job-evil' }),
      () => proxy('/npm/a', { jobId: 'agent-evil', agentId: 'job-evil' }),
      () => proxy('/npm/a', { agentId: 'agent-evil\u0000' }),
    ];
    for (const prime of all) await attack(policies, [prime], all);
  });
});

describe('values the key drops and what validation makes of them', () => {
  const policies = `${PERMIT_NPM}@id("main") forbid (principal, action == Port::Action::"proxy", resource) when { principal.branch != "main" };`;

  it('wrong types in unread attributes and in the context', async () => {
    const set = (f: (r: AuthzRequest) => void): Make => () => {
      const r = proxy('/npm/a');
      f(r);
      return r;
    };
    const victims = [
      set((r) => void (entityOf(r, 'Job').attrs.commit = 42)),
      set((r) => void (entityOf(r, 'Job').attrs.commit = true)),
      set((r) => void (entityOf(r, 'Job').attrs.commit = ['abc'])),
      set((r) => void (entityOf(r, 'Job').attrs.build_number = '42')),
      set((r) => void (entityOf(r, 'Job').attrs.build_number = 2 ** 53)),
      set((r) => void (entityOf(r, 'Job').attrs.build_number = 1.5)),
      set((r) => void (entityOf(r, 'Job').attrs.agent = { __entity: { type: 'User', id: 'agent-1' } })),
      set((r) => void (entityOf(r, 'Job').attrs.agent = { __entity: { type: 'Agent', id: 'nowhere' } })),
      set((r) => void (entityOf(r, 'Job').attrs.unknown = 'x')),
      set((r) => void delete entityOf(r, 'Job').attrs.commit),
      set((r) => void (r.context = { method: 'GET', path: 5 })),
      set((r) => void (r.context = { method: 'GET', path: '/npm/a', aws_query_keys: ['a', 'a'] })),
      set((r) => void (r.context = { method: 'GET', path: '/npm/a', aws_query_keys: [1] })),
      set((r) => void (entityOf(r, 'Agent').tags = { os: 5 as never })),
      set((r) => void (entityOf(r, 'Job').tags = { os: 'x' })),
      set((r) => void (entityOf(r, 'Job').parents = [{ type: 'Upstream', id: 'npm' }])),
      set((r) => void (r.principal = { type: 'User', id: 'job-1' })),
      set((r) => void (r.resource = { type: 'Credential', id: 'npm' })),
    ];
    await attack(policies, [() => proxy('/npm/a')], victims);
  });

  it('values the projection declines (null, undefined, functions, implicit references) still decide like Cedar', async () => {
    const set = (f: (r: AuthzRequest) => void): Make => () => {
      const r = proxy('/npm/a');
      f(r);
      return r;
    };
    const victims = [
      set((r) => void ((entityOf(r, 'Job').attrs as Record<string, unknown>).commit = null)),
      set((r) => void ((entityOf(r, 'Job').attrs as Record<string, unknown>).commit = undefined)),
      set((r) => void ((entityOf(r, 'Job').attrs as Record<string, unknown>).agent = { type: 'Port::Agent', id: 'agent-1' })),
      set((r) => void ((r.context as Record<string, unknown>).extra = () => 'x')),
      set((r) => void ((r as { action: unknown }).action = 'bogus')),
      set((r) => void ((r as { action: unknown }).action = 5)),
      set((r) => void ((r.principal as { type: string }).type = 'Port::Job')),
      set((r) => void ((r.principal as { type: string }).type = 'Job ')),
    ];
    await attack(policies, [() => proxy('/npm/a')], victims);
  });
});

describe('the default-deny explanation on a remembered deny', () => {
  it('lists the permits for the victim\'s own resource, not the priming request\'s', async () => {
    const policies = `@id("cred-a") @reason("only main") permit (principal, action == Port::Action::"assume", resource == Port::Credential::"a") when { principal.branch == "main" };
@id("any-cred") permit (principal, action == Port::Action::"assume", resource is Port::Credential) when { principal.branch == "release" };
@id("org-in") permit (principal, action == Port::Action::"exchange", resource in Port::Organization::"acme") when { principal.branch == "main" };`;
    const all = [() => assume('a', { branch: 'dev' }), () => assume('b', { branch: 'dev' }), () => assume('c', { branch: 'dev' }), () => exchange([], { branch: 'dev' }), () => ({ ...exchange([], { branch: 'dev' }), resource: organizationRef('globex') })];
    for (const prime of all) {
      const pair = await attack(policies, [prime], all);
      const d = pair.fast.decide(assume('b', { branch: 'dev' }));
      expect(d.unmatched?.map((p) => p.id)).toEqual(['any-cred']);
    }
  });
});

describe('slices', () => {
  it('policies with no action scope, resource in / is / == scopes, action lists', async () => {
    const policies = `@id("any") forbid (principal, action, resource) when { principal is Port::Job && principal.branch == "evil" };
@id("is") forbid (principal is Port::Job, action, resource is Port::Credential) when { principal.branch == "bad-cred" };
@id("in") forbid (principal, action in [Port::Action::"assume", Port::Action::"proxy"], resource in Port::Credential::"x") when { principal.branch == "bad-x" };
@id("list") permit (principal, action in [Port::Action::"assume", Port::Action::"exchange"], resource);
@id("eq") forbid (principal, action == Port::Action::"assume", resource == Port::Credential::"x");
@id("eq-npm") permit (principal, action == Port::Action::"proxy", resource == Port::Upstream::"npm");
@id("eq-other") forbid (principal, action == Port::Action::"proxy", resource == Port::Upstream::"other");`;
    const all: Make[] = [];
    for (const branch of ['main', 'evil', 'bad-cred', 'bad-x']) {
      all.push(() => assume('x', { branch }), () => assume('y', { branch }), () => exchange([], { branch }), () => proxy('/a', { branch }));
      all.push(() => ({ ...proxy('/a', { branch }), resource: upstreamRef('other') }));
    }
    for (const prime of all) await attack(policies, [prime], all);
  });

  it('many resource-specific slices past the slice bound, with a forbid in each', async () => {
    const many = Array.from({ length: 300 }, (_, i) => `@id("p${i}") permit (principal, action == Port::Action::"assume", resource == Port::Credential::"c${i}");\n@id("f${i}") forbid (principal, action == Port::Action::"assume", resource == Port::Credential::"c${i}") when { principal.branch == "f${i}" };`).join('\n');
    // No memo, so every decision goes to a slice: 300 resources with their own slices pass the
    // bound of 256, and the second round finds the first slices' ids reused by later ones.
    const pair = await engines(many, { decisionMemo: 0 });
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 300; i++) {
        compare(pair, () => assume(`c${i}`, { branch: 'main' }));
        compare(pair, () => assume(`c${i}`, { branch: `f${i}` }));
        if (i % 5 === 0) compare(pair, () => assume(`c${(i + 1) % 300}`, { branch: `f${i}` }));
      }
    }
    // And with the memo on, over the same churn.
    const memo = await engines(many);
    for (let round = 0; round < 2; round++) for (let i = 0; i < 300; i += 3) compare(memo, () => assume(`c${i}`, { branch: round === 0 ? 'main' : `f${i}` }));
  });

  it('an action with no policies at all decides from an empty slice', async () => {
    await attack(PERMIT_NPM, [() => proxy('/npm/a')], [() => exchange([]), () => assume('x')]);
  });
});

describe('memo state: bounds, eviction, reloads', () => {
  it('a memo of one entry, churned by many keys', async () => {
    const policies = `${PERMIT_NPM}@id("f") forbid (principal, action == Port::Action::"proxy", resource) when { context.path like "/npm/secret*" || principal.branch != "main" };`;
    const reqs: Make[] = [];
    for (const path of ['/npm/a', '/npm/secret', '/npm/b']) for (const branch of ['main', 'dev']) reqs.push(() => proxy(path, { branch }));
    for (const size of [1, 2, 3]) {
      const pair = await engines(policies, { decisionMemo: size });
      for (let i = 0; i < 40; i++) compare(pair, reqs[(i * 7) % reqs.length] as Make, `size ${size} step ${i}`);
    }
  });

  it('reloads back and forth reuse preparsed ids without stale slices or memo entries', async () => {
    const A = `${PERMIT_NPM}@id("cred") permit (principal, action == Port::Action::"assume", resource == Port::Credential::"x");`;
    const B = `@id("npm-closed") forbid (principal, action == Port::Action::"proxy", resource == Port::Upstream::"npm");\n${PERMIT_NPM}@id("cred-closed") forbid (principal, action == Port::Action::"assume", resource == Port::Credential::"x");\n@id("cred") permit (principal, action == Port::Action::"assume", resource == Port::Credential::"x");`;
    const C = `@id("npm2") permit (principal, action == Port::Action::"proxy", resource == Port::Upstream::"npm") when { principal.branch == "never" };\n@id("cred") permit (principal, action == Port::Action::"assume", resource == Port::Credential::"x") when { principal.branch == "never" };`;
    const dir = await policyDir({ 'p.cedar': A });
    const fast = await PolicyEngine.open(dir, { quietPeriodMs: 0 });
    const reqs: Make[] = [() => proxy('/npm/a'), () => assume('x'), () => assume('y')];
    for (const text of [A, B, C, A, B, A, C]) {
      await writeFiles(dir, { 'p.cedar': text });
      let result = await fast.reload();
      // Dropping a forbid waits for a quiet folder (engine.ts); with a 0 ms period the next read applies it.
      while (result.ok && result.deferred !== undefined) result = await fast.reload();
      expect(result.ok).toBe(true);
      expect(fast.revision).toBe((await PolicyEngine.open(dir)).revision);
      const plain = await PolicyEngine.open(dir, { decisionMemo: 0, slicing: false });
      for (const r of reqs) {
        fast.decide(r());
        const got = fast.decide(r());
        expect(got).toEqual(plain.decide(r()));
      }
    }
  });
});

/**
 * Found in review: the key and Cedar's input were two separate readings of the request
 * object, so a request whose readings differ (a getter, a non-array iterable, an array with
 * its own iterator) was keyed as one request and decided as another. The engine now converts
 * the request once (cedar-json.ts cedarRequest: fresh plain objects) and keys and decides
 * from that one conversion.
 */
describe('one reading: the key and Cedar both read the one conversion of the request', () => {
  const policies = `${PERMIT_NPM}@id("main-only") forbid (principal, action == Port::Action::"proxy", resource) when { principal.branch != "main" };`;

  it('a getter that reads "dev" first and "main" after is decided as the dev job it is keyed as', async () => {
    const pair = await engines(policies);
    const flipping = proxy('/npm/a', { jobId: 'job-p' });
    let reads = 0;
    Object.defineProperty(entityOf(flipping, 'Job').attrs, 'branch', { enumerable: true, get: () => (reads++ === 0 ? 'dev' : 'main') });
    // Read once: keyed and decided as a dev request (forbidden), nothing wrong remembered.
    expect(pair.fast.decide(flipping).decision).toBe('deny');
    expect(reads).toBe(1);
    // The victim is plain data: a job on a dev branch, which no-branch forbids.
    const victim = () => proxy('/npm/a', { branch: 'dev', jobId: 'job-v' });
    expect(pair.plain.decide(victim()).decision).toBe('deny');
    compare(pair, victim);
  });

  it('an entity list whose iterator differs from its elements is keyed and decided by its elements', async () => {
    const pair = await engines(policies);
    pair.fast.decide(proxy('/npm/a'));
    const victim = (): AuthzRequest => {
      const r = proxy('/npm/a', { branch: 'dev' });
      const honest = proxy('/npm/a', { branch: 'main' }).entities;
      // Cedar is given the elements (branch dev, forbidden); for…of sees branch main.
      Object.defineProperty(r.entities, Symbol.iterator, { value: () => honest[Symbol.iterator]() });
      return r;
    };
    expect(pair.plain.decide(victim()).decision).toBe('deny');
    compare(pair, victim);
  });

  it('a set value (scopes) whose iterator differs from its elements is keyed and decided by its elements', async () => {
    const scoped = `@id("ex") permit (principal, action == Port::Action::"exchange", resource);
@id("no-admin") forbid (principal, action == Port::Action::"exchange", resource) when { context.scopes.contains("admin") };`;
    const pair = await engines(scoped);
    pair.fast.decide(exchange(['read']));
    const victim = (): AuthzRequest => {
      const scopes = ['admin'];
      Object.defineProperty(scopes, Symbol.iterator, { value: () => ['read'][Symbol.iterator]() });
      return exchange(scopes);
    };
    expect(pair.plain.decide(victim()).decision).toBe('deny');
    compare(pair, victim);
  });

  it('entities passed as a Set are refused on both paths (fail closed)', async () => {
    const pair = await engines(policies);
    pair.fast.decide(proxy('/npm/a'));
    const victim = (): AuthzRequest => {
      const r = proxy('/npm/a');
      return { ...r, entities: new Set(r.entities) as unknown as CedarEntity[] };
    };
    expect(pair.plain.decide(victim())).toMatchObject({ decision: 'deny', errors: [{ message: expect.stringContaining('map is not a function') as unknown }] });
    compare(pair, victim);
  });
});
