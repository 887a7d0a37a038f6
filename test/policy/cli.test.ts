import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { Command } from 'commander';
import { afterEach, describe, expect, it } from 'vitest';
import { registerPolicyCommands, runExplain, runTest, runValidate, type PolicyCliIO } from '../../src/cli/policy-commands.js';
import { cleanup, FORBID_BRANCHES, PERMIT_EXCHANGE, policyDir } from './fixtures.js';

afterEach(cleanup);

function capture(stdin = ''): PolicyCliIO & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, out: (t) => stdout.push(t), err: (t) => stderr.push(t), readStdin: async () => stdin };
}

describe('port policy validate', () => {
  it('prints the count and revision of a good folder', async () => {
    const io = capture();
    expect(await runValidate({ policies: 'examples/policies' }, io)).toBe(0);
    expect(io.stdout).toEqual([expect.stringMatching(/^9 policies in 4 files OK; revision [0-9a-f]{64}$/)]);
    expect(io.stderr).toEqual([]);
  });

  it('prints file:line:col: message for each problem and exits 1', async () => {
    const dir = await policyDir({
      'a.cedar': `${PERMIT_EXCHANGE}\n@id("x") permit (principal is Port::Job, action == Port::Action::"exchange", resource) when { principal.nope };`,
      'b.cedar': 'permit (',
    });
    const io = capture();
    expect(await runValidate({ policies: dir }, io)).toBe(1);
    expect(io.stderr).toEqual([
      `${dir}/a.cedar:5:95: policy x: attribute \`nope\` on entity type \`Port::Job\` not found (did you mean \`tag\`?)`,
      `${dir}/b.cedar:1:9: unexpected end of input (expected \`)\` or identifier)`,
      `2 problems in ${dir}`,
    ]);
  });

  it('warns about an empty folder and still succeeds', async () => {
    const dir = await policyDir({});
    const io = capture();
    expect(await runValidate({ policies: dir }, io)).toBe(0);
    expect(io.stderr).toEqual([`warning: ${dir}: no policies found: every request will be denied`]);
    expect(io.stdout[0]).toMatch(/^0 policies in 0 files OK/);
  });

  it('reads the folder from the policies: key of -c, relative to the config file', async () => {
    const dir = await policyDir({ 'port.yaml': 'server: { listen: ":0" }\npolicies: ./rules\n' });
    const io = capture();
    expect(await runValidate({ config: path.join(dir, 'port.yaml') }, io)).toBe(1);
    expect(io.stderr[0]).toBe(`${path.join(dir, 'rules')}: cannot read the policy folder (ENOENT)`);
    const missing = capture();
    expect(await runValidate({ config: path.join(dir, 'nope.yaml') }, missing)).toBe(2);
    expect(missing.stderr).toEqual([`port policy: cannot read ${path.join(dir, 'nope.yaml')} (ENOENT)`]);
  });
});

describe('port policy test', () => {
  it('prints ✓ per case and the summary', async () => {
    const io = capture();
    expect(await runTest({ policies: 'examples/policies' }, io)).toBe(0);
    expect(io.stdout[0]).toBe('✓ policies.test.yaml: a main build of acme may exchange');
    expect(io.stdout.at(-1)).toBe('15 passed, 0 failed');
  });

  it('prints ✗ with the difference and exits 1 on a failing case', async () => {
    const dir = await policyDir({
      'a.cedar': PERMIT_EXCHANGE + FORBID_BRANCHES,
      'a.test.yaml': 'cases:\n  - name: feature branches\n    claims: { build_branch: dev }\n    action: exchange\n    expect: { decision: allow }\n',
    });
    const io = capture();
    expect(await runTest({ policies: dir }, io)).toBe(1);
    expect(io.stdout).toEqual([
      '✗ a.test.yaml: feature branches',
      '    decision: expected allow, got deny (forbidden by no-branches: only main gets tokens)',
      '0 passed, 1 failed',
    ]);
  });

  it('exits 1 when the policies do not load', async () => {
    const io = capture();
    expect(await runTest({ policies: await policyDir({ 'a.cedar': 'nope' }) }, io)).toBe(1);
    expect(io.stderr).toEqual([expect.stringMatching(/a\.cedar:1:5: unexpected end of input/)]);
  });
});

describe('port policy explain', () => {
  it('explains a request from claims on stdin', async () => {
    const io = capture(JSON.stringify({ pipeline_slug: 'deploy', build_branch: 'main' }));
    const code = await runExplain({ policies: 'examples/policies', action: 'assume', credential: 'deploy-token', claims: '-' }, io);
    expect(code).toBe(0);
    expect(io.stdout[0]).toMatch(/^ALLOW: assume on Credential::"deploy-token" by Job::/);
    expect(io.stdout[0]).toContain('Allowed by:\n  deploy-token-main (examples/policies/credentials.cedar:');
  });

  it('reads claims from a file, takes --context and prints JSON with --json', async () => {
    const dir = await policyDir({});
    const claims = path.join(dir, 'claims.json');
    await writeFile(claims, JSON.stringify({ organization_slug: 'acme' }));
    const io = capture();
    const code = await runExplain(
      { policies: 'examples/policies', action: 'proxy', upstream: 'artifacts', claims, context: '{"method":"DELETE","path":"/x"}', json: true },
      io,
    );
    expect(code).toBe(0);
    // A default deny names the permits for proxy on this upstream that did not match.
    expect(JSON.parse(io.stdout[0]!)).toMatchObject({
      decision: 'deny',
      reason: 'denied by default: no policy permits proxy; not matched: artifacts-read-only ("acme jobs may read, not write, the artifact store")',
      unmatched: [{ id: 'artifacts-read-only', reason: 'acme jobs may read, not write, the artifact store' }],
    });
  });

  const usage: [string, Parameters<typeof runExplain>[0], string][] = [
    ['an unknown action', { action: 'scale', claims: '-' }, '--action must be one of exchange, assume, proxy'],
    ['assume without a credential', { action: 'assume', claims: '-' }, 'assume needs a credential (and no upstream)'],
    ['bad --context JSON', { action: 'exchange', claims: '-', context: '{' }, '--context is not valid JSON'],
    ['a bad claim', { action: 'exchange', claims: '-', context: '{}' }, 'the build_number claim must be a non-negative integer'],
  ];
  it.each(usage)('exits 2 on %s', async (name, opts, message) => {
    const io = capture(JSON.stringify(name === 'a bad claim' ? { build_number: -1 } : {}));
    expect(await runExplain({ policies: 'examples/policies', ...opts }, io)).toBe(2);
    expect(io.stderr).toEqual([`port policy: ${message}`]);
  });
});

describe('registerPolicyCommands', () => {
  it('wires the commands into a commander program', async () => {
    const io = capture();
    const program = new Command('port').exitOverride();
    registerPolicyCommands(program, io);
    const before = process.exitCode;
    try {
      await program.parseAsync(['node', 'port', 'policy', 'validate', '--policies', 'examples/policies']);
      expect(process.exitCode).toBe(0);
      expect(io.stdout[0]).toMatch(/^9 policies in 4 files OK/);
    } finally {
      process.exitCode = before;
    }
  });

  it('runs as a process with the documented exit codes', async () => {
    const run = (args: string[]) =>
      promisify(execFile)('node_modules/.bin/vite-node', ['test/policy/cli-entry.ts', ...args], { timeout: 30_000 }).then(
        (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
        (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
      );
    const dir = await policyDir({ 'a.cedar': '@id("x") permit (principal, action, resource' });
    const [ok, bad, usage] = await Promise.all([
      run(['policy', 'test', '--policies', 'examples/policies']),
      run(['policy', 'validate', '--policies', dir]),
      run(['policy', 'explain', '--claims', '-']),
    ]);
    expect(ok).toMatchObject({ code: 0 });
    expect(ok.stdout).toContain('15 passed, 0 failed');
    expect(bad).toMatchObject({ code: 1 });
    expect(bad.stderr).toContain(`${dir}/a.cedar:1:`);
    expect(usage).toMatchObject({ code: 2 });
    expect(usage.stderr).toContain("required option '--action <action>' not specified");
  });
});
