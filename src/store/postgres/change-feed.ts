import pg from 'pg';
import type { Change, ChangeFeed, ChangeTopic, FeedHealth } from '../repositories/changes.js';
import type { Queryable } from './pg-database.js';

/** The NOTIFY channel (https://www.postgresql.org/docs/current/sql-notify.html). */
const CHANNEL = 'port_changes';

/**
 * Transaction-level advisory lock every change writer takes before numbering its change:
 * SHA-256("buildkite-port change feed"), first 8 bytes. Holding it until commit makes
 * versions appear in commit order, so a reader that has seen version v has seen every
 * change before it — a sequence alone doesn't promise that (a lower number may commit
 * later). Changes are rare (revocations, sign-ins, SCIM, key rotation): the cost is small.
 */
const CHANGES_LOCK_KEY = '6726053860810947607';

/** Changes are kept this long: enough for any listener to catch up after a reconnect. */
export const CHANGES_KEPT_MS = 3_600_000;

/**
 * Records changes inside the writer's transaction; NOTIFY is delivered when it commits,
 * and not at all if it rolls back.
 */
export async function recordChanges(tx: Queryable, topic: ChangeTopic, keys: readonly string[]): Promise<void> {
  if (keys.length === 0) return;
  await tx.query('SELECT pg_advisory_xact_lock($1::bigint)', [CHANGES_LOCK_KEY]);
  await tx.query('INSERT INTO changes (topic, key, at) SELECT $1, k, $2 FROM unnest($3::text[]) AS t(k)', [topic, Date.now(), [...new Set(keys)]]);
  await tx.query('SELECT pg_notify($1, $2)', [CHANNEL, topic]);
}

export interface PostgresChangeFeedOptions {
  /** How the listening connection connects (the pool's settings). */
  connection: pg.ClientConfig;
  /** How often the feed re-reads by version even without a notification: the heartbeat that proves it current. */
  confirmEveryMs?: number;
  now?: () => number;
  onError?: (err: unknown) => void;
}

/**
 * Every replica's view of `changes`: one dedicated connection LISTENs on `port_changes`;
 * each notification — and a timer, in case one is lost or the connection silently died —
 * reads the changes after the last version seen. After a reconnect the same read catches
 * up on what happened while it was away. The feed is current while such a read succeeded
 * within the caller's bound (health()); callers fail closed beyond it.
 */
export class PostgresChangeFeed implements ChangeFeed {
  private readonly listeners = new Set<(changes: Change[]) => void>();
  private client: pg.Client | undefined;
  /** The newest version delivered; undefined until the first connection has read where to start. */
  private lastVersion: number | undefined;
  private confirmedAt = 0;
  private reading: Promise<void> | undefined;
  private readAgain = false;
  /** The connection attempt under way: a connect may hang up to its timeout, far longer than a heartbeat. */
  private connecting: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  /** Set for good when a reconnect found changes purged that this process never read. */
  private missed: string | undefined;
  /** A tick failed and nothing has succeeded since (its error was reported). */
  private failing = false;
  private problem = 'the change feed has not connected yet';
  private readonly now: () => number;

  constructor(private readonly opts: PostgresChangeFeedOptions) {
    this.now = opts.now ?? Date.now;
  }

  /** Connects, starts listening and reads the current version: changes after this are delivered. */
  async start(): Promise<void> {
    await this.reconnect();
    const every = this.opts.confirmEveryMs ?? 250;
    this.timer = setInterval(() => void this.tick(), every);
    this.timer.unref();
  }

  subscribe(listener: (changes: Change[]) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  health(maxLagMs: number): FeedHealth {
    if (this.missed !== undefined) return { current: false, reason: this.missed };
    const lag = this.now() - this.confirmedAt;
    if (lag <= maxLagMs) return { current: true };
    return { current: false, reason: `${this.problem}; last confirmed ${Math.round(lag / 100) / 10}s ago` };
  }

  /** Reads what is new now (tests, and after a write this process wants to see applied). */
  catchUp(): Promise<void> {
    if (this.reading) {
      this.readAgain = true;
      return this.reading;
    }
    this.reading = this.readLoop().finally(() => {
      this.reading = undefined;
    });
    return this.reading;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    // An attempt under way sees `closed` and ends its own connection.
    await this.connecting?.catch(() => undefined);
    await this.reading?.catch(() => undefined);
    // Forgotten first, so its 'end' is not reported as a lost connection.
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }

  /** One attempt at a time: a heartbeat while one is under way leaves it be rather than start another (which would be leaked). */
  private reconnect(): Promise<void> {
    this.connecting ??= this.connect().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private async connect(): Promise<void> {
    const client = new pg.Client(this.opts.connection);
    client.on('error', (err) => this.lost(client, err));
    client.on('end', () => this.lost(client, new Error('the connection ended')));
    client.on('notification', () => void this.catchUp().catch(() => undefined));
    try {
      await client.connect();
      // Listening before reading where to start: a change committed in between is read, notified, or both.
      await client.query(`LISTEN ${CHANNEL}`);
      if (this.lastVersion === undefined) {
        // First connection only: start from the newest version; what came before is in the
        // store already (subscribers load after subscribing). A reconnect must not do this,
        // or what was committed while it was away (even the first changes ever) is skipped.
        const startedAt = this.now();
        const r = await client.query<{ v: string | null }>('SELECT max(version) AS v FROM changes');
        this.lastVersion = Number(r.rows[0]?.v ?? 0);
        this.confirmedAt = startedAt;
      } else {
        // Away longer than changes are kept (CHANGES_KEPT_MS): what was purged meanwhile can't
        // be caught up on, so the caches can never again be vouched for — fail closed until
        // this process restarts and loads afresh (its /readyz stays 503 meanwhile).
        const r = await client.query<{ v: string | null }>('SELECT min(version) AS v FROM changes');
        const oldest = r.rows[0]?.v;
        // (Only after that long away: every unread change was committed after the last
        // confirmed read, so none can have been purged sooner.)
        const away = this.now() - this.confirmedAt >= CHANGES_KEPT_MS;
        if (away && oldest !== null && oldest !== undefined && Number(oldest) > this.lastVersion + 1) {
          this.missed = `the change feed missed changes older than ${CHANGES_KEPT_MS / 3_600_000} h while disconnected; restart this process`;
        }
      }
    } catch (err) {
      await client.end().catch(() => undefined);
      throw err;
    }
    if (this.closed) {
      await client.end().catch(() => undefined);
      return;
    }
    // Not confirmed yet after a reconnect: only the catch-up read that follows vouches for what was missed.
    this.client = client;
  }

  private lost(client: pg.Client, err: unknown): void {
    if (this.client !== client) return;
    this.client = undefined;
    this.problem = 'the change feed lost its database connection';
    if (!this.failing) this.opts.onError?.(err);
    this.failing = true;
    client.end().catch(() => undefined);
  }

  private async tick(): Promise<void> {
    if (this.closed || this.connecting) return;
    try {
      if (this.client === undefined) await this.reconnect();
      await this.catchUp();
      this.failing = false;
    } catch (err) {
      if (this.closed) return;
      this.problem = 'the change feed cannot reach the database';
      // Once per failing stretch: the timer retries every few hundred milliseconds.
      if (!this.failing) this.opts.onError?.(err);
      this.failing = true;
    }
  }

  private async readLoop(): Promise<void> {
    do {
      this.readAgain = false;
      const client = this.client;
      if (client === undefined || this.lastVersion === undefined) throw new Error('the change feed is not connected');
      const startedAt = this.now();
      for (;;) {
        let r: pg.QueryResult<{ version: string; topic: ChangeTopic; key: string }>;
        try {
          r = await client.query('SELECT version, topic, key FROM changes WHERE version > $1 ORDER BY version LIMIT 1000', [this.lastVersion]);
        } catch (err) {
          // A read that failed or timed out (a silently dead network) leaves the connection
          // unusable — later reads would queue behind the stuck one: drop it and reconnect.
          this.lost(client, err);
          throw err;
        }
        if (r.rows.length > 0) {
          this.lastVersion = Number(r.rows.at(-1)!.version);
          this.deliver(r.rows.map((row) => ({ topic: row.topic, key: row.key })));
        }
        if (r.rows.length < 1000) break;
      }
      // Everything committed before the read began has been delivered.
      this.confirmedAt = startedAt;
    } while (this.readAgain);
  }

  /**
   * Each listener on its own: the version has moved on, so a listener that throws must
   * not keep the batch from the ones after it (they would never hear it).
   */
  private deliver(changes: Change[]): void {
    for (const listener of this.listeners) {
      try {
        listener(changes);
      } catch (err) {
        this.opts.onError?.(err);
      }
    }
  }
}
