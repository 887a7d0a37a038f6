/**
 * Grants in a running Port: a job's token exchange is decided by the compiled grants
 * together with the folder's policies, over HTTP, and the decision log names the grant
 * policy and its reason.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from '../helpers/port-harness.js';

let h: Harness;

const FORBID = `@id("no-scheduled-deploys")
@reason("scheduled builds never hold the deploy token")
forbid (principal is Port::Job, action == Port::Action::"assume", resource == Port::Credential::"deploy-token")
when { principal.build_source == "schedule" };
`;

beforeAll(async () => {
  h = await startHarness({
    policies: { 'forbid.cedar': FORBID },
    config: {
      grants: {
        roles: { deployer: { description: 'Deploys acme from main.', credentials: ['deploy-token'] } },
        bindings: [{ role: 'deployer', pipelines: [{ pipeline: 'deploy', branches: ['main'] }] }],
      },
    },
  });
});
afterAll(async () => {
  await h?.close();
});

const exchange = async (init: { branch?: string; source?: 'webhook' | 'schedule'; pipeline?: string }) => {
  const job = h.sim.createJob({ pipelineSlug: init.pipeline ?? 'deploy', branch: init.branch ?? 'main', ...(init.source ? { buildSource: init.source } : {}) });
  return h.exchange(await h.sim.mintToken(job, { audience: h.audience }), { scope: 'deploy-token' });
};

describe('grants in a running Port', () => {
  it('grants what a binding says, and nothing else', async () => {
    const grantId = h.port.policy.policies.find((p) => p.file === 'grants:deployer' && p.id.endsWith('.assume.deploy-token'))!.id;
    expect(grantId).toMatch(/^grant\.deployer\.[0-9a-f]{8}\.assume\.deploy-token$/);

    const main = await exchange({});
    expect(main.status, JSON.stringify(main.body)).toBe(200);
    expect(main.body.scope).toBe('deploy-token');

    const feature = await exchange({ branch: 'feature' });
    expect(feature.status).toBe(403);
    expect(feature.body.error).toBe('access_denied');
    // The refusal names the grant that did not match, as for a hand-written permit.
    expect(feature.body.error_description).toContain(grantId.replace(/\.assume\.deploy-token$/, '.exchange'));

    const otherPipeline = await exchange({ pipeline: 'app' });
    expect(otherPipeline.status).toBe(403);

    // A hand-written forbid beats the grant.
    const scheduled = await exchange({ source: 'schedule' });
    expect(scheduled.status).toBe(403);
    expect(scheduled.body.error_description).toContain('no-scheduled-deploys');

    const entries = (await h.port.store.decisions.read(0, 10_000)).map((e) => e.record);
    const allowed = entries.find((r) => r.action === 'assume' && r.decision === 'allow');
    expect(allowed?.policies).toEqual([{ id: grantId, reason: 'Deploys acme from main.' }]);
    expect(allowed?.reason).toBe(`allowed by ${grantId}: Deploys acme from main.`);
    const exchanges = entries.filter((r) => r.action === 'exchange' && r.decision === 'allow');
    expect(exchanges.every((r) => r.policies.some((p) => /^grant\.deployer\.[0-9a-f]{8}\.exchange$/.test(p.id)))).toBe(true);
  });
});
