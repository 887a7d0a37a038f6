import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { compileGrants, type CompiledGrants } from '../../src/grants/compile.js';
import { GrantsError } from '../../src/grants/errors.js';
import { PolicyEngine } from '../../src/policy/engine.js';
import { loadPolicyFiles } from '../../src/policy/loader.js';
import { cleanup, configWith, jobRequest, scaleRequest, approveRequest, tempDir, writeFiles } from './fixtures.js';

afterEach(cleanup);

const ROLES = {
  deployer: {
    description: 'Deploys acme to production.',
    credentials: ['aws-prod', 'deploy-token'],
    upstreams: [
      { upstream: 'github', methods: ['GET', 'HEAD'], paths: ['/repos/acme/*'] },
      { upstream: 'github', methods: ['POST'], paths: ['/repos/acme/*/deployments'] },
      { upstream: 'artifacts' },
    ],
    approve: ['deploy'],
  },
  publisher: { credentials: ['npm-publish'] },
  scaler: { scale: ['linux/deploy', 'linux/build'] },
};

const DEPLOY = { role: 'deployer', pipelines: [{ pipeline: 'deploy', branches: ['main', 'release/*'], tags: ['v*'] }], pools: ['linux/deploy'], groups: ['deployers'] };
const PUBLISH = { role: 'publisher', pipelines: [{ pipeline: 'app', tags: ['v*'] }] };
const SCALE = { role: 'scaler', autoscalers: ['elastic'] };

function ids(compiled: CompiledGrants): string[] {
  return compiled.policies.map((p) => p.id).sort();
}

function compileError(grants: unknown, over: Record<string, unknown> = {}): string {
  try {
    compileGrants(configWith(grants, over));
  } catch (err) {
    expect(err).toBeInstanceOf(GrantsError);
    expect((err as GrantsError).code).toBe('config_invalid');
    return (err as Error).message;
  }
  throw new Error('expected the grants to be refused');
}

describe('compileGrants', () => {
  it('compiles each permission of each binding to a policy that parses and validates against the schema (strict)', () => {
    const compiled = compileGrants(configWith({ roles: ROLES, bindings: [DEPLOY, PUBLISH, SCALE] }));
    const outcome = loadPolicyFiles('/nowhere', [], compiled.sources);
    if (!outcome.ok) throw new Error(outcome.problems.map((p) => `${p.file}:${p.line}: ${p.message}`).join('\n'));
    expect(outcome.set.warnings).toEqual([]);
    const loaded = outcome.set.policies;
    expect(loaded.map((p) => p.id).sort()).toEqual(ids(compiled));
    const permissions = compiled.policies.map((p) => `${p.role} ${p.permission}`);
    expect(permissions).toEqual([
      'deployer exchange',
      'deployer assume.aws-prod',
      'deployer assume.deploy-token',
      'deployer proxy.artifacts',
      'deployer proxy.github',
      'deployer approve.acme/deploy',
      'publisher exchange',
      'publisher assume.npm-publish',
      'scaler scale.linux/build',
      'scaler scale.linux/deploy',
    ]);
    for (const p of compiled.policies) {
      expect(p.id).toMatch(new RegExp(`^grant\\.${p.role}\\.[0-9a-f]{8}\\.${p.permission.replace(/[.*/]/g, '\\$&')}$`));
      expect(p.source).toBe(`grants:${p.role}`);
      const info = loaded.find((l) => l.id === p.id)!;
      // Loaded as the role's source, with the reason and text the compiler gave it.
      expect(info.file).toBe(p.source);
      expect(info.reason).toBe(p.reason);
      expect(info.effect).toBe('permit');
      expect(compiled.sources.find((s) => s.name === p.source)!.text.split('\n')[info.line - 1]).toBe(`@id("${p.id}")`);
    }
    // The role's description is the reason; without one, a sentence says what is granted to whom.
    expect(compiled.policies.find((p) => p.permission === 'assume.aws-prod')!.reason).toBe('Deploys acme to production.');
    expect(compiled.policies.find((p) => p.permission === 'assume.npm-publish')!.reason).toBe('role publisher: jobs of acme/app (tag v*) may assume npm-publish');
    expect(compiled.policies.find((p) => p.permission === 'scale.linux/deploy')!.reason).toBe('role scaler: autoscaler elastic may scale linux/deploy');
  });

  it('writes one source per role with a header comment for the role and each binding', () => {
    const compiled = compileGrants(configWith({ roles: ROLES, bindings: [PUBLISH, { ...PUBLISH, pipelines: [{ pipeline: 'lib', tags: ['v*'] }] }] }));
    expect(compiled.sources.map((s) => s.name)).toEqual(['grants:publisher']);
    const lines = compiled.sources[0]!.text.split('\n');
    expect(lines[0]).toBe('// grants:publisher: role publisher, defined in port.yaml (grants.roles.publisher)');
    expect(lines.filter((l) => l.startsWith('// binding '))).toEqual([
      '// binding port.yaml grants.bindings[0]: pipelines acme/app (tags v*)',
      '// binding port.yaml grants.bindings[1]: pipelines acme/lib (tags v*)',
    ]);
  });

  it('keeps ids when other bindings are added, removed or reordered, and when a binding\'s own lists are reordered', () => {
    const before = compileGrants(configWith({ roles: ROLES, bindings: [DEPLOY, PUBLISH] }));
    const reordered = compileGrants(
      configWith({
        roles: ROLES,
        bindings: [
          { role: 'publisher', pipelines: [{ pipeline: 'acme/app', tags: ['v*', 'v*'] }] },
          SCALE,
          { ...DEPLOY, pipelines: [{ pipeline: 'acme/deploy', branches: ['release/*', 'main'], tags: ['v*'] }] },
        ],
      }),
    );
    expect(ids(reordered)).toEqual([...ids(before), ...ids(compileGrants(configWith({ roles: ROLES, bindings: [SCALE] })))].sort());
  });

  it('keeps ids when a binding moves from port.yaml to a file of grants.directory', () => {
    const inline = compileGrants(configWith({ roles: ROLES, bindings: [DEPLOY] }));
    const dir = tempDir();
    writeFiles(dir, { 'grants/deploy.yaml': `bindings:\n  - ${JSON.stringify(DEPLOY)}\n` });
    const moved = compileGrants(configWith({ roles: ROLES, directory: './grants' }, {}, dir));
    expect(ids(moved)).toEqual(ids(inline));
    expect(moved.policies[0]!.binding).toBe(`grants${path.sep}deploy.yaml bindings[0]`);
  });

  it('changes the ids of a binding whose subjects change, and only those', () => {
    const a = compileGrants(configWith({ roles: ROLES, bindings: [DEPLOY, PUBLISH] }));
    const b = compileGrants(configWith({ roles: ROLES, bindings: [{ ...DEPLOY, groups: ['deployers', 'sre'] }, PUBLISH] }));
    const publisher = (c: CompiledGrants) => c.policies.filter((p) => p.role === 'publisher').map((p) => p.id);
    const deployer = (c: CompiledGrants) => c.policies.filter((p) => p.role === 'deployer').map((p) => p.id);
    expect(publisher(b)).toEqual(publisher(a));
    expect(deployer(b).some((id) => deployer(a).includes(id))).toBe(false);
  });

  it('escapes quotes, backslashes and line breaks in names and patterns: no value adds Cedar of its own', async () => {
    const hostile = 'ops"); permit (principal, action, resource);\n// ';
    const compiled = compileGrants(
      configWith({
        roles: { weird: { credentials: ['deploy-token'], upstreams: [{ upstream: 'github', paths: ['/a\\b"c/*'] }] } },
        bindings: [{ role: 'weird', pipelines: [{ pipeline: 'deploy', branches: ['fix\\*', 'say"hi"*'] }], groups: [hostile] }],
      }),
    );
    const outcome = loadPolicyFiles('/nowhere', [], compiled.sources);
    if (!outcome.ok) throw new Error(outcome.problems.map((p) => p.message).join('\n'));
    // Exactly the compiled permits: the hostile group name stayed inside its literal and its comment.
    expect(outcome.set.policies.map((p) => p.id).sort()).toEqual(ids(compiled));
    expect(outcome.set.policies.every((p) => p.effect === 'permit' && p.actions !== undefined)).toBe(true);
    expect(compiled.sources[0]!.text).not.toMatch(/\n\/\/ \n/);

    const dir = tempDir();
    const engine = await PolicyEngine.open(path.join(dir, 'policies'), { compiled: compiled.sources });
    const decide = (job: Parameters<typeof jobRequest>[0], spec: Parameters<typeof jobRequest>[1] = { action: 'assume', credential: 'deploy-token' }) => engine.decide(jobRequest(job, spec)).decision;
    // The group is matched by its exact name.
    expect(decide({ branch: 'fix\\abc', groups: [hostile] })).toBe('allow');
    expect(decide({ branch: 'fix\\abc', groups: ['ops'] })).toBe('deny');
    // `\` is a literal backslash and `*` the wildcard; `"` a literal quote.
    expect(decide({ branch: 'fixabc', groups: [hostile] })).toBe('deny');
    expect(decide({ branch: 'say"hi" there', groups: [hostile] })).toBe('allow');
    const proxy = (p: string) => decide({ branch: 'fix\\', groups: [hostile] }, { action: 'proxy', upstream: 'github', method: 'GET', path: p });
    expect(proxy('/a\\b"c/x')).toBe('allow');
    expect(proxy('/ab"c/x')).toBe('deny');
  });

  it('matches a tag build by tags only: a pushed tag named like a branch is no branch build', async () => {
    const compiled = compileGrants(configWith({ roles: ROLES, bindings: [{ role: 'publisher', pipelines: [{ pipeline: 'app', branches: ['main'] }] }] }));
    const engine = await PolicyEngine.open(path.join(tempDir(), 'policies'), { compiled: compiled.sources });
    const assume = (job: Parameters<typeof jobRequest>[0]) => engine.decide(jobRequest({ pipeline: 'app', ...job }, { action: 'assume', credential: 'npm-publish' })).decision;
    expect(assume({ branch: 'main' })).toBe('allow');
    // Buildkite names a tag build's branch after the tag.
    expect(assume({ branch: 'main', tag: 'main' })).toBe('deny');
  });

  it('keeps the grants through a reload of the policy folder', async () => {
    const dir = tempDir();
    const compiled = compileGrants(configWith({ roles: ROLES, bindings: [PUBLISH] }));
    const engine = await PolicyEngine.open(path.join(dir, 'policies'), { compiled: compiled.sources });
    const before = engine.revision;
    writeFiles(dir, { 'policies/extra.cedar': '@id("extra")\npermit (principal is Port::Job, action == Port::Action::"exchange", resource);\n' });
    const result = await engine.reload();
    expect(result.ok && result.changed).toBe(true);
    expect(engine.revision).not.toBe(before);
    expect(engine.policies.map((p) => p.id)).toEqual(['extra', ...compiled.policies.map((p) => p.id)]);
    expect(engine.decide(jobRequest({ pipeline: 'app', tag: 'v1.0' }, { action: 'assume', credential: 'npm-publish' })).decision).toBe('allow');
  });

  it('counts the grants in the revision', async () => {
    const dir = tempDir();
    const folder = path.join(dir, 'policies');
    const none = await PolicyEngine.open(folder);
    const one = await PolicyEngine.open(folder, { compiled: compileGrants(configWith({ roles: ROLES, bindings: [PUBLISH] })).sources });
    const other = await PolicyEngine.open(folder, { compiled: compileGrants(configWith({ roles: ROLES, bindings: [{ ...PUBLISH, groups: ['x'] }] })).sources });
    expect(new Set([none.revision, one.revision, other.revision]).size).toBe(3);
  });

  it('compiles nothing for a config without grants', () => {
    expect(compileGrants(configWith({}))).toEqual({ policies: [], sources: [] });
  });

  it('grants approve and scale only to the subjects that hold them', async () => {
    const compiled = compileGrants(configWith({ roles: ROLES, bindings: [{ role: 'deployer', pipelines: [{ pipeline: 'deploy' }], groups: ['deployers'] }, SCALE] }));
    const engine = await PolicyEngine.open(path.join(tempDir(), 'policies'), { compiled: compiled.sources });
    expect(engine.decide(approveRequest('deploy', ['deployers'])).decision).toBe('allow');
    expect(engine.decide(approveRequest('deploy', ['deployers'], { isAuthor: true })).decision).toBe('deny');
    expect(engine.decide(approveRequest('deploy', ['deployers'], { active: false })).decision).toBe('deny');
    expect(engine.decide(approveRequest('app', ['deployers'])).decision).toBe('deny');
    expect(engine.decide(scaleRequest('elastic', 'linux/deploy')).decision).toBe('allow');
    expect(engine.decide(scaleRequest('spot', 'linux/build')).decision).toBe('deny');
    expect(engine.decide(scaleRequest('elastic', 'linux/other')).decision).toBe('deny');
  });
});

describe('compileGrants refuses grants that cannot be right', () => {
  it('a binding of a role that is not defined', () => {
    expect(compileError({ roles: ROLES, bindings: [{ role: 'deployr', groups: ['x'] }] })).toBe(
      'port.yaml: grants.bindings[0].role: "deployr" is not a role; define it under roles: or use one of: deployer, publisher, scaler.',
    );
  });

  it('a role naming a credential, upstream or pool the config lacks', () => {
    const message = compileError({ roles: { r: { credentials: ['aws-dev'], upstreams: [{ upstream: 'gitlab' }], scale: ['mac/build'] } }, bindings: [] });
    expect(message.split('\n')).toEqual([
      'port.yaml: grants.roles.r.credentials[0]: "aws-dev" is not a credential in port.yaml; add it under credentials: or use one of: aws-prod, deploy-token, npm-publish.',
      'port.yaml: grants.roles.r.upstreams[0].upstream: "gitlab" is not an upstream in port.yaml; add it under upstreams: or use one of: artifacts, github.',
      'port.yaml: grants.roles.r.scale[0]: "mac/build" is not a pool in port.yaml; add it under pools: (with its autoscalers) or use one of: linux/build, linux/deploy.',
    ]);
  });

  it("names that are Object.prototype's (constructor) are no role, credential, upstream or autoscaler", () => {
    expect(compileError({ roles: ROLES, bindings: [{ role: 'constructor', groups: ['x'] }] })).toBe(
      'port.yaml: grants.bindings[0].role: "constructor" is not a role; define it under roles: or use one of: deployer, publisher, scaler.',
    );
    expect(compileError({ roles: { r: { credentials: ['constructor'], upstreams: [{ upstream: 'constructor' }] } }, bindings: [] }).split('\n')).toEqual([
      'port.yaml: grants.roles.r.credentials[0]: "constructor" is not a credential in port.yaml; add it under credentials: or use one of: aws-prod, deploy-token, npm-publish.',
      'port.yaml: grants.roles.r.upstreams[0].upstream: "constructor" is not an upstream in port.yaml; add it under upstreams: or use one of: artifacts, github.',
    ]);
    expect(compileError({ roles: ROLES, bindings: [{ role: 'scaler', autoscalers: ['constructor'] }] })).toBe(
      'port.yaml: grants.bindings[0].autoscalers[0]: "constructor" is not under scaling.autoscalers; add it there with its token or use one of: elastic, spot.',
    );
    // A role of that name, defined once, is a role like any other.
    const dir = tempDir();
    writeFiles(dir, { 'grants/a.yaml': 'roles:\n  constructor: { credentials: [npm-publish] }\nbindings:\n  - { role: constructor, groups: [x] }\n' });
    const compiled = compileGrants(configWith({ directory: './grants' }, {}, dir));
    expect(compiled.policies.map((p) => p.permission)).toEqual(['exchange', 'assume.npm-publish']);
  });

  it('a scale grant of every queue of a cluster (Cedar cannot match a pool id by pattern)', () => {
    expect(compileError({ roles: { r: { scale: ['linux/*'] } }, bindings: [] }, { pools: { 'linux/*': {} } })).toBe(
      'port.yaml: grants.roles.r.scale[0]: "linux/*" names every queue of a cluster, but a scale grant names one pool; list each CLUSTER/QUEUE.',
    );
  });

  it('an autoscaler the config lacks, or one its pool does not list', () => {
    expect(compileError({ roles: ROLES, bindings: [{ role: 'scaler', autoscalers: ['karpenter'] }] })).toBe(
      'port.yaml: grants.bindings[0].autoscalers[0]: "karpenter" is not under scaling.autoscalers; add it there with its token or use one of: elastic, spot.',
    );
    expect(compileError({ roles: ROLES, bindings: [{ role: 'scaler', autoscalers: ['spot'] }] })).toBe(
      'port.yaml: grants.bindings[0].autoscalers[0]: "spot" is not in pools.linux/deploy.autoscalers, so it can\'t ask to scale linux/deploy; add it there.',
    );
  });

  it('a binding without subjects, which would grant everyone', () => {
    expect(compileError({ roles: ROLES, bindings: [{ role: 'publisher' }] })).toBe(
      'port.yaml: grants.bindings[0]: names no pipelines, pools, groups or autoscalers, so it would grant role publisher to everyone; list its subjects.',
    );
  });

  it('job permissions bound to autoscalers only, which would grant every job', () => {
    expect(compileError({ roles: { both: { credentials: ['aws-prod'], scale: ['linux/deploy'] } }, bindings: [{ role: 'both', autoscalers: ['elastic'] }] })).toBe(
      'port.yaml: grants.bindings[0]: role both grants credentials or upstreams to jobs, but the binding names no pipelines, pools or groups, so every job would get them; list the jobs\' pipelines, pools or groups.',
    );
  });

  it('approve without groups, scale without autoscalers', () => {
    expect(compileError({ roles: ROLES, bindings: [{ role: 'deployer', pipelines: [{ pipeline: 'deploy' }] }] })).toBe(
      'port.yaml: grants.bindings[0].groups: role deployer grants approve, which people hold through their groups; list the approvers\' groups.',
    );
    expect(compileError({ roles: ROLES, bindings: [{ role: 'scaler', groups: ['sre'] }] }).split('\n')).toEqual([
      'port.yaml: grants.bindings[0].autoscalers: role scaler grants scale, which autoscalers hold; list them.',
      'port.yaml: grants.bindings[0].groups: role scaler grants neither jobs nor approvers anything, so groups here would have no effect; remove them.',
    ]);
  });

  it('subjects the role\'s permissions never use', () => {
    expect(compileError({ roles: { approver: { approve: ['deploy'] } }, bindings: [{ role: 'approver', groups: ['sre'], pipelines: [{ pipeline: 'deploy' }] }] })).toBe(
      'port.yaml: grants.bindings[0].pipelines: role approver grants jobs nothing (no credentials or upstreams), so pipelines here would have no effect; remove them or add the permissions to the role.',
    );
    expect(compileError({ roles: ROLES, bindings: [{ role: 'publisher', groups: ['sre'], autoscalers: ['elastic'] }] })).toBe(
      'port.yaml: grants.bindings[0].autoscalers: role publisher grants no scale, so autoscalers here would have no effect; remove them or add scale to the role.',
    );
  });

  it('a pipeline of another organization', () => {
    expect(compileError({ roles: ROLES, bindings: [{ role: 'publisher', pipelines: [{ pipeline: 'globex/app' }] }] })).toBe(
      'port.yaml: grants.bindings[0].pipelines[0].pipeline: "globex/app" is a pipeline of globex, but Port serves buildkite.organization acme only; write the pipeline\'s slug.',
    );
  });

  it('the same role bound twice to the same subjects', () => {
    expect(compileError({ roles: ROLES, bindings: [PUBLISH, { role: 'publisher', pipelines: [{ pipeline: 'acme/app', tags: ['v*'] }] }] })).toBe(
      'port.yaml: grants.bindings[1]: grants role publisher to the same subjects as port.yaml grants.bindings[0]; remove one of them.',
    );
  });

  it('lists every problem at once', () => {
    const message = compileError({ roles: { r: { credentials: ['nope'] } }, bindings: [{ role: 'r' }, { role: 'x', groups: ['g'] }] });
    expect(message.split('\n')).toHaveLength(3);
  });
});
