/**
 * A policy folder caught half-written must not briefly drop a forbid. A
 * set that loses policies while their files are still in the folder waits until the
 * folder reads the same for a quiet period, and so does any lost forbid, even one whose file
 * was removed; a permit loss the folder explains (a file removed or renamed) applies at once.
 */
import { rename, rm, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { PolicyEngine, type DeferredReload } from '../../src/policy/engine.js';
import { cleanup, exchangeRequest, FORBID_BRANCHES, PERMIT_EXCHANGE, policyDir, writeFiles } from './fixtures.js';

const engines: PolicyEngine[] = [];
afterEach(async () => {
  for (const e of engines.splice(0)) e.close();
  await cleanup();
});

/** An engine on a clock the test moves; the quiet period is long so its timer never fires here. */
async function clocked(files: Record<string, string>) {
  const dir = await policyDir(files);
  let now = 1_000_000;
  const onDeferred = vi.fn<(info: DeferredReload) => void>();
  const onReload = vi.fn();
  const engine = await PolicyEngine.open(dir, { onDeferred, onReload, quietPeriodMs: 60_000, now: () => now });
  engines.push(engine);
  return { dir, engine, onDeferred, onReload, advance: (ms: number) => (now += ms) };
}

const devDecision = (engine: PolicyEngine) => engine.decide(exchangeRequest({ branch: 'dev' })).decision;

describe('a reload that loses policies without the folder explaining it', () => {
  it('waits for a quiet folder when a file with a forbid is truncated, and says why', async () => {
    const { dir, engine, onDeferred, onReload, advance } = await clocked({ 'a.cedar': PERMIT_EXCHANGE, 'b.cedar': FORBID_BRANCHES });
    const revision = engine.revision;
    expect(devDecision(engine)).toBe('deny');

    await truncate(path.join(dir, 'b.cedar'), 0);
    const held = await engine.reload();
    expect(held).toMatchObject({ ok: true, changed: false, revision, deferred: { lost: ['no-branches'], quietPeriodMs: 60_000 } });
    expect(onDeferred).toHaveBeenCalledTimes(1);
    const info = onDeferred.mock.calls[0]![0];
    expect(info.reason).toBe(
      'the policy folder now lacks 1 policy (1 forbid) — no-branches (b.cedar) — while their files are still there (a file caught half-written?); keeping the current set until the folder is unchanged for 60000 ms',
    );
    expect(engine.deferred).toEqual(info);
    expect(engine.revision).toBe(revision);
    expect(devDecision(engine)).toBe('deny');

    // Read again before the folder has been quiet long enough: still held, not re-announced.
    advance(59_999);
    expect(await engine.reload()).toMatchObject({ changed: false, deferred: { revision: info.revision } });
    expect(onDeferred).toHaveBeenCalledTimes(1);
    expect(onReload).not.toHaveBeenCalled();
    expect(devDecision(engine)).toBe('deny');
  });

  it('drops the held set when the file is rewritten, and starts over on the next truncation', async () => {
    const { dir, engine, onDeferred, onReload, advance } = await clocked({ 'a.cedar': PERMIT_EXCHANGE, 'b.cedar': FORBID_BRANCHES });
    await truncate(path.join(dir, 'b.cedar'), 0);
    expect(await engine.reload()).toMatchObject({ deferred: { lost: ['no-branches'] } });

    await writeFiles(dir, { 'b.cedar': FORBID_BRANCHES });
    expect(await engine.reload()).toEqual({ ok: true, changed: false, revision: engine.revision, warnings: [] });
    expect(engine.deferred).toBeUndefined();

    // A later truncation is a new wait: the earlier one does not count towards it.
    advance(120_000);
    await truncate(path.join(dir, 'b.cedar'), 0);
    expect(await engine.reload()).toMatchObject({ deferred: { lost: ['no-branches'] } });
    expect(onDeferred).toHaveBeenCalledTimes(2);
    expect(devDecision(engine)).toBe('deny');
    expect(onReload).not.toHaveBeenCalled();
  });

  it('applies the smaller set once the folder has read the same for the quiet period', async () => {
    const { dir, engine, onReload, advance } = await clocked({ 'a.cedar': PERMIT_EXCHANGE, 'b.cedar': FORBID_BRANCHES });
    await truncate(path.join(dir, 'b.cedar'), 0);
    const held = await engine.reload();
    advance(60_000);
    const applied = await engine.reload();
    expect(applied).toMatchObject({ ok: true, changed: true, revision: held.ok ? held.deferred?.revision : undefined });
    expect(onReload).toHaveBeenCalledWith({ revision: engine.revision, policies: 1, warnings: [], afterQuietPeriod: true });
    expect(engine.deferred).toBeUndefined();
    expect(devDecision(engine)).toBe('allow');
  });

  it('holds an empty read of a folder whose files are all still there', async () => {
    const { dir, engine } = await clocked({ 'a.cedar': `${PERMIT_EXCHANGE}\n${FORBID_BRANCHES}` });
    await writeFile(path.join(dir, 'a.cedar'), '');
    expect(await engine.reload()).toMatchObject({ deferred: { lost: ['acme-exchange', 'no-branches'] } });
    expect(engine.deferred?.reason).toMatch(/^the policy folder now reads as empty — acme-exchange \(a\.cedar\), no-branches \(a\.cedar\) —/);
    expect(engine.decide(exchangeRequest()).decision).toBe('allow');
  });

  it('holds a forbid turned into a permit in a file that is still there', async () => {
    const { dir, engine } = await clocked({ 'a.cedar': PERMIT_EXCHANGE, 'b.cedar': FORBID_BRANCHES });
    await writeFiles(dir, { 'b.cedar': FORBID_BRANCHES.replace('forbid', 'permit') });
    expect(await engine.reload()).toMatchObject({ deferred: { lost: ['no-branches'] } });
    expect(devDecision(engine)).toBe('deny');
  });
});

describe('a forbid whose file is removed', () => {
  it('is kept through a delete-and-re-create save', async () => {
    const { dir, engine, onDeferred, onReload } = await clocked({ 'a.cedar': PERMIT_EXCHANGE, 'b.cedar': FORBID_BRANCHES });
    const revision = engine.revision;
    await rm(path.join(dir, 'b.cedar'));
    expect(await engine.reload()).toMatchObject({ ok: true, changed: false, revision, deferred: { lost: ['no-branches'] } });
    expect(onDeferred.mock.calls[0]![0].reason).toBe(
      'the policy folder now lacks 1 policy (1 forbid) — no-branches (b.cedar) — including forbids whose file is gone (a file being replaced?); keeping the current set until the folder is unchanged for 60000 ms',
    );
    expect(devDecision(engine)).toBe('deny');
    await writeFiles(dir, { 'b.cedar': FORBID_BRANCHES });
    expect(await engine.reload()).toMatchObject({ ok: true, changed: false, revision });
    expect(engine.deferred).toBeUndefined();
    expect(devDecision(engine)).toBe('deny');
    expect(onReload).not.toHaveBeenCalled();
  });

  it('is dropped once the folder has stayed without it for the quiet period', async () => {
    const { dir, engine, advance } = await clocked({ 'a.cedar': PERMIT_EXCHANGE, 'b.cedar': FORBID_BRANCHES });
    await rm(path.join(dir, 'b.cedar'));
    await engine.reload();
    expect(devDecision(engine)).toBe('deny');
    advance(60_000);
    expect(await engine.reload()).toMatchObject({ ok: true, changed: true });
    expect(devDecision(engine)).toBe('allow');
  });
});

describe('a reload the folder explains applies at once', () => {
  it('a removed file of permits', async () => {
    const { dir, engine, onDeferred } = await clocked({ 'a.cedar': PERMIT_EXCHANGE, 'b.cedar': FORBID_BRANCHES });
    await rm(path.join(dir, 'a.cedar'));
    expect(await engine.reload()).toMatchObject({ ok: true, changed: true });
    expect(onDeferred).not.toHaveBeenCalled();
    expect(engine.policies.map((p) => p.id)).toEqual(['no-branches']);
  });

  it('a renamed file, and policies added', async () => {
    const { dir, engine, onDeferred } = await clocked({ 'a.cedar': PERMIT_EXCHANGE, 'b.cedar': FORBID_BRANCHES });
    await rename(path.join(dir, 'b.cedar'), path.join(dir, 'c.cedar'));
    expect(await engine.reload()).toMatchObject({ ok: true, changed: true });
    await writeFiles(dir, { 'd.cedar': '@id("more") permit (principal, action == Port::Action::"assume", resource);' });
    expect(await engine.reload()).toMatchObject({ ok: true, changed: true });
    expect(onDeferred).not.toHaveBeenCalled();
    expect(engine.policies.map((p) => p.id)).toEqual(['acme-exchange', 'no-branches', 'more']);
  });
});

describe('a watching engine and a non-atomic save', () => {
  it('never allows what the forbid denies while the file is truncated and then rewritten', async () => {
    const dir = await policyDir({ 'a.cedar': PERMIT_EXCHANGE, 'b.cedar': FORBID_BRANCHES });
    const events: string[] = [];
    let noticed!: () => void;
    const seen = new Promise<void>((resolve) => (noticed = resolve));
    const engine = await PolicyEngine.open(dir, {
      onDeferred: (d) => {
        events.push(`deferred ${d.lost.join(',')}`);
        noticed();
      },
      onReload: () => {
        events.push('reloaded');
        noticed();
      },
    });
    engines.push(engine);
    const stop = engine.watch();
    const allowed: number[] = [];
    let polls = 0;
    let polling = true;
    const poller = (async () => {
      while (polling) {
        if (devDecision(engine) === 'allow') allowed.push(polls);
        polls++;
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    try {
      await truncate(path.join(dir, 'b.cedar'), 0);
      // The watcher has read the truncated folder (deferred here; applied on the old code).
      await Promise.race([seen, new Promise((_, reject) => setTimeout(() => reject(new Error('the watcher did not react within 10 s')), 10_000))]);
      const atRewrite = polls;
      await writeFiles(dir, { 'b.cedar': FORBID_BRANCHES });
      // Until the rewrite is read back and nothing is held any more.
      for (let i = 0; engine.deferred !== undefined || polls < atRewrite + 20; i++) {
        if (i > 2000) throw new Error('the held reload was never dropped');
        await new Promise((r) => setTimeout(r, 10));
      }
      expect(events).toEqual(['deferred no-branches']);
      expect(allowed).toEqual([]);
      expect(devDecision(engine)).toBe('deny');
    } finally {
      polling = false;
      await poller;
      stop();
    }
  });

  it('applies a deliberate truncation, and a deliberate deletion of a forbid, after the quiet period', async () => {
    const dir = await policyDir({ 'a.cedar': PERMIT_EXCHANGE, 'b.cedar': FORBID_BRANCHES, 'c.cedar': FORBID_BRANCHES.replace(/no-branches/g, 'no-branches-2') });
    const events: string[] = [];
    let reloaded!: () => void;
    let next = new Promise<void>((resolve) => (reloaded = resolve));
    const engine = await PolicyEngine.open(dir, {
      quietPeriodMs: 300,
      onDeferred: (d) => events.push(`deferred ${d.lost.join(',')}`),
      onReload: (r) => {
        events.push(r.afterQuietPeriod ? 'reloaded after quiet period' : 'reloaded');
        reloaded();
      },
    });
    engines.push(engine);
    const stop = engine.watch();
    const within = (ms: number, what: string) => new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what} within ${ms} ms`)), ms));
    try {
      await truncate(path.join(dir, 'c.cedar'), 0);
      await Promise.race([next, within(10_000, 'no reload')]);
      expect(events).toEqual(['deferred no-branches-2', 'reloaded after quiet period']);
      expect(engine.policies.map((p) => p.id)).toEqual(['acme-exchange', 'no-branches']);

      next = new Promise<void>((resolve) => (reloaded = resolve));
      await rm(path.join(dir, 'b.cedar'));
      await Promise.race([next, within(10_000, 'no reload')]);
      expect(events.slice(2)).toEqual(['deferred no-branches', 'reloaded after quiet period']);
      expect(devDecision(engine)).toBe('allow');
    } finally {
      stop();
    }
  });
});
