/**
 * A SCIM deprovisioning stands until SCIM re-activates the person: its revocation
 * never lapses (nor is pruned, nor lost over a restart), the
 * directory's "inactive" refuses a build on its own, and a re-activation racing a
 * deactivation can't lift the deactivation's revocation.
 */
import { rmSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { CREATOR_INACTIVE_MESSAGE } from '../../src/revocation/refusal.js';
import { startPort } from '../../src/server/port-server.js';
import type { Store } from '../../src/store/store.js';
import { oktaUser, scimClient, type ScimClient } from '../scim/scim-client.js';
import { ADMIN_TOKEN, buildBy, startRevocationHarness, type RevocationHarness } from './support.js';

let h: RevocationHarness;
let scim: ScimClient;
beforeAll(async () => {
  h = await startRevocationHarness({ scim: true, relayBuildkiteTokens: true });
  scim = scimClient(h.url);
}, 60_000);
afterAll(async () => {
  await h?.close();
});
afterEach(() => {
  vi.useRealTimers();
});

const DAY = 24 * 3600 * 1000;
const records = async (action: string) => (await h.port.store.decisions.read(0, 100_000)).map((e) => e.record).filter((r) => r.action === action);
const listed = async (url: string) =>
  ((await (await fetch(`${url}/v1/revocations`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).json()) as {
    revocations: { scope: string; id: string; expires_at: string | null; by: string[] }[];
  }).revocations;
const deactivate = (id: string) => scim.patch(`/Users/${id}`, [{ op: 'replace', value: { active: false } }]);
const activate = (id: string) => scim.patch(`/Users/${id}`, [{ op: 'replace', value: { active: true } }]);

describe('a SCIM deactivation does not lapse', () => {
  it("the attack: 25 h later a fresh Buildkite token of the leaver's build still buys nothing, at the exchange and the relay", async () => {
    const email = 'leaver@acme.test';
    const user = (await scim.post('/Users', oktaUser(email))).body;
    const { a, b } = buildBy(h, email);
    const deactivated = await deactivate(user.id);
    expect(deactivated.status).toBe(200);
    expect((await h.exchange(await h.bkToken(b))).status).toBe(400);

    // SCIM's revocation has no end: it says so, and the API lists it so.
    const revoke = (await records('revoke')).filter((r) => r.resource === `Port::User::"${email}"`).at(-1)!;
    expect(revoke).toMatchObject({ principal: 'scim', context: { expires_at: null } });
    expect((await listed(h.url)).find((r) => r.scope === 'user' && r.id === email)).toMatchObject({ expires_at: null, by: ['scim'] });

    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(Date.now() + 25 * 3600 * 1000);
    const res = await h.exchange(await h.bkToken(b));
    expect(res.status).toBe(400);
    expect(res.body).toEqual({
      error: 'invalid_grant',
      error_description: 'The person who started this build is revoked until they are re-activated; every token of their builds is refused.',
    });
    const relay = await h.relayAnswer(await h.bkToken(a));
    expect(relay.status).toBe(401);
    expect(relay.body.error).toBe('invalid_token');
    expect(h.port.revocations.revocations.get('user', email)).toMatchObject({ origins: ['scim'] });
  });

  it('a repeated deactivation (an IdP retry) keeps one record; re-activation lifts it and the builds work again', async () => {
    const email = 'retried@acme.test';
    const user = (await scim.post('/Users', oktaUser(email))).body;
    const { a } = buildBy(h, email);
    for (let i = 0; i < 3; i++) expect((await deactivate(user.id)).status).toBe(200);
    const rows = (await h.port.store.revocations.listActive(Date.now())).filter((e) => e.subject === email);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ kind: 'revocation', scope: 'user', target: email, origin: 'scim' });
    // Three revocations recorded in the decision log (the effects re-run), one standing record.
    expect((await records('revoke')).filter((r) => r.resource === `Port::User::"${email}"`)).toHaveLength(3);

    expect((await activate(user.id)).status).toBe(200);
    expect((await h.exchange(await h.bkToken(a))).status).toBe(200);
    // Deactivated again after the lift: in force again.
    expect((await deactivate(user.id)).status).toBe(200);
    expect((await h.exchange(await h.bkToken(a))).status).toBe(400);
  });
});

describe("the directory's inactive refuses on its own (defence in depth)", () => {
  it('an admin lifts the SCIM revocation, the person is still inactive: exchange 400, /v1/credentials 401, relay 401, each naming why; logged', async () => {
    const email = 'still-gone@acme.test';
    const user = (await scim.post('/Users', oktaUser(email))).body;
    const { a, b } = buildBy(h, email);
    expect((await deactivate(user.id)).status).toBe(200);
    const lift = await h.lift({ scope: 'user', id: email, reason: 'wrong person' });
    expect(lift.status).toBe(200);
    expect(lift.body).toMatchObject({ lifted: 1, still_revoked_by: [], still_revoked_until: null });
    expect(h.port.revocations.revocations.get('user', email)).toBeUndefined();

    const exchanged = await h.exchange(await h.bkToken(a));
    expect(exchanged.status).toBe(400);
    expect(exchanged.body).toEqual({ error: 'invalid_grant', error_description: CREATOR_INACTIVE_MESSAGE });
    const credential = await h.credential('deploy-token', await h.bkToken(b));
    expect(credential.status).toBe(401);
    expect(credential.body).toMatchObject({ error: 'invalid_token', error_description: CREATOR_INACTIVE_MESSAGE });
    const relay = await h.relayAnswer(await h.bkToken(b));
    expect(relay.status).toBe(401);
    expect(relay.body).toMatchObject({ error: 'invalid_token', error_description: CREATOR_INACTIVE_MESSAGE });
    // The person is not named to the caller.
    expect(JSON.stringify([exchanged.body, credential.body, relay.body])).not.toContain(email);

    const refusals = (await h.port.store.decisions.read(0, 100_000))
      .map((e) => e.record)
      .filter((r) => r.decision === 'deny' && r.context.refusal === 'creator_inactive' && r.principal === `Port::Job::"${a.jobId}"`);
    expect(refusals).toHaveLength(1);
    expect(refusals[0]).toMatchObject({ action: 'exchange', reason: CREATOR_INACTIVE_MESSAGE, context: { build_creator: { known: true, in_directory: true, active: false } } });

    // Re-activated through SCIM: the builds work again.
    expect((await activate(user.id)).status).toBe(200);
    expect((await h.exchange(await h.bkToken(a))).status).toBe(200);
    expect(await h.relay(await h.bkToken(b))).toBe(200);
  });

  it('a person SSO recorded as inactive (no SCIM, no revocation) is refused too', async () => {
    const email = 'sso-inactive@acme.test';
    await h.port.store.users.upsert({ email, active: false, groups: [], updatedAt: Date.now(), source: 'sso' });
    const { a } = buildBy(h, email);
    const res = await h.exchange(await h.bkToken(a));
    expect(res.body).toEqual({ error: 'invalid_grant', error_description: CREATOR_INACTIVE_MESSAGE });
    // A build by someone Port has no record of is not refused for it.
    const { a: stranger } = buildBy(h, 'not-in-directory@acme.test');
    expect((await h.exchange(await h.bkToken(stranger))).status).toBe(200);
  });
});

describe('a re-activation racing a deactivation', () => {
  it("the re-activation's lift runs after the deactivation committed and revoked: SCIM's revocation stays in force", async () => {
    const email = 'racer@acme.test';
    const user = (await scim.post('/Users', oktaUser(email))).body;
    const { a } = buildBy(h, email);
    expect((await deactivate(user.id)).status).toBe(200);

    // Hold the re-activation between its committed write and its effects (the lift), on
    // the SCIM repository Port's routes write through.
    const store = h.port.store;
    const scimRepo = store.scim;
    const original = scimRepo.replaceUser;
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let committed!: () => void;
    const activationCommitted = new Promise<void>((r) => (committed = r));
    scimRepo.replaceUser = async (next, version) => {
      const result = await original.call(scimRepo, next, version);
      if (next.id === user.id && next.active) {
        committed();
        await held;
      }
      return result;
    };
    try {
      const reactivation = activate(user.id);
      await activationCommitted;
      // The IdP's next message, a deactivation, runs to the end meanwhile.
      expect((await deactivate(user.id)).status).toBe(200);
      release();
      expect((await reactivation).status).toBe(200);
    } finally {
      scimRepo.replaceUser = original;
    }

    expect(await store.users.get(email)).toMatchObject({ active: false });
    expect(h.port.revocations.revocations.get('user', email)).toMatchObject({ origins: ['scim'] });
    const res = await h.exchange(await h.bkToken(a));
    expect(res.body.error_description).toBe('The person who started this build is revoked until they are re-activated; every token of their builds is refused.');
    const provision = (await records('scim_provision')).filter((r) => r.principal === `Port::User::"${email}"`).at(-1)!;
    expect(provision.context).toMatchObject({ revocation_lift: 'kept' });
    expect((await records('unrevoke')).some((r) => r.resource === `Port::User::"${email}"`)).toBe(false);
  });

  it('the deactivation lands between the lift reading the person (active) and writing the lift: its revocation is not lifted', async () => {
    const email = 'racer2@acme.test';
    const user = (await scim.post('/Users', oktaUser(email))).body;
    const { a } = buildBy(h, email);
    expect((await deactivate(user.id)).status).toBe(200);

    // Arm on the re-activation's commit; hold its lift just after it read the person.
    const store = h.port.store;
    const scimRepo = store.scim;
    const original = scimRepo.replaceUser;
    let armed = false;
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let read!: () => void;
    const liftRead = new Promise<void>((r) => (read = r));
    scimRepo.replaceUser = async (next, version) => {
      const result = await original.call(scimRepo, next, version);
      if (next.id === user.id && next.active) armed = true;
      return result;
    };
    const getUser = store.users.get.bind(store.users);
    store.users.get = async (who) => {
      const found = await getUser(who);
      if (armed && who === email) {
        armed = false;
        expect(found).toMatchObject({ active: true });
        read();
        await held;
      }
      return found;
    };
    try {
      const reactivation = activate(user.id);
      await liftRead;
      expect((await deactivate(user.id)).status).toBe(200);
      release();
      expect((await reactivation).status).toBe(200);
    } finally {
      scimRepo.replaceUser = original;
      store.users.get = getUser;
    }

    expect(await store.users.get(email)).toMatchObject({ active: false });
    expect(h.port.revocations.revocations.get('user', email)).toMatchObject({ origins: ['scim'] });
    expect((await h.exchange(await h.bkToken(a))).status).toBe(400);
    const provision = (await records('scim_provision')).filter((r) => r.principal === `Port::User::"${email}"`).at(-1)!;
    expect(provision.context).toMatchObject({ revocation_lift: 'kept' });
  });
});

describe('SCIM revocations survive pruning and a restart', () => {
  it('25 h later, pruned and purged, a new Port on the same store still refuses; SCIM re-activation there lifts it', async () => {
    const r = await startRevocationHarness({ scim: true });
    try {
      const email = 'restart-leaver@acme.test';
      const client = scimClient(r.url);
      const user = (await client.post('/Users', oktaUser(email))).body;
      const { a } = buildBy(r, email);
      expect((await client.patch(`/Users/${user.id}`, [{ op: 'replace', value: { active: false } }])).status).toBe(200);

      const later = Date.now() + DAY + 3600 * 1000;
      r.port.revocations.revocations.prune(later);
      await r.port.store.purgeExpired(later);
      expect(r.port.revocations.revocations.get('user', email, later)).toMatchObject({ origins: ['scim'] });
      await r.port.close();

      vi.useFakeTimers({ toFake: ['Date'] });
      vi.setSystemTime(later);
      const again = await startPort(r.config, { logger: false });
      try {
        // The in-memory list the new Port loaded agrees with the store.
        expect(again.revocations.revocations.get('user', email)).toMatchObject({ origins: ['scim'] });
        expect((await listed(again.url)).filter((x) => x.id === email)).toEqual([expect.objectContaining({ scope: 'user', expires_at: null, by: ['scim'] })]);
        const exchange = async () =>
          fetch(`${again.url}/oauth/token`, {
            method: 'POST',
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
            body: new URLSearchParams({
              grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
              subject_token: await r.bkToken(a),
              subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
            }).toString(),
          });
        expect((await exchange()).status).toBe(400);
        expect((await scimClient(again.url).patch(`/Users/${user.id}`, [{ op: 'replace', value: { active: true } }])).status).toBe(200);
        expect((await exchange()).status).toBe(200);
      } finally {
        await again.close();
      }
    } finally {
      vi.useRealTimers();
      await r.sim.close();
      await new Promise((done) => r.upstream.close(done));
      rmSync(r.dir, { recursive: true, force: true });
    }
  }, 60_000);
});
