import { symlinkSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { compileGrants } from '../../src/grants/compile.js';
import { GrantsError } from '../../src/grants/errors.js';
import { readGrantsDirectory } from '../../src/grants/load.js';
import { cleanup, configWith, tempDir, writeFiles } from './fixtures.js';

afterEach(cleanup);

const sep = path.sep;

/** A config in a fresh folder whose grants.directory holds `files`. */
function withFiles(files: Record<string, string>, grants: Record<string, unknown> = {}) {
  const dir = tempDir();
  writeFiles(dir, Object.fromEntries(Object.entries(files).map(([n, t]) => [`grants/${n}`, t])));
  return configWith({ directory: './grants', ...grants }, {}, dir);
}

function errorOf(run: () => unknown): string[] {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(GrantsError);
    return [...(err as GrantsError).problems];
  }
  throw new Error('expected a GrantsError');
}

describe('grants.directory', () => {
  it('reads every *.yaml and *.yml file in name order, roles and bindings alike, and nothing else', () => {
    const config = withFiles({
      'b-team.yaml': 'bindings:\n  - role: publisher\n    pipelines: [{ pipeline: lib, tags: ["v*"] }]\n',
      'a-roles.yaml': 'roles:\n  publisher:\n    credentials: [npm-publish]\nbindings:\n  - role: publisher\n    pipelines: [{ pipeline: app }]\n',
      '.hidden.yaml': 'roles: { ignored: {} }\n',
      'c-empty.yml': 'bindings: []\n',
      'README.md': '# not read',
    });
    const read = readGrantsDirectory(config)!;
    expect(read.files.map((f) => path.basename(f))).toEqual(['a-roles.yaml', 'b-team.yaml', 'c-empty.yml']);
    expect(Object.keys(read.roles)).toEqual(['publisher']);
    expect(read.roles.publisher!.source).toBe(`grants${sep}a-roles.yaml`);
    expect(read.bindings.map((b) => `${b.source} ${b.index}`)).toEqual([`grants${sep}a-roles.yaml 0`, `grants${sep}b-team.yaml 0`]);
    const compiled = compileGrants(config);
    expect(compiled.policies.map((p) => p.binding)).toEqual([
      `grants${sep}a-roles.yaml bindings[0]`,
      `grants${sep}a-roles.yaml bindings[0]`,
      `grants${sep}b-team.yaml bindings[0]`,
      `grants${sep}b-team.yaml bindings[0]`,
    ]);
    expect(compiled.sources[0]!.text).toContain(`// grants:publisher: role publisher, defined in grants${sep}a-roles.yaml (roles.publisher)`);
  });

  it('names the file and key of each problem in one sentence, like the config errors', () => {
    const problems = errorOf(() =>
      readGrantsDirectory(
        withFiles({
          'a.yaml': 'roles:\n  Deployer: {}\n  ok:\n    credentials: [Prod]\n',
          'b.yaml': 'bindings:\n  - role: ok\n    pipelnes: []\n',
          'c.yaml': 'directory: ./more\n',
        }),
      ),
    );
    expect(problems).toEqual([
      `grants${sep}a.yaml: roles.Deployer: found the name "Deployer"; expected a name of lower-case letters, digits, - and _ (starting with a letter or digit).`,
      `grants${sep}a.yaml: roles.ok.credentials[0]: found "Prod"; expected a name of lower-case letters, digits, - and _ (starting with a letter or digit).`,
      `grants${sep}b.yaml: bindings[0].pipelnes: unknown key; did you mean "pipelines"?`,
      `grants${sep}c.yaml: directory: a grants file can't name another folder; grants.directory is set in port.yaml only — remove it here.`,
    ]);
  });

  it('reports YAML errors with the file, line and column', () => {
    const problems = errorOf(() => readGrantsDirectory(withFiles({ 'a.yaml': 'roles:\n  ok: {credentials: [x]\n' })));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(new RegExp(`^grants\\${sep}a\\.yaml:\\d+:\\d+: invalid YAML: `));
  });

  it('refuses a file that is not a map', () => {
    expect(errorOf(() => readGrantsDirectory(withFiles({ 'a.yaml': '- role: x\n' })))).toEqual([
      `grants${sep}a.yaml: found a list; expected a map with roles: and bindings: (like port.yaml's grants: section).`,
    ]);
  });

  it('refuses a role defined twice, naming both places', () => {
    const twoFiles = { 'a.yaml': 'roles:\n  publisher: { credentials: [npm-publish] }\n', 'b.yaml': 'roles:\n  publisher: { credentials: [aws-prod] }\n' };
    expect(errorOf(() => readGrantsDirectory(withFiles(twoFiles)))).toEqual([
      `grants${sep}b.yaml: roles.publisher: role "publisher" is already defined in grants${sep}a.yaml (roles.publisher); define each role once — rename one or merge them.`,
    ]);
    const config = withFiles({ 'a.yaml': 'roles:\n  publisher: { credentials: [aws-prod] }\n' }, { roles: { publisher: { credentials: ['npm-publish'] } } });
    expect(errorOf(() => compileGrants(config))).toEqual([
      `grants${sep}a.yaml: roles.publisher: role "publisher" is already defined in port.yaml (grants.roles.publisher); define each role once — rename one or merge them.`,
    ]);
  });

  it('refuses a directory that does not exist', () => {
    const config = configWith({ directory: './nope', roles: {} });
    expect(errorOf(() => compileGrants(config))).toEqual([
      `port.yaml: grants.directory: folder ${path.join(path.dirname(config.file), 'nope')} does not exist; create it or remove grants.directory.`,
    ]);
  });

  it('reports a file that cannot be read (a dangling link) as a grants problem, with the others', () => {
    const config = withFiles({ 'b.yaml': 'roles: []\n' });
    symlinkSync(path.join(path.dirname(config.file), 'gone.yaml'), path.join(path.dirname(config.file), 'grants', 'a.yaml'));
    expect(errorOf(() => compileGrants(config))).toEqual([
      `grants${sep}a.yaml: cannot be read (ENOENT); fix the file or remove it from the grants folder.`,
      expect.stringMatching(/^grants.b\.yaml: roles: /),
    ]);
  });

  it('never reads port.yaml itself when the directory is its own folder', () => {
    const dir = tempDir();
    writeFiles(dir, { 'port.yaml': 'server: {}\n', 'team.yaml': 'roles:\n  publisher: { credentials: [npm-publish] }\n' });
    const read = readGrantsDirectory(configWith({ directory: '.' }, {}, dir))!;
    expect(read.files.map((f) => path.basename(f))).toEqual(['team.yaml']);
    expect(read.roles.publisher!.source).toBe(`.${sep}team.yaml`);
  });
});
