import { cp } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { PolicyEngine } from '../../src/policy/engine.js';
import { runPolicyTests } from '../../src/policy/test-cases.js';
import { cleanup, policyDir, writeFiles } from './fixtures.js';

afterEach(cleanup);

/** The example policies (without their tests) plus the given files, in a temp folder. */
async function examplesWith(files: Record<string, string>): Promise<string> {
  const dir = await policyDir({});
  for (const name of ['exchange.cedar', 'credentials.cedar', 'upstreams.cedar']) {
    await cp(path.join('examples/policies', name), path.join(dir, name));
  }
  await writeFiles(dir, files);
  return dir;
}

describe('runPolicyTests', () => {
  it('passes every example case', async () => {
    const report = await runPolicyTests(await PolicyEngine.open('examples/policies'));
    expect(report.fileErrors).toEqual([]);
    expect(report.cases.filter((c) => !c.passed)).toEqual([]);
    expect(report.passed).toBe(15);
    expect(report.summary).toBe('15 passed, 0 failed');
    expect(report.files).toEqual([path.join('examples/policies', 'policies.test.yaml')]);
  });

  it('fails cases whose expectation differs, saying what differed', async () => {
    const dir = await examplesWith({
      'wrong.test.yaml': `
cases:
  - name: wrong decision
    claims: { build_branch: feature, build_source: webhook }
    action: exchange
    expect: { decision: allow }
  - name: wrong policies
    action: exchange
    expect: { decision: allow, policies: [unreviewed-branches-no-token] }
  - name: wrong reason
    action: exchange
    expect: { decision: allow, reasons: ["no such words"] }
  - name: right
    action: exchange
    expect: { decision: allow, policies: [acme-jobs-exchange], reasons: [jobs of acme] }
`,
    });
    const report = await runPolicyTests(await PolicyEngine.open(dir));
    expect(report.summary).toBe('1 passed, 3 failed');
    expect(report.cases.map((c) => [c.name, c.passed, c.differences])).toEqual([
      [
        'wrong decision',
        false,
        ['decision: expected allow, got deny (forbidden by unreviewed-branches-no-token: webhook builds of branches other than main get no Port token)'],
      ],
      ['wrong policies', false, ['policies: expected [unreviewed-branches-no-token], got [acme-jobs-exchange]']],
      [
        'wrong reason',
        false,
        ['reasons: "no such words" is not in the reason "allowed by acme-jobs-exchange: jobs of acme may exchange their Buildkite token for a Port token"'],
      ],
      ['right', true, []],
    ]);
  });

  it('fails a case on an unexpected evaluation error, and passes when it is expected', async () => {
    const dir = await policyDir({
      'a.cedar': `@id("overflow") forbid (principal, action == Port::Action::"exchange", resource) when { principal.build_number * 9223372036854775807 > 1 };`,
      'a.test.yaml': `
cases:
  - name: unexpected
    claims: { build_number: 5 }
    action: exchange
    expect: { decision: deny }
  - name: expected
    claims: { build_number: 5 }
    action: exchange
    expect: { decision: deny, errors: [overflow] }
`,
    });
    const report = await runPolicyTests(await PolicyEngine.open(dir));
    expect(report.cases.map((c) => c.passed)).toEqual([false, true]);
    expect(report.cases[0]!.differences[0]).toMatch(/^errors: expected \[\], got \[overflow\] \(overflow: integer overflow/);
  });

  it('rejects a malformed file, naming the file and the case', async () => {
    const dir = await examplesWith({
      'bad.test.yaml': `
cases:
  - name: fine
    action: exchange
    expect: { decision: allow }
  - name: typo in action
    action: exchnage
    expect: { decision: allow }
  - action: assume
    resource: { credential: x }
    expect: { decision: maybe }
    extra: 1
`,
      'good.test.yaml': 'cases:\n  - name: ok\n    action: exchange\n    expect: { decision: allow }\n',
    });
    const report = await runPolicyTests(await PolicyEngine.open(dir));
    const file = path.join(dir, 'bad.test.yaml');
    expect(report.fileErrors).toEqual([
      { file, case: 'typo in action', message: 'cases.1.action: Invalid option: expected one of "exchange"|"assume"|"proxy"' },
      { file, case: '#3', message: 'cases.2.name: Invalid input: expected string, received undefined' },
      { file, case: '#3', message: 'cases.2.expect.decision: Invalid option: expected one of "allow"|"deny"' },
      { file, case: '#3', message: 'cases.2: Unrecognized key: "extra"' },
    ]);
    // The valid file still runs.
    expect(report.cases.map((c) => c.name)).toEqual(['ok']);
    expect(report.summary).toBe('1 passed, 0 failed, 1 invalid test file');
  });

  it('rejects invalid YAML and duplicate case names', async () => {
    const dir = await policyDir({
      'a.test.yaml': 'cases: [',
      'b.test.yaml': 'cases:\n  - { name: x, action: exchange, expect: { decision: deny } }\n  - { name: x, action: exchange, expect: { decision: deny } }\n',
    });
    const report = await runPolicyTests(await PolicyEngine.open(dir));
    expect(report.fileErrors.map((e) => [path.basename(e.file), e.case, e.message.slice(0, 15)])).toEqual([
      ['a.test.yaml', undefined, 'not valid YAML:'],
      ['b.test.yaml', 'x', 'two cases have '],
    ]);
  });

  it('fails a case whose claims or resource are wrong, saying which', async () => {
    const dir = await examplesWith({
      'a.test.yaml': `
defaults:
  claims: { pipeline_slug: deploy }
cases:
  - name: bad claim
    claims: { build_number: "seven" }
    action: exchange
    expect: { decision: allow }
  - name: assume without a credential
    action: assume
    expect: { decision: deny }
  - name: float in context
    action: proxy
    resource: { upstream: artifacts }
    context: { method: GET, path: /, extra: 1.5 }
    expect: { decision: deny }
  - name: defaults apply
    action: assume
    resource: { credential: deploy-token }
    expect: { decision: allow, policies: [deploy-token-main] }
`,
    });
    const report = await runPolicyTests(await PolicyEngine.open(dir));
    expect(report.cases.map((c) => [c.name, c.differences])).toEqual([
      ['bad claim', ['cannot build the request: the build_number claim must be a non-negative integer']],
      ['assume without a credential', ['cannot build the request: assume needs a credential (and no upstream)']],
      ['float in context', ['cannot build the request: context.extra must be an integer (Cedar has only Long numbers)']],
      ['defaults apply', []],
    ]);
  });
});
