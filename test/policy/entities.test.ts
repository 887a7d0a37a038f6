import { afterEach, describe, expect, it } from 'vitest';
import { PolicyEngine } from '../../src/policy/engine.js';
import { credentialRef, jobRequestParts, organizationRef, upstreamRef } from '../../src/policy/entities.js';
import { cleanup, identity, policyDir } from './fixtures.js';

afterEach(cleanup);

describe('jobRequestParts', () => {
  it('builds the job (ancestors named directly) and its agent with the schema\'s entity ids', () => {
    const { principal, entities } = jobRequestParts(identity());
    expect(principal).toEqual({ type: 'Job', id: 'job-1' });
    expect(entities).toEqual([
      {
        uid: { type: 'Job', id: 'job-1' },
        attrs: {
          branch: 'main',
          tag: '',
          commit: 'abc123',
          step_key: '',
          build_number: 42,
          build_source: 'webhook',
          runner_environment: 'self-hosted',
          pipeline_slug: 'deploy',
          organization_slug: 'acme',
          agent: { __entity: { type: 'Agent', id: 'agent-1' } },
        },
        parents: [
          { type: 'Build', id: 'acme/deploy/42' },
          { type: 'Pipeline', id: 'acme/deploy' },
          { type: 'Organization', id: 'acme' },
        ],
      },
      { uid: { type: 'Agent', id: 'agent-1' }, attrs: {}, parents: [], tags: {} },
    ]);
  });

  it('adds the pool, optional claims, agent tags and the creator when known', () => {
    const { entities } = jobRequestParts(
      identity({
        tag: 'v1',
        stepKey: 'deploy',
        clusterName: 'prod',
        queueKey: 'deploy',
        clusterId: 'c-1',
        pipelineId: 'p-1',
        agentTags: { queue: 'deploy' },
      }),
      { creator: { email: 'Dev@Acme.test', active: true, groups: ['deployers', 'deployers'] } },
    );
    const byType = (t: string) => entities.filter((e) => e.uid.type === t);
    const job = byType('Job')[0]!;
    expect(job.parents).toEqual([
      { type: 'Build', id: 'acme/deploy/42' },
      { type: 'Pipeline', id: 'acme/deploy' },
      { type: 'Organization', id: 'acme' },
      { type: 'Pool', id: 'prod/deploy' },
    ]);
    expect(job.attrs).toMatchObject({ tag: 'v1', step_key: 'deploy', cluster_name: 'prod', queue_key: 'deploy', cluster_id: 'c-1', pipeline_id: 'p-1' });
    expect(job.attrs.creator).toEqual({ __entity: { type: 'User', id: 'dev@acme.test' } });
    expect(byType('Agent')[0]).toEqual({ uid: { type: 'Agent', id: 'agent-1' }, attrs: {}, parents: [{ type: 'Pool', id: 'prod/deploy' }], tags: { queue: 'deploy' } });
    expect(byType('User')).toEqual([{ uid: { type: 'User', id: 'dev@acme.test' }, attrs: { active: true }, parents: [{ type: 'Group', id: 'deployers' }] }]);
    // Attribute-less ancestors are not passed: Cedar only needs their ids as parents.
    expect(entities.map((e) => e.uid.type).sort()).toEqual(['Agent', 'Job', 'User']);
  });

  it('has no pool without both cluster_name and queue_key', () => {
    const { entities } = jobRequestParts(identity({ clusterName: 'prod' }));
    expect(entities.find((e) => e.uid.type === 'Job')!.parents.some((p) => p.type === 'Pool')).toBe(false);
    expect(entities.find((e) => e.uid.type === 'Agent')!.parents).toEqual([]);
  });

  it('names resources', () => {
    expect(organizationRef('acme')).toEqual({ type: 'Organization', id: 'acme' });
    expect(credentialRef('deploy-token')).toEqual({ type: 'Credential', id: 'deploy-token' });
    expect(upstreamRef('artifacts')).toEqual({ type: 'Upstream', id: 'artifacts' });
  });
});

describe('entities against the schema', () => {
  it('are accepted by the engine and support hierarchy, tags and creator policies', async () => {
    const policy = `@id("pool-deployers")
permit (principal is Port::Job in Port::Pool::"prod/deploy", action == Port::Action::"assume", resource == Port::Credential::"deploy-token")
when {
  principal in Port::Pipeline::"acme/deploy" && principal in Port::Organization::"acme" &&
  principal in Port::Build::"acme/deploy/42" && !(principal in Port::Pipeline::"acme/other") &&
  principal.agent.hasTag("queue") && principal.agent.getTag("queue") == "deploy" &&
  principal has creator && principal.creator.active && principal.creator in Port::Group::"deployers" &&
  principal has cluster_id && principal.cluster_id == "c-1"
};`;
    const engine = await PolicyEngine.open(await policyDir({ 'a.cedar': policy }));
    const full = identity({ clusterName: 'prod', queueKey: 'deploy', clusterId: 'c-1', agentTags: { queue: 'deploy' } });
    const decide = (id = full, groups = ['deployers']) => {
      const { principal, entities } = jobRequestParts(id, { creator: { email: 'dev@acme.test', active: true, groups } });
      return engine.decide({ principal, action: 'assume', resource: credentialRef('deploy-token'), context: {}, entities });
    };
    expect(decide()).toMatchObject({ decision: 'allow', errors: [] });
    expect(decide(full, ['developers'])).toMatchObject({ decision: 'deny', errors: [] });
    expect(decide({ ...full, queueKey: 'default' })).toMatchObject({ decision: 'deny', errors: [] });
    expect(decide({ ...full, agentTags: {} })).toMatchObject({ decision: 'deny', errors: [] });
  });
});
