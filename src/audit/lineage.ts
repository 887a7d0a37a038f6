/**
 * `port audit lineage`: the chain of a job, build or user from the
 * decision log — job identity → token exchanges → credentials issued → relay use →
 * approvals → revocations. Pure: entries in, the chain out; the CLI streams the store
 * through a LineageTracker twice (lineage-read.ts) so memory holds only what matches.
 *
 * How records link (the decision log's convention): a record about a job has principal
 * `Port::Job::"<id>"` and/or `context.job` (the job's claims, with `build_creator` when
 * known) and the bearer Port token's `context.port_token.jti_sha256` (a Buildkite token,
 * at exchange or presented to the relay: `context.subject_token.jti_sha256`); relay
 * decisions, allowed (aggregated per token) or denied, carry both; approval records
 * carry `context.request_id`, the block step's `context.job_id` and the build; a
 * revocation carries `context.scope` and `context.id` (a token: `context.jti_sha256`).
 */
import type { DecisionEntry } from '../store/records/decisions.js';
import { buildKey, buildLabel, entryRefs, parseBuildId, type BuildRef, type EntryRefs } from './lineage-refs.js';
import { describeStep, groupTitle, type LineageStage } from './lineage-describe.js';

export type LineageSelector = { kind: 'job'; id: string } | { kind: 'build'; id: string } | { kind: 'user'; id: string };

export interface LineageStep {
  entry: DecisionEntry;
  /** When it happened: the record's time, or for an aggregated relay entry the start of its window. */
  at: string;
  stage: LineageStage;
  /** The key facts, in the order to print them; values are plain text. */
  facts: [string, string][];
}

export interface LineageGroup {
  kind: 'job' | 'build' | 'user';
  id: string;
  /** What the log says the job (or block step) is: pipeline, build, branch, step, agent… */
  title: [string, string][];
  steps: LineageStep[];
}

export interface Lineage {
  selector: LineageSelector;
  /** Groups in the order their first step happened; steps in time order. */
  groups: LineageGroup[];
  /** Every matching entry in time order (what `--json` prints). */
  entries: DecisionEntry[];
}

/** Revocation scopes that cover tokens issued before them only (user, agent, pool). */
const FORWARD_SCOPES: Record<string, 'agents' | 'pools' | 'creators'> = { agent: 'agents', pool: 'pools', user: 'creators' };

/**
 * Decides, entry by entry in seq order, whether an entry belongs to the selected chain,
 * and learns from the ones that do (their jobs, tokens, credentials, approval requests,
 * agents) so later entries that name only those can be linked. Offering the log twice
 * links entries that come before what ties them to the selection (a relay use by a
 * Buildkite token before any entry names its build, a build whose creator is learned late).
 */
export class LineageTracker {
  /** Linked things, each with the seq of the entry that linked it (0: the selection itself). */
  private readonly jobs = new Map<string, number>();
  private readonly builds = new Map<string, number>();
  private readonly agents = new Map<string, number>();
  private readonly pools = new Map<string, number>();
  private readonly creators = new Map<string, number>();
  private readonly credentials = new Map<string, number>();
  private readonly requests = new Set<string>();
  /** Linked token hashes (Port tokens; Buildkite tokens apart), each with the job that held it when known. */
  private readonly tokens = new Map<string, string | undefined>();
  private readonly subjectTokens = new Map<string, string | undefined>();
  private readonly user: string | undefined;
  private readonly build: BuildRef | undefined;

  constructor(readonly selector: LineageSelector) {
    if (selector.kind === 'job') this.jobs.set(selector.id, 0);
    if (selector.kind === 'build') {
      this.build = parseBuildId(selector.id);
      if (this.build) this.builds.set(buildKey(this.build), 0);
    }
    if (selector.kind === 'user') {
      this.user = selector.id.toLowerCase();
      this.creators.set(this.user, 0);
    }
  }

  /** Whether `e` is part of the chain; learns from it when it is. */
  offer(e: DecisionEntry): boolean {
    const r = entryRefs(e.record);
    const owned = this.owns(r);
    const byUser = this.user !== undefined && r.principal?.type === 'User' && r.principal.id.toLowerCase() === this.user;
    const linked = owned || byUser || this.linked(r, e);
    if (owned) this.learn(r, e.seq);
    // An approval the user gave: follow its request (the unblock it led to), not the build.
    if (byUser && r.requestId !== undefined) this.requests.add(r.requestId);
    return linked;
  }

  /** The job group an entry belongs in: a linked job it names, else the job whose token it names. */
  jobOf(e: DecisionEntry): string | undefined {
    const r = entryRefs(e.record);
    const named = r.jobs.find((j) => this.jobs.has(j));
    if (named !== undefined) return named;
    const byToken = (r.tokenHash !== undefined ? this.tokens.get(r.tokenHash) : undefined) ?? (r.subjectTokenHash !== undefined ? this.subjectTokens.get(r.subjectTokenHash) : undefined);
    return byToken ?? (r.revoke?.scope === 'token' ? this.tokens.get(r.revoke.id) : undefined);
  }

  /** The entry is about the selection itself: its job, its build, or something the user started. */
  private owns(r: EntryRefs): boolean {
    if (r.jobs.some((j) => this.jobs.has(j))) return true;
    if (this.selector.kind === 'job') return false;
    if (r.build !== undefined && this.sameOrg(r.build) && this.builds.has(buildKey(r.build))) return true;
    return this.user !== undefined && r.creator === this.user;
  }

  /** The entry concerns something already linked: an approval request, a revoked scope, a rotated credential. */
  private linked(r: EntryRefs, e: DecisionEntry): boolean {
    if (r.requestId !== undefined && this.requests.has(r.requestId)) return true;
    if (r.tokenHash !== undefined && this.tokens.has(r.tokenHash)) return true;
    if (r.subjectTokenHash !== undefined && this.subjectTokens.has(r.subjectTokenHash)) return true;
    if (r.revoke !== undefined) {
      const { scope, id } = r.revoke;
      if (scope === 'token' && this.tokens.has(id)) return true;
      if (scope === 'build') {
        const b = parseBuildId(id);
        if (b !== undefined && this.builds.has(buildKey(b))) return true;
      }
      // User, agent and pool revocations cover only tokens issued before them.
      const forward = FORWARD_SCOPES[scope];
      const since = forward !== undefined ? this[forward].get(scope === 'user' ? id.toLowerCase() : id) : undefined;
      if (since !== undefined && since < e.seq) return true;
    }
    // A rotation of a secret the chain was issued: the value it holds stops being current.
    if (e.record.action === 'rotate' && r.credential !== undefined) {
      const since = this.credentials.get(r.credential);
      if (since !== undefined && since < e.seq) return true;
    }
    return false;
  }

  private learn(r: EntryRefs, seq: number): void {
    const note = (map: Map<string, number>, key: string | undefined): void => {
      if (key !== undefined && !map.has(key)) map.set(key, seq);
    };
    if (this.selector.kind !== 'job') for (const j of r.jobs) note(this.jobs, j);
    if (r.build !== undefined && this.sameOrg(r.build)) note(this.builds, buildKey(r.build));
    note(this.agents, r.agent);
    note(this.pools, r.pool);
    note(this.creators, r.creator);
    if (r.requestId !== undefined) this.requests.add(r.requestId);
    const holder = r.jobs.find((j) => this.jobs.has(j));
    if (r.tokenHash !== undefined && this.tokens.get(r.tokenHash) === undefined) this.tokens.set(r.tokenHash, holder);
    if (r.subjectTokenHash !== undefined && this.subjectTokens.get(r.subjectTokenHash) === undefined) this.subjectTokens.set(r.subjectTokenHash, holder);
    if (r.credential !== undefined && r.issued === true) note(this.credentials, r.credential);
  }

  private sameOrg(b: BuildRef): boolean {
    return this.build?.organization === undefined || b.organization === undefined || b.organization === this.build.organization;
  }
}

/** The lineage of `selector` in `entries` (any order; read twice). */
export function lineage(entries: readonly DecisionEntry[], selector: LineageSelector): Lineage {
  const tracker = new LineageTracker(selector);
  const sorted = [...entries].sort((a, b) => a.seq - b.seq);
  for (const e of sorted) tracker.offer(e);
  return arrangeLineage(tracker, sorted.filter((e) => tracker.offer(e)));
}

/** Groups the matching entries (in seq order) per job, and orders everything by time. */
export function arrangeLineage(tracker: LineageTracker, matching: readonly DecisionEntry[]): Lineage {
  const selector = tracker.selector;
  const steps = matching.map((entry) => ({ entry, ...describeStep(entry.record) })).sort(byTime);
  const groups = new Map<string, LineageGroup>();
  for (const step of steps) {
    const { kind, id } = groupOf(tracker, step.entry);
    const key = `${kind}:${id}`;
    let group = groups.get(key);
    if (!group) groups.set(key, (group = { kind, id, title: [], steps: [] }));
    group.steps.push(step);
  }
  for (const g of groups.values()) g.title = groupTitle(g.steps.map((s) => s.entry.record));
  return { selector, groups: [...groups.values()], entries: steps.map((s) => s.entry) };
}

function groupOf(tracker: LineageTracker, e: DecisionEntry): { kind: LineageGroup['kind']; id: string } {
  const selector = tracker.selector;
  if (selector.kind === 'job') return { kind: 'job', id: selector.id };
  const job = tracker.jobOf(e);
  if (job !== undefined) return { kind: 'job', id: job };
  if (selector.kind === 'build') return { kind: 'build', id: selector.id };
  const build = entryRefs(e.record).build;
  return build !== undefined ? { kind: 'build', id: buildLabel(build) } : { kind: 'user', id: selector.id.toLowerCase() };
}

function byTime(a: LineageStep, b: LineageStep): number {
  const ta = Date.parse(a.at);
  const tb = Date.parse(b.at);
  if (ta !== tb && !Number.isNaN(ta) && !Number.isNaN(tb)) return ta - tb;
  return a.entry.seq - b.entry.seq;
}

const SELECTOR_SHAPES: Record<LineageSelector['kind'], { pattern: RegExp; shape: string }> = {
  // Buildkite job ids are UUIDs; anything id-like is accepted so older or simulated ids still match.
  job: { pattern: /^[0-9A-Za-z][0-9A-Za-z-]{0,63}$/, shape: 'a Buildkite job id (a UUID)' },
  build: { pattern: /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}\/[A-Za-z0-9][A-Za-z0-9_.-]{0,99}\/\d{1,12}$/, shape: 'ORG/PIPELINE/NUMBER (e.g. acme/deploy/42)' },
  user: { pattern: /^[^\s@]{1,200}@[^\s@]{1,200}$/, shape: 'an e-mail address' },
};

/** Why `id` cannot name a `kind`, or undefined when it can. */
export function selectorProblem(kind: LineageSelector['kind'], id: string): string | undefined {
  const { pattern, shape } = SELECTOR_SHAPES[kind];
  return pattern.test(id) ? undefined : `--${kind} must be ${shape}`;
}
