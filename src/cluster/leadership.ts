import type { LeaseStore } from '../store/store.js';

export interface LeadershipOptions {
  /** This process's lease owner id (unique per process: host, pid, random). */
  owner: string;
  /** How long the lease holds unless renewed (ms); another replica takes over within about this after the leader dies. */
  ttlMs: number;
  /** Called when this process becomes leader or stops being it. */
  onChange?: (leader: boolean) => void;
  onError?: (err: unknown) => void;
  now?: () => number;
}

/** The lease every replica competes for: whoever holds it runs the singleton work. */
export const LEADER_LEASE = 'port-leader';

/**
 * One leader among Port processes sharing a store, for the background work that must run
 * on exactly one of them at a time: sealing and signing the decision log, key rotation,
 * expiry sweeps, scheduled secret rotation, approval expiry. Every process tries to take
 * (or renew) the lease every third of its TTL; the holder counts as leader only while
 * its lease has more than a third of the TTL left by its own clock, so it stops before
 * another process can take the lease over (clocks agreeing to well within a third of the
 * TTL, as NTP keeps them).
 */
export class Leadership {
  private heldUntil = 0;
  private timer: NodeJS.Timeout | undefined;
  private renewing: Promise<void> | undefined;
  private leader = false;
  private stopped = false;
  /** Renewal failed and has not succeeded since (reported once). */
  private renewFailing = false;
  private readonly tasks: NodeJS.Timeout[] = [];
  private readonly now: () => number;

  constructor(
    private readonly leases: LeaseStore,
    private readonly opts: LeadershipOptions,
  ) {
    this.now = opts.now ?? Date.now;
  }

  /** Tries once at once (so a lone process leads from its first moment), then every third of the TTL. */
  async start(): Promise<void> {
    await this.renew();
    this.timer = setInterval(() => void this.renew(), Math.max(50, Math.floor(this.opts.ttlMs / 3)));
    this.timer.unref();
  }

  /** Whether this process may run singleton work now. */
  isLeader(): boolean {
    const leader = !this.stopped && this.heldUntil - this.now() > this.opts.ttlMs / 3;
    if (leader !== this.leader) this.changed(leader);
    return leader;
  }

  /**
   * Runs `task` every `everyMs` while this process leads, never two runs at once; the
   * timer stops with stop(). The first failure of a failing stretch goes to `onError`
   * (a task run every 50 ms against a database that is down must not flood the log); the
   * next run comes as usual.
   */
  repeat(everyMs: number, task: () => Promise<unknown>, onError: (err: unknown) => void): void {
    let running = false;
    let failing = false;
    const timer = setInterval(() => {
      if (running || !this.isLeader()) return;
      running = true;
      task()
        .then(
          () => (failing = false),
          (err: unknown) => {
            if (!failing) onError(err);
            failing = true;
          },
        )
        .finally(() => (running = false));
    }, everyMs);
    timer.unref();
    this.tasks.push(timer);
  }

  /** Stops renewing and gives the lease up, so another process takes over at once (graceful shutdown). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.tasks.forEach(clearInterval);
    await this.renewing;
    const held = this.heldUntil > this.now();
    this.heldUntil = 0;
    if (this.leader) this.changed(false);
    if (held) await this.leases.release(LEADER_LEASE, this.opts.owner).catch((err: unknown) => this.opts.onError?.(err));
  }

  private renew(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    this.renewing ??= (async () => {
      const at = this.now();
      try {
        if (await this.leases.acquire(LEADER_LEASE, this.opts.owner, at, this.opts.ttlMs)) this.heldUntil = at + this.opts.ttlMs;
        else this.heldUntil = 0;
        this.renewFailing = false;
      } catch (err) {
        // Can't tell: keep what was held until it runs out (isLeader stops a third before).
        if (!this.renewFailing) this.opts.onError?.(err);
        this.renewFailing = true;
      } finally {
        this.renewing = undefined;
      }
      this.isLeader();
    })();
    return this.renewing;
  }

  private changed(leader: boolean): void {
    this.leader = leader;
    this.opts.onChange?.(leader);
  }
}
