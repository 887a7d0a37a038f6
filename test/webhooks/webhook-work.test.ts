import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import type { WebhookHandlers } from '../../src/webhooks/webhook-route.js';
import { WebhookReconciler } from '../../src/webhooks/webhook-reconciler.js';
import { describeOutcome, WebhookWork, type WebhookWorkOutcome } from '../../src/webhooks/webhook-work.js';
import { waitUntil } from '../helpers/relay/util.js';
import { failWrites } from './sqlite-fault.js';
import { buildFinishedBody, jobBody, signatureHeader, startWebhookHarness, type Harness } from './support.js';

const nowSeconds = () => Math.floor(Date.now() / 1000);
let n = 0;
/** A build.finished payload no other test sends. */
const uniqueBuild = () => {
  const body = buildFinishedBody();
  (body.build as Record<string, unknown>).number = 5000 + ++n;
  return body;
};
const uniqueJob = (event: 'job.finished' | 'job.activated') => jobBody(event, { id: `01908f3a-9999-4b5c-9a43-${String(++n).padStart(12, '0')}` });
/** Two SqliteStores on one file, as two Port processes have; closed and removed after the test. */
function twoStoresOnOneFile(): [SqliteStore, SqliteStore] {
  const dir = mkdtempSync(join(tmpdir(), 'port-webhook-work-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'port.db');
  const stores: [SqliteStore, SqliteStore] = [SqliteStore.open(path), SqliteStore.open(path)];
  cleanups.push(async () => void (await Promise.all(stores.map((s) => s.close()))));
  return stores;
}

const harnesses: Harness[] = [];
const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const h of harnesses.splice(0)) await h.close();
  for (const c of cleanups.splice(0).reverse()) await c();
});
async function harness(opts: Parameters<typeof startWebhookHarness>[0] = {}): Promise<Harness> {
  const h = await startWebhookHarness(opts);
  harnesses.push(h);
  return h;
}

/** Handlers that fail their first `failures` calls, then record the payload. */
function failingFirst(failures: number, seen: { calls: number; ok: number }): WebhookHandlers {
  const once = async () => {
    seen.calls++;
    if (seen.calls <= failures) throw new Error('Buildkite answered 503 (test)');
    seen.ok++;
  };
  return { buildFinished: once, jobFinished: once, jobActivated: once };
}

const outcomesOf = (h: Harness, kind: WebhookWorkOutcome['kind']) => h.calls.outcomes.filter((o) => o.kind === kind);

describe('a delivery whose work failed is processed again when Buildkite re-sends it', () => {
  for (const event of ['build.finished', 'job.activated'] as const) {
    it(`${event}: the re-send (new signature, same body) runs it again; once done, re-sends are duplicates and the same bytes a replay`, async () => {
      const seen = { calls: 0, ok: 0 };
      const h = await harness({ handlers: () => failingFirst(1, seen) });
      const payload = event === 'build.finished' ? uniqueBuild() : uniqueJob(event);
      const t = nowSeconds();

      const first = await h.deliver(event, payload, { timestamp: t - 30 });
      expect(first.status).toBe(202);
      await waitUntil(() => outcomesOf(h, 'retry_scheduled').length === 1, 5000, 'the failure to be recorded');
      expect(h.calls.errors.map((e) => (e as Error).message)).toEqual(['Buildkite answered 503 (test)']);

      const resent = await h.deliver(event, payload, { timestamp: t - 20 });
      expect(resent.status).toBe(202);
      expect(resent.body).toEqual({ accepted: true, event });
      await waitUntil(() => seen.ok === 1, 5000, 'the re-sent delivery to be processed');

      // Done: the dedupe key is spent now.
      const duplicate = await h.deliver(event, payload, { timestamp: t - 10 });
      expect(duplicate.body).toEqual({ accepted: true, event, duplicate: true });
      const body = JSON.stringify(payload);
      const headers = { 'x-buildkite-event': event, 'x-buildkite-signature': signatureHeader(body, t - 10) };
      const replay = await h.post(body, headers);
      expect(replay.status).toBe(409);
      expect(replay.body.error).toBe('replayed_delivery');
      await new Promise((r) => setTimeout(r, 50));
      expect(seen).toEqual({ calls: 2, ok: 1 });
    });
  }

  it('job.finished: a failure answers 503 with the work left pending; the re-send is processed, then deduplicated', async () => {
    const seen = { calls: 0, ok: 0 };
    const h = await harness({ handlers: () => failingFirst(1, seen) });
    const payload = uniqueJob('job.finished');
    const t = nowSeconds();
    const failed = await h.deliver('job.finished', payload, { timestamp: t - 30 });
    expect(failed.status).toBe(503);
    expect(failed.body.error).toBe('webhook_handler_failed');
    const pending = await h.store.webhookWork.list('pending');
    expect(pending).toHaveLength(1);
    expect(pending[0]).toMatchObject({ event: 'job.finished', attempts: 1, lastError: 'Buildkite answered 503 (test)', leaseOwner: null });
    // The stored payload is the validated one: fields Port doesn't use are not kept.
    expect(pending[0]!.payload).not.toMatch(/"(env|meta_data|retry_source|avatar_url)"/);

    expect((await h.deliver('job.finished', payload, { timestamp: t - 20 })).status).toBe(202);
    expect(seen.ok).toBe(1);
    expect((await h.deliver('job.finished', payload, { timestamp: t - 10 })).body).toMatchObject({ duplicate: true });
    expect(seen.calls).toBe(2);
  });

  it('token mode: the same body again after a failure is processed (not refused); after success it is refused as a replay', async () => {
    const seen = { calls: 0, ok: 0 };
    const h = await harness({ secret: undefined, token: 'whtok-0123456789', handlers: () => failingFirst(1, seen) });
    const body = JSON.stringify(uniqueBuild());
    const headers = { 'x-buildkite-event': 'build.finished', 'x-buildkite-token': 'whtok-0123456789' };
    expect((await h.post(body, headers)).status).toBe(202);
    await waitUntil(() => outcomesOf(h, 'retry_scheduled').length === 1, 5000, 'the failure');
    expect((await h.post(body, headers)).status).toBe(202);
    await waitUntil(() => seen.ok === 1, 5000, 'the second delivery to be processed');
    const replay = await h.post(body, headers);
    expect(replay.status).toBe(409);
    expect(replay.body.error).toBe('replayed_delivery');
    expect(seen.calls).toBe(2);
  });
});

describe('a store write error during the work', () => {
  /** Handlers whose work is a real store write (a user record). */
  const writing = (h: () => Harness): WebhookHandlers => {
    const write = async (email: string) => h().store.users.upsert({ email, active: true, groups: [], updatedAt: Date.now() });
    return {
      buildFinished: async (p) => void (await write(`build-${p.build.number}@acme.test`)),
      jobFinished: async (p) => void (await write(`finished-${p.job.id}@acme.test`)),
      jobActivated: async (p) => void (await write(`activated-${p.job.id}@acme.test`)),
    };
  };

  for (const event of ['build.finished', 'job.activated', 'job.finished'] as const) {
    it(`${event}: SQLite refuses the handler's write once; the re-sent delivery is processed`, async () => {
      let h!: Harness;
      h = await harness({ handlers: () => writing(() => h) });
      const payload = event === 'build.finished' ? uniqueBuild() : uniqueJob(event);
      const email =
        event === 'build.finished'
          ? `build-${(payload.build as { number: number }).number}@acme.test`
          : `${event === 'job.finished' ? 'finished' : 'activated'}-${(payload.job as { id: string }).id}@acme.test`;
      const restore = failWrites(h.store.path, 'users');
      cleanups.push(restore);
      const t = nowSeconds();
      const first = await h.deliver(event, payload, { timestamp: t - 20 });
      expect(first.status).toBe(event === 'job.finished' ? 503 : 202);
      await waitUntil(() => outcomesOf(h, 'retry_scheduled').length === 1, 5000, 'the failed write');
      expect(String((h.calls.errors[0] as Error).message)).toMatch(/simulated write failure/);
      expect(await h.store.users.get(email)).toBeUndefined();
      restore();

      const resent = await h.deliver(event, payload, { timestamp: t - 10 });
      expect(resent.status).toBe(202);
      expect(resent.body).toEqual({ accepted: true, event });
      await waitUntil(async () => (await h.store.users.get(email)) !== undefined, 5000, 'the re-sent delivery to write');
      expect((await h.deliver(event, payload, { timestamp: t })).body).toMatchObject({ duplicate: true });
    });
  }

  it('the store refusing to record a delivery answers 503 webhook_store_unavailable; nothing is spent, so the re-send is processed', async () => {
    const seen = { calls: 0, ok: 0 };
    const h = await harness({ handlers: () => failingFirst(0, seen) });
    const restore = failWrites(h.store.path, 'webhook_work');
    cleanups.push(restore);
    const payload = uniqueBuild();
    const t = nowSeconds();
    const refused = await h.deliver('build.finished', payload, { timestamp: t - 10 });
    expect(refused.status).toBe(503);
    expect(refused.body).toEqual({
      error: 'webhook_store_unavailable',
      error_description: 'Port could not record the delivery in its store; nothing was spent, so a re-sent delivery is processed.',
    });
    expect(refused.text).not.toMatch(/at .*\.ts|simulated/);
    expect(seen.calls).toBe(0);
    restore();
    expect((await h.deliver('build.finished', payload, { timestamp: t })).status).toBe(202);
    await waitUntil(() => seen.ok === 1, 5000, 'the re-sent delivery to be processed');
  });
});

describe('Port retries failed work on its own', () => {
  it('with a doubling, jittered backoff capped at retryMaxMs, until it succeeds; then a re-send is a duplicate', async () => {
    let t = Date.now();
    const seen = { calls: 0, ok: 0 };
    const h = await harness({ handlers: () => failingFirst(4, seen), work: { now: () => t, random: () => 0.5, retryBaseMs: 1000, retryMaxMs: 4000 } });
    const payload = uniqueBuild();
    expect((await h.deliver('build.finished', payload, { timestamp: nowSeconds() - 10 })).status).toBe(202);
    await waitUntil(() => outcomesOf(h, 'retry_scheduled').length === 1, 5000, 'the first failure');
    // Equal jitter with random 0.5: ¾ of min(max, base·2^n).
    const waits: number[] = [];
    for (let attempt = 1; attempt <= 4; attempt++) {
      const [row] = await h.store.webhookWork.list('pending');
      expect(row!.attempts).toBe(attempt);
      waits.push(row!.nextAttemptAt - t);
      t = row!.nextAttemptAt - 1;
      expect(await h.work.runDue()).toBe(0);
      t += 1;
      expect(await h.work.runDue()).toBe(1);
    }
    expect(waits).toEqual([750, 1500, 3000, 3000]);
    expect(seen).toEqual({ calls: 5, ok: 1 });
    expect(await h.store.webhookWork.list('pending')).toEqual([]);
    expect(outcomesOf(h, 'done')).toMatchObject([{ event: 'build.finished', attempt: 5 }]);
    expect((await h.deliver('build.finished', payload)).body).toMatchObject({ duplicate: true });
  });

  it('job.finished: after the 503, the reconciler runs it without a re-send', async () => {
    const seen = { calls: 0, ok: 0 };
    const h = await harness({ handlers: () => failingFirst(1, seen), work: { retryBaseMs: 20, retryMaxMs: 40 } });
    const reconciler = new WebhookReconciler(h.work, { intervalMs: 10, onError: (err) => h.calls.errors.push(err) });
    cleanups.push(() => reconciler.stop());
    const payload = uniqueJob('job.finished');
    expect((await h.deliver('job.finished', payload, { timestamp: nowSeconds() - 10 })).status).toBe(503);
    reconciler.start();
    await waitUntil(() => seen.ok === 1, 10_000, 'the reconciler to retry');
    await waitUntil(() => outcomesOf(h, 'done').length === 1, 10_000, 'the work to be marked done');
    expect(await h.store.webhookWork.list('done')).toHaveLength(1);
    expect((await h.deliver('job.finished', payload)).body).toMatchObject({ duplicate: true });
  });

  it('pending work survives a restart: a new process on the same store file runs it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'port-webhook-work-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const path = join(dir, 'port.db');
    let t = Date.now();
    const seen = { calls: 0, ok: 0 };
    const before = await startWebhookHarness({ storePath: path, handlers: () => failingFirst(10, seen), work: { now: () => t } });
    expect((await before.deliver('build.finished', uniqueBuild())).status).toBe(202);
    await waitUntil(() => outcomesOf(before, 'retry_scheduled').length === 1, 5000, 'the failure');
    await before.close();

    const after = await harness({ storePath: path, handlers: () => failingFirst(0, seen), work: { now: () => t } });
    t += 60_000;
    expect(await after.work.runDue()).toBe(1);
    expect(seen.ok).toBe(1);
    expect(outcomesOf(after, 'done')).toMatchObject([{ attempt: 2 }]);
  });

  it('two processes on one store never run one item at once; one that died holding it is taken over after its lease', async () => {
    const stores = twoStoresOnOneFile();
    let t = Date.now();
    let runs = 0;
    const handlers: WebhookHandlers = {
      async buildFinished() {
        runs++;
        await new Promise((r) => setTimeout(r, 20));
      },
    };
    const [a, b] = stores.map((store, i) => new WebhookWork({ store, handlers, owner: `port-${i}`, now: () => t, leaseMs: 60_000, onError: () => undefined })) as [WebhookWork, WebhookWork];

    // Both see the same due item at once: exactly one runs it.
    const claimed = await a.claim('webhook-body:aa', 'build.finished', uniqueBuild());
    expect(claimed.outcome).toBe('claimed');
    if (claimed.outcome !== 'claimed') return;
    await stores[0]!.webhookWork.release('webhook-body:aa', 'port-0', { nextAttemptAt: t, lastError: 'x', now: t });
    const ran = await Promise.all([a.runDue(), b.runDue()]);
    expect(ran.sort()).toEqual([0, 1]);
    expect(runs).toBe(1);

    // Process A takes an item and dies: B can't take it while the lease holds, and can after.
    expect((await a.claim('webhook-body:bb', 'build.finished', uniqueBuild())).outcome).toBe('claimed');
    expect((await b.claim('webhook-body:bb', 'build.finished', uniqueBuild())).outcome).toBe('busy');
    expect(await b.runDue()).toBe(0);
    t += 60_000;
    expect(await b.runDue()).toBe(1);
    expect(runs).toBe(2);
    expect(await stores[1]!.webhookWork.get('webhook-body:bb')).toMatchObject({ status: 'done', leaseOwner: null });
    expect((await a.claim('webhook-body:bb', 'build.finished', uniqueBuild())).outcome).toBe('finished');
  });

  it('a running attempt renews its lease, so a slow handler is not run twice', async () => {
    const stores = twoStoresOnOneFile();
    let runs = 0;
    const errors: unknown[] = [];
    const handlers: WebhookHandlers = {
      async buildFinished() {
        runs++;
        // Several lease lengths: Buildkite calls retrying for minutes, scaled down (not so far
        // that a renewal's write, delayed by a busy machine, outlasts the lease).
        await new Promise((r) => setTimeout(r, 2400));
      },
    };
    const [a, b] = stores.map((store, i) => new WebhookWork({ store, handlers, owner: `port-${i}`, leaseMs: 600, onError: (e) => errors.push(e) })) as [WebhookWork, WebhookWork];
    const claimed = await a.claim('webhook-body:cc', 'build.finished', uniqueBuild());
    if (claimed.outcome !== 'claimed') throw new Error(`not claimed: ${claimed.outcome}`);
    const running = a.run(claimed.work);
    let takenOver = 0;
    for (let i = 0; i < 20; i++) {
      await new Promise((r) => setTimeout(r, 100));
      takenOver += await b.runDue();
    }
    expect(await running).toBe('done');
    expect(takenOver).toBe(0);
    expect(runs).toBe(1);
    expect(errors).toEqual([]);
  });

  it('due items are leased one at a time, so those waiting behind a slow one are not run by another Port too', async () => {
    const stores = twoStoresOnOneFile();
    const runs: string[] = [];
    const handlers: WebhookHandlers = {
      async buildFinished(payload) {
        runs.push(String((payload as { build?: { number?: number } }).build?.number));
        await new Promise((r) => setTimeout(r, 1600));
      },
    };
    const [a, b] = stores.map((store, i) => new WebhookWork({ store, handlers, owner: `port-${i}`, leaseMs: 600, onError: () => undefined })) as [WebhookWork, WebhookWork];
    // Two items due (recorded, then handed back for a retry due now).
    for (const key of ['webhook-body:d1', 'webhook-body:d2']) {
      expect((await a.claim(key, 'build.finished', uniqueBuild())).outcome).toBe('claimed');
      await stores[0]!.webhookWork.release(key, 'port-0', { nextAttemptAt: Date.now(), lastError: 'x', now: Date.now() });
    }
    const first = a.runDue();
    await new Promise((r) => setTimeout(r, 1000)); // past the lease of anything leased with the first item
    const second = b.runDue();
    expect((await first) + (await second)).toBe(2);
    expect(runs).toHaveLength(2);
    expect(new Set(runs).size).toBe(2);
  });

  it('the reconciler reports a failing store once, not every pass, and says when it works again', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'port-webhook-work-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const store = SqliteStore.open(join(dir, 'port.db'));
    cleanups.push(() => store.close());
    let runs = 0;
    const work = new WebhookWork({ store, handlers: { buildFinished: async () => void runs++ }, owner: 'p', onError: () => undefined });
    const claimed = await work.claim('webhook-body:cc', 'build.finished', uniqueBuild());
    expect(claimed.outcome).toBe('claimed');
    await store.webhookWork.release('webhook-body:cc', 'p', { nextAttemptAt: 0, lastError: 'x', now: Date.now() });
    const errors: unknown[] = [];
    let recovered = 0;
    const reconciler = new WebhookReconciler(work, { onError: (err) => errors.push(err), onRecovered: () => recovered++ });
    const restore = failWrites(store.path, 'webhook_work', ['UPDATE']);
    cleanups.push(restore);
    for (let i = 0; i < 3; i++) await reconciler.pass();
    expect(errors).toHaveLength(1);
    expect((errors[0] as Error).message).toMatch(/simulated write failure/);
    expect(recovered).toBe(0);
    restore();
    await reconciler.pass();
    expect(recovered).toBe(1);
    expect(runs).toBe(1);
    await reconciler.stop();
    expect(await store.webhookWork.get('webhook-body:cc')).toMatchObject({ status: 'done' });
  });

  it('work the handler finds moot is dropped with its reason, and a re-send of it is a duplicate', async () => {
    let calls = 0;
    const h = await harness({
      handlers: () => ({
        async buildFinished(p) {
          calls++;
          return { skipped: `deploy#${p.build.number} is no longer blocked (Buildkite says its state is passed)` };
        },
      }),
    });
    const payload = uniqueBuild();
    expect((await h.deliver('build.finished', payload, { timestamp: nowSeconds() - 10 })).status).toBe(202);
    await waitUntil(() => outcomesOf(h, 'skipped').length === 1, 5000, 'the drop');
    const [skipped] = outcomesOf(h, 'skipped');
    expect(skipped!.reason).toMatch(/no longer blocked/);
    expect(describeOutcome(skipped!)).toMatchObject({ level: 'info', message: 'webhook work dropped: it is moot now' });
    expect(await h.store.webhookWork.list('dropped')).toHaveLength(1);
    expect((await h.deliver('build.finished', payload)).body).toMatchObject({ duplicate: true });
    expect(calls).toBe(1);
  });

  it('work still failing past giveUpAfterMs is given up with an error line; a later re-send is new work', async () => {
    let t = Date.now();
    const seen = { calls: 0, ok: 0 };
    const h = await harness({ handlers: () => failingFirst(2, seen), work: { now: () => t, giveUpAfterMs: 10_000 } });
    const payload = uniqueBuild();
    expect((await h.deliver('build.finished', payload, { timestamp: nowSeconds() - 10 })).status).toBe(202);
    await waitUntil(() => outcomesOf(h, 'retry_scheduled').length === 1, 5000, 'the failure');
    t += 10_000;
    expect(await h.work.runDue()).toBe(1);
    const [abandoned] = outcomesOf(h, 'abandoned');
    expect(abandoned).toMatchObject({ event: 'build.finished', attempt: 2, reason: 'Buildkite answered 503 (test)' });
    expect(describeOutcome(abandoned!)!.level).toBe('error');
    expect(await h.store.webhookWork.list()).toEqual([]);
    const resent = await h.deliver('build.finished', payload);
    expect(resent.body).toEqual({ accepted: true, event: 'build.finished' });
    await waitUntil(() => seen.ok === 1, 5000, 'the re-send to be processed');
  });

  it('log lines name the event and a short delivery id, never the payload', () => {
    const line = describeOutcome({ kind: 'retry_scheduled', event: 'build.finished', key: `webhook-body:${'ab'.repeat(32)}`, attempt: 1, reason: 'Buildkite answered 503', nextAttemptAt: 0 });
    expect(line).toEqual({
      level: 'warn',
      message: 'webhook work failed; Port retries it (a re-sent delivery is processed too)',
      fields: { event: 'build.finished', delivery: 'abababababababab', attempt: 1, reason: 'Buildkite answered 503', next_attempt_at: '1970-01-01T00:00:00.000Z' },
    });
  });
});
