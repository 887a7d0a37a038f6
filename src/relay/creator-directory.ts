import type { UserRecord } from '../store/records/approvals.js';
import type { CreatorInfo } from '../policy/entities.js';

/** The one store read this needs (the store's `users` repository provides it). */
export interface CreatorRecordSource {
  get(email: string): Promise<UserRecord | undefined>;
}

export interface CreatorDirectoryOptions {
  /** How long a record is reused without a change notice (ms; default 1 s). */
  ttlMs?: number;
  /** Records remembered at most (default 10,000; the oldest goes first). */
  maxEntries?: number;
  /**
   * Whether `forget` can be relied on now (the store's change feed is current); while it
   * can't, every lookup reads the store.
   */
  current?: () => boolean;
}

interface Entry {
  /** Undefined: Port has no record of the person. */
  info: CreatorInfo | undefined;
  /** `active` and groups as text, to tell a changed record from a re-read one. */
  stamp: string;
  until: number;
}

/**
 * A build creator's directory record (`active`, groups) for the relay's `proxy`
 * decisions (`Job.creator`, `User in [Group]` in Port's schema), without a store read per
 * request. A record is reused for at most `ttlMs` and dropped at once by `forget` when
 * any Port process changes the person (SCIM, SSO sign-in: port-server wires the store's
 * change feed here), so a deactivation or a lost group applies to the next request. While
 * the feed can't vouch for itself, records are not reused at all.
 *
 * A re-read that finds the same `active` and groups returns the *same* CreatorInfo
 * object, so decisions cached against it (DecisionCache's basis) stay valid; a changed
 * record is a new object, and those decisions miss.
 */
export class CreatorDirectory {
  private readonly entries = new Map<string, Entry>();
  /** Reads in flight, so concurrent requests of one creator cost one store read. */
  private readonly pending = new Map<string, Promise<CreatorInfo | undefined>>();
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly current: () => boolean;

  constructor(
    private readonly source: CreatorRecordSource,
    options: CreatorDirectoryOptions = {},
  ) {
    this.ttlMs = options.ttlMs ?? 1000;
    this.maxEntries = options.maxEntries ?? 10_000;
    this.current = options.current ?? (() => true);
  }

  /**
   * The person's record, or undefined when Port has none (the creator is then unknown
   * to policy). `email` is lower-cased. Rejects when the store does not answer.
   */
  lookup(email: string, now = Date.now()): CreatorInfo | undefined | Promise<CreatorInfo | undefined> {
    const hit = this.entries.get(email);
    if (hit !== undefined && hit.until > now && this.current()) return hit.info;
    return this.pending.get(email) ?? this.read(email, now);
  }

  /** Drops what is remembered of these people: their next lookup reads the store. */
  forget(emails: Iterable<string>): void {
    for (const raw of emails) {
      const email = raw.toLowerCase();
      const hit = this.entries.get(email);
      // Kept (expired) so an unchanged re-read can return the same object.
      if (hit !== undefined) hit.until = 0;
      // A read started before the change must not be joined, nor remembered.
      this.pending.delete(email);
    }
  }

  private read(email: string, now: number): Promise<CreatorInfo | undefined> {
    const reading = this.source.get(email).then(
      (user) => {
        // Superseded by `forget` while in flight: answer this caller, remember nothing.
        const current = this.pending.get(email) === reading;
        if (current) this.pending.delete(email);
        const groups = user === undefined ? [] : [...new Set(user.groups)].sort();
        const stamp = user === undefined ? '' : `${user.active ? 'active' : 'inactive'}\n${groups.join('\n')}`;
        const prior = this.entries.get(email);
        const info = user === undefined ? undefined : prior?.info !== undefined && prior.stamp === stamp ? prior.info : { email, active: user.active, groups };
        if (current) this.remember(email, { info, stamp, until: now + this.ttlMs });
        return info;
      },
      (err: unknown) => {
        if (this.pending.get(email) === reading) this.pending.delete(email);
        throw err;
      },
    );
    this.pending.set(email, reading);
    return reading;
  }

  private remember(email: string, entry: Entry): void {
    if (!this.entries.has(email) && this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(email, entry);
  }
}
