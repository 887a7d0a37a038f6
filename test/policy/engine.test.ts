import { afterEach, describe, expect, it } from 'vitest';
import { PolicyEngine } from '../../src/policy/engine.js';
import { PolicyLoadError } from '../../src/policy/errors.js';
import type { CedarValue } from '../../src/policy/types.js';
import { assumeRequest, cleanup, exchangeRequest, FORBID_BRANCHES, PERMIT_EXCHANGE, policyDir } from './fixtures.js';

afterEach(cleanup);

describe('PolicyEngine.decide', () => {
  it('allows with the determining policy, its @reason and location', async () => {
    const dir = await policyDir({ 'a.cedar': `// header\n\n${PERMIT_EXCHANGE}` });
    const engine = await PolicyEngine.open(dir);
    const d = engine.decide(exchangeRequest());
    expect(d.decision).toBe('allow');
    expect(d.determining).toEqual([{ id: 'acme-exchange', reason: 'acme jobs may exchange', file: `${dir}/a.cedar`, line: 3 }]);
    expect(d.reason).toBe('allowed by acme-exchange: acme jobs may exchange');
    expect(d.errors).toEqual([]);
    expect(d.revision).toBe(engine.revision);
  });

  it('denies by default when no permit matches', async () => {
    const engine = await PolicyEngine.open(await policyDir({ 'a.cedar': PERMIT_EXCHANGE }));
    const d = engine.decide(exchangeRequest({ organizationSlug: 'globex' }));
    expect(d.decision).toBe('deny');
    expect(d.determining).toEqual([]);
    expect(d.reason).toBe('denied by default: no policy permits exchange');
    const other = engine.decide(assumeRequest('deploy-token'));
    expect(other.reason).toBe('denied by default: no policy permits assume');
  });

  it('lets a satisfied forbid win over a permit', async () => {
    const engine = await PolicyEngine.open(await policyDir({ 'a.cedar': PERMIT_EXCHANGE, 'b.cedar': FORBID_BRANCHES }));
    expect(engine.decide(exchangeRequest({ branch: 'main' })).decision).toBe('allow');
    const d = engine.decide(exchangeRequest({ branch: 'feature' }));
    expect(d.decision).toBe('deny');
    expect(d.determining.map((p) => p.id)).toEqual(['no-branches']);
    expect(d.reason).toBe('forbidden by no-branches: only main gets tokens');
  });

  it('names every satisfied permit on allow', async () => {
    const second = `@id("main-exchange") permit (principal, action == Port::Action::"exchange", resource) when { principal.branch == "main" };`;
    const engine = await PolicyEngine.open(await policyDir({ 'a.cedar': PERMIT_EXCHANGE + second }));
    const d = engine.decide(exchangeRequest());
    expect(d.determining.map((p) => p.id)).toEqual(['acme-exchange', 'main-exchange']);
    expect(d.reason).toBe('allowed by acme-exchange: acme jobs may exchange; main-exchange');
  });

  // Strict validation refuses `principal.pipeline_id == "x"` without `has` at load time
  // (loader.test.ts). What still errors at run time are things the validator can't see:
  // a dangling entity reference and arithmetic overflow.
  it('denies when a permit errors, even though another permit matched', async () => {
    const creator = `@id("active-creator")
permit (principal, action == Port::Action::"exchange", resource)
when { principal has creator && principal.creator.active };`;
    const engine = await PolicyEngine.open(await policyDir({ 'a.cedar': PERMIT_EXCHANGE, 'b.cedar': creator }));
    const req = exchangeRequest();
    const job = req.entities.find((e) => e.uid.type === 'Job');
    // The creator is named but its User entity is missing: Cedar errors on `.active`.
    job!.attrs.creator = { __entity: { type: 'User', id: 'dev@acme.test' } } as CedarValue;
    const d = engine.decide(req);
    expect(d.decision).toBe('deny');
    expect(d.determining).toEqual([]);
    expect(d.errors).toHaveLength(1);
    expect(d.errors[0]!.policyId).toBe('active-creator');
    expect(d.errors[0]!.message).toMatch(/does not exist/);
    expect(d.reason).toMatch(/^denied because policy active-creator failed to evaluate: /);
  });

  it('denies when a forbid errors, instead of letting it silently stop protecting', async () => {
    const overflow = `@id("old-builds")
@reason("builds far in the future are suspicious")
forbid (principal, action == Port::Action::"exchange", resource)
when { principal.build_number + 9223372036854775800 < 0 };`;
    const engine = await PolicyEngine.open(await policyDir({ 'a.cedar': PERMIT_EXCHANGE, 'b.cedar': overflow }));
    expect(engine.decide(exchangeRequest({ buildNumber: 1 })).decision).toBe('allow');
    const d = engine.decide(exchangeRequest({ buildNumber: 100 }));
    expect(d.decision).toBe('deny');
    expect(d.errors.map((e) => e.policyId)).toEqual(['old-builds']);
    expect(d.errors[0]!.message).toMatch(/overflow/);
    expect(d.reason).toContain('old-builds');
  });

  it('denies a request that does not match the schema', async () => {
    const engine = await PolicyEngine.open(await policyDir({ 'a.cedar': PERMIT_EXCHANGE }));
    const badContext = { ...exchangeRequest(), context: { audience: 'port' } };
    const d = engine.decide(badContext);
    expect(d.decision).toBe('deny');
    expect(d.errors[0]!.policyId).toBeUndefined();
    expect(d.reason).toMatch(/^denied because the request could not be evaluated: .*scopes/);

    const wrongResource = { ...exchangeRequest(), resource: { type: 'Credential' as const, id: 'x' } };
    expect(engine.decide(wrongResource).decision).toBe('deny');

    const req = exchangeRequest();
    req.entities.find((e) => e.uid.type === 'Job')!.attrs.build_number = 'forty-two';
    const typed = engine.decide(req);
    expect(typed.decision).toBe('deny');
    expect(typed.reason).toMatch(/build_number/);
  });

  it('denies when cedar-wasm throws, and keeps working afterwards', async () => {
    const engine = await PolicyEngine.open(await policyDir({ 'a.cedar': PERMIT_EXCHANGE }));
    // A BigInt can't be marshalled into the wasm: the call throws instead of answering.
    const req = { ...exchangeRequest(), context: { audience: 10n as unknown as CedarValue, scopes: [] } };
    const d = engine.decide(req);
    expect(d.decision).toBe('deny');
    expect(d.reason).toMatch(/^denied because the policy engine failed: /);
    expect(engine.decide(exchangeRequest()).decision).toBe('allow');
  });

  it('denies everything with an empty folder, and warns', async () => {
    const engine = await PolicyEngine.open(await policyDir({ 'README.md': '# nothing here' }));
    expect(engine.policies).toEqual([]);
    expect(engine.warnings.map((w) => w.message)).toEqual(['no policies found: every request will be denied']);
    expect(engine.decide(exchangeRequest()).decision).toBe('deny');
  });

  it('is ready after warmUp', async () => {
    const engine = await PolicyEngine.open(await policyDir({ 'a.cedar': PERMIT_EXCHANGE }));
    expect(engine.ready).toBe(false);
    engine.warmUp();
    expect(engine.ready).toBe(true);
  });

  it('lists its policies with id, reason, file, line, effect, actions and resource scope', async () => {
    const dir = await policyDir({
      'a.cedar': PERMIT_EXCHANGE,
      'b.cedar': `\n${FORBID_BRANCHES}\n@id("any") permit (principal, action in [Port::Action::"assume", Port::Action::"proxy"], resource);\n@id("all") forbid (principal, action, resource) when { false || principal is Port::User };`,
    });
    const engine = await PolicyEngine.open(dir);
    expect(engine.policies.map(({ text: _t, annotations: _a, ...p }) => p)).toEqual([
      { id: 'acme-exchange', reason: 'acme jobs may exchange', file: `${dir}/a.cedar`, line: 1, effect: 'permit', actions: ['exchange'], resourceScope: { op: '==', entity: { type: 'Port::Organization', id: 'acme' } } },
      { id: 'no-branches', reason: 'only main gets tokens', file: `${dir}/b.cedar`, line: 2, effect: 'forbid', actions: ['exchange'], resourceScope: { op: 'all' } },
      { id: 'any', file: `${dir}/b.cedar`, line: 7, effect: 'permit', actions: ['assume', 'proxy'], resourceScope: { op: 'all' } },
      { id: 'all', file: `${dir}/b.cedar`, line: 8, effect: 'forbid', resourceScope: { op: 'all' } },
    ]);
    expect(engine.policy('acme-exchange')!.annotations).toEqual({ id: 'acme-exchange', reason: 'acme jobs may exchange' });
  });

  it('refuses malformed approval annotations with file and line', async () => {
    const dir = await policyDir({
      'a.cedar': '@id("x")\n@approvals_required("many")\nforbid (principal, action == Port::Action::"unblock", resource);\n',
    });
    await expect(PolicyEngine.open(dir)).rejects.toThrow(/a\.cedar:1:\d+: .*@approvals_required must be a whole number/);
  });

  it('has a revision that depends on file names and contents only', async () => {
    const a = await PolicyEngine.open(await policyDir({ 'a.cedar': PERMIT_EXCHANGE, 'notes.txt': 'x' }));
    const b = await PolicyEngine.open(await policyDir({ 'a.cedar': PERMIT_EXCHANGE }));
    const c = await PolicyEngine.open(await policyDir({ 'b.cedar': PERMIT_EXCHANGE }));
    const d = await PolicyEngine.open(await policyDir({ 'a.cedar': `${PERMIT_EXCHANGE}\n` }));
    expect(a.revision).toMatch(/^[0-9a-f]{64}$/);
    expect(a.revision).toBe(b.revision);
    expect(c.revision).not.toBe(a.revision);
    expect(d.revision).not.toBe(a.revision);
  });

  it('keeps engines in one process apart', async () => {
    const allow = await PolicyEngine.open(await policyDir({ 'a.cedar': PERMIT_EXCHANGE }));
    const none = await PolicyEngine.open(await policyDir({}));
    expect(allow.decide(exchangeRequest()).decision).toBe('allow');
    expect(none.decide(exchangeRequest()).decision).toBe('deny');
  });

  it('refuses to open an invalid folder with PolicyLoadError', async () => {
    const dir = await policyDir({ 'a.cedar': 'permit (principal, action, resource' });
    const err = await PolicyEngine.open(dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PolicyLoadError);
    const load = err as PolicyLoadError;
    expect(load.code).toBe('policy_invalid');
    expect(load.problems).toHaveLength(1);
    expect(load.message).toContain(`${dir}/a.cedar:1:36: unexpected end of input`);
  });
});
