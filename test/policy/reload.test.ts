import { rm } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { PolicyEngine } from '../../src/policy/engine.js';
import { PolicyLoadError } from '../../src/policy/errors.js';
import { cleanup, exchangeRequest, FORBID_BRANCHES, PERMIT_EXCHANGE, policyDir, writeFiles } from './fixtures.js';

afterEach(cleanup);

describe('PolicyEngine.reload', () => {
  it('refuses a bad set and keeps deciding with the last good one', async () => {
    const dir = await policyDir({ 'a.cedar': PERMIT_EXCHANGE });
    const onError = vi.fn();
    const onReload = vi.fn();
    const engine = await PolicyEngine.open(dir, { onError, onReload });
    const revision = engine.revision;

    // A valid-looking forbid next to a broken file: the whole set is refused.
    await writeFiles(dir, { 'b.cedar': FORBID_BRANCHES, 'c.cedar': '@id("c") permit (principal, action, resource' });
    const result = await engine.reload();
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.problems.map((p) => [path.basename(p.file), p.line])).toEqual([['c.cedar', 1]]);
    expect(onError).toHaveBeenCalledTimes(1);
    expect(onError.mock.calls[0]![0]).toBeInstanceOf(PolicyLoadError);
    expect(onReload).not.toHaveBeenCalled();

    expect(engine.revision).toBe(revision);
    expect(engine.policies.map((p) => p.id)).toEqual(['acme-exchange']);
    expect(engine.decide(exchangeRequest({ branch: 'feature' })).decision).toBe('allow');
  });

  it('swaps in a good set', async () => {
    const dir = await policyDir({ 'a.cedar': PERMIT_EXCHANGE });
    const onReload = vi.fn();
    const engine = await PolicyEngine.open(dir, { onReload });
    const before = engine.revision;
    expect(engine.decide(exchangeRequest({ branch: 'feature' })).decision).toBe('allow');

    await writeFiles(dir, { 'b.cedar': FORBID_BRANCHES });
    const result = await engine.reload();
    expect(result).toMatchObject({ ok: true, changed: true });
    expect(engine.revision).not.toBe(before);
    expect(onReload).toHaveBeenCalledWith({ revision: engine.revision, policies: 2, warnings: [] });
    const d = engine.decide(exchangeRequest({ branch: 'feature' }));
    expect(d.decision).toBe('deny');
    expect(d.revision).toBe(engine.revision);

    // Third and fourth generations re-use the two preparsed-set ids.
    const second = engine.revision;
    await writeFiles(dir, { 'c.cedar': '@id("more") permit (principal, action == Port::Action::"assume", resource);' });
    expect(await engine.reload()).toMatchObject({ ok: true, changed: true });
    expect(engine.policies.map((p) => p.id)).toEqual(['acme-exchange', 'no-branches', 'more']);
    await rm(path.join(dir, 'c.cedar'));
    expect(await engine.reload()).toMatchObject({ ok: true, changed: true, revision: second });
    expect(engine.decide(exchangeRequest({ branch: 'feature' })).decision).toBe('deny');
  });

  it('reports an unchanged folder as unchanged', async () => {
    const onReload = vi.fn();
    const engine = await PolicyEngine.open(await policyDir({ 'a.cedar': PERMIT_EXCHANGE }), { onReload });
    expect(await engine.reload()).toMatchObject({ ok: true, changed: false, revision: engine.revision });
    expect(onReload).not.toHaveBeenCalled();
  });

  it('runs concurrent reloads one after another', async () => {
    const dir = await policyDir({ 'a.cedar': PERMIT_EXCHANGE });
    const engine = await PolicyEngine.open(dir);
    await writeFiles(dir, { 'b.cedar': FORBID_BRANCHES });
    const [first, second] = await Promise.all([engine.reload(), engine.reload()]);
    expect(first).toMatchObject({ ok: true, changed: true });
    expect(second).toMatchObject({ ok: true, changed: false });
  });
});

describe('PolicyEngine.watch', () => {
  it('reloads after a file in the folder changes', async () => {
    const dir = await policyDir({ 'a.cedar': PERMIT_EXCHANGE });
    let reloaded!: () => void;
    const done = new Promise<void>((resolve) => (reloaded = resolve));
    const engine = await PolicyEngine.open(dir, { onReload: () => reloaded() });
    const stop = engine.watch();
    try {
      expect(engine.decide(exchangeRequest({ branch: 'feature' })).decision).toBe('allow');
      await writeFiles(dir, { 'b.cedar': FORBID_BRANCHES });
      await Promise.race([done, new Promise((_, reject) => setTimeout(() => reject(new Error('no reload within 5 s')), 5000))]);
      expect(engine.decide(exchangeRequest({ branch: 'feature' })).decision).toBe('deny');
    } finally {
      stop();
    }
  });

  it('reports a broken save through onError and keeps the old set', async () => {
    const dir = await policyDir({ 'a.cedar': PERMIT_EXCHANGE });
    let failed!: (err: Error) => void;
    const errored = new Promise<Error>((resolve) => (failed = resolve));
    const engine = await PolicyEngine.open(dir, { onError: (err) => failed(err) });
    const stop = engine.watch();
    try {
      await writeFiles(dir, { 'a.cedar': 'permit (' });
      const err = await Promise.race([errored, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no error within 5 s')), 5000))]);
      expect(err).toBeInstanceOf(PolicyLoadError);
      expect(engine.decide(exchangeRequest()).decision).toBe('allow');
    } finally {
      stop();
    }
  });
});
