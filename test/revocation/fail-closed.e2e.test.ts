/**
 * Revocations whose reach Port can't rule out fail closed:
 * - pool: the pool is named only by optional claims the job chooses to ask for, so while a
 *   pool revocation is in force a token without `cluster_name`/`queue_key` is refused;
 * - user: the creator comes from the Buildkite API, so while a user revocation is in force
 *   an exchange whose creator lookup fails is refused (503, retry), and a Port token minted
 *   with the creator unknown (`build_creator_unknown`) is refused.
 * Driven over HTTP: exchange, relay (Port and Buildkite tokens), introspection, /v1/credentials.
 */
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildBy, startRevocationHarness, works, type RevocationHarness } from './support.js';

describe('pool revocation: a token that does not name its pool is refused while one is in force', () => {
  let h: RevocationHarness;
  beforeAll(async () => {
    h = await startRevocationHarness({ relayBuildkiteTokens: true });
  }, 60_000);
  afterAll(async () => {
    await h?.close();
  });

  it("the attack: a Buildkite token requested without --claim, minted before the revocation, buys nothing", async () => {
    const job = h.sim.createJob({ clusterName: 'linux', queueKey: 'evil-pool' });
    const withClaims = await h.portToken(job);
    const bare = await h.sim.mintToken(job, { audience: h.audience }); // no --claim cluster_name,queue_key
    const bareForRelay = await h.sim.mintToken(job, { audience: h.audience });
    const bareForCredentials = await h.sim.mintToken(job, { audience: h.audience });
    expect(decodeJwt(bare).cluster_name).toBeUndefined();

    expect((await h.revoke({ scope: 'pool', id: 'linux/evil-pool' })).status).toBe(200);
    expect(await h.relay(withClaims)).toBe(401);

    const ex = await h.exchange(bare);
    expect(ex.status).toBe(400);
    expect(ex.body.error).toBe('invalid_grant');
    expect(ex.body.error_description).toMatch(/pool revocation is in force and this token lacks the cluster_name and queue_key claims/);
    expect(ex.body.error_description).not.toContain('evil-pool');

    const relayed = await h.relayAnswer(bareForRelay);
    expect(relayed.status).toBe(401);
    expect(relayed.body.error_description).toMatch(/lacks the cluster_name and queue_key claims/);
    const cred = await h.credential('deploy-token', bareForCredentials);
    expect(cred.status).toBe(401);
    expect(cred.body.error).toBe('invalid_token');

    const log = (await h.port.store.decisions.read(0, 100_000)).map((e) => e.record);
    const refusal = log.filter((r) => r.action === 'exchange' && r.decision === 'deny' && r.principal === `Port::Job::"${job.jobId}"`).at(-1)!;
    expect(refusal.context).toMatchObject({ check: 'job_revoked', revocation: { scope: 'pool', kind: 'pool_unknown', missing_claims: ['cluster_name', 'queue_key'] } });
    expect((await h.lift({ scope: 'pool', id: 'linux/evil-pool' })).status).toBe(200);
  });

  it("refuses every pool-less token — even another pool's job's — until the revocation is lifted; tokens naming another pool are untouched", async () => {
    const elsewhere = h.sim.createJob({ clusterName: 'linux', queueKey: 'builds' });
    const poolless = await h.exchange(await h.sim.mintToken(elsewhere, { audience: h.audience }));
    expect(poolless.status).toBe(200);
    const portTokenWithoutPool = poolless.body.access_token as string;
    const named = await h.portToken(elsewhere);
    const halfNamed = h.sim.createJob({ clusterName: 'linux', queueKey: 'builds' });

    expect((await h.revoke({ scope: 'pool', id: 'linux/deploy' })).status).toBe(200);
    expect(await works(h, portTokenWithoutPool)).toBe(false);
    expect((await h.relayAnswer(portTokenWithoutPool)).body.error_description).toMatch(/can't tell its pool/);
    expect((await h.credential('deploy-token', portTokenWithoutPool)).status).toBe(401);
    expect(await works(h, named)).toBe(true);
    // Only one of the two claims asked for: the description names the one missing.
    const half = await h.exchange(await h.sim.mintToken(halfNamed, { audience: h.audience, claims: ['cluster_name'] }));
    expect(half.status).toBe(400);
    expect(half.body.error_description).toMatch(/lacks the queue_key claim,/);

    expect((await h.lift({ scope: 'pool', id: 'linux/deploy' })).status).toBe(200);
    expect(await works(h, portTokenWithoutPool)).toBe(true);
    expect((await h.exchange(await h.sim.mintToken(halfNamed, { audience: h.audience, claims: ['cluster_name'] }))).status).toBe(200);
  });
});

describe('user revocation does not fail open when the creator is unknown', () => {
  let h: RevocationHarness;
  beforeAll(async () => {
    h = await startRevocationHarness({ relayBuildkiteTokens: true });
  }, 60_000);
  afterAll(async () => {
    h?.sim.failApiRequests(0);
    await h?.close();
  });

  const apiDown = () => h.sim.failApiRequests(1000, 503);
  const apiUp = () => h.sim.failApiRequests(0);

  it('a Port token minted while the Buildkite API was down is marked, and refused once a user revocation is made', async () => {
    const { a } = buildBy(h, 'innocent@acme.test');
    const known = buildBy(h, 'known@acme.test');
    const tKnown = await h.portToken(known.a);
    apiDown();
    let tUnknown: string;
    try {
      // No user revocation in force yet: the exchange proceeds with the creator unknown.
      tUnknown = await h.portToken(a);
    } finally {
      apiUp();
    }
    expect(decodeJwt(tUnknown).build_creator_unknown).toBe(true);
    expect(decodeJwt(tUnknown).build_creator).toBeUndefined();
    expect(decodeJwt(tKnown).build_creator_unknown).toBeUndefined();
    expect(await works(h, tUnknown)).toBe(true);

    // The scenario: U is revoked; a token whose creator Port never learned might be U's.
    expect((await h.revoke({ scope: 'user', id: 'someone@acme.test' })).status).toBe(200);
    expect(await works(h, tUnknown)).toBe(false);
    expect((await h.relayAnswer(tUnknown)).body.error_description).toMatch(/couldn't tell who started the build, and a user revocation has been made since/);
    expect((await h.credential('deploy-token', tUnknown)).status).toBe(401);
    expect(await works(h, tKnown)).toBe(true);
    expect((await h.lift({ scope: 'user', id: 'someone@acme.test' })).status).toBe(200);
    expect(await works(h, tUnknown)).toBe(true);
  });

  it('while a user revocation is in force, an exchange or relay call whose creator lookup fails is refused with 503 (retry), and works once the API answers', async () => {
    expect((await h.revoke({ scope: 'user', id: 'mallory@acme.test' })).status).toBe(200);
    const { a, b } = buildBy(h, 'mallory@acme.test');
    const other = buildBy(h, 'bystander@acme.test');
    apiDown();
    try {
      const ex = await h.exchange(await h.bkToken(a));
      expect(ex.status).toBe(503);
      expect(ex.body).toEqual({
        error: 'temporarily_unavailable',
        error_description: "Port can't tell who started this build (the Buildkite API did not answer) while a user revocation is in force; retry.",
      });
      // The relay, with a Buildkite token directly: the same, and not remembered for the token.
      const bk = await h.bkToken(b);
      const relayed = await h.relayAnswer(bk);
      expect(relayed.status).toBe(503);
      expect(relayed.body.error).toBe('temporarily_unavailable');
      expect((await h.exchange(await h.bkToken(other.a))).status).toBe(503);
      apiUp();
      // Mallory's build: now known, and refused as hers; the bystander's: allowed.
      expect((await h.relayAnswer(bk)).status).toBe(401);
      expect((await h.exchange(await h.bkToken(a))).status).toBe(400);
      expect((await h.exchange(await h.bkToken(other.b))).status).toBe(200);
    } finally {
      apiUp();
    }
    const log = (await h.port.store.decisions.read(0, 100_000)).map((e) => e.record);
    const refusal = log.find((r) => r.action === 'exchange' && r.decision === 'deny' && r.principal === `Port::Job::"${a.jobId}"`)!;
    expect(refusal.context).toMatchObject({ check: 'creator_unknown', revocation: { scope: 'user', kind: 'creator_unknown', creator_unknown: 'now' } });
  });
});

describe('without buildkite.api_token Port never knows creators', () => {
  it('a user revocation says it covers only tokens whose creator Port knew, and does not stop every exchange', async () => {
    const h = await startRevocationHarness({ buildkiteApi: false });
    try {
      const { a } = buildBy(h, 'nobody-knows@acme.test');
      const before = await h.portToken(a);
      expect(decodeJwt(before).build_creator_unknown).toBeUndefined();
      const res = await h.revoke({ scope: 'user', id: 'nobody-knows@acme.test' });
      expect(res.status).toBe(200);
      expect(res.body.creator_coverage).toMatch(/no buildkite\.api_token.*covers only tokens whose creator Port knew/);
      const out = await h.cli(['user', 'nobody-knows@acme.test']);
      expect(out.stdout).toContain('covers only tokens whose creator Port knew');
      // Fail closed would mean no exchange at all for as long as it lasts; Port can't know, and says so.
      expect(await works(h, before)).toBe(true);
      expect((await h.exchange(await h.bkToken(a))).status).toBe(200);
    } finally {
      await h.close();
    }
  }, 60_000);
});
