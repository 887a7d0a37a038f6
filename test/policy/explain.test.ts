import { afterEach, describe, expect, it } from 'vitest';
import { PolicyEngine } from '../../src/policy/engine.js';
import { explain } from '../../src/policy/explain.js';
import type { CedarValue } from '../../src/policy/types.js';
import { assumeRequest, cleanup, exchangeRequest, FORBID_BRANCHES, PERMIT_EXCHANGE, policyDir } from './fixtures.js';

afterEach(cleanup);

const DEPLOY = `
@id("deploy-main")
@reason("deploys from main only")
permit (principal is Port::Job, action == Port::Action::"assume", resource == Port::Credential::"deploy-token")
when { principal.branch == "main" };
@id("proxy-any") permit (principal, action == Port::Action::"proxy", resource);
@id("forbid-x") forbid (principal, action == Port::Action::"assume", resource == Port::Credential::"x");
`;

describe('explain', () => {
  it('on a default deny, lists the permits for the action that did not match', async () => {
    const dir = await policyDir({ 'a.cedar': PERMIT_EXCHANGE, 'b.cedar': DEPLOY });
    const engine = await PolicyEngine.open(dir);
    const { decision, text } = explain(engine, assumeRequest('deploy-token', { branch: 'feature' }));
    expect(decision.decision).toBe('deny');
    const lines = text.split('\n');
    expect(lines[0]).toBe('DENY: assume on Credential::"deploy-token" by Job::"job-1"');
    expect(lines[1]).toMatch(/^ {2}principal: branch="feature" tag="" .*pipeline_slug="deploy"/);
    expect(lines).toContain('Reason: denied by default: no policy permits assume; not matched: deploy-main ("deploys from main only")');
    expect(text).toContain(`Permit policies for assume that did not match this request:\n  deploy-main (${dir}/b.cedar:2) — deploys from main only\nPolicy set revision: ${engine.revision}`);
    // Neither the exchange permit, the proxy permit, nor the forbid are candidates.
    expect(text).not.toMatch(/acme-exchange|proxy-any|forbid-x/);
  });

  it('says when permits name the action but none applies to the resource', async () => {
    const engine = await PolicyEngine.open(await policyDir({ 'a.cedar': PERMIT_EXCHANGE, 'b.cedar': DEPLOY }));
    const { decision, text } = explain(engine, assumeRequest('other-token', { branch: 'main' }));
    expect(decision.reason).toBe('denied by default: no policy permits assume');
    expect(text).toContain('No permit policy for assume applies to Credential::"other-token"; add one to allow this.');
    expect(text).not.toContain('deploy-main');
  });

  it('says when no permit names the action at all', async () => {
    const engine = await PolicyEngine.open(await policyDir({ 'a.cedar': PERMIT_EXCHANGE }));
    expect(explain(engine, assumeRequest('deploy-token')).text).toContain('No permit policy names the action assume; add one to allow this.');
  });

  it('on allow and on forbid, lists the determining policies with file:line and reason', async () => {
    const dir = await policyDir({ 'a.cedar': PERMIT_EXCHANGE, 'b.cedar': FORBID_BRANCHES });
    const engine = await PolicyEngine.open(dir);
    const allowed = explain(engine, exchangeRequest()).text;
    expect(allowed).toContain(`ALLOW: exchange on Organization::"acme" by Job::"job-1"`);
    expect(allowed).toContain('  context: {audience: "port", scopes: []}');
    expect(allowed).toContain(`Allowed by:\n  acme-exchange (${dir}/a.cedar:1) — acme jobs may exchange`);
    const forbidden = explain(engine, exchangeRequest({ branch: 'dev' })).text;
    expect(forbidden).toContain(`Forbidden by:\n  no-branches (${dir}/b.cedar:1) — only main gets tokens`);
    expect(forbidden).not.toContain('did not match');
  });

  it('lists evaluation errors with the policy location', async () => {
    const dir = await policyDir({
      'a.cedar': `${PERMIT_EXCHANGE}@id("creator-active") permit (principal, action == Port::Action::"exchange", resource) when { principal has creator && principal.creator.active };`,
    });
    const engine = await PolicyEngine.open(dir);
    const req = exchangeRequest();
    req.entities.find((e) => e.uid.type === 'Job')!.attrs.creator = { __entity: { type: 'User', id: 'x@acme.test' } } as CedarValue;
    const { decision, text } = explain(engine, req);
    expect(decision.decision).toBe('deny');
    expect(text).toContain(`Errors (any error denies; fix the policy or the request):\n  creator-active (${dir}/a.cedar:4): entity \`Port::User::"x@acme.test"\` does not exist`);
  });
});
