import { mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { StoreError } from '../../errors.js';
import { StoreMissingError, StoreTooNewError, StoreUnavailableError } from '../errors.js';
import { ISSUED_KEPT_MS } from '../repositories/credentials.js';
import type { Store, StoreHealth } from '../store.js';
import { SqliteAgentAttestations } from './agent-attestation-table.js';
import { SqliteAllowCounts } from './allow-count-table.js';
import { SqliteChangeFeed } from './change-feed.js';
import { SqliteApprovals } from './approval-table.js';
import { SqliteIssuedCredentials, SqliteSecretVersions } from './credential-tables.js';
import { SqliteDecisionLog } from './decision-log-tables.js';
import { FileIdentity, type FileProblem } from './file-identity.js';
import { switchToWal } from './journal-mode.js';
import { SqliteLeases } from './lease-table.js';
import { migrate } from './migrations.js';
import { SqliteReplay } from './replay-table.js';
import { SqliteRevocations } from './revocation-table.js';
import { WalCheckpointer, type WalCheckpointStats } from './wal-checkpointer.js';
import { WalSync } from './wal-sync.js';
import { SqliteScim, SqliteScimTables } from './scim-tables.js';
import { SqliteSigningKeys } from './signing-key-table.js';
import { SqliteSessions, SqliteUsers } from './user-tables.js';
import { SqliteWebhookWork, SqliteWebhookWorkTable } from './webhook-work-table.js';
import { WriteBatcher } from './write-batcher.js';

/**
 * The embedded default store: one SQLite file in WAL mode. A commit is on disk before
 * the write's promise resolves: COMMIT writes the log (`synchronous=NORMAL`) and the
 * log's fsync (on the event loop while the disk is fast, else on the thread pool) runs
 * before any write of the group is acknowledged (see WalSync). Writes are batched (see WriteBatcher); reads are synchronous and never
 * wait for the batch.
 *
 * Several Port processes on one machine may share the file (`server.workers`): every
 * batch is an IMMEDIATE transaction (SQLite's one writer at a time, waited for under
 * busy_timeout), whatever must agree is read inside it (the decision log's head, leases,
 * checkpoint numbers, single use), and caches follow the `changes` table (SqliteChangeFeed).
 */
export class SqliteStore implements Store {
  readonly kind = 'sqlite' as const;
  private readonly db: Database.Database;
  private readonly batcher: WriteBatcher;
  private readonly stmts;
  private readonly webhookWorkTable: SqliteWebhookWorkTable;
  readonly decisions: SqliteDecisionLog;
  readonly replay: SqliteReplay;
  readonly revocations: SqliteRevocations;
  readonly keys: SqliteSigningKeys;
  readonly users: SqliteUsers;
  readonly sessions: SqliteSessions;
  readonly scim: SqliteScim;
  readonly approvals: SqliteApprovals;
  readonly issued: SqliteIssuedCredentials;
  readonly secretVersions: SqliteSecretVersions;
  readonly allowCounts: SqliteAllowCounts;
  readonly webhookWork: SqliteWebhookWork;
  readonly leases: SqliteLeases;
  readonly attestations: SqliteAgentAttestations;
  readonly changes: SqliteChangeFeed;

  /** The file Port opened (undefined for `:memory:`), checked around every commit. */
  private readonly identity: FileIdentity | undefined;
  /** Syncs the write-ahead log before writes are acknowledged (undefined for `:memory:`). */
  private readonly wal: WalSync | undefined;
  /** Checkpoints the write-ahead log off the event loop (undefined for `:memory:`). */
  private readonly checkpointer: WalCheckpointer | undefined;
  /** Why the last batch could not be written; cleared by the next clean commit. */
  private writeFailure: string | undefined;
  private lastCommitAt = 0;
  private probing: Promise<void> | undefined;
  private lastProbeAt = 0;
  private identityCheckedAt = 0;
  private identityCached: FileProblem | undefined;

  private constructor(
    readonly path: string,
    create: boolean,
  ) {
    if (path !== ':memory:') {
      // Refuse before SQLite creates an empty file in place of a store that existed.
      if (!create && !hasStore(path)) throw new StoreMissingError(path);
      mkdirSync(dirname(path), { recursive: true });
    }
    try {
      this.db = new Database(path);
      // First: several processes may open one file at once (server.workers), and switching a
      // new file to WAL or migrating it waits for their locks instead of failing at once
      // (switchToWal also retries the switch SQLite refuses at once to avoid a deadlock).
      this.db.pragma('busy_timeout = 5000');
      switchToWal(this.db);
      // NORMAL: COMMIT doesn't fsync the log; WalSync does, once per group commit, before
      // any write of the group is acknowledged. `:memory:` has nothing to sync.
      this.db.pragma(path === ':memory:' ? 'synchronous = FULL' : 'synchronous = NORMAL');
      this.db.pragma('foreign_keys = ON');
      migrate(this.db);
    } catch (err) {
      if (err instanceof StoreTooNewError) throw err;
      throw new StoreError(`cannot open SQLite store ${path}: ${(err as Error).message}`, { cause: err });
    }
    this.identity = path === ':memory:' ? undefined : new FileIdentity(path);
    this.wal = path === ':memory:' ? undefined : new WalSync(path);
    this.checkpointer = path === ':memory:' ? undefined : new WalCheckpointer(this.db, path, this.identity);
    const [wal, checkpointer] = [this.wal, this.checkpointer];
    this.stmts = this.prepare();
    this.webhookWorkTable = new SqliteWebhookWorkTable(this.db);
    this.batcher = new WriteBatcher(this.db, 512, {
      check: (phase) => {
        // After a failed fsync nothing more is written: what the kernel dropped is unknown.
        if (wal?.failed !== undefined) return wal.failed;
        const problem = this.checkIdentity();
        // After a commit, only a moved file undoes it; a file that can't be checked still
        // holds the commit (acknowledged), and health() now fails the writes that follow.
        return problem === undefined || (phase === 'after' && !problem.moved) ? undefined : problem.reason;
      },
      outcome: (failure) => {
        this.writeFailure = failure;
        if (failure === undefined) this.lastCommitAt = Date.now();
      },
      sync:
        wal &&
        ((writes) => {
          checkpointer?.wrote(writes);
          return wal.sync(writes);
        }),
      hold: () => checkpointer?.hold(),
    });
    const [db, batcher] = [this.db, this.batcher];
    const scimTables = new SqliteScimTables(db);
    // Other processes on this file (server.workers) commit too: their changes are read from the `changes` table.
    const feed = (this.changes = new SqliteChangeFeed(db));
    feed.start();
    this.decisions = new SqliteDecisionLog(db, batcher);
    this.replay = new SqliteReplay(db, batcher, this.decisions);
    this.revocations = new SqliteRevocations(db, batcher, feed);
    this.keys = new SqliteSigningKeys(db, batcher, feed);
    this.users = new SqliteUsers(db, batcher, scimTables, feed);
    this.sessions = new SqliteSessions(db, batcher);
    this.scim = new SqliteScim(scimTables, batcher, feed);
    this.approvals = new SqliteApprovals(db, batcher, this.decisions);
    this.issued = new SqliteIssuedCredentials(db, batcher);
    this.secretVersions = new SqliteSecretVersions(db, batcher);
    this.allowCounts = new SqliteAllowCounts(db, batcher, this.decisions);
    this.webhookWork = new SqliteWebhookWork(this.webhookWorkTable, batcher);
    this.leases = new SqliteLeases(db, batcher);
    this.attestations = new SqliteAgentAttestations(db, batcher);
  }

  /**
   * Opens (and migrates) the SQLite store at `path`. With `create: false` a missing or
   * empty file is refused (StoreMissingError) instead of silently starting afresh.
   */
  static open(path: string, opts: { create?: boolean } = {}): SqliteStore {
    return new SqliteStore(path, opts.create ?? true);
  }

  /** What the write-ahead log's checkpoint thread has done (undefined for `:memory:`). */
  get walCheckpoints(): Readonly<WalCheckpointStats> | undefined {
    return this.checkpointer?.stats;
  }

  health(): StoreHealth {
    if (this.wal?.failed !== undefined) return { writable: false, reason: this.wal.failed };
    const moved = this.identityProblem();
    if (moved !== undefined) return { writable: false, reason: moved.reason };
    if (this.writeFailure === undefined) return { writable: true };
    // Nothing else may write while the store is failing (the relay refuses), so probe now and then to notice recovery.
    if (!this.probing && Date.now() - this.lastProbeAt >= 1000) void this.probeWrite().catch(() => undefined);
    return { writable: false, reason: this.writeFailure };
  }

  /**
   * The file check for health(), reused for 100 ms: a stat costs microseconds and the
   * relay asks on every request. Writes check on every commit regardless.
   */
  private identityProblem(): FileProblem | undefined {
    return Date.now() - this.identityCheckedAt >= 100 ? this.checkIdentity() : this.identityCached;
  }

  /** Checks the file now (every commit does) and refreshes what health() reports. */
  private checkIdentity(): FileProblem | undefined {
    this.identityCheckedAt = Date.now();
    this.identityCached = this.identity?.problem();
    return this.identityCached;
  }

  probeWrite(): Promise<void> {
    this.probing ??= this.batcher
      .write(() => {
        this.stmts.probe.run(Date.now());
      })
      .finally(() => {
        this.probing = undefined;
        this.lastProbeAt = Date.now();
      });
    return this.probing;
  }

  async checkWritable(maxAgeMs = 1000): Promise<void> {
    const { writable, reason } = this.health();
    if (!writable) throw new StoreUnavailableError(reason!);
    // A clean commit this recent proves the file takes writes; otherwise write one.
    if (Date.now() - this.lastCommitAt > maxAgeMs) await this.probeWrite();
  }

  private prepare() {
    const db = this.db;
    return {
      purgeSessions: db.prepare('DELETE FROM sessions WHERE expires_at <= ?'),
      purgeReplay: db.prepare('DELETE FROM replay_cache WHERE expires_at <= ?'),
      purgeRevocations: db.prepare('DELETE FROM revocations WHERE expires_at <= ?'),
      purgeIssued: db.prepare('DELETE FROM issued_credentials WHERE expires_at <= ?'),
      probe: db.prepare('INSERT INTO write_probe (id, at) VALUES (1, ?) ON CONFLICT(id) DO UPDATE SET at = excluded.at'),
    };
  }

  purgeExpired(now: number): Promise<void> {
    return this.batcher.write(() => {
      this.stmts.purgeReplay.run(now);
      this.stmts.purgeSessions.run(now);
      this.stmts.purgeRevocations.run(now);
      this.stmts.purgeIssued.run(now - ISSUED_KEPT_MS);
      this.webhookWorkTable.purge(now);
      this.attestations.purge(now);
      this.changes.purge(now);
    });
  }

  async ping(): Promise<void> {
    this.db.prepare('SELECT 1').get();
  }

  async close(): Promise<void> {
    // Let queued writes commit before closing (each reports its own failure; a failing store still closes).
    await this.batcher.write(() => undefined).catch(() => undefined);
    this.changes.close();
    // The checkpoint thread's connection closes first: the last connection to close checkpoints and removes the log.
    await this.checkpointer?.close();
    this.db.close();
    this.wal?.close();
  }
}

/** A store exists at `path`: a non-empty file (SQLite creates a 0-byte file on open). */
function hasStore(path: string): boolean {
  const size = (file: string) => {
    try {
      return statSync(file).size;
    } catch {
      return 0;
    }
  };
  return size(path) > 0 || size(`${path}-wal`) > 0;
}
