/**
 * The policy engine: Port's policy folder, preparsed once per load, decided with
 * cedar-wasm's stateful API (security-notes §2.1, §2.3: ~0.2 ms per decision instead of
 * re-parsing policies and schema on every call). No file reads or parsing per request.
 *
 * Reloads are all-or-nothing: a set that does not load is refused and the engine keeps
 * deciding with its last good set; a good set is preparsed under the spare id and then
 * switched to in one assignment. Cedar has no "drop" for a preparsed set; re-preparsing an
 * id replaces it (security-notes §2.1), so each engine alternates between two ids.
 */
import { watch as watchDir, type FSWatcher } from 'node:fs';
import { PortError } from '../errors.js';
import { preparsePolicySet, preparseSchema, statefulIsAuthorized, type CedarValueJson, type EntityJson } from './cedar.js';
import { failedDecision, interpretAnswer } from './decision.js';
import { jobRequestParts } from './entities.js';
import { PolicyLoadError } from './errors.js';
import { loadPolicyDir, type LoadedPolicySet } from './loader.js';
import { ACTION_TYPE, PORT_SCHEMA, qualifiedType } from './schema.js';
import type { AuthzRequest, CedarEntity, CedarValue, Decision, EntityRef, PolicyInfo, PolicyProblem } from './types.js';

export interface EngineOptions {
  /** Called after a reload that changed the policy set. */
  onReload?: (info: { revision: string; policies: number; warnings: readonly PolicyProblem[] }) => void;
  /**
   * Called when a reload is refused (a PolicyLoadError, whose `problems` list every
   * problem) or the folder watcher fails; the old set stays in force.
   */
  onError?: (err: Error) => void;
}

export type ReloadResult =
  | { ok: true; changed: boolean; revision: string; warnings: readonly PolicyProblem[] }
  | { ok: false; problems: readonly PolicyProblem[] };

/** fs.watch fires several events per save (and per ConfigMap symlink swap); coalesce them. */
const WATCH_DEBOUNCE_MS = 200;

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

  private constructor(dir: string, options: EngineOptions, set: LoadedPolicySet) {
    this.dir = dir;
    this.options = options;
    this.instance = ++engineCount;
    this.current = this.prepare(set);
  }

  /** Loads and preparses the folder, or throws PolicyLoadError listing every problem. */
  static async open(dir: string, options: EngineOptions = {}): Promise<PolicyEngine> {
    prepareSchema();
    const outcome = await loadPolicyDir(dir);
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

  /** Synchronous and fail-closed: every error becomes a deny that says why. */
  decide(req: AuthzRequest): Decision {
    const snap = this.current;
    try {
      const answer = statefulIsAuthorized({
        principal: cedarUid(req.principal),
        action: { type: ACTION_TYPE, id: req.action },
        resource: cedarUid(req.resource),
        context: cedarRecord(req.context ?? {}),
        entities: req.entities.map(cedarEntity),
        preparsedPolicySetId: snap.psetId,
        preparsedSchemaName: SCHEMA_NAME,
        validateRequest: true,
      });
      return interpretAnswer(answer, { action: req.action, revision: snap.revision, policy: (id) => snap.byId.get(id) });
    } catch (err) {
      return failedDecision(err, snap.revision);
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
    };
  }

  /** One throw-away decision so the wasm code is compiled before the server says ready (security-notes §2.4). */
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
    try {
      const outcome = await loadPolicyDir(this.dir);
      if (!outcome.ok) {
        result = { ok: false, problems: outcome.problems };
      } else if (outcome.set.revision === this.current.revision) {
        result = { ok: true, changed: false, revision: outcome.set.revision, warnings: outcome.set.warnings };
      } else {
        this.current = this.prepare(outcome.set);
        result = { ok: true, changed: true, revision: outcome.set.revision, warnings: outcome.set.warnings };
      }
    } catch (err) {
      const problems = err instanceof PolicyLoadError ? err.problems : [{ file: this.dir, line: 0, column: 0, message: asError(err).message }];
      result = { ok: false, problems };
    }
    if (!result.ok) this.options.onError?.(new PolicyLoadError(result.problems));
    else if (result.changed) {
      this.options.onReload?.({ revision: result.revision, policies: this.current.policies.length, warnings: result.warnings });
    }
    return result;
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
    return {
      psetId,
      revision: set.revision,
      files: set.files,
      policies: set.policies,
      byId: new Map(set.policies.map((p) => [p.id, p])),
      warnings: set.warnings,
    };
  }
}

function cedarUid(ref: EntityRef): { type: string; id: string } {
  return { type: qualifiedType(ref.type), id: ref.id };
}

function cedarEntity(e: CedarEntity): EntityJson {
  return {
    uid: cedarUid(e.uid),
    attrs: cedarRecord(e.attrs),
    parents: e.parents.map(cedarUid),
    ...(e.tags !== undefined ? { tags: cedarRecord(e.tags) } : {}),
  };
}

function cedarRecord(record: Record<string, CedarValue>): Record<string, CedarValueJson> {
  return Object.fromEntries(Object.entries(record).map(([k, v]) => [k, cedarValue(v)]));
}

/** Entity references inside values carry the unqualified type too; qualify them on the way in. */
function cedarValue(value: CedarValue): CedarValueJson {
  if (Array.isArray(value)) return value.map(cedarValue);
  if (typeof value !== 'object' || value === null) return value;
  if ('__entity' in value && isEntityRef(value.__entity)) return { __entity: cedarUid(value.__entity) };
  return cedarRecord(value as Record<string, CedarValue>);
}

function isEntityRef(v: unknown): v is EntityRef {
  return typeof v === 'object' && v !== null && typeof (v as EntityRef).type === 'string' && typeof (v as EntityRef).id === 'string';
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
