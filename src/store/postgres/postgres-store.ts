import pg from 'pg';
import { StoreUnavailableError } from '../errors.js';
import type { Store, StoreHealth } from '../store.js';
import { PostgresAgentAttestations } from './agent-attestation-table.js';
import { PostgresAllowCounts } from './allow-count-table.js';
import { PostgresApprovals } from './approval-table.js';
import { CHANGES_KEPT_MS, PostgresChangeFeed } from './change-feed.js';
import { PostgresIssuedCredentials, PostgresSecretVersions } from './credential-tables.js';
import { PostgresDecisionLog } from './decision-log.js';
import { PostgresLeases } from './lease-table.js';
import { migrate } from './migrate.js';
import { POSTGRES_MIGRATIONS } from './migrations.js';
import { PgDatabase } from './pg-database.js';
import { PostgresReplay } from './replay-table.js';
import { PostgresRevocations } from './revocation-table.js';
import { PostgresScim } from './scim-tables.js';
import { PostgresSigningKeys } from './signing-key-table.js';
import { PostgresSessions, PostgresUsers } from './user-tables.js';
import { PostgresWebhookWork } from './webhook-work-table.js';

export interface PostgresStoreOptions {
  /** postgres://… (TLS options in the URL: sslmode, sslrootcert; https://node-postgres.com/features/ssl). */
  url: string;
  /** Connections this process keeps at most (`store.postgres_pool_size`). */
  poolSize?: number;
  /** The change feed's heartbeat (ms). */
  feedConfirmEveryMs?: number;
  /** Background failures (the change feed's connection). */
  onError?: (err: unknown) => void;
}

/** How long connecting may take before the store counts as unavailable. */
const CONNECT_TIMEOUT_MS = 5000;
/**
 * How long a query may go unanswered (client side, so a database behind a dead network
 * fails requests with 503 instead of hanging them): Port's statements are small and indexed.
 */
const QUERY_TIMEOUT_MS = 10_000;

/**
 * Port's store on PostgreSQL, for several replicas sharing one database. Every write is
 * one transaction, committed before its promise resolves; state replicas must agree on
 * is in tables and compare-and-set (row locks, ON CONFLICT), never in one process's
 * memory; the change feed tells every replica's caches what changed.
 */
export class PostgresStore implements Store {
  readonly kind = 'postgres' as const;
  readonly decisions: PostgresDecisionLog;
  readonly replay: PostgresReplay;
  readonly revocations: PostgresRevocations;
  readonly keys: PostgresSigningKeys;
  readonly users: PostgresUsers;
  readonly sessions: PostgresSessions;
  readonly scim: PostgresScim;
  readonly approvals: PostgresApprovals;
  readonly issued: PostgresIssuedCredentials;
  readonly secretVersions: PostgresSecretVersions;
  readonly allowCounts: PostgresAllowCounts;
  readonly webhookWork: PostgresWebhookWork;
  readonly leases: PostgresLeases;
  readonly attestations: PostgresAgentAttestations;

  private probing: Promise<void> | undefined;
  private lastProbeAt = 0;

  private constructor(
    private readonly db: PgDatabase,
    readonly changes: PostgresChangeFeed,
  ) {
    this.decisions = new PostgresDecisionLog(db);
    this.replay = new PostgresReplay(db);
    this.revocations = new PostgresRevocations(db);
    this.keys = new PostgresSigningKeys(db);
    this.users = new PostgresUsers(db);
    this.sessions = new PostgresSessions(db);
    this.scim = new PostgresScim(db);
    this.approvals = new PostgresApprovals(db);
    this.issued = new PostgresIssuedCredentials(db);
    this.secretVersions = new PostgresSecretVersions(db);
    this.allowCounts = new PostgresAllowCounts(db);
    this.webhookWork = new PostgresWebhookWork(db);
    this.leases = new PostgresLeases(db);
    this.attestations = new PostgresAgentAttestations(db);
  }

  /**
   * Connects, brings the schema up to date (safe with replicas starting at once) and
   * starts the change feed. Fails with StoreUnavailableError when the database can't be reached.
   */
  static async open(opts: PostgresStoreOptions): Promise<PostgresStore> {
    const connection: pg.ClientConfig = {
      connectionString: opts.url,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      query_timeout: QUERY_TIMEOUT_MS,
      // TCP keepalives notice a silently dead peer on idle connections (the change feed's).
      keepAlive: true,
      application_name: 'buildkite-port',
    };
    const pool = new pg.Pool({ ...connection, max: opts.poolSize ?? 10 });
    // An idle client's connection dying is reported here; the next query gets a fresh one.
    pool.on('error', (err) => opts.onError?.(err));
    const db = new PgDatabase(pool);
    const feed = new PostgresChangeFeed({
      connection,
      ...(opts.feedConfirmEveryMs !== undefined ? { confirmEveryMs: opts.feedConfirmEveryMs } : {}),
      ...(opts.onError ? { onError: opts.onError } : {}),
    });
    try {
      await migrate(pool, POSTGRES_MIGRATIONS).catch((err: unknown) => {
        throw db.translate(err);
      });
      await feed.start().catch((err: unknown) => {
        throw db.translate(err);
      });
    } catch (err) {
      await feed.close();
      await pool.end().catch(() => undefined);
      throw err;
    }
    return new PostgresStore(db, feed);
  }

  health(): StoreHealth {
    const h = this.db.health();
    // Nothing else may write while the store is failing (the relay refuses), so probe now and then to notice recovery.
    if (!h.writable && !this.probing && Date.now() - this.lastProbeAt >= 1000) void this.probeWrite().catch(() => undefined);
    return h;
  }

  async checkWritable(maxAgeMs = 1000): Promise<void> {
    const { writable, reason } = this.db.health();
    if (!writable) throw new StoreUnavailableError(reason!);
    if (Date.now() - this.db.lastCommit > maxAgeMs) await this.probeWrite();
  }

  private probeWrite(): Promise<void> {
    this.probing ??= this.db
      .write('INSERT INTO write_probe (id, at) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET at = EXCLUDED.at', [Date.now()])
      .then(() => undefined)
      .finally(() => {
        this.probing = undefined;
        this.lastProbeAt = Date.now();
      });
    return this.probing;
  }

  async purgeExpired(now: number): Promise<void> {
    await this.db.transaction(async (tx) => {
      await tx.query('DELETE FROM replay_cache WHERE expires_at <= $1', [now]);
      await tx.query('DELETE FROM sessions WHERE expires_at <= $1', [now]);
      await tx.query('DELETE FROM revocations WHERE expires_at <= $1', [now]);
      await tx.query('DELETE FROM changes WHERE at <= $1', [now - CHANGES_KEPT_MS]);
      await this.issued.purge(now, tx);
      await this.webhookWork.purge(now, tx);
      await this.attestations.purge(now, tx);
    });
  }

  async ping(): Promise<void> {
    await this.db.query('SELECT 1');
  }

  async close(): Promise<void> {
    await this.changes.close();
    await this.db.pool.end();
  }
}
