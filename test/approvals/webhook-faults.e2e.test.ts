import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configFromObject } from '../../src/config/config.js';
import { startPort, type RunningPort, type StartOptions } from '../../src/server/port-server.js';
import { BuildkiteSimulator, type SimBuild } from '../../src/sim/index.js';
import type { WebhookWorkRecord } from '../../src/store/store.js';
import { APPROVAL_POLICIES } from '../helpers/approval-policies.js';
import { TEST_POLICIES } from '../helpers/port-harness.js';
import { failWrites } from '../webhooks/sqlite-fault.js';

/**
 * Against the Buildkite simulator: Buildkite's API down while a build
 * blocks, and a store write failing during the work. Port must neither lose the work nor
 * need a re-send — and must still process one, and deduplicate it once done.
 */

const SECRET = 'webhook-hmac-secret-faults';

/** Polls `check` (sync or async) until it yields a truthy value; the bound only catches a hang. */
async function waitUntil<T>(check: () => T | false | undefined | Promise<T | false | undefined>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

interface Running {
  dir: string;
  sim: BuildkiteSimulator;
  port: RunningPort;
  hook: string;
  close(): Promise<void>;
}

async function start(webhookRetry: StartOptions['webhookRetry']): Promise<Running> {
  const dir = mkdtempSync(join(tmpdir(), 'port-webhook-faults-'));
  mkdirSync(join(dir, 'policies'));
  for (const [name, text] of Object.entries({ ...TEST_POLICIES, 'approvals.cedar': APPROVAL_POLICIES })) writeFileSync(join(dir, 'policies', name), text);
  const sim = await BuildkiteSimulator.start({ organization: 'acme' });
  process.env.PORT_TEST_FAULTS_BK_API_TOKEN = sim.apiToken;
  process.env.PORT_TEST_FAULTS_WEBHOOK_SECRET = SECRET;
  const raw = {
    server: { listen: '127.0.0.1:0', public_url: 'https://port.acme.test', log_level: 'silent' },
    store: { sqlite: './port.db' },
    buildkite: {
      organization: 'acme',
      issuer: sim.issuer,
      jwks_url: sim.jwksUrl,
      audience: 'https://port.acme.test',
      api_url: sim.url,
      api_token: 'env:PORT_TEST_FAULTS_BK_API_TOKEN',
      webhook_secret: 'env:PORT_TEST_FAULTS_WEBHOOK_SECRET',
    },
    policies: './policies',
  };
  const config = configFromObject(raw, join(dir, 'port.yaml'));
  const port = await startPort(config, { logger: false, createStore: true, webhookRetry });
  return {
    dir,
    sim,
    port,
    hook: `${port.url}/webhooks/buildkite`,
    async close() {
      await port.close();
      await sim.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const steps = [{ type: 'command' as const, key: 'build', label: 'Build' }, { type: 'block' as const, key: 'deploy', label: 'Deploy to production?' }];
const nowSeconds = () => Math.floor(Date.now() / 1000);
const manualJob = (build: SimBuild) => build.jobs.find((j) => j.type === 'manual')!;

/** Waits until the delivery's work has failed at least once (Port recorded it pending, with why). */
async function failedOnce(r: Running): Promise<WebhookWorkRecord> {
  return waitUntil(
    async () => (await r.port.store.webhookWork.list('pending')).find((w) => w.event === 'build.finished' && w.attempts >= 1),
    30_000,
    'the work to fail once',
  );
}

describe('Buildkite API down while a build blocks: Port reconciles on its own', () => {
  let r: Running;
  beforeAll(async () => {
    r = await start({ retryBaseMs: 300, retryMaxMs: 1000, intervalMs: 50 });
  }, 60_000);
  afterAll(async () => r?.close());

  it('the API answers 503 when the block arrives; once it recovers, Port unblocks the step without any re-send', async () => {
    const rel = r.sim.createUser({ name: 'Rel Ease', email: 'rel@acme.test' });
    await r.port.store.users.upsert({ email: 'rel@acme.test', active: true, groups: ['deployers'], updatedAt: Date.now() });
    const build = r.sim.createBuild({ pipelineSlug: 'deploy', branch: 'main', tag: 'v2.0.0', creator: rel, steps });
    r.sim.setApiOutage({ mode: 'unavailable' });
    const delivery = await r.sim.blockAndNotify(r.hook, build, { secret: SECRET }, { timestamp: nowSeconds() - 10 });
    expect(delivery.status).toBe(202);

    const failed = await failedOnce(r);
    expect(failed.lastError).toMatch(/503|server error/i);
    expect(r.sim.apiRequests.some((q) => q.status === 503)).toBe(true);
    expect(r.sim.unblockCalls).toHaveLength(0);

    r.sim.setApiOutage(null);
    const call = await waitUntil(() => r.sim.unblockCalls.find((c) => c.jobId === manualJob(build).id), 30_000, 'Port to unblock on its own');
    expect(call.status).toBe(200);
    // Buildkite sent the event once; nothing was re-sent.
    expect(r.sim.webhookDeliveries.filter((d) => d.event === 'build.finished')).toHaveLength(1);
    await waitUntil(async () => (await r.port.store.webhookWork.list('done')).length === 1, 10_000, 'the work to be marked done');
    const log = await r.port.store.decisions.read(0, 100_000);
    expect(log.some((e) => e.record.action === 'unblocked' && (e.record.context as { job_id?: string }).job_id === manualJob(build).id)).toBe(true);

    // Done: a re-sent event is a duplicate and unblocks nothing again.
    // Buildkite re-sends the very event (same body, signed anew).
    const resent = await r.sim.deliverWebhook(r.hook, 'build.finished', null, { secret: SECRET }, { rawBody: delivery.request.body });
    expect(resent.status).toBe(202);
    expect(JSON.parse(resent.body)).toMatchObject({ duplicate: true });
    expect(r.sim.unblockCalls.filter((c) => c.jobId === manualJob(build).id)).toHaveLength(1);
  }, 60_000);

  it('a build that is no longer blocked when Port retries is dropped with a reason, not unblocked', async () => {
    const rel = r.sim.createUser({ name: 'Rel Two', email: 'rel2@acme.test' });
    await r.port.store.users.upsert({ email: 'rel2@acme.test', active: true, groups: ['deployers'], updatedAt: Date.now() });
    const build = r.sim.createBuild({ pipelineSlug: 'deploy', branch: 'main', tag: 'v2.0.1', creator: rel, steps });
    r.sim.setApiOutage({ mode: 'unavailable' });
    try {
      expect((await r.sim.blockAndNotify(r.hook, build, { secret: SECRET }, { timestamp: nowSeconds() - 10 })).status).toBe(202);
      await waitUntil(
        async () => (await r.port.store.webhookWork.list('pending')).some((w) => w.attempts >= 1),
        30_000,
        'the work to fail once',
      );
      // Meanwhile someone cancels the build in Buildkite.
      r.sim.cancelBuild(build);
    } finally {
      r.sim.setApiOutage(null);
    }
    await waitUntil(async () => (await r.port.store.webhookWork.list('dropped')).length === 1, 30_000, 'the work to be dropped');
    expect((await r.port.store.webhookWork.list('pending')).length).toBe(0);
    expect(r.sim.unblockCalls.some((c) => c.jobId === manualJob(build).id)).toBe(false);
  }, 60_000);
});

describe('a store write error while opening an approval request', () => {
  let r: Running;
  beforeAll(async () => {
    r = await start({ retryBaseMs: 300, retryMaxMs: 1000, intervalMs: 50 });
  }, 60_000);
  afterAll(async () => r?.close());

  it('the request and the decision that opened it are written together: the retry opens it, logged, not half done', async () => {
    const dev = r.sim.createUser({ name: 'Dev Eloper', email: 'dev@acme.test' });
    await r.port.store.users.upsert({ email: 'dev@acme.test', active: true, groups: [], updatedAt: Date.now() });
    const build = r.sim.createBuild({ pipelineSlug: 'deploy', branch: 'feature/x', creator: dev, steps });
    // The decision log refuses writes (SQLite itself, through a trigger) when the block arrives.
    const restore = failWrites(join(r.dir, 'port.db'), 'decisions');
    try {
      expect((await r.sim.blockAndNotify(r.hook, build, { secret: SECRET }, { timestamp: nowSeconds() - 10 })).status).toBe(202);
      const failed = await failedOnce(r);
      expect(failed.lastError).toMatch(/simulated write failure/);
      // Nothing half-written: no request without the decision that opened it.
      expect(await r.port.store.approvals.getByJob(manualJob(build).id)).toBeUndefined();
    } finally {
      restore();
    }
    const request = await waitUntil(() => r.port.store.approvals.getByJob(manualJob(build).id), 30_000, 'the retry to open the request');
    expect(request.status).toBe('pending');
    const log = await r.port.store.decisions.read(0, 100_000);
    const mine = log.filter((e) => (e.record.context as { job_id?: string }).job_id === manualJob(build).id);
    expect(mine.map((e) => `${e.record.action}:${e.record.decision}`)).toEqual(['unblock:deny', 'approval_requested:allow']);
    expect(r.sim.unblockCalls.some((c) => c.jobId === manualJob(build).id)).toBe(false);
  }, 60_000);
});

describe('job events: a store write error, then Port retries on its own', () => {
  let r: Running;
  beforeAll(async () => {
    r = await start({ retryBaseMs: 300, retryMaxMs: 1000, intervalMs: 50 });
  }, 60_000);
  afterAll(async () => r?.close());

  it('job.activated: the decision log refuses the write; once it takes writes again the observation is logged, once', async () => {
    const dev = r.sim.createUser({ name: 'Dev', email: 'dev-activated@acme.test' });
    const build = r.sim.createBuild({ pipelineSlug: 'deploy', branch: 'feature/activated', creator: dev, steps });
    const job = manualJob(build);
    const observed = async () =>
      (await r.port.store.decisions.read(0, 100_000)).filter((e) => e.record.action === 'unblock_observed' && (e.record.context as { job_id?: string }).job_id === job.id);
    const restore = failWrites(join(r.dir, 'port.db'), 'decisions');
    try {
      const delivery = await r.sim.deliverWebhook(r.hook, 'job.activated', r.sim.jobActivatedPayload(job, build), { secret: SECRET });
      expect(delivery.status).toBe(202);
      const failed = await waitUntil(
        async () => (await r.port.store.webhookWork.list('pending')).find((w) => w.event === 'job.activated' && w.attempts >= 1),
        30_000,
        'the failed write',
      );
      expect(failed.lastError).toMatch(/simulated write failure/);
    } finally {
      restore();
    }
    await waitUntil(async () => (await observed()).length === 1, 30_000, 'Port to log the observation on its own');
    await waitUntil(async () => (await r.port.store.webhookWork.list('pending')).length === 0, 10_000, 'no work left');
    expect(await observed()).toHaveLength(1);
  }, 60_000);

  it('job.finished: the revocation write fails (503); Port revokes the job on its own, without a re-send', async () => {
    const build = r.sim.createBuild({ pipelineSlug: 'deploy', branch: 'main', creator: null, steps: [{ type: 'command' }] });
    const buildJob = build.jobs[0]!;
    r.sim.finishBuildJob(buildJob);
    const payload = r.sim.jobFinishedPayload(r.sim.build(build.id)!.jobs[0]!, r.sim.build(build.id)!);
    const restore = failWrites(join(r.dir, 'port.db'), 'revocations');
    try {
      const failed = await r.sim.deliverWebhook(r.hook, 'job.finished', payload, { secret: SECRET });
      expect(failed.status).toBe(503);
      expect(JSON.parse(failed.body).error).toBe('webhook_handler_failed');
      expect(r.port.revocations.revocations.isJobRevoked(buildJob.id)).toBe(false);
    } finally {
      restore();
    }
    await waitUntil(() => r.port.revocations.revocations.isJobRevoked(buildJob.id), 30_000, 'Port to revoke the job on its own');
    expect(r.sim.webhookDeliveries.filter((d) => d.event === 'job.finished')).toHaveLength(1);
  }, 60_000);
});

describe('when Buildkite re-sends the event (Port\'s own retry far off)', () => {
  let r: Running;
  beforeAll(async () => {
    r = await start({ retryBaseMs: 3_600_000, retryMaxMs: 3_600_000 });
  }, 60_000);
  afterAll(async () => r?.close());

  it('API down at the first delivery: the re-sent event opens the approval request; after that re-sends are duplicates', async () => {
    const dev = r.sim.createUser({ name: 'Dev', email: 'dev@acme.test' });
    const build = r.sim.createBuild({ pipelineSlug: 'deploy', branch: 'feature/faults', creator: dev, steps });
    const job = manualJob(build);
    r.sim.setApiOutage({ mode: 'unavailable' });
    const t = nowSeconds();
    expect((await r.sim.blockAndNotify(r.hook, build, { secret: SECRET }, { timestamp: t - 30 })).status).toBe(202);
    await failedOnce(r);
    r.sim.setApiOutage(null);
    expect(await r.port.store.approvals.getByJob(job.id)).toBeUndefined();

    const resent = await r.sim.blockAndNotify(r.hook, build, { secret: SECRET }, { timestamp: t - 20 });
    expect(resent.status).toBe(202);
    expect(JSON.parse(resent.body)).toEqual({ accepted: true, event: 'build.finished' });
    const request = await waitUntil(() => r.port.store.approvals.getByJob(job.id), 30_000, 'the approval request');
    expect(request).toMatchObject({ status: 'pending', authors: ['dev@acme.test'] });

    await waitUntil(async () => (await r.port.store.webhookWork.get((await r.port.store.webhookWork.list())[0]!.key))?.status === 'done', 10_000, 'done');
    const again = await r.sim.blockAndNotify(r.hook, build, { secret: SECRET }, { timestamp: t - 10 });
    expect(JSON.parse(again.body)).toMatchObject({ duplicate: true });
    const replay = await fetch(r.hook, { method: 'POST', headers: again.request.headers, body: again.request.body });
    expect(replay.status).toBe(409);
  }, 60_000);

  it('a store write error while opening the request: the re-sent event opens it', async () => {
    const dev = r.sim.createUser({ name: 'Dev Two', email: 'dev2@acme.test' });
    const build = r.sim.createBuild({ pipelineSlug: 'deploy', branch: 'feature/store-fault', creator: dev, steps });
    const job = manualJob(build);
    const restore = failWrites(join(r.dir, 'port.db'), 'approval_requests');
    const t = nowSeconds();
    try {
      expect((await r.sim.blockAndNotify(r.hook, build, { secret: SECRET }, { timestamp: t - 30 })).status).toBe(202);
      const failed = await waitUntil(
        async () => (await r.port.store.webhookWork.list('pending')).find((w) => w.attempts >= 1),
        30_000,
        'the failed write',
      );
      expect(failed.lastError).toMatch(/simulated write failure/);
    } finally {
      restore();
    }
    expect(await r.port.store.approvals.getByJob(job.id)).toBeUndefined();
    const resent = await r.sim.blockAndNotify(r.hook, build, { secret: SECRET }, { timestamp: t - 20 });
    expect(JSON.parse(resent.body)).toEqual({ accepted: true, event: 'build.finished' });
    const request = await waitUntil(() => r.port.store.approvals.getByJob(job.id), 30_000, 'the approval request');
    expect(request.status).toBe('pending');
  }, 60_000);
});
