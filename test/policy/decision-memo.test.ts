/**
 * The fast path's parts, each against Cedar itself: `like` as Cedar matches it, what a
 * policy set reads, which requests share a projection, and the engine's memo and slices
 * (decisions equal to the plain path's, errors never remembered, nothing stale after a
 * reload). test/policy/differential.test.ts compares whole decisions over a generated corpus.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { policyToJson, type PolicyJson } from '../../src/policy/cedar.js';
import { cedarRequest } from '../../src/policy/cedar-json.js';
import { PolicyEngine } from '../../src/policy/engine.js';
import { jobRequestParts, upstreamRef } from '../../src/policy/entities.js';
import { likeMatches, matchingPatterns, policyReads } from '../../src/policy/policy-reads.js';
import { projectionKey } from '../../src/policy/request-projection.js';
import type { AuthzRequest, CedarValue } from '../../src/policy/types.js';
import { assumeRequest, cleanup, exchangeRequest, identity, PERMIT_EXCHANGE, policyDir, writeFiles } from './fixtures.js';

afterEach(cleanup);

function est(text: string): PolicyJson {
  const answer = policyToJson(text);
  if (answer.type !== 'success') throw new Error(JSON.stringify(answer.errors));
  return answer.json;
}

function proxyRequest(path: string, over: Parameters<typeof identity>[0] = {}, method = 'GET'): AuthzRequest {
  const { principal, entities } = jobRequestParts(identity(over));
  return { principal, action: 'proxy', resource: upstreamRef('npm'), context: { method, path }, entities };
}

/** Cedar string literal syntax for a test string (quotes and backslashes escaped). */
const cedarString = (s: string): string => JSON.stringify(s);

describe('likeMatches', () => {
  // Patterns in Cedar's syntax: `\*` is a literal star.
  const patterns = ['', '*', '**', 'a', 'a*', '*a', 'a*b*c', '*a*', 'a\\*', '\\**', '*\\*', 'é*😀', '/u/*/x', '*/secret/*', 'ab*ab', '*aab'];
  const values = ['', 'a', 'b', 'ab', 'abc', 'aXbYc', 'aabab', 'abab', 'a*', '*', '**', 'é😀', 'éx😀', '😀', '/u/1/x', '/u//x', '/u/1/2/x', 'x/secret/y', '/secret/', 'ab', 'aab', 'xaab'];

  it('agrees with Cedar for every pattern and value', async () => {
    const files: Record<string, string> = {};
    patterns.forEach((p, i) => {
      files[`p${i}.cedar`] = `@id("p${i}") permit (principal, action == Port::Action::"proxy", resource) when { context.path like "${p.replace(/"/g, '\\"')}" };`;
    });
    let checked = 0;
    for (let i = 0; i < patterns.length; i++) {
      const engine = await PolicyEngine.open(await policyDir({ [`p${i}.cedar`]: files[`p${i}.cedar`] as string }), { decisionMemo: 0, slicing: false });
      const reads = policyReads([est(files[`p${i}.cedar`] as string)]);
      const pattern = reads.attributes.get('path')?.patterns[0];
      expect(pattern).toBeDefined();
      for (const v of values) {
        const cedar = engine.decide(proxyRequest(v)).decision === 'allow';
        expect(likeMatches(v, pattern!), `${cedarString(v)} like "${patterns[i]}"`).toBe(cedar);
        checked++;
      }
    }
    expect(checked).toBe(patterns.length * values.length);
  });
});

describe('matchingPatterns', () => {
  it('finds exactly the patterns likeMatches accepts, through the prefix index', () => {
    const texts = ['', '*', 'a', 'a*', 'ab*', 'abc', '*c', 'a*c', 'b*', 'é*', 'é😀*', '😀', '\\**', 'abcd*x'];
    const policies = texts.map((t) => est(`permit (principal, action, resource) when { principal.branch like "${t}" };`));
    const use = policyReads(policies).attributes.get('branch')!;
    expect(use.patterns).toHaveLength(texts.length);
    // Every string over a small alphabet up to length 4, plus a few longer ones.
    const alphabet = ['a', 'b', 'c', 'x', '*', 'é', '😀'];
    const values = [''];
    for (let len = 1; len <= 4; len++) for (const v of values.filter((x) => [...x].length === len - 1)) for (const ch of alphabet) values.push(v + ch);
    values.push('abcdefx', 'abcdx', 'é😀é😀');
    for (const v of values) {
      const expected = use.patterns.flatMap((p, i) => (likeMatches(v, p) ? [i] : []));
      expect(matchingPatterns(v, use.patterns, use.patternIndex!), JSON.stringify(v)).toEqual(expected);
    }
    expect(values.length).toBeGreaterThan(2000);
  });
});

describe('policyReads', () => {
  it('classifies each attribute by how the policies use it', () => {
    const reads = policyReads([
      est(`permit (principal in Port::Pipeline::"acme/deploy", action == Port::Action::"proxy", resource == Port::Upstream::"npm")
           when { context.path like "/npm/*" && context.method == "GET" && principal.build_number > 10 && principal has creator && principal.creator.groups.contains("x") };`),
    ]);
    expect(reads.analysable).toBe(true);
    expect(reads.contextWhole).toBe(false);
    expect(reads.tags).toBe(false);
    expect(reads.attributes.get('path')).toMatchObject({ raw: false, container: false, equals: [] });
    expect(reads.attributes.get('path')?.patterns).toHaveLength(1);
    expect(reads.attributes.get('method')).toMatchObject({ raw: false, equals: ['GET'] });
    expect(reads.attributes.get('build_number')).toMatchObject({ raw: false, bounds: [{ op: '>', value: 10 }] });
    expect(reads.attributes.get('creator')).toMatchObject({ raw: false, container: true });
    expect(reads.attributes.get('groups')).toMatchObject({ raw: true });
    expect(reads.attributes.has('branch')).toBe(false);
    expect([...reads.literals].sort()).toEqual(['Port::Action\u0000proxy', 'Port::Pipeline\u0000acme/deploy', 'Port::Upstream\u0000npm']);
  });

  it('reads a value whole wherever one use is not a literal test', () => {
    const reads = policyReads([
      est(`permit (principal, action, resource) when { context.path like "/a/*" };`),
      est(`permit (principal, action, resource) when { context.path == principal.branch };`),
      est(`permit (principal, action, resource) when { 5 < principal.build_number };`),
    ]);
    expect(reads.attributes.get('path')?.raw).toBe(true);
    expect(reads.attributes.get('branch')?.raw).toBe(true);
    expect(reads.attributes.get('build_number')?.bounds).toEqual([{ op: '>', value: 5 }]);
  });

  it('notes context read whole, and tags', () => {
    expect(policyReads([est(`permit (principal, action, resource) when { context == {} };`)]).contextWhole).toBe(true);
    expect(policyReads([est(`permit (principal, action, resource) when { principal.agent.hasTag("os") };`)]).tags).toBe(true);
  });

  it('gives up on forms it does not model', () => {
    const template = { ...est(`permit (principal, action, resource);`), principal: { op: '==', slot: '?principal' } } as unknown as PolicyJson;
    expect(policyReads([template]).analysable).toBe(false);
    const unknownNode = est(`permit (principal, action, resource) when { true };`);
    (unknownNode.conditions[0] as { body: unknown }).body = { 'new-operator': { arg: { Value: true } } };
    expect(policyReads([unknownNode]).analysable).toBe(false);
  });
});

describe('projectionKey', () => {
  const reads = policyReads([
    est(`permit (principal, action == Port::Action::"proxy", resource == Port::Upstream::"npm") when { context.path like "/npm/*" && context.method == "GET" };`),
    est(`forbid (principal, action == Port::Action::"proxy", resource) when { context.path like "*/secret/*" || principal.branch != "main" };`),
    est(`permit (principal in Port::Pipeline::"acme/release", action == Port::Action::"proxy", resource) when { principal.build_number >= 100 };`),
  ]);
  const key = (r: AuthzRequest): string | undefined => projectionKey(cedarRequest(r), reads);

  it('is the same for requests that differ only in what no policy reads', () => {
    const a = key(proxyRequest('/npm/left-pad', { jobId: 'job-1', agentId: 'agent-1', commit: 'aaa', buildNumber: 1 }));
    const b = key(proxyRequest('/npm/react', { jobId: 'job-2', agentId: 'agent-9', commit: 'bbb', buildNumber: 2, subject: 'other' }));
    expect(a).toBeDefined();
    expect(a).toBe(b);
  });

  it('differs where an outcome could differ', () => {
    const base = key(proxyRequest('/npm/left-pad'));
    expect(key(proxyRequest('/other/left-pad'))).not.toBe(base); // like "/npm/*" fails
    expect(key(proxyRequest('/npm/secret/x'))).not.toBe(base); // the forbid's pattern holds
    expect(key(proxyRequest('/npm/left-pad', {}, 'POST'))).not.toBe(base); // method == "GET"
    expect(key(proxyRequest('/npm/left-pad', { branch: 'dev' }))).not.toBe(base); // branch != "main"
    expect(key(proxyRequest('/npm/left-pad', { pipelineSlug: 'release' }))).not.toBe(base); // in Pipeline literal
    expect(key(proxyRequest('/npm/left-pad', { buildNumber: 100 }))).not.toBe(base); // >= 100
    expect(key(proxyRequest('/npm/left-pad', { buildNumber: 101 }))).toBe(key(proxyRequest('/npm/left-pad', { buildNumber: 100 })));
    expect(key(proxyRequest('/npm/left-pad', { clusterName: 'default' }))).not.toBe(base); // an optional attribute's presence
    const other = proxyRequest('/npm/left-pad');
    other.resource = upstreamRef('pypi');
    expect(key(other)).not.toBe(base); // resource literal vs not
  });

  it('keeps the identity structure of entities it renames', () => {
    const same = proxyRequest('/npm/x');
    const job = same.entities.find((e) => e.uid.type === 'Job')!;
    // The job's agent attribute names the Agent entity; pointing it elsewhere is another request.
    const moved = structuredClone(same);
    const movedJob = moved.entities.find((e) => e.uid.type === 'Job')!;
    movedJob.attrs.agent = { __entity: { type: 'Agent', id: 'someone-else' } } as CedarValue;
    expect(key(moved)).not.toBe(key(same));
    expect(job.uid.type).toBe('Job');
  });

  it('declines values it does not model', () => {
    const withNull = proxyRequest('/npm/x');
    (withNull.context as Record<string, unknown>).extra = null;
    expect(key(withNull)).toBeUndefined();
    const implicitRef = proxyRequest('/npm/x');
    (implicitRef.context as Record<string, unknown>).extra = { type: 'Port::User', id: 'x' };
    expect(key(implicitRef)).toBeUndefined();
    const extension = proxyRequest('/npm/x');
    (extension.context as Record<string, unknown>).extra = { __extn: { fn: 'ip', arg: '10.0.0.1' } };
    expect(key(extension)).toBeUndefined();
  });
});

describe('PolicyEngine with the memo and slices', () => {
  const RELAY = `@id("npm-get") permit (principal, action == Port::Action::"proxy", resource == Port::Upstream::"npm") when { context.path like "/npm/*" && context.method == "GET" };
@id("no-secret") forbid (principal, action == Port::Action::"proxy", resource) when { context.path like "*/secret/*" };
@id("pypi") permit (principal, action == Port::Action::"proxy", resource == Port::Upstream::"pypi");
@id("overflow") permit (principal, action == Port::Action::"proxy", resource == Port::Upstream::"npm") when { context.path == "/npm/overflow" && principal.build_number * 4611686018427387904 > 0 };
`;

  it('answers like the plain path, and remembers only clean answers', async () => {
    const dir = await policyDir({ 'a.cedar': PERMIT_EXCHANGE, 'relay.cedar': RELAY });
    const fast = await PolicyEngine.open(dir);
    const plain = await PolicyEngine.open(dir, { decisionMemo: 0, slicing: false });
    const requests = [
      ...['/npm/a', '/npm/b', '/npm/secret/c', '/pypi/x', '/npm/overflow', '/npm/overflow'].map((p, i) => proxyRequest(p, { jobId: `j${i}`, agentId: `a${i}` })),
      proxyRequest('/npm/a', {}, 'PUT'),
      exchangeRequest(),
      exchangeRequest({ organizationSlug: 'globex' }),
      assumeRequest('deploy-token'),
    ];
    for (const round of [1, 2]) {
      for (const r of requests) {
        const a = fast.decide(r);
        const b = plain.decide(r);
        expect({ round, ...a }).toEqual({ round, ...b, revision: a.revision });
      }
    }
    const overflow = fast.decide(proxyRequest('/npm/overflow', { buildNumber: 7 }));
    expect(overflow.decision).toBe('deny');
    expect(overflow.errors.map((e) => e.policyId)).toEqual(['overflow']);
    const stats = fast.memoStats;
    expect(stats.hits).toBeGreaterThan(0);
    // The overflow requests are decided by Cedar every time.
    expect(stats.uncacheable).toBeGreaterThanOrEqual(5);
  });

  it('says where each answer came from: Cedar first, the memo for a request with the same projection, Cedar again after a reload', async () => {
    const dir = await policyDir({ 'relay.cedar': RELAY });
    const engine = await PolicyEngine.open(dir);
    const first = engine.decideWithSource(proxyRequest('/npm/a'));
    expect(first).toMatchObject({ source: 'cedar', decision: { decision: 'allow' } });
    // Another job, another path the same tests answer alike: the memo's answer.
    expect(engine.decideWithSource(proxyRequest('/npm/b', { jobId: 'other' }))).toMatchObject({ source: 'memo', decision: { decision: 'allow' } });
    // A path a forbid tests differently: Cedar.
    expect(engine.decideWithSource(proxyRequest('/npm/secret/c'))).toMatchObject({ source: 'cedar', decision: { decision: 'deny' } });
    // An erroring policy is never remembered.
    const overflow = proxyRequest('/npm/overflow', { buildNumber: 7 });
    expect(engine.decideWithSource(overflow).source).toBe('cedar');
    expect(engine.decideWithSource(overflow).source).toBe('cedar');
    await writeFiles(dir, { 'relay.cedar': `${RELAY}\n// touched` });
    expect(await engine.reload()).toMatchObject({ ok: true, changed: true });
    expect(engine.decideWithSource(proxyRequest('/npm/a')).source).toBe('cedar');
    expect(engine.decide(proxyRequest('/npm/a'))).toEqual(engine.decideWithSource(proxyRequest('/npm/a')).decision);
  });

  it('forgets everything when the policies change', async () => {
    const dir = await policyDir({ 'relay.cedar': RELAY });
    const engine = await PolicyEngine.open(dir);
    const req = proxyRequest('/npm/a');
    expect(engine.decide(req).decision).toBe('allow');
    expect(engine.decide(proxyRequest('/npm/b', { jobId: 'other' })).decision).toBe('allow');
    await writeFiles(dir, { 'relay.cedar': `${RELAY}\n@id("npm-closed") forbid (principal, action == Port::Action::"proxy", resource == Port::Upstream::"npm");` });
    const result = await engine.reload();
    expect(result).toMatchObject({ ok: true, changed: true });
    const after = engine.decide(req);
    expect(after.decision).toBe('deny');
    expect(after.determining.map((p) => p.id)).toEqual(['npm-closed']);
  });

  it('decides requests on shared entities (on()) as decide() does, with keys equal to fresh ones, and re-projects them after a reload that reads other attributes', async () => {
    const dir = await policyDir({ 'relay.cedar': RELAY });
    const engine = await PolicyEngine.open(dir);
    const plain = await PolicyEngine.open(dir, { decisionMemo: 0, slicing: false });
    const job = proxyRequest('/npm/a', { branch: 'main' });
    const { entities, ...first } = job;
    const onJob = engine.on(entities);
    const second = { ...first, context: { method: 'GET', path: '/npm/secret/x' } };
    expect(onJob.decide(first)).toEqual(plain.decide(job));
    expect(onJob.decide(second)).toEqual(plain.decide({ ...second, entities }));
    // The same requests decided afresh hit the answers the shared path left: the keys are equal.
    expect(engine.decideWithSource(proxyRequest('/npm/a', { branch: 'main' }))).toMatchObject({ source: 'memo' });
    expect(engine.decideWithSource({ ...second, entities: proxyRequest('/x', { branch: 'main' }).entities })).toMatchObject({ source: 'memo' });
    // A job on dev, projected under the old set, which does not read the branch: its entities
    // project as the main job's do.
    const dev = proxyRequest('/npm/a', { branch: 'dev', jobId: 'dev-job' });
    const { entities: devEntities, ...devFirst } = dev;
    const onDev = engine.on(devEntities);
    expect(onDev.decide(devFirst)).toMatchObject({ decision: 'allow' });
    // The new set reads the branch: projections kept from the old set would give both jobs
    // one key, and the dev job the main job's answer from the memo.
    const BRANCH = `@id("main-only") forbid (principal, action == Port::Action::"proxy", resource) unless { principal.branch == "main" };`;
    await writeFiles(dir, { 'branch.cedar': BRANCH });
    expect(await engine.reload()).toMatchObject({ ok: true, changed: true });
    expect(await plain.reload()).toMatchObject({ ok: true, changed: true });
    expect(onJob.decide(first)).toEqual(plain.decide(job));
    expect(onDev.decide(devFirst)).toMatchObject({ decision: 'deny', determining: [{ id: 'main-only' }] });
    expect(onDev.decide(devFirst)).toEqual(plain.decide(dev));
  });

  it('decides a resource with its own policies and one without from their slices', async () => {
    const policies = Array.from({ length: 300 }, (_, i) => `@id("c${i}") permit (principal, action == Port::Action::"assume", resource == Port::Credential::"cred-${i}") when { principal.branch == "main" };`).join('\n');
    const dir = await policyDir({ 'many.cedar': policies, 'a.cedar': PERMIT_EXCHANGE });
    const fast = await PolicyEngine.open(dir, { decisionMemo: 0 });
    const plain = await PolicyEngine.open(dir, { decisionMemo: 0, slicing: false });
    for (const cred of ['cred-0', 'cred-299', 'cred-300', 'deploy-token']) {
      for (const branch of ['main', 'dev']) {
        const r = assumeRequest(cred, { branch });
        expect(fast.decide(r)).toEqual(plain.decide(r));
      }
    }
    expect(fast.decide(assumeRequest('cred-7')).determining.map((p) => p.id)).toEqual(['c7']);
  });
});
