import { rmSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { startPort } from '../../src/server/port-server.js';
import { StoreError } from '../../src/errors.js';
import { startRevocationHarness, WEBHOOK_SECRET, type RevocationHarness } from './support.js';

let h: RevocationHarness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

describe('revocations survive a restart', () => {
  it('a new Port on the same store refuses what was revoked, by every scope', async () => {
    const harness = await startRevocationHarness();
    const creator = harness.sim.createUser({ name: 'Rita', email: 'rita@acme.test' });
    const build = harness.sim.createBuild({ pipelineSlug: 'deploy', branch: 'main', creator, steps: [{ type: 'command' }, { type: 'command' }] });
    const [byUser, byBuild] = build.jobs.map((j) => j.oidcJob!);
    const byJob = harness.sim.createJob();
    const byAgent = harness.sim.createJob();
    const byPool = harness.sim.createJob({ clusterName: 'gpu', queueKey: 'train' });
    // Jobs of real builds (their creator is known), so the user revocation below leaves them alone.
    const other = harness.sim.createUser({ name: 'Otto', email: 'otto@acme.test' });
    const untouched = harness.sim.createBuild({ pipelineSlug: 'deploy', branch: 'main', creator: other, steps: [{ type: 'command' }] }).jobs[0]!.oidcJob!;
    const liftedBuild = harness.sim.createBuild({ pipelineSlug: 'deploy', branch: 'main', creator: other, steps: [{ type: 'command' }] });
    const tokens = {
      user: await harness.portToken(byUser!),
      job: await harness.portToken(byJob),
      agent: await harness.portToken(byAgent),
      pool: await harness.portToken(byPool),
      untouched: await harness.portToken(untouched),
    };
    const buildToken = await harness.portToken(byBuild!);
    const liftedToken = await harness.portToken(liftedBuild.jobs[0]!.oidcJob!);
    const fresh = harness.sim.createBuild({ pipelineSlug: 'deploy', branch: 'main', creator: null, steps: [{ type: 'command' }] });
    for (const body of [
      { scope: 'user', id: 'rita@acme.test' },
      { scope: 'job', id: byJob.jobId },
      { scope: 'agent', id: byAgent.agentId },
      { scope: 'pool', id: 'gpu/train' },
      { scope: 'build', id: `acme/deploy/${fresh.number}` },
    ]) {
      expect((await harness.revoke(body)).status).toBe(200);
    }
    // Revoked, then lifted: stays lifted after the restart.
    expect((await harness.revoke({ scope: 'build', id: `acme/deploy/${liftedBuild.number}` })).status).toBe(200);
    expect((await harness.lift({ scope: 'build', id: `acme/deploy/${liftedBuild.number}` })).status).toBe(200);
    await harness.port.close();

    const again = await startPort(harness.config, { logger: false });
    try {
      const introspect = async (token: string) => {
        const res = await fetch(`${again.url}/oauth/introspect`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: 'Bearer introspection-secret' },
          body: new URLSearchParams({ token }).toString(),
        });
        return ((await res.json()) as { active: boolean }).active;
      };
      for (const scope of ['user', 'job', 'agent', 'pool'] as const) expect(await introspect(tokens[scope]), scope).toBe(false);
      expect(await introspect(tokens.untouched)).toBe(true);
      expect(await introspect(liftedToken)).toBe(true);
      expect(again.revocations.revocations.get('build', `acme/deploy/${liftedBuild.number}`)).toBeUndefined();
      // Still a standing revocation after the restart: a fresh Buildkite token of Rita's build buys nothing.
      expect(again.revocations.revocations.get('user', 'rita@acme.test')?.expiresAt).toBeGreaterThan(Date.now() + 23 * 3600 * 1000);
      // The same build's other job was covered by the user revocation (its creator).
      expect(await introspect(buildToken)).toBe(false);
      // A revoked build's Buildkite tokens still buy nothing after the restart.
      const res = await fetch(`${again.url}/oauth/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
          subject_token: await harness.bkToken(fresh.jobs[0]!.oidcJob!),
          subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
        }).toString(),
      });
      expect(res.status).toBe(400);
      expect(again.revocations.revocations.list().length).toBeGreaterThanOrEqual(5);
    } finally {
      await again.close();
      await harness.sim.close();
      await new Promise((r) => harness.upstream.close(r));
      rmSync(harness.dir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe('job.finished: the revocation is durable before Buildkite gets an answer', () => {
  it('a failed store write answers 503, spends nothing, and the re-sent event revokes the job', async () => {
    h = await startRevocationHarness();
    const build = h.sim.createBuild({ pipelineSlug: 'deploy', branch: 'main', creator: null, steps: [{ type: 'command' }] });
    const buildJob = build.jobs[0]!;
    const token = await h.portToken(buildJob.oidcJob!);
    h.sim.finishBuildJob(buildJob);
    const payload = h.sim.jobFinishedPayload(h.sim.build(build.id)!.jobs[0]!, h.sim.build(build.id)!);
    const hook = `${h.url}/webhooks/buildkite`;

    const store = h.port.store;
    const original = store.revocations.add.bind(store.revocations);
    let failures = 1;
    store.revocations.add = async (entry) => {
      if (failures-- > 0) throw new StoreError('disk full (test)');
      return original(entry);
    };
    try {
      // Each delivery is signed at its own second, as Buildkite's re-sends are.
      const t = Math.floor(Date.now() / 1000);
      const failed = await h.sim.deliverWebhook(hook, 'job.finished', payload, { secret: WEBHOOK_SECRET }, { timestamp: t - 30 });
      expect(failed.status).toBe(503);
      expect(JSON.parse(failed.body).error).toBe('webhook_handler_failed');
      expect(await h.introspect(token)).toBe(true);

      // Buildkite (or an operator) sends the same event again: new signature, same body.
      const resent = await h.sim.deliverWebhook(hook, 'job.finished', payload, { secret: WEBHOOK_SECRET }, { timestamp: t - 20 });
      expect(resent.status).toBe(202);
      // Answered only once durable: refused at once, no waiting.
      expect(await h.introspect(token)).toBe(false);
      expect(await h.relay(token)).toBe(401);

      const duplicate = await h.sim.deliverWebhook(hook, 'job.finished', payload, { secret: WEBHOOK_SECRET }, { timestamp: t - 10 });
      expect(duplicate.status).toBe(202);
      expect(JSON.parse(duplicate.body)).toMatchObject({ duplicate: true });
      const replay = await h.sim.deliverWebhook(hook, 'job.finished', payload, { secret: WEBHOOK_SECRET }, { timestamp: t - 10 });
      expect(replay.status).toBe(409);
      const log = await store.decisions.read(0, 100_000);
      expect(log.filter((e) => e.record.action === 'revoke' && e.record.principal === `Port::Job::"${buildJob.id}"`)).toHaveLength(1);
    } finally {
      store.revocations.add = original;
    }
  }, 60_000);
});
