import { mkdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { formatProblem } from '../../src/policy/errors.js';
import { loadPolicyDir } from '../../src/policy/loader.js';
import type { PolicyProblem } from '../../src/policy/types.js';
import { cleanup, PERMIT_EXCHANGE, policyDir } from './fixtures.js';

afterEach(cleanup);

async function problemsOf(files: Record<string, string>): Promise<{ dir: string; problems: PolicyProblem[] }> {
  const dir = await policyDir(files);
  const outcome = await loadPolicyDir(dir);
  if (outcome.ok) throw new Error('expected the load to fail');
  return { dir, problems: outcome.problems };
}

describe('loadPolicyDir', () => {
  it('reports a syntax error at its line and column in the original file', async () => {
    // The "é" and "—" make Cedar's byte offsets differ from string indexes.
    const text = `// café — policies\n${PERMIT_EXCHANGE}\n@id("broken")\npermit (principal, action, resource)\nwhen { principal.branch == };\n`;
    const { dir, problems } = await problemsOf({ 'ok.cedar': PERMIT_EXCHANGE, 'bad.cedar': text });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({ file: path.join(dir, 'bad.cedar'), line: 8, column: 28, message: 'unexpected token `}`' });
  });

  it('reports an unknown attribute with the policy id, line and a hint', async () => {
    const text = `${PERMIT_EXCHANGE}\n@id("typo")\npermit (principal is Port::Job, action == Port::Action::"exchange", resource)\nwhen { principal.brnach == "main" };\n`;
    const { dir, problems } = await problemsOf({ 'a.cedar': text });
    expect(problems).toEqual([
      {
        file: path.join(dir, 'a.cedar'),
        line: 7,
        column: 8,
        policyId: 'typo',
        message: 'attribute `brnach` on entity type `Port::Job` not found',
        help: 'did you mean `branch`?',
      },
    ]);
  });

  it('reports a type error', async () => {
    const text = `@id("number-as-string")\npermit (principal is Port::Job, action == Port::Action::"exchange", resource)\nwhen { principal.build_number == "42" };`;
    const { problems } = await problemsOf({ 'a.cedar': text });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({ line: 3, policyId: 'number-as-string' });
    expect(problems[0]!.message).toMatch(/Long and String are not compatible/);
  });

  it('refuses an optional attribute read without `has` (it would error at request time)', async () => {
    const text = `@id("pipeline-by-id")\npermit (principal is Port::Job, action == Port::Action::"exchange", resource)\nwhen { principal.pipeline_id == "x" };`;
    const { problems } = await problemsOf({ 'a.cedar': text });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({ line: 3, column: 8, policyId: 'pipeline-by-id' });
    expect(problems[0]!.message).toMatch(/optional attribute `pipeline_id`/);
    expect(problems[0]!.help).toMatch(/has pipeline_id/);
  });

  it('maps validation errors to the right policy when a file has more than ten', async () => {
    // Cedar returns the parts sorted by its ids (policy0, policy1, policy10, …).
    let text = '';
    for (let i = 0; i < 12; i++) text += `@id("p${i}") permit (principal, action == Port::Action::"assume", resource);\n`;
    text += `@id("bad") permit (principal is Port::Job, action == Port::Action::"assume", resource) when { principal.nope };\n`;
    const { problems } = await problemsOf({ 'a.cedar': text });
    expect(problems.map((p) => [p.policyId, p.line])).toEqual([['bad', 13]]);
  });

  it('requires an @id on every policy', async () => {
    const text = `${PERMIT_EXCHANGE}\npermit (principal, action == Port::Action::"assume", resource);\n@id("") forbid (principal, action, resource);`;
    const { dir, problems } = await problemsOf({ 'a.cedar': text });
    expect(problems.map(formatProblem)).toEqual([
      `${dir}/a.cedar:5:1: policy has no @id("…") annotation; every policy needs a unique id`,
      `${dir}/a.cedar:6:1: policy has no @id("…") annotation; every policy needs a unique id`,
    ]);
  });

  it('refuses a duplicate @id, naming where it was first used', async () => {
    const { dir, problems } = await problemsOf({
      'a.cedar': PERMIT_EXCHANGE,
      'b.cedar': `\n\n${PERMIT_EXCHANGE.replace('permit', 'forbid')}`,
    });
    expect(problems).toEqual([
      {
        file: path.join(dir, 'b.cedar'),
        line: 3,
        column: 1,
        policyId: 'acme-exchange',
        message: `duplicate @id("acme-exchange"), first used at ${dir}/a.cedar:1`,
      },
    ]);
  });

  it('refuses ids with spaces and templates', async () => {
    const { problems } = await problemsOf({
      'a.cedar': `@id("two words") permit (principal, action, resource);\n@id("t") permit (principal == ?principal, action, resource);`,
    });
    expect(problems.map((p) => [p.line, p.message.slice(0, 20)])).toEqual([
      [1, '@id must be 1–128 ch'],
      [2, 'templates (policies '],
    ]);
  });

  it('is not fooled by a commented-out copy of a policy', async () => {
    const policy = `@id("x") permit (principal is Port::Job, action == Port::Action::"assume", resource);`;
    const dir = await policyDir({ 'a.cedar': `// ${policy}\n// "${policy}"\n\n${policy}\n` });
    const outcome = await loadPolicyDir(dir);
    expect(outcome.ok && outcome.set.policies.map((p) => [p.id, p.line])).toEqual([['x', 4]]);
  });

  it('loads sorted *.cedar files only, following symlinks, skipping dot-files', async () => {
    const dir = await policyDir({
      'b.cedar': '@id("b") permit (principal, action == Port::Action::"assume", resource);',
      '.#a.cedar': 'garbage',
      'notes.md': 'garbage',
    });
    await mkdir(path.join(dir, '..data'));
    await writeFile(path.join(dir, '..data', 'a.cedar'), '@id("a") permit (principal, action == Port::Action::"proxy", resource);');
    await symlink(path.join('..data', 'a.cedar'), path.join(dir, 'a.cedar'));
    const outcome = await loadPolicyDir(dir);
    expect(outcome.ok).toBe(true);
    if (!outcome.ok) return;
    expect(outcome.set.files).toEqual([path.join(dir, 'a.cedar'), path.join(dir, 'b.cedar')]);
    expect(outcome.set.policies.map((p) => p.id)).toEqual(['a', 'b']);
  });

  it('warns about impossible policies without refusing them', async () => {
    const dir = await policyDir({ 'a.cedar': '@id("never") permit (principal, action == Port::Action::"assume", resource) when { false };' });
    const outcome = await loadPolicyDir(dir);
    expect(outcome.ok).toBe(true);
    if (!outcome.ok) return;
    expect(outcome.set.warnings).toHaveLength(1);
    expect(outcome.set.warnings[0]).toMatchObject({ line: 1, policyId: 'never' });
    expect(outcome.set.warnings[0]!.message).toMatch(/impossible/);
  });

  it('reports a missing folder', async () => {
    const dir = await policyDir({});
    const outcome = await loadPolicyDir(path.join(dir, 'nope'));
    expect(outcome.ok).toBe(false);
    if (outcome.ok) return;
    expect(formatProblem(outcome.problems[0]!)).toBe(`${dir}/nope: cannot read the policy folder (ENOENT)`);
  });

  it('loads the example policies cleanly', async () => {
    const outcome = await loadPolicyDir('examples/policies');
    expect(outcome.ok ? outcome.set.warnings : outcome.problems).toEqual([]);
    expect(outcome.ok && outcome.set.policies.length).toBe(9);
  });
});
