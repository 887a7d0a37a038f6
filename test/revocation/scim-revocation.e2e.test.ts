/**
 * SCIM and revocation: a DELETE whose revocation fails deletes
 * nothing and answers 503, so the IdP's retry does the whole thing; a re-activation lifts
 * the revocation SCIM made, and only that one.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StoreError } from '../../src/errors.js';
import { oktaUser, scimClient, type ScimClient } from '../scim/scim-client.js';
import { ADMIN_TOKEN, buildBy, startRevocationHarness, works, type RevocationHarness } from './support.js';

let h: RevocationHarness;
let scim: ScimClient;
beforeAll(async () => {
  h = await startRevocationHarness({ scim: true });
  scim = scimClient(h.url);
}, 60_000);
afterAll(async () => {
  await h?.close();
});

const records = async (action: string) => (await h.port.store.decisions.read(0, 100_000)).map((e) => e.record).filter((r) => r.action === action);

describe('SCIM DELETE: revoke first, delete after', () => {
  it('a failed revocation answers 503 and deletes nothing; the IdP retry revokes and deletes', async () => {
    const email = 'flaky@acme.test';
    const user = (await scim.post('/Users', oktaUser(email))).body;
    const { a } = buildBy(h, email);
    const token = await h.portToken(a);
    expect(await works(h, token)).toBe(true);

    const store = h.port.store;
    const original = store.revocations.add.bind(store.revocations);
    let failures = 1;
    store.revocations.add = async (entry) => {
      if (failures-- > 0) throw new StoreError('disk full (test)');
      return original(entry);
    };
    try {
      const failed = await scim.delete(`/Users/${user.id}`);
      expect(failed.status).toBe(503);
      expect(failed.body.detail).toBe("Revoking the user's grants failed, so the user was not deleted; retry the request.");
      // Nothing changed: the user is there and active, the token still works, nothing was logged as deprovisioned.
      expect((await scim.get(`/Users/${user.id}`)).status).toBe(200);
      expect(await h.port.store.users.get(email)).toMatchObject({ active: true });
      expect(await works(h, token)).toBe(true);
      expect((await records('scim_deprovision')).some((r) => r.principal === `Port::User::"${email}"`)).toBe(false);

      // The IdP retries the DELETE.
      expect((await scim.delete(`/Users/${user.id}`)).status).toBe(204);
    } finally {
      store.revocations.add = original;
    }
    expect(await works(h, token)).toBe(false);
    expect((await scim.get(`/Users/${user.id}`)).status).toBe(404);
    expect((await h.exchange(await h.bkToken(a))).status).toBe(400);
    const deprovisions = (await records('scim_deprovision')).filter((r) => r.principal === `Port::User::"${email}"`);
    expect(deprovisions).toHaveLength(1);
    expect(deprovisions[0]!.context).toMatchObject({ revocation: 'done', scim: { method: 'DELETE', resource_type: 'User', id: user.id } });
    // Revoked once, by SCIM, before the delete.
    const revokes = (await records('revoke')).filter((r) => r.resource === `Port::User::"${email}"`);
    expect(revokes).toHaveLength(1);
    expect(revokes[0]!.principal).toBe('scim');
  });
});

describe('SCIM re-activation lifts the revocation SCIM made', () => {
  it('deactivated: refused, old and new; re-activated: their builds work again', async () => {
    const email = 'returner@acme.test';
    const user = (await scim.post('/Users', oktaUser(email))).body;
    const { a, b } = buildBy(h, email);
    const token = await h.portToken(a);

    expect((await scim.patch(`/Users/${user.id}`, [{ op: 'replace', value: { active: false } }])).status).toBe(200);
    expect(await works(h, token)).toBe(false);
    expect((await h.exchange(await h.bkToken(b))).status).toBe(400);

    expect((await scim.patch(`/Users/${user.id}`, [{ op: 'replace', value: { active: true } }])).status).toBe(200);
    expect(await works(h, token)).toBe(true);
    expect((await h.exchange(await h.bkToken(b))).status).toBe(200);
    const lift = (await records('unrevoke')).find((r) => r.resource === `Port::User::"${email}"`)!;
    expect(lift).toMatchObject({ principal: 'scim', context: { scope: 'user', origins: ['scim'], lifted: 1, still_revoked_by: [], still_revoked_until: null } });
    const provision = (await records('scim_provision')).filter((r) => r.principal === `Port::User::"${email}"`).at(-1)!;
    expect(provision.context).toMatchObject({ revocation_lift: 'done' });
  });

  it("an admin's revocation of the same person stays in force", async () => {
    const email = 'suspect@acme.test';
    const user = (await scim.post('/Users', oktaUser(email))).body;
    const { a, b } = buildBy(h, email);
    expect((await h.revoke({ scope: 'user', id: email, reason: 'under investigation' })).status).toBe(200);
    expect((await scim.patch(`/Users/${user.id}`, [{ op: 'replace', value: { active: false } }])).status).toBe(200);
    expect((await scim.patch(`/Users/${user.id}`, [{ op: 'replace', value: { active: true } }])).status).toBe(200);

    const refused = await h.exchange(await h.bkToken(a));
    expect(refused.status).toBe(400);
    const listed = (await (await fetch(`${h.url}/v1/revocations`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).json()) as {
      revocations: { scope: string; id: string; by: string[]; reason: string }[];
    };
    expect(listed.revocations.find((r) => r.scope === 'user' && r.id === email)).toMatchObject({ by: ['admin'], reason: 'under investigation' });
    const lift = (await records('unrevoke')).find((r) => r.resource === `Port::User::"${email}"`)!;
    expect(lift.context).toMatchObject({ origins: ['scim'], lifted: 1, still_revoked_by: ['admin'] });
    expect(typeof lift.context.still_revoked_until).toBe('string');

    expect((await h.lift({ scope: 'user', id: email })).status).toBe(200);
    expect((await h.exchange(await h.bkToken(b))).status).toBe(200);
  });
});
