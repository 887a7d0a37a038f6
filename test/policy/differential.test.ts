/**
 * The fast path's proof obligation: every decision of Port's PolicyEngine — with its decision
 * memo and policy slicing on, off, and squeezed — equals a plain cedar-wasm call over the
 * whole set, read with Port's semantics (fail closed on any error or failure), on a large
 * generated corpus: same decision, same determining policies, same errors.
 *
 * Deterministic for a seed (printed). Bigger runs: DIFF_SCALE=4 (more sets), another
 * corpus: DIFF_SEED=<n>; DIFF_STATELESS=1 asks the plain stateless call for every distinct
 * request instead of a sample (slow: it parses the schema and set each time).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PolicyLoadError } from '../../src/policy/errors.js';
import type { PolicyEngine } from '../../src/policy/engine.js';
import type { AuthzRequest } from '../../src/policy/types.js';
import { Differential, openEngine, SetUnderTest, type Decider, type EngineConfig, type MemoStats } from './differential/harness.js';
import { errorSwallower, memoBlindToValidation, memoWithoutRevision } from './differential/mutants.js';
import { generateSet, refusedIds, type GeneratedPolicy, type GeneratedSet } from './differential/policy-gen.js';
import { RequestGen, type Probe } from './differential/request-gen.js';
import { patternFrom, patternLiteral } from './differential/cedar-text.js';
import { hash32, Rng } from './differential/rng.js';
import { slotPool } from './differential/vocabulary.js';

const DEFAULT_SEED = 20_240_613;
const SEED = Number(process.env.DIFF_SEED ?? DEFAULT_SEED) >>> 0;
const SCALE = Math.max(0.1, Number(process.env.DIFF_SCALE ?? 1));
const ALL_STATELESS = process.env.DIFF_STATELESS === '1';
const REPRODUCE = `DIFF_SEED=${SEED} DIFF_SCALE=${SCALE} npx vitest run test/policy/differential.test.ts`;

/** Memo and slicing as shipped; slicing alone; memo alone and small enough to evict. */
const CONFIGS: readonly EngineConfig[] = [
  { name: 'default', options: {} },
  { name: 'slicing, no memo', options: { decisionMemo: 0 } },
  { name: 'memo of 64, no slicing', options: { decisionMemo: 64, slicing: false } },
];

const SETS = Math.round(26 * SCALE);
const FAMILIES_PER_SET = 44;
const FAMILY = { repeats: 2, unread: 3, sameClass: 1, read: 1, edges: 1 };
/** Of the probes already decided, how many are decided again at the end (memo hits long after). */
const REVISIT = 0.12;

const roots: string[] = [];
afterAll(async () => {
  await Promise.all(roots.map((r) => rm(r, { recursive: true, force: true })));
});

async function tempRoot(): Promise<string> {
  const root = await mkdtemp(path.join(tmpdir(), 'port-differential-'));
  roots.push(root);
  return root;
}

function shapeOf(i: number, rng: Rng): { size: number; big: boolean } {
  if (i % 12 === 0) return { size: rng.between(200, 280), big: true };
  return { size: rng.weighted<() => number>([[3, () => rng.between(1, 8)], [4, () => rng.between(9, 30)], [2, () => rng.between(31, 70)]])(), big: false };
}

function statelessRate(sut: SetUnderTest, kind: string): number {
  if (ALL_STATELESS) return 1;
  const big = sut.policies.length > 100;
  if (kind !== 'ok') return big ? 0.01 : 0.1;
  return big ? 0.002 : 0.02;
}

/**
 * The shipped engine through PolicyEngine.on(), as an exchange decides: the entities are
 * converted and projected by a first decision on them (the previous probe's principal,
 * action, resource and context, on this probe's entities), and that work is reused for the
 * probe's own decision, whose key must come out as a fresh one would.
 */
function onSharedEntities(engine: PolicyEngine): Decider {
  let previous: Omit<AuthzRequest, 'entities'> | undefined;
  return {
    get revision() {
      return engine.revision;
    },
    decide(req) {
      const { entities, ...rest } = req;
      const onJob = engine.on(entities);
      if (previous !== undefined) onJob.decide(previous);
      previous = rest;
      return onJob.decide(rest);
    },
  };
}

function sumStats(engines: readonly PolicyEngine[]): MemoStats {
  return engines.reduce<MemoStats>((a, e) => ({ hits: a.hits + e.memoStats.hits, misses: a.misses + e.memoStats.misses, uncacheable: a.uncacheable + e.memoStats.uncacheable }), { hits: 0, misses: 0, uncacheable: 0 });
}

function fail(diff: Differential): void {
  if (diff.mismatchCount === 0) return;
  const by = Object.entries(diff.mismatchesBy).map(([config, n]) => `${config}: ${n}`).join(', ');
  throw new Error(`${diff.mismatchCount} decision(s) differ from the plain cedar-wasm call (${by}; first ${diff.mismatches.length} below)\n\n${diff.mismatches.join('\n\n')}`);
}

describe('PolicyEngine against a plain cedar-wasm call (differential)', () => {
  it(
    'decides a generated corpus exactly as Cedar does over the whole set',
    async () => {
      const started = performance.now();
      const cpuAtStart = process.cpuUsage();
      const root = await tempRoot();
      const diff = new Differential(SEED, REPRODUCE, (sut, a) => statelessRate(sut, a.kind));
      const suts: SetUnderTest[] = [];
      const refusedLoads: string[] = [];
      let candidatesRefused = 0;
      const refusalSamples: string[] = [];

      for (let i = 0; i < SETS; i++) {
        const rng = new Rng(SEED ^ hash32(`set:${i}`), i);
        const set = generateSet(rng.fork('policies'), i, shapeOf(i, rng.fork('shape')));
        candidatesRefused += set.refused;
        refusalSamples.push(...set.refusalSamples.slice(0, 1));
        const sut = await SetUnderTest.write(set, root);
        try {
          for (const config of CONFIGS) sut.engines.set(config.name, await openEngine(sut.dir, config));
          suts.push(sut);
        } catch (err) {
          if (!(err instanceof PolicyLoadError)) throw err;
          sut.close();
          refusedLoads.push(`set ${i}: ${err.problems[0]?.message ?? err.message}`);
        }
      }
      expect(suts.length, `Port's loader refused ${refusedLoads.length} of ${SETS} generated sets:\n${refusedLoads.join('\n')}`).toBeGreaterThanOrEqual(Math.ceil(SETS * 0.9));

      // Each set's probes, shuffled, then interleaved across sets.
      const queues = suts.map((sut) => {
        const gen = new RequestGen(new Rng(SEED ^ hash32(`requests:${sut.set.index}`), sut.set.index), sut.set.vocab);
        const probes: Probe[] = [];
        for (let f = 0; f < FAMILIES_PER_SET; f++) probes.push(...gen.family(FAMILY));
        return { sut, probes: new Rng(SEED, sut.set.index).shuffle(probes), next: 0 };
      });
      const order = new Rng(SEED, 31337);
      const decided: { sut: SetUnderTest; probe: Probe }[] = [];
      let step = 0;
      const shared = new Map(suts.map((sut) => [sut, onSharedEntities(sut.engines.get('default') as PolicyEngine)]));
      const decide = (sut: SetUnderTest, probe: Probe, note: string): void => {
        // Every probe goes to the shipped configuration; every other one to one of the others
        // too, and the rest to the shipped engine again, its entities shared with another decision.
        diff.check(sut, 'default', sut.engines.get('default') as PolicyEngine, probe, note);
        if (step % 2 === 0) {
          const other = CONFIGS[1 + ((step / 2) % (CONFIGS.length - 1))] as EngineConfig;
          diff.check(sut, other.name, sut.engines.get(other.name) as PolicyEngine, probe, note);
        } else {
          diff.check(sut, 'default, entities shared (on())', shared.get(sut) as Decider, probe, note);
        }
        step++;
      };
      for (;;) {
        const open = queues.filter((q) => q.next < q.probes.length);
        if (open.length === 0) break;
        const q = order.weighted(open.map((x) => [x.probes.length - x.next, x] as const));
        const probe = q.probes[q.next++] as Probe;
        decide(q.sut, probe, '');
        decided.push({ sut: q.sut, probe });
      }
      for (const { sut, probe } of order.shuffle(decided).slice(0, Math.round(decided.length * REVISIT))) decide(sut, probe, 'decided again at the end');

      const elapsed = (performance.now() - started) / 1000;
      const cpu = process.cpuUsage(cpuAtStart);
      const byConfig = CONFIGS.map((c) => ({ name: c.name, stats: sumStats(suts.map((s) => s.engines.get(c.name) as PolicyEngine)) }));
      const policyCounts = suts.map((s) => s.policies.length);
      const t = diff.tally;
      console.log(
        [
          `differential: seed ${SEED} (DIFF_SEED), scale ${SCALE} (DIFF_SCALE)`,
          `  sets: ${suts.length} loaded of ${SETS} (policies per set ${Math.min(...policyCounts)}–${Math.max(...policyCounts)}, ${policyCounts.filter((n) => n >= 200).length} with ≥ 200, ${policyCounts.reduce((a, b) => a + b, 0)} in all); candidates refused by strict validation and regenerated: ${candidatesRefused}`,
          `  decisions compared: ${t.decisions} (${Object.entries(t.byConfig).map(([k, v]) => `${k}: ${v}`).join(', ')})`,
          `  distinct requests: ${suts.reduce((a, s) => a + s.reference.statefulCalls, 0)}; also checked against plain stateless isAuthorized: ${t.statelessChecks}`,
          `  answers: ${Object.entries(t.byKind).map(([k, v]) => `${k} ${v}`).join(', ')} (${t.failClosed} with errors or failures: each one a deny)`,
          `  variants: ${Object.entries(t.byVariant).map(([k, v]) => `${k} ${v}`).join(', ')}`,
          `  memoStats: ${byConfig.map((c) => `${c.name}: ${JSON.stringify(c.stats)}`).join('; ')}`,
          `  time: ${elapsed.toFixed(1)} s wall, ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s CPU (engine ${t.seconds.engine.toFixed(1)} s, reference ${t.seconds.reference.toFixed(1)} s, stateless reference ${t.seconds.stateless.toFixed(1)} s, the rest generating, loading and building requests)`,
        ].join('\n'),
      );
      if (candidatesRefused > 0) console.log(`  e.g. refused candidate: ${refusalSamples[0] ?? ''}`);
      for (const s of suts) s.close();

      fail(diff);

      // The corpus must exercise what it claims to, or the equality above says little.
      const share = (k: string): number => (t.byKind[k] ?? 0) / t.decisions;
      expect(share('allow'), 'allows').toBeGreaterThan(0.08);
      expect(share('forbid'), 'denies by a forbid').toBeGreaterThan(0.03);
      expect(share('default-deny'), 'default denies').toBeGreaterThan(0.05);
      expect(share('policy-error'), 'denies because a policy errored').toBeGreaterThan(0.005);
      expect(share('failure'), 'requests Cedar refused').toBeGreaterThan(0.02);
      expect(t.byKind.thrown ?? 0, 'requests cedar-wasm could not read').toBeGreaterThan(0);
      expect(t.statelessChecks).toBeGreaterThan(100 * Math.min(1, SCALE));

      // The memo must have answered a good share, or the equality proved nothing about it.
      const shipped = byConfig[0]?.stats;
      expect(shipped?.hits, `memo hits (${JSON.stringify(shipped)})`).toBeGreaterThan((t.byConfig.default ?? 0) * 0.2);
      expect(shipped?.uncacheable, 'decisions with errors are never memoized').toBeGreaterThan(0);
      expect(byConfig[1]?.stats.hits, 'a memo of 0 entries answers nothing').toBe(0);
      expect(byConfig[2]?.stats.hits, 'the small memo answered some').toBeGreaterThan(0);
      expect(t.byConfig['default, entities shared (on())'] ?? 0, 'decisions on shared entities').toBeGreaterThan((t.byConfig.default ?? 0) * 0.4);
    },
    240_000 * SCALE,
  );

  it('catches fast paths that are wrong (self-test of the differential)', async () => {
    const root = await tempRoot();
    const blind = await flagged(root, memoBlindToValidation, false);
    const stale = await flagged(root, memoWithoutRevision, true);
    const swallowed = await flagged(root, errorSwallower, false);
    console.log(`differential self-test: flagged ${blind} decisions of a memo that skips validation, ${stale} of a memo that outlives a reload, ${swallowed} of decisions stripped of their errors`);
    expect(blind, 'a memo that skips validation').toBeGreaterThan(0);
    expect(stale, 'a memo that outlives a reload').toBeGreaterThan(0);
    expect(swallowed, 'a decision without its errors').toBeGreaterThan(0);
  });

  it(
    'answers from the new set right after a reload, never from a stale memo',
    async () => {
      const root = await tempRoot();
      const diff = new Differential(SEED ^ 1, REPRODUCE, (sut, a) => statelessRate(sut, a.kind));
      let changed = 0;
      let reloads = 0;
      for (let i = 0; i < Math.max(3, Math.round(4 * SCALE)); i++) {
        const rng = new Rng(SEED ^ hash32(`reload:${i}`), i);
        const set = generateSet(rng.fork('policies'), 1000 + i, { size: rng.between(6, 40), big: false });
        if (set.policies.length === 0) continue;
        const sut = await SetUnderTest.write(set, root);
        const gen = new RequestGen(rng.fork('requests'), set.vocab);
        const probes: Probe[] = [];
        for (let f = 0; f < 10; f++) probes.push(...gen.family({ repeats: 1, unread: 1, sameClass: 1, read: 1, edges: 1 }));
        // Port holds back a set that loses a forbid until the folder is quiet (engine.ts); this
        // clock decides when "quiet" is, so no timer can apply the set behind the test's back.
        let clock = 0;
        for (const config of CONFIGS) sut.engines.set(config.name, await openEngine(sut.dir, config, { quietPeriodMs: 60_000, now: () => clock }));

        // Policies that determined some answer: changing those changes answers.
        const hot = new Set<string>();
        const runAll = (note: string): string[] => {
          const answers: string[] = [];
          for (const [name, engine] of sut.engines) {
            for (const probe of probes) {
              const d = diff.check(sut, name, engine, probe, note);
              for (const p of d.determining) hot.add(p.id);
              if (name === 'default') answers.push(`${d.decision} ${d.determining.map((p) => p.id).join(',')} ${d.errors.length}`);
            }
          }
          return answers;
        };
        let before = runAll('before any reload');
        runAll('again, from the memo');
        for (let round = 0; round < 4; round++) {
          const mutation = mutate(sut.policies, set, rng, hot);
          if (mutation === undefined || sameSet(mutation.policies, sut.policies)) continue;
          const old = { policies: sut.policies, reference: sut.reference };
          await sut.replace(mutation.policies);
          if (mutation.deferred) {
            // Port holds back a set that turns a forbid into a permit until the folder is quiet
            // (engine.ts): the old set must still answer, then the new one.
            const held = await Promise.all([...sut.engines.values()].map((e) => e.reload()));
            expect(held.every((r) => r.ok && r.deferred !== undefined), JSON.stringify(held)).toBe(true);
            const fresh = { policies: sut.policies, reference: sut.reference };
            Object.assign(sut, old);
            runAll(`after a deferred reload (${mutation.what}): still the old set`);
            Object.assign(sut, fresh);
            clock += 60_000;
          }
          const results = await Promise.all([...sut.engines.values()].map((e) => e.reload()));
          expect(results.every((r) => r.ok && r.changed), `reload after ${mutation.what}: ${JSON.stringify(results)}`).toBe(true);
          reloads++;
          const after = runAll(`right after reload (${mutation.what})`);
          changed += after.filter((a, k) => a !== before[k]).length;
          before = after;
        }
        sut.close();
      }
      console.log(`differential reload: ${reloads} reloads, ${diff.tally.decisions} decisions compared, ${changed} answers changed by a reload`);
      fail(diff);
      expect(changed, 'the reloads changed some answers (else a stale memo would go unnoticed)').toBeGreaterThan(10);
    },
    120_000 * SCALE,
  );
});

function sameSet(a: readonly GeneratedPolicy[], b: readonly GeneratedPolicy[]): boolean {
  const text = (ps: readonly GeneratedPolicy[]): string => JSON.stringify(ps.map((p) => [p.id, p.file, p.text]));
  return text(a) === text(b);
}

/** The differential run against one broken fast path; returns how many decisions it flagged. */
async function flagged(root: string, broken: (engine: PolicyEngine) => Decider, reload: boolean): Promise<number> {
  const diff = new Differential(SEED ^ 2, REPRODUCE, () => 0);
  for (let i = 0; i < 2; i++) {
    const rng = new Rng(SEED ^ hash32(`self-test:${i}`), i);
    const set = generateSet(rng.fork('policies'), 2000 + i, { size: rng.between(15, 40), big: false });
    // One policy that errors for most jobs (build numbers ≥ 2 overflow), so errors are sure to occur.
    set.policies.push({
      id: 'overflows',
      effect: 'forbid',
      file: 'overflow.cedar',
      text: '@id("overflows")\nforbid (principal is Port::Job, action, resource) when { principal.build_number * 4611686018427387904 > 0 };',
    });
    const sut = await SetUnderTest.write(set, path.join(root, `${broken.name}-${i}`));
    const engine = await openEngine(sut.dir, CONFIGS[0] as EngineConfig);
    const decider = broken(engine);
    const gen = new RequestGen(rng.fork('requests'), set.vocab);
    const probes: Probe[] = [];
    for (let f = 0; f < 30; f++) probes.push(...gen.family({ repeats: 1, unread: 0, sameClass: 0, read: 0, edges: 2, edgeKinds: ['unknown-attr', 'ctx-extra'] }));
    for (const probe of probes) diff.check(sut, broken.name, decider, probe);
    if (reload) {
      await sut.replace(sut.policies.map((p) => ({ ...p, effect: 'forbid' as const, text: p.text.replace(/\npermit /, '\nforbid ') })));
      await engine.reload();
      for (const probe of probes) diff.check(sut, broken.name, decider, probe, 'after every permit became a forbid');
    }
    engine.close();
  }
  return diff.mismatchCount;
}

interface Mutation {
  policies: GeneratedPolicy[];
  what: string;
  /** Whether Port defers it (a forbid turned into a permit while its file is still there). */
  deferred: boolean;
}

/** One change to a set, as an operator would make it. */
function mutate(current: readonly GeneratedPolicy[], set: GeneratedSet, rng: Rng, hot: ReadonlySet<string>): Mutation | undefined {
  const policies = current.map((p) => ({ ...p }));
  /** One of `candidates`, most often one that determined an answer. */
  const target = (candidates: GeneratedPolicy[]): GeneratedPolicy | undefined => {
    const determining = candidates.filter((p) => hot.has(p.id));
    const from = determining.length > 0 && rng.chance(0.85) ? determining : candidates;
    return from.length === 0 ? undefined : rng.pick(from);
  };
  const kind = rng.pick(['permit-to-forbid', 'change-pattern', 'regenerate', 'add-forbid', 'forbid-to-permit', 'drop-permit-file'] as const);
  const withEffect = (effect: 'permit' | 'forbid'): GeneratedPolicy[] => policies.filter((p) => p.effect === effect);
  switch (kind) {
    case 'permit-to-forbid': {
      const p = target(withEffect('permit'));
      if (p === undefined) return undefined;
      p.text = p.text.replace(/\npermit /, '\nforbid ');
      p.effect = 'forbid';
      return { policies, what: `permit ${p.id} turned into a forbid`, deferred: false };
    }
    case 'forbid-to-permit': {
      const p = target(withEffect('forbid'));
      if (p === undefined) return undefined;
      p.text = p.text.replace(/\nforbid /, '\npermit ');
      p.effect = 'permit';
      return { policies, what: `forbid ${p.id} turned into a permit`, deferred: true };
    }
    case 'change-pattern': {
      const p = target(policies.filter((p) => / like "/.test(p.text)));
      if (p === undefined) return undefined;
      const slot = rng.pick(['branch', 'path', 'tag', 'step_label', 'method']);
      p.text = p.text.replace(/ like "(?:[^"\\]|\\.)*"/, () => ` like ${patternLiteral(rng.chance(0.3) ? [{ kind: 'star' }] : patternFrom(rng.pick(slotPool(slot)), rng))}`);
      return { policies, what: `a like pattern of ${p.id} changed`, deferred: false };
    }
    case 'regenerate': {
      const p = target(policies);
      if (p === undefined) return undefined;
      for (let attempt = 0; attempt < 10; attempt++) {
        const text = set.gen.policy(p.id, p.effect);
        if (refusedIds([{ ...p, text }]).size === 0) {
          p.text = text;
          return { policies, what: `${p.id} rewritten`, deferred: false };
        }
      }
      return undefined;
    }
    case 'add-forbid': {
      for (let attempt = 0; attempt < 10; attempt++) {
        const id = `added-${rng.hex(6)}`;
        const p: GeneratedPolicy = { id, effect: 'forbid', text: set.gen.policy(id, 'forbid'), file: 'z-added.cedar' };
        if (refusedIds([p]).size === 0) return { policies: [...policies, p], what: `forbid ${id} added in a new file`, deferred: false };
      }
      return undefined;
    }
    case 'drop-permit-file': {
      // A removed file explains its permits' loss: Port applies that at once.
      const files = [...new Set(policies.map((p) => p.file))].filter((f) => policies.every((p) => p.file !== f || p.effect === 'permit'));
      if (files.length === 0 || files.length === new Set(policies.map((p) => p.file)).size) return undefined;
      const file = rng.pick(files);
      return { policies: policies.filter((p) => p.file !== file), what: `file ${file} (permits only) removed`, deferred: false };
    }
  }
}
