/**
 * A Buildkite token revoked by its `jti` is refused
 * everywhere it is accepted (the relay with `relay.accept_buildkite_tokens`, the exchange,
 * /v1/credentials); and a lift never undoes a job's own end — `job.finished`, the
 * plugin's pre-exit revocation — nor a holder's RFC 7009 revocation (409 naming why).
 */
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildBy, startRevocationHarness, WEBHOOK_SECRET, type RevocationHarness } from './support.js';

let h: RevocationHarness;
beforeAll(async () => {
  h = await startRevocationHarness({ relayBuildkiteTokens: true });
}, 60_000);
afterAll(async () => {
  await h?.close();
});

describe('revoking a Buildkite token by its jti', () => {
  it('the relay refuses that token from the next request; the same job’s other tokens still work; the exchange and /v1/credentials refuse it too', async () => {
    const { a } = buildBy(h, 'leak@acme.test');
    const leaked = await h.bkToken(a);
    const other = await h.bkToken(a);
    expect(await h.relay(leaked)).toBe(200);

    const jti = String(decodeJwt(leaked).jti);
    const revoked = await h.revoke({ scope: 'token', id: jti, reason: 'leaked in a build log' });
    expect(revoked.status).toBe(200);
    expect(revoked.body.note).toMatch(/^The token is refused from now on\./);

    const relay = await h.relayAnswer(leaked);
    expect(relay.status).toBe(401);
    expect(relay.body).toMatchObject({ error: 'invalid_token', error_description: 'This token was revoked.' });
    expect(await h.relay(other)).toBe(200);

    const exchanged = await h.exchange(leaked);
    expect(exchanged.status).toBe(400);
    expect(exchanged.body).toEqual({ error: 'invalid_grant', error_description: 'This token was revoked.' });
    const credential = await h.credential('deploy-token', leaked);
    expect(credential.status).toBe(401);
    expect(credential.body).toMatchObject({ error: 'invalid_token', error_description: 'This token was revoked.' });
  });

  it('through the CLI by jti, and a revoked token is refused again after the relay cached it as valid', async () => {
    const { b } = buildBy(h, 'leak2@acme.test');
    const leaked = await h.bkToken(b);
    for (let i = 0; i < 2; i++) expect(await h.relay(leaked)).toBe(200);
    const out = await h.cli(['token', String(decodeJwt(leaked).jti), '--reason', 'leaked']);
    expect(out.code, out.stderr).toBe(0);
    expect(await h.relay(leaked)).toBe(401);
  });
});

describe('a finished job stays finished', () => {
  const finish = async (jobId: string, buildId: string) => {
    const build = h.sim.build(buildId)!;
    const job = build.jobs.find((j) => j.id === jobId)!;
    h.sim.finishBuildJob(job);
    const after = h.sim.build(buildId)!;
    const res = await h.sim.deliverWebhook(`${h.url}/webhooks/buildkite`, 'job.finished', h.sim.jobFinishedPayload(after.jobs.find((j) => j.id === jobId)!, after), {
      secret: WEBHOOK_SECRET,
    });
    expect(res.status).toBe(202);
  };

  it("an admin's revocation of a finished job is lifted, job.finished's is not: still refused, and a second lift is 409", async () => {
    const { build, a } = buildBy(h, 'finisher@acme.test');
    const token = await h.portToken(a);
    expect((await h.revoke({ scope: 'job', id: a.jobId, reason: 'incident' })).status).toBe(200);
    await finish(a.jobId, build.id);

    const lift = await h.lift({ scope: 'job', id: a.jobId, reason: 'false alarm' });
    expect(lift.status).toBe(200);
    expect(lift.body).toMatchObject({ lifted: 1, still_revoked_by: ['webhook'] });
    expect(typeof lift.body.still_revoked_until).toBe('string');
    expect(await h.relay(token)).toBe(401);
    // The same through the CLI: it says what stays and why.
    expect((await h.revoke({ scope: 'job', id: a.jobId, reason: 'incident, again' })).status).toBe(200);
    const cliLift = await h.cli(['job', a.jobId, '--lift']);
    expect(cliLift.code, cliLift.stderr).toBe(0);
    expect(cliLift.stdout).toContain(`still revoked until ${lift.body.still_revoked_until}, by webhook (a finished job's or a holder's own revocation is never lifted)`);
    expect(await h.relay(await h.bkToken(a))).toBe(401);
    expect((await h.exchange(await h.bkToken(a))).status).toBe(400);

    const again = await h.lift({ scope: 'job', id: a.jobId });
    expect(again.status).toBe(409);
    expect(again.body).toEqual({
      error: 'not_liftable',
      error_description: "The job has finished (job.finished) or revoked itself, and a finished job stays finished: that revocation can't be lifted; nothing was lifted.",
    });
    const cli = await h.cli(['job', a.jobId, '--lift']);
    expect(cli.code).toBe(1);
    expect(cli.stderr).toMatch(/refused \(409 not_liftable\)/);
    expect(await h.relay(token)).toBe(401);
  });

  it("a job's own pre-exit revocation can't be lifted (409); nothing is logged as lifted", async () => {
    const { b } = buildBy(h, 'selfrevoker@acme.test');
    const token = await h.portToken(b);
    expect((await h.revoke({ scope: 'job', id: b.jobId }, token)).status).toBe(200);
    const lift = await h.lift({ scope: 'job', id: b.jobId });
    expect(lift.status).toBe(409);
    expect(lift.body.error).toBe('not_liftable');
    expect(await h.relay(token)).toBe(401);
    const unrevokes = (await h.port.store.decisions.read(0, 100_000)).filter((e) => e.record.action === 'unrevoke' && e.record.resource === `Port::Job::"${b.jobId}"`);
    expect(unrevokes).toHaveLength(0);
  });

  it("a holder's RFC 7009 revocation of its token can't be lifted either", async () => {
    const { a } = buildBy(h, 'holder@acme.test');
    const token = await h.portToken(a);
    expect((await h.post('/oauth/revoke', { token })).status).toBe(200);
    const lift = await h.lift({ scope: 'token', id: String(decodeJwt(token).jti) });
    expect(lift.status).toBe(409);
    expect(lift.body.error_description).toBe("The token's holder revoked it (RFC 7009), and a token given up stays given up: that revocation can't be lifted; nothing was lifted.");
    expect(await h.relay(token)).toBe(401);
  });
});
