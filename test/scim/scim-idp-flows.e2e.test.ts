/**
 * The request sequences Okta and Microsoft Entra ID send (Okta developer docs, "Okta and
 * SCIM Version 2.0"; Microsoft Learn, "Tutorial: Develop a SCIM endpoint…" and "Known
 * issues and resolutions with SCIM 2.0 protocol compliance"), over HTTP, checking what
 * Port derives for Cedar after each step.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Harness } from '../helpers/port-harness.js';
import { entraUser, GROUP_SCHEMA, oktaUser, scimClient, startScimHarness, type ScimClient } from './scim-client.js';

let h: Harness;
let scim: ScimClient;
const filter = (f: string) => encodeURIComponent(f);
const session = (email: string, n: string) => ({ idHash: n.repeat(64), email, groups: [], csrfToken: 'c', createdAt: Date.now(), expiresAt: Date.now() + 600_000 });

beforeAll(async () => {
  h = await startScimHarness();
  scim = scimClient(h.url);
});
afterAll(async () => {
  await h?.close();
});

const actions = async (email: string) =>
  (await h.port.store.decisions.read(0, 10_000)).map((e) => e.record).filter((r) => r.principal === `Port::User::"${email}"`).map((r) => r.action);

describe('Okta', () => {
  it('lookup → create → push group → add member → remove member → deactivate', async () => {
    const email = 'okta.dev@acme.test';
    const lookup = await scim.get(`/Users?filter=${filter(`userName eq "${email}"`)}&startIndex=1&count=100`);
    expect(lookup.body).toMatchObject({ totalResults: 0, Resources: [] });
    const created = await scim.post('/Users', oktaUser(email, 'Okta', 'Dev'));
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    expect(await h.port.store.users.get(email)).toMatchObject({ active: true, groups: [], source: 'scim', name: 'Okta Dev' });

    const group = await scim.post('/Groups', { schemas: [GROUP_SCHEMA], displayName: 'deployers', members: [] });
    expect(group.status).toBe(201);
    const gid = group.body.id as string;
    // Okta's Push Groups: rename without path, then member add.
    expect((await scim.patch(`/Groups/${gid}`, [{ op: 'replace', value: { id: gid, displayName: 'deployers' } }])).status).toBe(200);
    const added = await scim.patch(`/Groups/${gid}`, [{ op: 'add', path: 'members', value: [{ value: id, display: email }] }]);
    expect(added.body.members.map((m: any) => m.value)).toEqual([id]);
    expect((await h.port.store.users.get(email))!.groups).toEqual(['deployers']);

    await h.port.store.sessions.create(session(email, 'b'));
    const removed = await scim.patch(`/Groups/${gid}`, [{ op: 'remove', path: `members[value eq "${id}"]` }]);
    expect(removed.status).toBe(200);
    expect((await h.port.store.users.get(email))!.groups).toEqual([]);
    // Losing a group ends the person's sessions at once.
    expect(await h.port.store.sessions.get('b'.repeat(64))).toBeUndefined();

    await scim.patch(`/Groups/${gid}`, [{ op: 'add', path: 'members', value: [{ value: id }] }]);
    await h.port.store.sessions.create(session(email, 'c'));
    const off = await scim.patch(`/Users/${id}`, [{ op: 'replace', value: { active: false } }]);
    expect(off.status).toBe(200);
    expect(off.body.active).toBe(false);
    expect(await h.port.store.users.get(email)).toMatchObject({ active: false, groups: [] });
    expect(await h.port.store.sessions.get('c'.repeat(64))).toBeUndefined();
    expect(await actions(email)).toEqual(['scim_provision', 'scim_group_change', 'scim_group_change', 'scim_group_change', 'scim_deprovision']);

    // Reactivation brings the SCIM groups back (they are SCIM's, not the sign-in's).
    await scim.patch(`/Users/${id}`, [{ op: 'replace', value: { active: true } }]);
    expect(await h.port.store.users.get(email)).toMatchObject({ active: true, groups: ['deployers'] });
  });
});

describe('Microsoft Entra ID', () => {
  it('lookup → create → capitalised PATCH ops with string booleans → member Add/Remove arrays → DELETE', async () => {
    const upn = 'ana@contoso.test';
    const mail = 'Ana.Lyst@acme.test';
    const email = 'ana.lyst@acme.test';
    expect((await scim.get(`/Users?filter=${filter(`userName eq "${upn}"`)}`)).body.totalResults).toBe(0);
    const created = await scim.post('/Users', entraUser(upn, mail));
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    expect(created.body['urn:ietf:params:scim:schemas:extension:enterprise:2.0:User']).toEqual({ department: 'Platform', employeeNumber: '42' });
    // The Port identity is the primary e-mail, lower-cased.
    expect(await h.port.store.users.get(email)).toMatchObject({ active: true, source: 'scim' });

    const g = await scim.post('/Groups', {
      schemas: [GROUP_SCHEMA, 'http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group'],
      externalId: '8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159',
      displayName: 'release-managers',
      meta: { resourceType: 'Group' },
    });
    expect(g.status).toBe(201);
    expect(g.body.schemas).toEqual([GROUP_SCHEMA]);
    const gid = g.body.id as string;
    expect((await scim.get(`/Groups?excludedAttributes=members&filter=${filter('displayName eq "release-managers"')}`)).body.Resources[0].id).toBe(gid);

    const ops = await scim.patch(`/Users/${id}`, [
      { op: 'Replace', path: 'emails[type eq "work"].value', value: mail },
      { op: 'Replace', path: 'name.familyName', value: 'Lyst-Smith' },
      { op: 'Add', value: { 'name.givenName': 'Anna', 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department': 'SRE' } },
      { op: 'Replace', path: 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager', value: 'mgr-1' },
    ]);
    expect(ops.status).toBe(200);
    expect(ops.body.name).toMatchObject({ givenName: 'Anna', familyName: 'Lyst-Smith' });
    expect(ops.body['urn:ietf:params:scim:schemas:extension:enterprise:2.0:User']).toMatchObject({ department: 'SRE', manager: { value: 'mgr-1' } });

    expect((await scim.patch(`/Groups/${gid}`, [{ op: 'Add', path: 'members', value: [{ $ref: null, value: id }] }])).status).toBe(200);
    // Entra repeats adds; membership stays a set.
    expect((await scim.patch(`/Groups/${gid}`, [{ op: 'Add', path: 'members', value: [{ $ref: null, value: id }] }])).body.members).toHaveLength(1);
    expect((await h.port.store.users.get(email))!.groups).toEqual(['release-managers']);
    expect((await scim.patch(`/Groups/${gid}`, [{ op: 'Remove', path: 'members', value: [{ $ref: null, value: id }] }])).body.members).toBeUndefined();
    expect((await h.port.store.users.get(email))!.groups).toEqual([]);
    await scim.patch(`/Groups/${gid}`, [{ op: 'Add', path: 'members', value: [{ value: id }] }]);

    // "active": "False" (a string) is how Entra deactivates without aadOptscim062020.
    const off = await scim.patch(`/Users/${id}`, [{ op: 'Replace', path: 'active', value: 'False' }]);
    expect(off.status).toBe(200);
    expect(off.body.active).toBe(false);
    expect(await h.port.store.users.get(email)).toMatchObject({ active: false, groups: [] });
    const on = await scim.patch(`/Users/${id}`, [{ op: 'Replace', path: 'active', value: 'True' }]);
    expect(on.body.active).toBe(true);
    expect((await h.port.store.users.get(email))!.groups).toEqual(['release-managers']);

    // A PUT replaces the user; a PUT of the group replaces its members.
    const put = await scim.put(`/Users/${id}`, { ...entraUser(upn, mail), displayName: 'Ana L.' });
    expect(put.status).toBe(200);
    expect(put.body.meta.version).not.toBe(created.body.meta.version);
    expect((await scim.put(`/Groups/${gid}`, { schemas: [GROUP_SCHEMA], displayName: 'release-managers', members: [] })).status).toBe(200);
    expect((await h.port.store.users.get(email))!.groups).toEqual([]);

    expect((await scim.delete(`/Users/${id}`)).status).toBe(204);
    expect(await h.port.store.users.get(email)).toMatchObject({ active: false, groups: [] });
    expect((await scim.delete(`/Groups/${gid}`)).status).toBe(204);
    expect((await scim.get(`/Groups/${gid}`)).status).toBe(404);
    const log = await actions(email);
    expect(log[0]).toBe('scim_provision');
    expect(log.filter((a) => a === 'scim_deprovision')).toHaveLength(2);
  });
});
