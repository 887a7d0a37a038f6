/**
 * The policy engine: Port's policy folder, preparsed once per load, decided with
 * cedar-wasm's stateful API (`preparsePolicySet`/`statefulIsAuthorized`, added in
 * https://github.com/cedar-policy/cedar/pull/1831): a few hundred µs per decision instead of
 * re-parsing policies and schema on every call (BENCHMARKS.md). No file reads or parsing per request.
 *
 * Reloads are all-or-nothing: a set that does not load is refused and the engine keeps
 * deciding with its last good set; a good set is preparsed under the spare id and then
 * switched to in one assignment. Cedar has no "drop" for a preparsed set; re-preparsing an
 * id replaces it, so each engine alternates between two ids.
 *
 * Reloads are also atomic in effect: a folder caught half-written — a
 * file truncated by a non-atomic save and rewritten a moment later — parses as a smaller
 * set, and applying it would drop a `forbid` for that moment. So a set that loses
 * policies (or turns a forbid into something else) while the files that held them are
 * still in the folder is not applied at once: the engine waits until the folder has read
 * the same for a quiet period, re-reading it, and says so through `onDeferred`. A loss
 * the folder explains — the file that held the policy was removed or renamed — applies
 * at once. Writers should save atomically anyway (temp file in the folder, then rename:
 * rename(2) replaces the name in one step, https://man7.org/linux/man-pages/man2/rename.2.html).
 */
import { watch as watchDir, type FSWatcher } from 'node:fs';
import path from 'node:path';
import { PortError } from '../errors.js';
import { policyToJson, preparsePolicySet, preparseSchema, statefulIsAuthorized, type PolicyJson } from './cedar.js';
import { cedarRequest } from './cedar-json.js';
import { DecisionMemo, DEFAULT_MEMO_ENTRIES, type MemoStats } from './decision-memo.js';
import { defaultDenyReason, failedDecision, interpretAnswer } from './decision.js';
import { jobRequestParts } from './entities.js';
import { PolicyLoadError } from './errors.js';
import { loadPolicyDir, type LoadedPolicySet, type PolicyFile } from './loader.js';
import { policyReads, type PolicyReads } from './policy-reads.js';
import { PolicySlices } from './policy-slices.js';
import { projectionKey } from './request-projection.js';
import { PORT_ACTIONS, PORT_SCHEMA } from './schema.js';
import { SharedEntities } from './shared-entities.js';
import type { AuthzRequest, CedarEntity, Decision, PolicyInfo, PolicyProblem, PortAction } from './types.js';
import { asUnmatched, permitsFor, relevantPermits } from './unmatched-permits.js';

export interface EngineOptions {
  /**
   * Called after a reload that changed the policy set; `afterQuietPeriod` when it is a
   * set that had been deferred (see onDeferred) and the folder then stayed unchanged.
   */
  onReload?: (info: { revision: string; policies: number; warnings: readonly PolicyProblem[]; afterQuietPeriod?: true }) => void;
  /**
   * Called when a reload is refused (a PolicyLoadError, whose `problems` list every
   * problem) or the folder watcher fails; the old set stays in force.
   */
  onError?: (err: Error) => void;
  /**
   * Called once when a reload finds a set that would lose policies without the folder
   * explaining it (a file truncated mid-save?): the old set stays in force until the folder
   * reads the same for `quietPeriodMs`, then the new set applies (onReload) — or the
   * folder changes back and nothing happens.
   */
  onDeferred?: (info: DeferredReload) => void;
  /** How long a losing set must stay unchanged on disk before it applies. Default 1500 ms. */
  quietPeriodMs?: number;
  /** The clock the quiet period is measured with (tests inject one). */
  now?: () => number;
  /** Policies compiled from the config (grants:, src/grants), loaded with the folder's on every load and reload. */
  compiled?: readonly PolicyFile[];
  /**
   * How many decisions to remember per policy set, keyed by what the policies can read of
   * the request (decision-memo.ts); 0 turns the memo off. Default 4096.
   */
  decisionMemo?: number;
  /** Hand Cedar only the policies whose scope can match the request (policy-slices.ts). Default true. */
  slicing?: boolean;
}

/** A reload the engine is holding back until the folder is quiet. */
export interface DeferredReload {
  /** The revision read from the folder that is waiting (not in force). */
  revision: string;
  /** The policy ids it would drop (or turn from forbid to permit). */
  lost: string[];
  /** One sentence: what would be lost, and that Port is waiting. */
  reason: string;
  quietPeriodMs: number;
}

export type ReloadResult =
  | { ok: true; changed: boolean; revision: string; warnings: readonly PolicyProblem[]; deferred?: DeferredReload }
  | { ok: false; problems: readonly PolicyProblem[] };

/** fs.watch fires several events per save (and per ConfigMap symlink swap); coalesce them. */
const WATCH_DEBOUNCE_MS = 200;

/** Long enough for an editor's or a config tool's truncate-then-write to finish. */
const DEFAULT_QUIET_PERIOD_MS = 1500;

/** Where a decision came from: the decision memo, a Cedar evaluation, or a failure (a deny that says why). */
export type DecisionSource = 'memo' | 'cedar' | 'failed';

/** Cedar keeps preparsed schemas per wasm instance (per thread); one name per process. */
const SCHEMA_NAME = 'port-schema';
let schemaPrepared = false;

/** Distinguishes the preparsed-set ids of engines sharing a process (tests, replay drafts). */
let engineCount = 0;

interface Snapshot {
  psetId: string;
  revision: string;
  files: readonly string[];
  policies: readonly PolicyInfo[];
  byId: ReadonlyMap<string, PolicyInfo>;
  warnings: readonly PolicyProblem[];
  /** Permits by the action they name, computed lazily on the first default deny for it. */
  permitsByAction: Map<PortAction, PolicyInfo[]>;
  /** What the set can read of a request: the memo's key. */
  reads: PolicyReads;
  memo: DecisionMemo;
  /** Undefined with `slicing: false`. */
  slices: PolicySlices | undefined;
}

function prepareSchema(): void {
  if (schemaPrepared) return;
  const answer = preparseSchema(SCHEMA_NAME, PORT_SCHEMA);
  if (answer.type === 'failure') {
    // A bug in schema.ts, not a user error.
    throw new PortError('policy_schema_invalid', `Port's Cedar schema does not parse: ${answer.errors[0]?.message ?? 'no detail'}`);
  }
  schemaPrepared = true;
}

export class PolicyEngine {
  readonly dir: string;
  private readonly options: EngineOptions;
  private readonly instance: number;
  private generation = 0;
  private current: Snapshot;
  private reloading: Promise<unknown> = Promise.resolve();
  private warmedUp = false;
  private readonly quietPeriodMs: number;
  private readonly now: () => number;
  /** A losing set seen on disk, and when it was first read. */
  private pending: { info: DeferredReload; since: number } | undefined;
  private recheck: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly stats: MemoStats = { hits: 0, misses: 0, uncacheable: 0 };

  private constructor(dir: string, options: EngineOptions, set: LoadedPolicySet) {
    this.dir = dir;
    this.options = options;
    this.quietPeriodMs = options.quietPeriodMs ?? DEFAULT_QUIET_PERIOD_MS;
    this.now = options.now ?? Date.now;
    this.instance = ++engineCount;
    this.current = this.prepare(set);
  }

  /** Loads and preparses the folder, or throws PolicyLoadError listing every problem. */
  static async open(dir: string, options: EngineOptions = {}): Promise<PolicyEngine> {
    prepareSchema();
    const outcome = await loadPolicyDir(dir, options.compiled);
    if (!outcome.ok) throw new PolicyLoadError(outcome.problems);
    return new PolicyEngine(dir, options, outcome.set);
  }

  /** True once warmUp() has run: the wasm is compiled and a decision has gone through. */
  get ready(): boolean {
    return this.warmedUp;
  }

  get revision(): string {
    return this.current.revision;
  }

  get policies(): readonly PolicyInfo[] {
    return this.current.policies;
  }

  get warnings(): readonly PolicyProblem[] {
    return this.current.warnings;
  }

  get files(): readonly string[] {
    return this.current.files;
  }

  policy(id: string): PolicyInfo | undefined {
    return this.current.byId.get(id);
  }

  /** Counters of the decision memo, over every set this engine has had. */
  get memoStats(): Readonly<MemoStats> {
    return { ...this.stats };
  }

  /** The reload being held back until the folder is quiet, if any. */
  get deferred(): DeferredReload | undefined {
    return this.pending?.info;
  }

  /** Synchronous and fail-closed: every error becomes a deny that says why. */
  decide(req: AuthzRequest): Decision {
    return this.decideWithSource(req).decision;
  }

  /**
   * decide() for several requests on the same entities (an exchange's, then each grant's):
   * each decision is exactly decide()'s, but the entities are converted and projected for
   * the memo once (shared-entities.ts), not per decision.
   */
  on(entities: CedarEntity[]): { decide(req: Omit<AuthzRequest, 'entities'>): Decision } {
    const shared = new SharedEntities(entities);
    // Listed, not spread: a literal that begins with a spread costs a hidden class per object (src/merge-objects.ts).
    return { decide: (req) => this.decideWithSource({ principal: req.principal, action: req.action, resource: req.resource, context: req.context, entities }, shared).decision };
  }

  /**
   * decide(), saying where the answer came from: the memo (as cheap as a cache lookup, so
   * a caller's own cache gains nothing by keeping it), Cedar, or a failure (a deny).
   * `shared` is `req.entities`, converted and projected once for several decisions (on()).
   */
  decideWithSource(req: AuthzRequest, shared?: SharedEntities): { decision: Decision; source: DecisionSource } {
    const snap = this.current;
    try {
      // Converted once: the key is read from exactly what Cedar would be given.
      const call = shared === undefined ? cedarRequest(req) : cedarRequest(req, shared.cedar());
      // The same projection, the same answer from Cedar (request-projection.ts).
      const key = !snap.memo.enabled ? undefined : shared === undefined ? projectionKey(call, snap.reads) : shared.key(call, snap.reads);
      let decision = key === undefined ? undefined : snap.memo.get(key);
      const source: DecisionSource = decision === undefined ? 'cedar' : 'memo';
      if (decision === undefined) {
        const answer = statefulIsAuthorized({
          ...call,
          preparsedPolicySetId: snap.slices?.setFor(req.action, call.resource.type, call.resource.id) ?? snap.psetId,
          preparsedSchemaName: SCHEMA_NAME,
          validateRequest: true,
        });
        decision = interpretAnswer(answer, { action: req.action, revision: snap.revision, policy: (id) => snap.byId.get(id) });
        if (key !== undefined) snap.memo.set(key, decision);
        else if (snap.memo.enabled) this.stats.uncacheable++;
      }
      // A default deny (no permit held, no forbid, no error) says which permits were
      // written for this request and did not match; allows never pay for it.
      if (decision.decision === 'deny' && decision.determining.length === 0 && decision.errors.length === 0) {
        return { decision: this.explainDefaultDeny(snap, req, decision), source };
      }
      return { decision, source };
    } catch (err) {
      return { decision: failedDecision(err, snap.revision), source: 'failed' };
    }
  }

  /** Re-reads the folder. Reloads run one at a time, in call order. Never rejects. */
  reload(): Promise<ReloadResult> {
    const run = this.reloading.then(() => this.reloadNow());
    this.reloading = run.catch(() => undefined);
    return run;
  }

  /** Reloads when anything in the folder changes; returns the function that stops watching. */
  watch(): () => void {
    let timer: NodeJS.Timeout | undefined;
    let watcher: FSWatcher;
    try {
      watcher = watchDir(this.dir, () => {
        clearTimeout(timer);
        timer = setTimeout(() => void this.reload(), WATCH_DEBOUNCE_MS);
      });
    } catch (err) {
      this.options.onError?.(asError(err));
      return () => undefined;
    }
    watcher.on('error', (err) => this.options.onError?.(err));
    return () => {
      clearTimeout(timer);
      watcher.close();
      this.close();
    };
  }

  /** Stops the quiet-period re-check (watch()'s stop function calls this too). */
  close(): void {
    this.closed = true;
    clearTimeout(this.recheck);
    this.recheck = undefined;
  }

  /** One throw-away decision so the wasm code is compiled before the server says ready (V8 compiles wasm lazily, so the first decision is slow). */
  warmUp(): void {
    const { principal, entities } = jobRequestParts({
      subject: 'warm-up',
      organizationSlug: 'warm-up',
      pipelineSlug: 'warm-up',
      buildNumber: 1,
      branch: 'main',
      tag: null,
      commit: '0000000000000000000000000000000000000000',
      stepKey: null,
      jobId: 'warm-up',
      agentId: 'warm-up',
      buildSource: 'api',
      runnerEnvironment: 'self-hosted',
      agentTags: {},
      issuedAt: 0,
      expiresAt: 0,
    });
    this.decide({
      principal,
      action: 'exchange',
      resource: { type: 'Organization', id: 'warm-up' },
      context: { audience: '', scopes: [] },
      entities,
    });
    this.warmedUp = true;
  }

  private async reloadNow(): Promise<ReloadResult> {
    let result: ReloadResult;
    let afterQuietPeriod = false;
    try {
      const outcome = await loadPolicyDir(this.dir, this.options.compiled);
      if (!outcome.ok) {
        // The folder is not what was waiting: a losing set must be seen again, quietly.
        this.clearPending();
        result = { ok: false, problems: outcome.problems };
      } else if (outcome.set.revision === this.current.revision) {
        // Rewritten back (the truncate-then-write case): nothing to apply, nothing waiting.
        this.clearPending();
        result = { ok: true, changed: false, revision: outcome.set.revision, warnings: outcome.set.warnings };
      } else {
        const held = this.holdBack(outcome.set);
        if (held !== undefined) {
          result = { ok: true, changed: false, revision: this.current.revision, warnings: this.current.warnings, deferred: held };
        } else {
          afterQuietPeriod = this.pending?.info.revision === outcome.set.revision;
          this.current = this.prepare(outcome.set);
          this.clearPending();
          result = { ok: true, changed: true, revision: outcome.set.revision, warnings: outcome.set.warnings };
        }
      }
    } catch (err) {
      this.clearPending();
      const problems = err instanceof PolicyLoadError ? err.problems : [{ file: this.dir, line: 0, column: 0, message: asError(err).message }];
      result = { ok: false, problems };
    }
    if (!result.ok) this.options.onError?.(new PolicyLoadError(result.problems));
    else if (result.changed) {
      this.options.onReload?.({
        revision: result.revision,
        policies: this.current.policies.length,
        warnings: result.warnings,
        ...(afterQuietPeriod ? { afterQuietPeriod: true as const } : {}),
      });
    }
    return result;
  }

  /**
   * Whether `set` must wait for a quiet folder: it drops policies (or turns a forbid into
   * a permit) whose files are still in the folder. Returns the deferral while it must
   * wait, undefined once it may apply (no unexplained loss, or unchanged for the period).
   */
  private holdBack(set: LoadedPolicySet): DeferredReload | undefined {
    const lost = unexplainedLoss(this.current.policies, set);
    if (lost.length === 0) return undefined;
    const now = this.now();
    if (this.pending === undefined || this.pending.info.revision !== set.revision) {
      const info: DeferredReload = {
        revision: set.revision,
        lost: lost.map((p) => p.id),
        reason: lossReason(lost, set, this.quietPeriodMs),
        quietPeriodMs: this.quietPeriodMs,
      };
      this.pending = { info, since: now };
      this.options.onDeferred?.(info);
      this.scheduleRecheck(this.quietPeriodMs);
      return info;
    }
    const waited = now - this.pending.since;
    if (waited >= this.quietPeriodMs) return undefined;
    this.scheduleRecheck(this.quietPeriodMs - waited);
    return this.pending.info;
  }

  /** Re-reads the folder once the quiet period is over, whether or not the watcher fires again. */
  private scheduleRecheck(ms: number): void {
    if (this.closed) return;
    clearTimeout(this.recheck);
    this.recheck = setTimeout(() => void this.reload(), Math.max(ms, 1));
    this.recheck.unref();
  }

  private clearPending(): void {
    this.pending = undefined;
    clearTimeout(this.recheck);
    this.recheck = undefined;
  }

  private explainDefaultDeny(snap: Snapshot, req: AuthzRequest, decision: Decision): Decision {
    let candidates = snap.permitsByAction.get(req.action);
    if (candidates === undefined) {
      candidates = permitsFor(snap.policies, req.action);
      snap.permitsByAction.set(req.action, candidates);
    }
    if (candidates.length === 0) return decision;
    const unmatched = asUnmatched(relevantPermits(candidates, req));
    if (unmatched.length === 0) return decision;
    return { ...decision, unmatched, reason: defaultDenyReason(req.action, unmatched) };
  }

  /** Preparses under the id not in use; throws PolicyLoadError if Cedar refuses the set. */
  private prepare(set: LoadedPolicySet): Snapshot {
    const psetId = `port-${this.instance}-${this.generation % 2}`;
    const staticPolicies = Object.fromEntries(set.policies.map((p) => [p.id, p.text]));
    const answer = preparsePolicySet(psetId, { staticPolicies });
    if (answer.type === 'failure') {
      throw new PolicyLoadError(answer.errors.map((e) => ({ file: set.dir, line: 0, column: 0, message: e.message })));
    }
    this.generation++;
    const json = set.policies.map((p) => estOf(p));
    const slicing = this.options.slicing ?? true;
    return {
      psetId,
      reads: policyReads(json),
      memo: new DecisionMemo(memoEntries(this.options.decisionMemo), this.stats),
      slices: slicing ? new PolicySlices(set.policies, PORT_ACTIONS, psetId, preparseSlice) : undefined,
      revision: set.revision,
      files: set.files,
      policies: set.policies,
      byId: new Map(set.policies.map((p) => [p.id, p])),
      warnings: set.warnings,
      permitsByAction: new Map(),
    };
  }
}

/**
 * The policies in force that `set` would drop — gone, or a forbid no longer a forbid —
 * without the folder explaining it: a permit whose file is still there (truncated, not
 * removed or renamed), and any forbid, even one whose file is gone, because a save that
 * deletes and re-creates a file has a moment without it, and dropping a forbid for that
 * moment would allow what it denies. A permit's loss only denies more, so a removed
 * file's permits go at once.
 */
function unexplainedLoss(current: readonly PolicyInfo[], set: LoadedPolicySet): PolicyInfo[] {
  const next = new Map(set.policies.map((p) => [p.id, p]));
  const files = new Set(set.files);
  return current.filter((p) => {
    const q = next.get(p.id);
    const lost = q === undefined || (p.effect === 'forbid' && q.effect !== 'forbid');
    return lost && (p.effect === 'forbid' || files.has(p.file));
  });
}

function lossReason(lost: readonly PolicyInfo[], set: LoadedPolicySet, quietMs: number): string {
  const forbids = lost.filter((p) => p.effect === 'forbid').length;
  const named = lost.slice(0, 3).map((p) => `${p.id} (${path.basename(p.file)})`);
  const more = lost.length > named.length ? `, and ${lost.length - named.length} more` : '';
  const what = set.policies.length === 0 ? 'the policy folder now reads as empty' : `the policy folder now lacks ${lost.length} polic${lost.length === 1 ? 'y' : 'ies'}${forbids > 0 ? ` (${forbids} forbid${forbids === 1 ? '' : 's'})` : ''}`;
  const files = new Set(set.files);
  const why = lost.every((p) => files.has(p.file)) ? 'while their files are still there (a file caught half-written?)' : 'including forbids whose file is gone (a file being replaced?)';
  return `${what} — ${named.join(', ')}${more} — ${why}; keeping the current set until the folder is unchanged for ${quietMs} ms`;
}

/** The memo's bound: a count of entries, 0 for none; anything but a non-negative integer is a caller's bug. */
function memoEntries(option: number | undefined): number {
  if (option === undefined) return DEFAULT_MEMO_ENTRIES;
  if (!Number.isSafeInteger(option) || option < 0) throw new PortError('policy_memo_invalid', `decisionMemo must be a non-negative integer, not ${option}`);
  return option;
}

/** Cedar's JSON form of a policy, which the memo's analysis reads (policy-reads.ts). */
function estOf(p: PolicyInfo): PolicyJson {
  const answer = policyToJson(p.text);
  // Not expected: the loader parsed the same text. Throwing refuses the set (fail closed).
  if (answer.type === 'failure') throw new PolicyLoadError([{ file: p.file, line: p.line, column: 0, policyId: p.id, message: answer.errors[0]?.message ?? 'policy does not parse' }]);
  return answer.json;
}

function preparseSlice(id: string, policies: readonly PolicyInfo[]): void {
  const answer = preparsePolicySet(id, { staticPolicies: Object.fromEntries(policies.map((p) => [p.id, p.text])) });
  if (answer.type === 'failure') throw new Error(answer.errors[0]?.message ?? 'slice does not parse');
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
