/**
 * A default deny names the permits written for the request's action and
 * resource that did not match (ids and @reasons), at most three then "and N more", and the
 * allow path never pays for it.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { unblockRequestParts } from '../../src/policy/block-step-entities.js';
import { PolicyEngine } from '../../src/policy/engine.js';
import type { AuthzRequest } from '../../src/policy/types.js';
import { unmatchedPermitsContext } from '../../src/policy/unmatched-permits.js';
import { assumeRequest, cleanup, exchangeRequest, FORBID_BRANCHES, PERMIT_EXCHANGE, policyDir } from './fixtures.js';

afterEach(() => {
  vi.restoreAllMocks();
  return cleanup();
});

const DEPLOY = `
@id("deploy-main")
@reason("only main may deploy")
permit (principal, action == Port::Action::"assume", resource == Port::Credential::"deploy")
when { principal.branch == "main" };

@id("deploy-release")
permit (principal, action == Port::Action::"assume", resource is Port::Credential)
when { principal.tag != "" };

@id("npm-tags")
@reason("npm publishes come from tags")
permit (principal, action == Port::Action::"assume", resource == Port::Credential::"npm")
when { principal.tag != "" };

@id("any-proxy")
@reason("reads only")
permit (principal, action == Port::Action::"proxy", resource)
when { context.method == "GET" };
`;

function manyPermits(n: number): string {
  return Array.from(
    { length: n },
    (_, i) => `@id("p${i}")\n@reason("rule ${i}")\npermit (principal, action == Port::Action::"assume", resource == Port::Credential::"deploy") when { principal.pipeline_slug == "pipe-${i}" };\n`,
  ).join('\n');
}

describe('a default deny names the permits that did not match', () => {
  it('names the permits for this action and resource, with their @reasons, and no others', async () => {
    const engine = await PolicyEngine.open(await policyDir({ 'a.cedar': PERMIT_EXCHANGE, 'b.cedar': DEPLOY }));
    const d = engine.decide(assumeRequest('deploy', { branch: 'feature/x' }));
    expect(d.decision).toBe('deny');
    expect(d.reason).toBe('denied by default: no policy permits assume; not matched: deploy-main ("only main may deploy"), deploy-release');
    expect(d.unmatched).toEqual([{ id: 'deploy-main', reason: 'only main may deploy' }, { id: 'deploy-release' }]);
    // npm-tags is for another credential, any-proxy for another action, acme-exchange too.
    expect(d.reason).not.toMatch(/npm-tags|any-proxy|acme-exchange/);

    // For the other credential, the other permit (and the type-scoped one).
    expect(engine.decide(assumeRequest('npm')).unmatched?.map((p) => p.id)).toEqual(['deploy-release', 'npm-tags']);
  });

  it('says nothing more when no permit applies to the request', async () => {
    const engine = await PolicyEngine.open(await policyDir({ 'a.cedar': PERMIT_EXCHANGE, 'b.cedar': DEPLOY }));
    const d = engine.decide(assumeRequest('other', { tag: null }));
    // deploy-release is `resource is Port::Credential`: it applies to every credential.
    expect(d.unmatched).toEqual([{ id: 'deploy-release' }]);
    const none = await PolicyEngine.open(await policyDir({ 'a.cedar': PERMIT_EXCHANGE }));
    const bare = none.decide(assumeRequest('deploy'));
    expect(bare.reason).toBe('denied by default: no policy permits assume');
    expect(bare).not.toHaveProperty('unmatched');
  });

  it('names at most three, then "and N more"; the log context lists up to ten and counts the rest', async () => {
    const engine = await PolicyEngine.open(await policyDir({ 'a.cedar': manyPermits(12) }));
    const d = engine.decide(assumeRequest('deploy'));
    expect(d.reason).toBe('denied by default: no policy permits assume; not matched: p0 ("rule 0"), p1 ("rule 1"), p2 ("rule 2"), and 9 more');
    expect(d.unmatched).toHaveLength(12);
    const ctx = unmatchedPermitsContext(d);
    expect(ctx.unmatched_permits).toHaveLength(10);
    expect(ctx.unmatched_permits_more).toBe(2);
    expect(unmatchedPermitsContext(engine.decide(exchangeRequest()))).toEqual({});
  });

  it('keeps an authored reason on one bounded line', async () => {
    const long = 'x'.repeat(400);
    const engine = await PolicyEngine.open(
      await policyDir({ 'a.cedar': `@id("long")\n@reason("${long}")\npermit (principal, action == Port::Action::"assume", resource) when { false };` }),
    );
    const d = engine.decide(assumeRequest('deploy'));
    expect(d.reason.length).toBeLessThan(200);
    expect(d.reason).toMatch(/not matched: long \("x+…"\)$/);
  });

  it('a forbid or an error is reported as before, with no unmatched permits', async () => {
    const engine = await PolicyEngine.open(await policyDir({ 'a.cedar': PERMIT_EXCHANGE, 'b.cedar': FORBID_BRANCHES }));
    const d = engine.decide(exchangeRequest({ branch: 'dev' }));
    expect(d.reason).toBe('forbidden by no-branches: only main gets tokens');
    expect(d).not.toHaveProperty('unmatched');
  });

  it('follows `resource in` through the request entities (a BlockStep in its pipeline)', async () => {
    const engine = await PolicyEngine.open(
      await policyDir({
        'a.cedar': `
@id("deploy-pipeline-blocks")
@reason("deploy blocks unblock on main")
permit (principal, action == Port::Action::"unblock", resource in Port::Pipeline::"acme/deploy") when { principal.branch == "main" };
@id("app-pipeline-blocks")
permit (principal, action == Port::Action::"unblock", resource is Port::BlockStep in Port::Pipeline::"acme/app");
`,
      }),
    );
    const build = { organization: 'acme', pipeline: 'deploy', number: 7, branch: 'feature', tag: null, commit: 'abc', source: 'ui' };
    const parts = unblockRequestParts(build, { step: 'release', fields: {} });
    const req: AuthzRequest = { ...parts, action: 'unblock', context: { hour: 10, weekday: 2, step_label: 'Release', step_key: 'release' } };
    const d = engine.decide(req);
    expect(d.decision).toBe('deny');
    expect(d.unmatched).toEqual([{ id: 'deploy-pipeline-blocks', reason: 'deploy blocks unblock on main' }]);
  });

  it('runs only on a deny: an allow never looks for unmatched permits', async () => {
    const engine = await PolicyEngine.open(await policyDir({ 'a.cedar': PERMIT_EXCHANGE, 'b.cedar': DEPLOY }));
    const spy = vi.spyOn(PolicyEngine.prototype as unknown as { explainDefaultDeny: () => unknown }, 'explainDefaultDeny');
    for (let i = 0; i < 5; i++) expect(engine.decide(exchangeRequest()).decision).toBe('allow');
    expect(engine.decide(assumeRequest('deploy', { branch: 'main' })).decision).toBe('allow');
    expect(spy).not.toHaveBeenCalled();
    expect(engine.decide(assumeRequest('deploy', { branch: 'dev' })).decision).toBe('deny');
    expect(spy).toHaveBeenCalledTimes(1);
  });
});
