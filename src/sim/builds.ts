/**
 * The simulator's builds and how they move (https://buildkite.com/docs/apis/rest-api/builds,
 * https://buildkite.com/docs/apis/webhooks/pipelines; kept simple):
 *
 * - a new build's steps before its first block step have already passed, so a build
 *   with a block step is blocked at once: the block's `manual` job is `blocked` and
 *   `unblockable`, the build `blocked: true` with the state its `blocked_state` names;
 * - unblocking marks the job `unblocked` (with `unblocked_by`, `unblocked_at`), stores
 *   the field values as build meta-data (block step docs) and starts the next command jobs — each
 *   then also exists as an OIDC job that can mint tokens;
 * - finishing jobs moves the build on to its next block step or to its end.
 *
 * State changes are reported as the webhook events Buildkite would send: `build.finished`
 * when a build blocks or ends (a blocked build is announced as `build.finished` with
 * `blocked: true`, https://buildkite.com/docs/apis/webhooks/pipelines/build-events), `job.finished`, and
 * `job.activated` after an unblock.
 */
import type {
  SimBuild,
  SimBuildInit,
  SimBuildJob,
  SimBuildJobState,
  SimBlockedState,
  SimStepInit,
  SimUser,
} from './build-types.js';
import { SimApiError, unprocessable } from './errors.js';
import { commitSha, uuid } from './ids.js';
import { graphqlId } from './rest-json.js';
import type { SimJob, SimJobInit } from './types.js';

/** The OIDC side of a command job: created when it starts, finished when it ends. */
export interface OidcJobs {
  create(init: SimJobInit): SimJob;
  finish(jobId: string): void;
}

export type BuildEvent =
  | { event: 'build.finished'; build: SimBuild }
  | { event: 'job.finished' | 'job.activated'; build: SimBuild; job: SimBuildJob };

/** Buildkite's refusals of `PUT …/unblock` ("Unblock a job", https://buildkite.com/docs/apis/rest-api/jobs). The last one is unconfirmed wording. */
export const UNBLOCK_REFUSALS = {
  wrongType: 'This job type cannot be unblocked',
  badUnblocker: 'Unblocker is not a valid user id for this organization',
  canceledBuild: 'Jobs from canceled builds cannot be unblocked',
  /** Unconfirmed: what Buildkite answers for a manual job that is not (or no longer) blocked. */
  notUnblockable: 'This job cannot be unblocked',
  /** Unconfirmed: Buildkite's answer for `fields` that are not a string map. */
  badFields: 'Fields must be an object of strings',
} as const;

type Mutable<T> = { -readonly [K in keyof T]: T[K] };
type Job = Mutable<SimBuildJob>;
type Build = Omit<Mutable<SimBuild>, 'jobs' | 'metaData'> & { jobs: Job[]; metaData: Record<string, string> };

const FINISHED: ReadonlySet<SimBuildJobState> = new Set(['passed', 'failed', 'canceled', 'broken']);

export class BuildRegistry {
  private readonly builds = new Map<string, Build>();
  private readonly byNumber = new Map<string, string>();
  private readonly buildOfJob = new Map<string, string>();
  private readonly nextNumber = new Map<string, number>();
  private readonly pipelineIds = new Map<string, string>();

  constructor(
    private readonly organizationSlug: string,
    private readonly oidc: OidcJobs,
    private readonly resolveUser: (id: string) => SimUser | undefined,
    private readonly emit: (event: BuildEvent) => void,
  ) {}

  create(init: SimBuildInit): SimBuild {
    const slug = init.pipelineSlug;
    const number = init.number ?? this.nextNumber.get(slug) ?? 1;
    if (this.byNumber.has(`${slug}#${number}`)) throw new Error(`build ${slug}#${number} already exists`);
    this.nextNumber.set(slug, Math.max(this.nextNumber.get(slug) ?? 1, number + 1));
    const id = uuid();
    const now = new Date();
    const build: Build = {
      id,
      graphqlId: graphqlId('Build', id),
      number,
      organizationSlug: this.organizationSlug,
      pipelineSlug: slug,
      pipelineId: this.pipelineId(slug),
      branch: init.branch ?? 'main',
      tag: init.tag ?? null,
      commit: init.commit ?? commitSha(),
      message: init.message ?? 'Simulated build',
      source: init.source ?? 'ui',
      creator: init.creator,
      author: init.author ?? null,
      state: 'running',
      blocked: false,
      jobs: [],
      metaData: {},
      createdAt: now,
      startedAt: now,
      finishedAt: null,
    };
    build.jobs = init.steps.map((step) => newJob(build, step, now));
    // Everything before the first block step has already run and passed.
    const firstBlock = build.jobs.findIndex((j) => j.type === 'manual');
    for (const job of firstBlock === -1 ? [] : build.jobs.slice(0, firstBlock)) {
      job.state = 'passed';
      if (job.type === 'script') Object.assign(job, { exitStatus: 0, startedAt: now, finishedAt: now });
    }
    this.builds.set(id, build);
    this.byNumber.set(`${slug}#${number}`, id);
    for (const job of build.jobs) this.buildOfJob.set(job.id, id);
    this.progress(build);
    return build;
  }

  get(buildId: string): SimBuild | undefined {
    return this.builds.get(buildId);
  }

  byPipelineNumber(pipelineSlug: string, number: number): SimBuild | undefined {
    const id = this.byNumber.get(`${pipelineSlug}#${number}`);
    return id === undefined ? undefined : this.builds.get(id);
  }

  /** A job of any build, with its build. */
  job(jobId: string): { build: SimBuild; job: SimBuildJob } | undefined {
    const buildId = this.buildOfJob.get(jobId);
    const build = buildId === undefined ? undefined : this.builds.get(buildId);
    const job = build?.jobs.find((j) => j.id === jobId);
    return build === undefined || job === undefined ? undefined : { build, job };
  }

  /**
   * `PUT …/jobs/{id}/unblock` ("Unblock a job"): checks in Buildkite's order of concern, then
   * unblocks, crediting `unblocker` or else `tokenOwner`. Throws `SimApiError` to refuse.
   */
  unblock(jobId: string, request: { unblocker?: string; fields?: unknown }, tokenOwner: SimUser): SimBuildJob {
    const found = this.mutableJob(jobId);
    if (found === undefined) throw new SimApiError('not_found', 'No job found', 404);
    const { build, job } = found;
    if (job.type !== 'manual') throw new SimApiError('bad_request', UNBLOCK_REFUSALS.wrongType, 400);
    if (build.state === 'canceled') throw unprocessable(UNBLOCK_REFUSALS.canceledBuild);
    let credited = tokenOwner;
    if (request.unblocker !== undefined) {
      const user = this.resolveUser(request.unblocker);
      if (user === undefined) throw unprocessable(UNBLOCK_REFUSALS.badUnblocker);
      credited = user;
    }
    const fields = request.fields ?? {};
    if (!isStringMap(fields)) throw unprocessable(UNBLOCK_REFUSALS.badFields);
    if (job.state !== 'blocked' || !job.unblockable) throw unprocessable(UNBLOCK_REFUSALS.notUnblockable);

    Object.assign(job, { state: 'unblocked', unblockable: false, unblockedBy: credited, unblockedAt: new Date() });
    Object.assign(build.metaData, fields);
    Object.assign(build, { blocked: false, state: 'running', finishedAt: null });
    this.emit({ event: 'job.activated', build, job });
    this.progress(build);
    return job;
  }

  /** Ends a running command job (`passed` by default); the build moves on. */
  finishJob(jobId: string, outcome: { passed?: boolean; exitStatus?: number } = {}): SimBuildJob {
    const found = this.mutableJob(jobId);
    if (found === undefined) throw new Error(`unknown build job ${jobId}`);
    const { build, job } = found;
    if (job.type !== 'script' || job.state !== 'running') throw new Error(`job ${jobId} is not a running command job (${job.type}, ${job.state})`);
    this.endJob(build, job, outcome.passed ?? true, outcome.exitStatus);
    this.progress(build);
    return job;
  }

  /** Runs the build on until it blocks at its next block step or ends. */
  advance(buildId: string): SimBuild {
    const build = this.mutableBuild(buildId);
    for (let guard = 0; guard <= build.jobs.length; guard++) {
      const running = build.jobs.filter((j) => j.state === 'running');
      if (build.blocked || build.finishedAt !== null || running.length === 0) break;
      for (const job of running) this.endJob(build, job, true);
      this.progress(build);
    }
    return build;
  }

  /** Cancels the build: running jobs end `canceled`, the build is `canceled` (unblocks then fail with 422). */
  cancel(buildId: string): SimBuild {
    const build = this.mutableBuild(buildId);
    const now = new Date();
    for (const job of build.jobs) {
      if (job.state === 'running') {
        Object.assign(job, { state: 'canceled', finishedAt: now });
        this.oidc.finish(job.id);
      } else if (job.state === 'waiting') {
        job.state = 'canceled';
      }
    }
    Object.assign(build, { state: 'canceled', blocked: false, finishedAt: now });
    this.emit({ event: 'build.finished', build });
    return build;
  }

  // ---- internals ----------------------------------------------------------------------

  private mutableBuild(buildId: string): Build {
    const build = this.builds.get(buildId);
    if (build === undefined) throw new Error(`unknown build ${buildId}`);
    return build;
  }

  private mutableJob(jobId: string): { build: Build; job: Job } | undefined {
    const buildId = this.buildOfJob.get(jobId);
    const build = buildId === undefined ? undefined : this.builds.get(buildId);
    const job = build?.jobs.find((j) => j.id === jobId);
    return build === undefined || job === undefined ? undefined : { build, job };
  }

  private endJob(build: Build, job: Job, passed: boolean, exitStatus?: number): void {
    Object.assign(job, { state: passed ? 'passed' : 'failed', exitStatus: exitStatus ?? (passed ? 0 : 1), finishedAt: new Date() });
    this.oidc.finish(job.id);
    this.emit({ event: 'job.finished', build, job });
  }

  /**
   * Starts what can start, in step order: command jobs up to the next `wait` or block
   * step; a `wait` once everything before it passed; a block step once everything
   * before it finished — then the build blocks. With nothing left, the build ends.
   */
  private progress(build: Build): void {
    if (build.state === 'canceled' || build.blocked) return;
    let running = false;
    for (const job of build.jobs) {
      if (job.type === 'script') {
        if (job.state === 'waiting') this.startJob(build, job);
        if (job.state === 'running') running = true;
        continue;
      }
      if (job.state === 'passed' || job.state === 'unblocked') continue;
      if (running) return;
      if (build.jobs.some((j) => j.state === 'failed')) return this.fail(build);
      if (job.type === 'waiter') {
        job.state = 'passed';
        continue;
      }
      // A block step reached: the build is blocked and `build.finished` fires (with `blocked: true`).
      Object.assign(job, { state: 'blocked', unblockable: true });
      Object.assign(build, { blocked: true, state: job.blockedState, finishedAt: new Date() });
      this.emit({ event: 'build.finished', build });
      return;
    }
    if (running) return;
    if (build.jobs.some((j) => j.state === 'failed')) return this.fail(build);
    Object.assign(build, { state: 'passed', finishedAt: new Date() });
    this.emit({ event: 'build.finished', build });
  }

  private fail(build: Build): void {
    for (const job of build.jobs) if (!FINISHED.has(job.state) && job.state !== 'unblocked') job.state = 'broken';
    Object.assign(build, { state: 'failed', finishedAt: new Date() });
    this.emit({ event: 'build.finished', build });
  }

  private startJob(build: Build, job: Job): void {
    const oidcJob = this.oidc.create({
      jobId: job.id,
      organizationSlug: build.organizationSlug,
      pipelineSlug: build.pipelineSlug,
      pipelineId: build.pipelineId,
      buildNumber: build.number,
      buildId: build.id,
      branch: build.branch,
      tag: build.tag,
      commit: build.commit,
      stepKey: job.stepKey,
      buildSource: build.source,
      ...(Object.keys(job.agentTags).length > 0 ? { agentTags: { ...job.agentTags } } : {}),
    });
    Object.assign(job, { state: 'running', startedAt: new Date(), oidcJob });
  }

  private pipelineId(slug: string): string {
    let id = this.pipelineIds.get(slug);
    if (id === undefined) {
      id = uuid();
      this.pipelineIds.set(slug, id);
    }
    return id;
  }
}

function newJob(build: Build, step: SimStepInit, createdAt: Date): Job {
  const id = uuid();
  const base = {
    id,
    graphqlId: graphqlId('Job', id),
    buildId: build.id,
    stepKey: step.key ?? null,
    label: null as string | null,
    command: null as string | null,
    prompt: null as string | null,
    fields: [] as SimBuildJob['fields'],
    blockedState: 'passed' as SimBlockedState,
    agentTags: {},
    state: 'waiting' as SimBuildJobState,
    unblockable: false,
    unblockedBy: null,
    unblockedAt: null,
    exitStatus: null,
    createdAt,
    startedAt: null,
    finishedAt: null,
    oidcJob: null,
  };
  switch (step.type) {
    case 'command':
      return { ...base, type: 'script', label: step.label ?? null, command: step.command ?? 'true', agentTags: { ...(step.agentTags ?? {}) } };
    case 'wait':
      return { ...base, type: 'waiter' };
    case 'block':
      return {
        ...base,
        type: 'manual',
        label: step.label,
        prompt: step.prompt ?? null,
        fields: structuredClone(step.fields ?? []),
        blockedState: step.blockedState ?? 'passed',
      };
  }
}

function isStringMap(value: unknown): value is Record<string, string> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && Object.values(value).every((v) => typeof v === 'string');
}
