/**
 * Who started a build. The Buildkite OIDC token doesn't name the build's creator
 * (it is not among the claims in https://buildkite.com/docs/agent/v3/cli-oidc), so Port asks
 * the REST API (`GET …/builds/{number}`, https://buildkite.com/docs/apis/rest-api/builds) and
 * maps the creator's e-mail to a Port user. A build's creator never
 * changes, so answers are cached for an hour and, when the API fails, an older answer
 * for the same build is still used (stale-if-error): an outage then only affects builds
 * Port has not seen. Otherwise the creator is unknown, and policies that need it don't
 * match (fail closed).
 */
import type { JobIdentity } from '../identity/job-identity.js';
import type { CreatorInfo } from '../policy/entities.js';
import type { Store } from '../store/store.js';

/** The one API call this needs (src/buildkite's client provides it). */
export interface BuildCreatorApi {
  getBuild(pipeline: string, number: number, opts?: { excludeJobs?: boolean }): Promise<{ creator?: { email?: string | null } | null }>;
}

export type BuildCreator =
  /** Buildkite names the creator; `user` when Port knows the person (SSO or SCIM). */
  | { status: 'known'; email: string; user?: CreatorInfo }
  /** The build has no creator with an e-mail (e.g. a webhook or scheduled build). */
  | { status: 'none' }
  /**
   * Unknown: `not_configured` — Port has no `buildkite.api_token`, so it never knows;
   * `lookup_failed` — the API did not answer (revocation by user then fails closed).
   * Absent means not configured.
   */
  | { status: 'unavailable'; reason?: 'not_configured' | 'lookup_failed' };

/** Whether Port asked who started the build and got no answer (not merely unconfigured). */
export function creatorLookupFailed(creator: BuildCreator): boolean {
  return creator.status === 'unavailable' && creator.reason === 'lookup_failed';
}

export interface BuildCreatorOptions {
  /** How long an answer is reused before asking again (ms; default 1 h). */
  ttlMs?: number;
  /** Builds remembered at most (default 10,000; the oldest goes first). */
  maxEntries?: number;
  now?: () => number;
  onError?: (err: unknown) => void;
}

type Answer = { status: 'known'; email: string } | { status: 'none' };

export class BuildCreatorLookup {
  private readonly cache = new Map<string, { answer: Answer; until: number }>();
  /** Lookups in flight, so a build's many jobs cost one API call. */
  private readonly pending = new Map<string, Promise<Answer | undefined>>();
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;

  constructor(
    private readonly api: BuildCreatorApi | undefined,
    private readonly store: Store,
    private readonly options: BuildCreatorOptions = {},
  ) {
    this.ttlMs = options.ttlMs ?? 3_600_000;
    this.maxEntries = options.maxEntries ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  async creatorOf(identity: JobIdentity): Promise<BuildCreator> {
    if (this.api === undefined) return { status: 'unavailable', reason: 'not_configured' };
    const answer = await this.build(identity.pipelineSlug, identity.buildNumber);
    if (answer === undefined) return { status: 'unavailable', reason: 'lookup_failed' };
    if (answer.status === 'none') return answer;
    // Not cached: a deactivation must apply to the next exchange.
    const user = await this.store.users.get(answer.email);
    return user ? { status: answer.status, email: answer.email, user: { email: user.email, active: user.active, groups: user.groups } } : answer;
  }

  private async build(pipeline: string, number: number): Promise<Answer | undefined> {
    const key = `${pipeline}/${number}`;
    const cached = this.cache.get(key);
    if (cached && cached.until > this.now()) return cached.answer;
    let inflight = this.pending.get(key);
    if (inflight === undefined) {
      inflight = this.fetch(pipeline, number).finally(() => this.pending.delete(key));
      this.pending.set(key, inflight);
    }
    return inflight;
  }

  private async fetch(pipeline: string, number: number): Promise<Answer | undefined> {
    let email: string | null | undefined;
    try {
      email = (await this.api!.getBuild(pipeline, number, { excludeJobs: true })).creator?.email;
    } catch (err) {
      this.options.onError?.(err);
      // The creator of a build never changes: an expired answer is still the truth.
      return this.cache.get(`${pipeline}/${number}`)?.answer;
    }
    const answer: Answer = typeof email === 'string' && email !== '' ? { status: 'known', email: email.toLowerCase() } : { status: 'none' };
    const key = `${pipeline}/${number}`;
    this.cache.delete(key);
    if (this.cache.size >= this.maxEntries) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(key, { answer, until: this.now() + this.ttlMs });
    return answer;
  }
}
