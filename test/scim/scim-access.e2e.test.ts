/**
 * SCIM feeds Cedar's `User in [Group]` and deprovisioning revokes at once, end to end:
 * the Buildkite simulator names the build's creator, Port
 * maps them to the SCIM-provisioned user, a policy on `principal.creator in
 * Port::Group::"deployers"` decides the exchange; deactivation refuses the Port token
 * the job already holds on its next use.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Harness } from '../helpers/port-harness.js';
import { GROUP_SCHEMA, oktaUser, scimClient, startScimHarness, type ScimClient } from './scim-client.js';

const POLICIES = {
  'exchange.cedar': `
@id("deployers-exchange")
@reason("builds started by an active deployer may hold a Port token")
permit (principal, action == Port::Action::"exchange", resource == Port::Organization::"acme")
when { principal has creator && principal.creator.active && principal.creator in Port::Group::"deployers" };
`,
};

let h: Harness;
let scim: ScimClient;

beforeAll(async () => {
  h = await startScimHarness({
    policies: POLICIES,
    extra: (sim) => {
      process.env.PORT_SCIM_ACCESS_BK_TOKEN = sim.apiToken;
      return {
        buildkite: { organization: 'acme', issuer: sim.issuer, jwks_url: sim.jwksUrl, audience: 'https://port.acme.test', api_url: sim.url, api_token: 'env:PORT_SCIM_ACCESS_BK_TOKEN' },
      };
    },
  });
  scim = scimClient(h.url);
});
afterAll(async () => {
  await h?.close();
});

async function jobOf(email: string) {
  const creator = h.sim.createUser({ name: email.split('@')[0]!, email });
  const build = h.sim.createBuild({ pipelineSlug: 'deploy', branch: 'main', creator, steps: [{ type: 'command', key: 'ship', label: 'Ship' }] });
  return h.sim.build(build.id)!.jobs.find((j) => j.type === 'script')!.oidcJob!;
}

const exchange = async (job: Awaited<ReturnType<typeof jobOf>>) => h.exchange(await h.sim.mintToken(job, { audience: h.audience }));

async function introspect(token: string): Promise<boolean> {
  const r = await h.post('/oauth/introspect', { token }, { authorization: `Bearer ${token}` });
  return r.status === 200 && r.body.active === true;
}

describe('SCIM group membership decides Cedar policies', () => {
  it('a SCIM group membership makes `principal.creator in Port::Group::"deployers"` match; removal makes it stop', async () => {
    const user = (await scim.post('/Users', oktaUser('cedar@acme.test'))).body;
    const group = (await scim.post('/Groups', { schemas: [GROUP_SCHEMA], displayName: 'deployers', members: [] })).body;
    const job = await jobOf('Cedar@Acme.test');

    const before = await exchange(job);
    expect(before.status).toBe(403);

    expect((await scim.patch(`/Groups/${group.id}`, [{ op: 'add', path: 'members', value: [{ value: user.id }] }])).status).toBe(200);
    const member = await exchange(job);
    expect(member.status).toBe(200);

    expect((await scim.patch(`/Groups/${group.id}`, [{ op: 'remove', path: `members[value eq "${user.id}"]` }])).status).toBe(200);
    const removed = await exchange(job);
    expect(removed.status).toBe(403);
    expect(removed.body.error).toBe('access_denied');
  });
});

describe('deprovisioning revokes at once', () => {
  it('refuses the outstanding Port token of a deactivated user on its next use', async () => {
    const user = (await scim.post('/Users', oktaUser('leaver@acme.test'))).body;
    const group = (await scim.get(`/Groups?filter=${encodeURIComponent('displayName eq "deployers"')}`)).body.Resources[0];
    await scim.patch(`/Groups/${group.id}`, [{ op: 'add', path: 'members', value: [{ value: user.id }] }]);
    const job = await jobOf('leaver@acme.test');
    const issued = await exchange(job);
    expect(issued.status).toBe(200);
    const token = issued.body.access_token as string;
    expect(await introspect(token)).toBe(true);

    const t0 = performance.now();
    const deactivated = await scim.patch(`/Users/${user.id}`, [{ op: 'replace', value: { active: false } }]);
    expect(deactivated.status).toBe(200);
    expect(deactivated.body.active).toBe(false);
    const refused = !(await introspect(token));
    const gapMs = performance.now() - t0;
    expect(refused).toBe(true);
    // A sanity bound (the issue asks for "within one second"), not a speed test.
    expect(gapMs).toBeLessThan(1000);
    console.log(`scim deactivation → token refused: ${gapMs.toFixed(1)} ms`);

    // A new exchange for the same build is refused too, and the decision log says why.
    expect([400, 403]).toContain((await exchange(job)).status);
    const records = (await h.port.store.decisions.read(0, 10_000)).map((e) => e.record);
    const deprovision = records.find((r) => r.action === 'scim_deprovision' && r.principal === 'Port::User::"leaver@acme.test"');
    expect(deprovision?.context).toMatchObject({ revocation: 'done', scim: { method: 'PATCH', resource_type: 'User', id: user.id } });
    expect(JSON.stringify(deprovision)).not.toContain(token.split('.')[2]!);
  });

  it('DELETE of a user revokes too, and ends their approver sessions', async () => {
    const user = (await scim.post('/Users', oktaUser('gone@acme.test'))).body;
    await h.port.store.sessions.create({ idHash: 'a'.repeat(64), email: 'gone@acme.test', groups: [], csrfToken: 'c', createdAt: Date.now(), expiresAt: Date.now() + 60_000 });
    const group = (await scim.get(`/Groups?filter=${encodeURIComponent('displayName eq "deployers"')}`)).body.Resources[0];
    await scim.patch(`/Groups/${group.id}`, [{ op: 'add', path: 'members', value: [{ value: user.id }] }]);
    const token = (await exchange(await jobOf('gone@acme.test'))).body.access_token as string;
    expect(await introspect(token)).toBe(true);
    expect((await scim.delete(`/Users/${user.id}`)).status).toBe(204);
    expect(await introspect(token)).toBe(false);
    expect(await h.port.store.sessions.get('a'.repeat(64))).toBeUndefined();
    expect(await h.port.store.users.get('gone@acme.test')).toMatchObject({ active: false, groups: [], source: 'scim' });
    expect((await scim.get(`/Users/${user.id}`)).status).toBe(404);
  });
});
