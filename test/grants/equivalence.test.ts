/**
 * Grants compile and decide like the equivalent Cedar: a set of grants, and the Cedar a
 * person would write for them by hand, decide every request of a generated matrix — jobs of
 * matching and other pipelines, branches and tags, pools, creators' groups; relay methods
 * and paths; approvals by members and others, authors or not; scaling by each autoscaler —
 * the same way, through the real PolicyEngine. And a hand-written forbid beats a grant.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileGrants } from '../../src/grants/compile.js';
import { PolicyEngine } from '../../src/policy/engine.js';
import type { AuthzRequest } from '../../src/policy/types.js';
import { approveRequest, cleanup, configWith, jobRequest, scaleRequest, tempDir, type JobFacts, type JobRequestSpec } from './fixtures.js';

const GRANTS = {
  roles: {
    deployer: {
      credentials: ['aws-prod'],
      upstreams: [
        { upstream: 'github', methods: ['GET', 'HEAD'], paths: ['/repos/acme/*'] },
        { upstream: 'github', methods: ['POST'], paths: ['/repos/acme/*/deployments'] },
      ],
    },
    publisher: { credentials: ['npm-publish'] },
    builder: { upstreams: [{ upstream: 'artifacts' }] },
    approver: { approve: ['deploy'] },
    scaler: { scale: ['linux/deploy', 'linux/build'] },
  },
  bindings: [
    { role: 'deployer', pipelines: [{ pipeline: 'deploy', branches: ['main', 'release/*'] }], pools: ['linux/deploy'] },
    { role: 'publisher', pipelines: [{ pipeline: 'app', tags: ['v*'] }, { pipeline: 'lib', branches: ['main'], tags: ['v*'] }], groups: ['releasers'] },
    { role: 'builder', pools: ['linux/*'] },
    { role: 'approver', groups: ['approvers', 'sre'] },
    { role: 'scaler', autoscalers: ['elastic'] },
  ],
};

/** What a person would write for GRANTS (in their own way: scopes where Cedar allows, `!` for `== false`). */
const HAND_WRITTEN = `
@id("deploy-exchange")
permit (principal is Port::Job in Port::Pipeline::"acme/deploy", action == Port::Action::"exchange", resource == Port::Organization::"acme")
when { principal in Port::Pool::"linux/deploy" && principal.tag == "" && (principal.branch == "main" || principal.branch like "release/*") };

@id("deploy-aws")
permit (principal is Port::Job in Port::Pipeline::"acme/deploy", action == Port::Action::"assume", resource == Port::Credential::"aws-prod")
when { principal in Port::Pool::"linux/deploy" && principal.tag == "" && (principal.branch == "main" || principal.branch like "release/*") };

@id("deploy-github")
permit (principal is Port::Job in Port::Pipeline::"acme/deploy", action == Port::Action::"proxy", resource == Port::Upstream::"github")
when { principal in Port::Pool::"linux/deploy" && principal.tag == "" && (principal.branch == "main" || principal.branch like "release/*") }
when {
  ((context.method == "GET" || context.method == "HEAD") && context.path like "/repos/acme/*") ||
  (context.method == "POST" && context.path like "/repos/acme/*/deployments")
};

@id("publish-exchange")
permit (principal is Port::Job, action == Port::Action::"exchange", resource == Port::Organization::"acme")
when {
  (principal in Port::Pipeline::"acme/app" && principal.tag like "v*" && principal.tag != "") ||
  (principal in Port::Pipeline::"acme/lib" && ((principal.tag == "" && principal.branch == "main") || (principal.tag != "" && principal.tag like "v*")))
}
when { principal has creator && principal.creator.active && principal.creator in Port::Group::"releasers" };

@id("publish-npm")
permit (principal is Port::Job, action == Port::Action::"assume", resource == Port::Credential::"npm-publish")
when {
  (principal in Port::Pipeline::"acme/app" && principal.tag like "v*" && principal.tag != "") ||
  (principal in Port::Pipeline::"acme/lib" && ((principal.tag == "" && principal.branch == "main") || (principal.tag != "" && principal.tag like "v*")))
}
when { principal has creator && principal.creator.active && principal.creator in Port::Group::"releasers" };

@id("linux-exchange")
permit (principal is Port::Job, action == Port::Action::"exchange", resource == Port::Organization::"acme")
when { principal has cluster_name && principal.cluster_name == "linux" };

@id("linux-artifacts")
permit (principal is Port::Job, action == Port::Action::"proxy", resource == Port::Upstream::"artifacts")
when { principal has cluster_name && principal.cluster_name == "linux" };

@id("approvers")
permit (principal, action == Port::Action::"approve", resource in Port::Pipeline::"acme/deploy")
when { (principal in Port::Group::"approvers" || principal in Port::Group::"sre") && principal.active && !context.is_author };

@id("elastic-scales")
permit (principal == Port::Autoscaler::"elastic", action == Port::Action::"scale", resource)
when { resource == Port::Pool::"linux/deploy" || resource == Port::Pool::"linux/build" };
`;

const FORBID = `
@id("no-release-branch-aws")
@reason("release branches never hold production AWS credentials")
forbid (principal is Port::Job, action == Port::Action::"assume", resource == Port::Credential::"aws-prod")
when { principal.branch like "release/*" };
`;

let granted: PolicyEngine;
let handWritten: PolicyEngine;
let withForbid: PolicyEngine;

beforeAll(async () => {
  const dir = tempDir();
  const compiled = compileGrants(configWith(GRANTS, {}, dir)).sources;
  const folder = (name: string, files: Record<string, string>) => {
    const d = path.join(dir, name);
    mkdirSync(d);
    for (const [f, t] of Object.entries(files)) writeFileSync(path.join(d, f), t);
    return d;
  };
  granted = await PolicyEngine.open(path.join(dir, 'policies'), { compiled });
  handWritten = await PolicyEngine.open(folder('hand', { 'grants.cedar': HAND_WRITTEN }));
  withForbid = await PolicyEngine.open(folder('forbid', { 'forbid.cedar': FORBID }), { compiled });
});
afterAll(cleanup);

function jobMatrix(): { label: string; request: AuthzRequest }[] {
  // Each pipeline is "another pipeline" to the others' bindings.
  const pipelines = ['deploy', 'app', 'lib'];
  const refs: Pick<JobFacts, 'branch' | 'tag'>[] = [{ branch: 'main' }, { branch: 'release/1.2' }, { branch: 'feature/x' }, { tag: 'v1.0' }, { tag: 'main' }, { branch: 'main', tag: 'x1' }];
  const pools = [undefined, 'linux/deploy', 'linux/build', 'mac/deploy'];
  const creators: Pick<JobFacts, 'groups' | 'active'>[] = [{}, { groups: ['releasers'] }, { groups: ['releasers'], active: false }, { groups: ['approvers'] }];
  const specs: JobRequestSpec[] = [
    { action: 'exchange' },
    { action: 'assume', credential: 'aws-prod' },
    { action: 'assume', credential: 'npm-publish' },
    { action: 'proxy', upstream: 'github', method: 'GET', path: '/repos/acme/app' },
    { action: 'proxy', upstream: 'github', method: 'POST', path: '/repos/acme/app/deployments' },
    { action: 'proxy', upstream: 'github', method: 'POST', path: '/repos/acme/app' },
    { action: 'proxy', upstream: 'github', method: 'GET', path: '/orgs/acme' },
    { action: 'proxy', upstream: 'artifacts', method: 'PUT', path: '/builds/1' },
  ];
  const out: { label: string; request: AuthzRequest }[] = [];
  for (const pipeline of pipelines)
    for (const ref of refs)
      for (const pool of pools)
        for (const creator of creators)
          for (const spec of specs) {
            const job: JobFacts = { pipeline, ...ref, ...creator, ...(pool !== undefined ? { pool } : {}) };
            out.push({ label: `${JSON.stringify(job)} ${JSON.stringify(spec)}`, request: jobRequest(job, spec) });
          }
  return out;
}

function approveMatrix(): { label: string; request: AuthzRequest }[] {
  const out: { label: string; request: AuthzRequest }[] = [];
  for (const pipeline of ['deploy', 'app'])
    for (const groups of [['approvers'], ['sre', 'other'], ['other'], []])
      for (const isAuthor of [false, true])
        for (const active of [true, false]) out.push({ label: JSON.stringify({ pipeline, groups, isAuthor, active }), request: approveRequest(pipeline, groups, { isAuthor, active }) });
  return out;
}

function scaleMatrix(): { label: string; request: AuthzRequest }[] {
  const out: { label: string; request: AuthzRequest }[] = [];
  for (const autoscaler of ['elastic', 'spot', 'nobody'])
    for (const pool of ['linux/deploy', 'linux/build', 'mac/deploy']) out.push({ label: `${autoscaler} ${pool}`, request: scaleRequest(autoscaler, pool) });
  return out;
}

describe('grants compile and decide like the equivalent Cedar', () => {
  it.each([
    ['jobs (exchange, assume, proxy)', jobMatrix],
    ['approvals', approveMatrix],
    ['scaling', scaleMatrix],
  ] as const)('%s: identical decisions over the matrix, with allows and denies both', (_name, matrix) => {
    const differences: string[] = [];
    const seen = { allow: 0, deny: 0 };
    for (const { label, request } of matrix()) {
      const a = granted.decide(request);
      const b = handWritten.decide(request);
      expect(a.errors, label).toEqual([]);
      expect(b.errors, label).toEqual([]);
      if (a.decision !== b.decision) differences.push(`${label}: grants ${a.decision} (${a.reason}), hand-written ${b.decision} (${b.reason})`);
      seen[a.decision]++;
    }
    expect(differences).toEqual([]);
    expect(seen.allow).toBeGreaterThan(0);
    expect(seen.deny).toBeGreaterThan(0);
  });

  it('allows by the grant policy, named with its role and reason', () => {
    const d = granted.decide(jobRequest({ pipeline: 'deploy', branch: 'main', pool: 'linux/deploy' }, { action: 'assume', credential: 'aws-prod' }));
    expect(d.decision).toBe('allow');
    expect(d.determining).toEqual([
      { id: expect.stringMatching(/^grant\.deployer\.[0-9a-f]{8}\.assume\.aws-prod$/), reason: 'role deployer: jobs of acme/deploy (main, release/*) in linux/deploy may assume aws-prod', file: 'grants:deployer', line: expect.any(Number) },
    ]);
  });

  it('names the grant that did not match on a default deny', () => {
    const d = granted.decide(jobRequest({ pipeline: 'deploy', branch: 'feature/x', pool: 'linux/deploy' }, { action: 'assume', credential: 'aws-prod' }));
    expect(d.decision).toBe('deny');
    expect(d.unmatched?.map((u) => u.id)).toEqual([expect.stringMatching(/^grant\.deployer\.[0-9a-f]{8}\.assume\.aws-prod$/)]);
  });

  it('lets a hand-written forbid beat a grant', () => {
    const request = jobRequest({ pipeline: 'deploy', branch: 'release/1.2', pool: 'linux/deploy' }, { action: 'assume', credential: 'aws-prod' });
    expect(granted.decide(request).decision).toBe('allow');
    const d = withForbid.decide(request);
    expect(d.decision).toBe('deny');
    expect(d.determining.map((p) => p.id)).toEqual(['no-release-branch-aws']);
    expect(d.reason).toBe('forbidden by no-release-branch-aws: release branches never hold production AWS credentials');
    // What the forbid does not cover, the grant still allows.
    expect(withForbid.decide(jobRequest({ pipeline: 'deploy', branch: 'main', pool: 'linux/deploy' }, { action: 'assume', credential: 'aws-prod' })).decision).toBe('allow');
  });
});
