/**
 * Runs the differential: a generated set written to a folder and opened by Port's
 * PolicyEngine (under several fast-path settings), each probe built twice — once for the
 * engine, once for the reference, so neither can see the other's objects — and the two
 * answers compared: decision, determining policy ids (sorted), and errors (policy ids and
 * messages). Also the revision the engine says decided. Mismatches are kept with
 * everything needed to replay them by hand.
 */
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PolicyEngine, type EngineOptions } from '../../../src/policy/engine.js';
import type { AuthzRequest, Decision } from '../../../src/policy/types.js';
import { renderFiles, type GeneratedPolicy, type GeneratedSet } from './policy-gen.js';
import { buildRequest, type Probe } from './request-gen.js';
import { ReferenceSet, toCedar, withoutPosition, type Outcome, type ReferenceAnswer } from './reference.js';
import { Rng } from './rng.js';

/** The fast-path switches of the engine: the memo's size (0 = off) and slicing. */
export type FastPathOptions = Pick<EngineOptions, 'decisionMemo' | 'slicing'>;

/** The engine's public memo counters (PolicyEngine.memoStats). */
export type MemoStats = PolicyEngine['memoStats'];

/** What the differential needs of an engine (PolicyEngine, or a deliberately broken wrapper in the self-test). */
export interface Decider {
  decide(req: AuthzRequest): Decision;
  readonly revision: string;
}

export interface EngineConfig {
  name: string;
  options: FastPathOptions;
}

export function openEngine(dir: string, config: EngineConfig, extra: EngineOptions = {}): Promise<PolicyEngine> {
  return PolicyEngine.open(dir, { ...extra, ...config.options });
}

/** One generated set on disk, its reference and its engines. */
export class SetUnderTest {
  policies: GeneratedPolicy[];
  reference: ReferenceSet;
  readonly engines = new Map<string, PolicyEngine>();

  private constructor(
    readonly set: GeneratedSet,
    readonly dir: string,
  ) {
    this.policies = [...set.policies];
    this.reference = referenceOf(this.policies);
  }

  static async write(set: GeneratedSet, root: string): Promise<SetUnderTest> {
    const dir = path.join(root, `set-${set.index}`);
    await mkdir(dir, { recursive: true });
    const sut = new SetUnderTest(set, dir);
    await sut.writeFiles();
    return sut;
  }

  /** Replaces the set (the folder and the reference); the engines see it on reload(). */
  async replace(policies: GeneratedPolicy[]): Promise<void> {
    this.policies = policies;
    this.reference = referenceOf(policies);
    await this.writeFiles();
  }

  private async writeFiles(): Promise<void> {
    const files = renderFiles(this.policies, new Rng(this.set.index, 99));
    for (const name of await readdir(this.dir)) if (!(name in files)) await rm(path.join(this.dir, name));
    for (const [name, text] of Object.entries(files)) await writeFile(path.join(this.dir, name), text);
  }

  /** The whole set as text, file by file, for a failure report. */
  text(): string {
    const files = renderFiles(this.policies, new Rng(this.set.index, 99));
    return Object.entries(files)
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([name, text]) => `// ---- ${name}\n${text}`)
      .join('');
  }

  close(): void {
    for (const e of this.engines.values()) e.close();
  }
}

function referenceOf(policies: readonly GeneratedPolicy[]): ReferenceSet {
  return new ReferenceSet(Object.fromEntries(policies.map((p) => [p.id, p.text])));
}

export type AnswerKind = ReferenceAnswer['kind'] | 'allow' | 'forbid' | 'default-deny';

export interface Tally {
  decisions: number;
  byConfig: Record<string, number>;
  byKind: Record<string, number>;
  byVariant: Record<string, number>;
  /** Error or failure answers: each one must be a deny (fail closed). */
  failClosed: number;
  statelessChecks: number;
  /** Seconds spent in the engine, the preparsed reference, and the stateless reference. */
  seconds: { engine: number; reference: number; stateless: number };
}

export function newTally(): Tally {
  return { decisions: 0, byConfig: {}, byKind: {}, byVariant: {}, failClosed: 0, statelessChecks: 0, seconds: { engine: 0, reference: 0, stateless: 0 } };
}

const MAX_REPORTED = 3;

export class Differential {
  readonly tally = newTally();
  readonly mismatches: string[] = [];
  mismatchCount = 0;
  /** Mismatches by engine configuration: which fast path is wrong. */
  readonly mismatchesBy: Record<string, number> = {};
  private readonly sample: Rng;

  constructor(
    seed: number,
    private readonly reproduce: string,
    /** Probability of also asking the stateless call, per fresh reference answer, by set size. */
    private readonly statelessRate: (sut: SetUnderTest, answer: ReferenceAnswer) => number,
  ) {
    this.sample = new Rng(seed, 4242);
  }

  /** Decides `probe` with `engine` and with the reference; records a mismatch. Returns the engine's decision. */
  check(sut: SetUnderTest, configName: string, engine: Decider, probe: Probe, note = ''): Decision {
    const t = this.tally;
    const forEngine = buildRequest(probe, sut.set.vocab);
    let clock = performance.now();
    const decision = engine.decide(forEngine);
    t.seconds.engine += (performance.now() - clock) / 1000;
    const forReference = buildRequest(probe, sut.set.vocab);
    clock = performance.now();
    const cedar = toCedar(forReference);
    const key = JSON.stringify(cedar);
    const before = sut.reference.statefulCalls;
    const expected = sut.reference.answer(cedar, key);
    const fresh = sut.reference.statefulCalls > before;
    t.seconds.reference += (performance.now() - clock) / 1000;

    t.decisions++;
    t.byConfig[configName] = (t.byConfig[configName] ?? 0) + 1;
    const kind = kindOf(expected);
    t.byKind[kind] = (t.byKind[kind] ?? 0) + 1;
    t.byVariant[probe.variant.replace(/:.*/, '')] = (t.byVariant[probe.variant.replace(/:.*/, '')] ?? 0) + 1;
    if (expected.outcome.errors.length > 0) t.failClosed++;

    const got = canonical(outcomeOf(decision), expected.kind === 'thrown');
    const want = canonical(expected.outcome, expected.kind === 'thrown');
    const revisionOk = decision.revision === engine.revision;
    if (got !== want || !revisionOk) {
      this.record(sut, configName, probe, forReference, decision, expected, revisionOk ? '' : `the decision names revision ${decision.revision}, the engine is at ${engine.revision}`, note);
    }
    if (fresh && this.sample.chance(this.statelessRate(sut, expected))) {
      t.statelessChecks++;
      clock = performance.now();
      const plain = sut.reference.stateless(cedar);
      t.seconds.stateless += (performance.now() - clock) / 1000;
      if (canonical(plain.outcome, plain.kind === 'thrown') !== want) {
        this.record(sut, 'reference paths (stateful vs plain stateless isAuthorized)', probe, forReference, undefined, expected, `plain isAuthorized answered ${JSON.stringify(plain.raw)}`, note);
      }
    }
    return decision;
  }

  private record(sut: SetUnderTest, config: string, probe: Probe, req: AuthzRequest, decision: Decision | undefined, expected: ReferenceAnswer, extra: string, note: string): void {
    this.mismatchCount++;
    this.mismatchesBy[config] = (this.mismatchesBy[config] ?? 0) + 1;
    if (this.mismatches.length >= MAX_REPORTED) return;
    this.mismatches.push(
      [
        `MISMATCH #${this.mismatchCount}: engine config "${config}", set ${sut.set.index} (${sut.policies.length} policies), variant ${probe.variant}${note ? `, ${note}` : ''}`,
        `reproduce: ${this.reproduce}`,
        extra,
        '--- policy set ---',
        sut.text(),
        '--- request (Port AuthzRequest) ---',
        JSON.stringify(req, null, 1),
        '--- engine decision ---',
        decision === undefined ? '(none)' : JSON.stringify(decision, null, 1),
        '--- reference, Port semantics ---',
        JSON.stringify(expected.outcome, null, 1),
        '--- reference, cedar-wasm answer ---',
        JSON.stringify(expected.raw),
      ]
        .filter((l) => l !== '')
        .join('\n'),
    );
  }
}

export function outcomeOf(d: Decision): Outcome {
  return {
    decision: d.decision,
    determining: d.determining.map((p) => p.id),
    errors: d.errors.map((e) => (e.policyId === undefined ? { message: e.message } : { policyId: e.policyId, message: e.message })),
  };
}

/** One string per outcome; a thrown message is compared without its position (reference.ts). */
export function canonical(o: Outcome, thrown: boolean): string {
  return JSON.stringify({
    decision: o.decision,
    determining: o.determining,
    errors: o.errors.map((e) => ({ policyId: e.policyId ?? null, message: thrown ? withoutPosition(e.message) : e.message })),
  });
}

function kindOf(a: ReferenceAnswer): AnswerKind {
  if (a.kind !== 'ok') return a.kind;
  if (a.outcome.decision === 'allow') return 'allow';
  return a.outcome.determining.length > 0 ? 'forbid' : 'default-deny';
}
