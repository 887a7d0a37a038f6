import { mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { ApprovalRequestRecord, ApprovalStatus, SessionRecord, UserRecord } from '../../approvals/records.js';
import type { Checkpoint, DecisionEntry, DecisionRecord } from '../../audit/decision-record.js';
import { entryHash, GENESIS_HASH } from '../../audit/hash-chain.js';
import { StoreError } from '../../errors.js';
import type { IssuedCredentialFilter, IssuedCredentialRecord, RevocationEntry, SecretVersionRecord, SigningKeyRecord, PendingAllowRecord, Store, StoreHealth } from '../store.js';
import { migrate } from './migrations.js';
import { SqliteScimTables } from './scim-tables.js';
import { SqliteWebhookWork } from './webhook-work-table.js';
import type { NewWebhookWork, WebhookWorkClaim, WebhookWorkRecord, WebhookWorkStatus } from '../store.js';
import { WriteBatcher } from './write-batcher.js';
import { SqliteLeases } from './lease-table.js';
import type { LeaseStore } from '../leases.js';
import { FileIdentity, type FileProblem } from './file-identity.js';
import { StoreMissingError, StoreUnavailableError } from '../errors.js';
import type { ScimGroupQuery, ScimGroupRecord, ScimPage, ScimUserQuery, ScimUserRecord, ScimWriteResult } from '../scim-store.js';

interface DecisionRow {
  seq: number;
  record: string;
  prev_hash: string;
  hash: string;
}

interface CheckpointRow {
  num: number;
  seq: number;
  hash: string;
  time: string;
  kid: string;
  jws: string;
  prev: string | null;
}

/** A legacy checkpoint (written before checkpoints were chained) has no `prev`. */
function toCheckpoint(r: CheckpointRow): Checkpoint {
  const { prev, ...rest } = r;
  return prev === null ? rest : { ...rest, prev };
}

/**
 * The embedded default store: one SQLite file in WAL mode with `synchronous=FULL`,
 * so a commit is on disk before the write's promise resolves. Writes are batched
 * (see WriteBatcher); reads are synchronous and never wait for the batch.
 */
export class SqliteStore implements Store {
  readonly kind = 'sqlite';
  private readonly db: Database.Database;
  private readonly batcher: WriteBatcher;
  private readonly stmts;
  private readonly scim: SqliteScimTables;
  private readonly webhookWork: SqliteWebhookWork;
  readonly leases: LeaseStore;

  /** The file Port opened (undefined for `:memory:`), checked around every commit. */
  private readonly identity: FileIdentity | undefined;
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
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = FULL');
      this.db.pragma('busy_timeout = 5000');
      this.db.pragma('foreign_keys = ON');
      migrate(this.db);
    } catch (err) {
      throw new StoreError(`cannot open SQLite store ${path}: ${(err as Error).message}`, { cause: err });
    }
    this.identity = path === ':memory:' ? undefined : new FileIdentity(path);
    this.stmts = this.prepare();
    this.scim = new SqliteScimTables(this.db);
    this.webhookWork = new SqliteWebhookWork(this.db);
    this.batcher = new WriteBatcher(this.db, 512, {
      check: (phase) => {
        const problem = this.checkIdentity();
        // After a commit, only a moved file undoes it; a file that can't be checked still
        // holds the commit (acknowledged), and health() now fails the writes that follow.
        return problem === undefined || (phase === 'after' && !problem.moved) ? undefined : problem.reason;
      },
      outcome: (failure) => {
        this.writeFailure = failure;
        if (failure === undefined) this.lastCommitAt = Date.now();
      },
    });
    this.leases = new SqliteLeases(this.db, this.batcher);
  }

  /**
   * Opens (and migrates) the SQLite store at `path`. With `create: false` a missing or
   * empty file is refused (StoreMissingError) instead of silently starting afresh.
   */
  static open(path: string, opts: { create?: boolean } = {}): SqliteStore {
    return new SqliteStore(path, opts.create ?? true);
  }

  health(): StoreHealth {
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
      listKeys: db.prepare('SELECT * FROM signing_keys ORDER BY created_at'),
      insertKey: db.prepare(
        'INSERT INTO signing_keys (kid, alg, public_jwk, private_key, created_at, retires_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
      ),
      addRevocation: db.prepare(
        'INSERT INTO revocations (jti, expires_at, revoked_at, subject, reason) VALUES (?, ?, ?, ?, ?) ON CONFLICT(jti) DO UPDATE SET revoked_at = max(revoked_at, excluded.revoked_at), expires_at = max(expires_at, excluded.expires_at)',
      ),
      isRevoked: db.prepare('SELECT 1 FROM revocations WHERE jti = ?'),
      activeRevocations: db.prepare('SELECT * FROM revocations WHERE expires_at > ?'),
      consume: db.prepare(
        // An expired row for the same key may be reused; a live one may not.
        `INSERT INTO replay_cache (key, expires_at) VALUES (?, ?)
         ON CONFLICT(key) DO UPDATE SET expires_at = excluded.expires_at WHERE replay_cache.expires_at <= ?`,
      ),
      insertDecision: db.prepare(
        'INSERT INTO decisions (seq, time, action, decision, principal, record, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
      ),
      readDecisions: db.prepare('SELECT seq, record, prev_hash, hash FROM decisions WHERE seq > ? ORDER BY seq LIMIT ?'),
      lastDecision: db.prepare('SELECT seq, record, prev_hash, hash FROM decisions ORDER BY seq DESC LIMIT 1'),
      head: db.prepare('SELECT seq, hash FROM decisions ORDER BY seq DESC LIMIT 1'),
      insertCheckpoint: db.prepare('INSERT INTO checkpoints (num, seq, hash, time, kid, jws, prev) VALUES (?, ?, ?, ?, ?, ?, ?)'),
      listCheckpoints: db.prepare('SELECT num, seq, hash, time, kid, jws, prev FROM checkpoints ORDER BY num'),
      lastCheckpoint: db.prepare('SELECT num, seq, hash, time, kid, jws, prev FROM checkpoints ORDER BY num DESC LIMIT 1'),
      lastCheckpointNum: db.prepare('SELECT max(num) AS num FROM checkpoints'),
      upsertUser: db.prepare('INSERT INTO users (email, record) VALUES (?, ?) ON CONFLICT(email) DO UPDATE SET record = excluded.record'),
      getUser: db.prepare('SELECT record FROM users WHERE email = ?'),
      insertApproval: db.prepare(
        'INSERT INTO approval_requests (id, job_id, status, expires_at, record) VALUES (?, ?, ?, ?, ?) ON CONFLICT(job_id) DO NOTHING',
      ),
      approvalById: db.prepare('SELECT record FROM approval_requests WHERE id = ?'),
      approvalByJob: db.prepare('SELECT record FROM approval_requests WHERE job_id = ?'),
      approvalsAll: db.prepare('SELECT record FROM approval_requests ORDER BY expires_at'),
      approvalsByStatus: db.prepare('SELECT record FROM approval_requests WHERE status = ? AND expires_at < ? ORDER BY expires_at'),
      updateApproval: db.prepare('UPDATE approval_requests SET status = ?, expires_at = ?, record = ? WHERE id = ?'),
      insertSession: db.prepare('INSERT INTO sessions (id_hash, email, expires_at, record) VALUES (?, ?, ?, ?)'),
      getSession: db.prepare('SELECT record FROM sessions WHERE id_hash = ? AND expires_at > ?'),
      deleteSession: db.prepare('DELETE FROM sessions WHERE id_hash = ?'),
      deleteSessionsOf: db.prepare('DELETE FROM sessions WHERE email = ?'),
      purgeSessions: db.prepare('DELETE FROM sessions WHERE expires_at <= ?'),
      purgeReplay: db.prepare('DELETE FROM replay_cache WHERE expires_at <= ?'),
      purgeRevocations: db.prepare('DELETE FROM revocations WHERE expires_at <= ?'),
      purgeIssued: db.prepare('DELETE FROM issued_credentials WHERE expires_at <= ?'),
      insertIssued: db.prepare(
        `INSERT INTO issued_credentials (id, credential, job_id, build, agent_id, pool, creator, token_jti_hash, issued_at, expires_at, record)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      listSecretVersions: db.prepare('SELECT * FROM secret_versions WHERE credential = ? ORDER BY version'),
      newestSecretVersion: db.prepare('SELECT max(version) AS v FROM secret_versions WHERE credential = ?'),
      insertSecretVersion: db.prepare(
        'INSERT INTO secret_versions (credential, version, sealed_value, created_at, retires_at, retired_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING',
      ),
      retireSecretVersionAt: db.prepare('UPDATE secret_versions SET retires_at = ? WHERE credential = ? AND version = ?'),
      markSecretVersionRetired: db.prepare('UPDATE secret_versions SET retired_at = ? WHERE credential = ? AND version = ?'),
      savePending: db.prepare(
        'INSERT INTO relay_allow_pending (owner, key, updated_at, record) VALUES (?, ?, ?, ?) ON CONFLICT(owner, key) DO UPDATE SET updated_at = excluded.updated_at, record = excluded.record',
      ),
      touchPending: db.prepare('UPDATE relay_allow_pending SET updated_at = ? WHERE owner = ?'),
      deletePending: db.prepare('DELETE FROM relay_allow_pending WHERE owner = ? AND key = ?'),
      stalePending: db.prepare('SELECT owner, key, record FROM relay_allow_pending WHERE updated_at < ? AND owner != ? ORDER BY updated_at'),
      probe: db.prepare('INSERT INTO write_probe (id, at) VALUES (1, ?) ON CONFLICT(id) DO UPDATE SET at = excluded.at'),
    };
  }


  async listSigningKeys(): Promise<SigningKeyRecord[]> {
    return (this.stmts.listKeys.all() as Record<string, unknown>[]).map((r) => ({
      kid: r.kid as string,
      alg: r.alg as SigningKeyRecord['alg'],
      publicJwk: JSON.parse(r.public_jwk as string),
      privateKey: r.private_key as string,
      createdAt: r.created_at as number,
      retiresAt: r.retires_at as number,
      expiresAt: r.expires_at as number,
    }));
  }

  insertSigningKey(k: SigningKeyRecord): Promise<void> {
    return this.batcher.write(() => {
      this.stmts.insertKey.run(k.kid, k.alg, JSON.stringify(k.publicJwk), k.privateKey, k.createdAt, k.retiresAt, k.expiresAt);
    });
  }

  addRevocation(e: RevocationEntry): Promise<void> {
    return this.batcher.write(() => {
      this.stmts.addRevocation.run(e.jti, e.expiresAt, e.revokedAt, e.subject ?? null, e.reason);
    });
  }

  async isRevoked(jti: string): Promise<boolean> {
    return this.stmts.isRevoked.get(jti) !== undefined;
  }

  async listActiveRevocations(now: number): Promise<RevocationEntry[]> {
    return (this.stmts.activeRevocations.all(now) as Record<string, unknown>[]).map((r) => ({
      jti: r.jti as string,
      expiresAt: r.expires_at as number,
      revokedAt: r.revoked_at as number,
      subject: (r.subject as string | null) ?? undefined,
      reason: r.reason as string,
    }));
  }

  consumeOnce(key: string, expiresAt: number): Promise<boolean> {
    return this.batcher.write(() => this.stmts.consume.run(key, expiresAt, Date.now()).changes === 1);
  }

  consumeOnceAndAppend(
    key: string,
    expiresAt: number,
    ifFirstUse: DecisionRecord[],
    ifReplayed: DecisionRecord[],
  ): Promise<{ firstUse: boolean; entries: DecisionEntry[] }> {
    return this.batcher.write(() => {
      const firstUse = this.stmts.consume.run(key, expiresAt, Date.now()).changes === 1;
      return { firstUse, entries: this.appendInTransaction(firstUse ? ifFirstUse : ifReplayed) };
    });
  }

  appendDecisions(records: DecisionRecord[]): Promise<DecisionEntry[]> {
    return this.batcher.write(() => this.appendInTransaction(records));
  }

  /** Chains and inserts records; runs inside a batch transaction. */
  private appendInTransaction(records: DecisionRecord[]): DecisionEntry[] {
    // Read the head inside the (IMMEDIATE) transaction: another connection to the same
    // file may have appended since, and a stale cached head would collide on seq forever.
    let { seq, hash } = (this.stmts.head.get() as { seq: number; hash: string } | undefined) ?? { seq: 0, hash: GENESIS_HASH };
    const entries: DecisionEntry[] = [];
    for (const record of records) {
      const next = seq + 1;
      const h = entryHash(next, hash, record);
      this.stmts.insertDecision.run(next, record.time, record.action, record.decision, record.principal, JSON.stringify(record), hash, h);
      entries.push({ seq: next, prevHash: hash, hash: h, record });
      [seq, hash] = [next, h];
    }
    return entries;
  }

  saveAllowCounts(owner: string, pending: PendingAllowRecord[], now: number): Promise<void> {
    return this.batcher.write(() => {
      this.stmts.touchPending.run(now, owner);
      for (const p of pending) this.stmts.savePending.run(owner, p.key, now, JSON.stringify(p.record));
    });
  }

  commitAllowWindow(owner: string, keys: string[], records: DecisionRecord[]): Promise<DecisionEntry[]> {
    return this.batcher.write(() => {
      for (const key of keys) this.stmts.deletePending.run(owner, key);
      return this.appendInTransaction(records);
    });
  }

  recoverAllowCounts(recoverer: string, staleBefore: number, mark: (record: DecisionRecord) => DecisionRecord): Promise<DecisionEntry[]> {
    return this.batcher.write(() => {
      const rows = this.stmts.stalePending.all(staleBefore, recoverer) as { owner: string; key: string; record: string }[];
      for (const r of rows) this.stmts.deletePending.run(r.owner, r.key);
      return this.appendInTransaction(rows.map((r) => mark(JSON.parse(r.record) as DecisionRecord)));
    });
  }

  async readDecisions(afterSeq: number, limit: number): Promise<DecisionEntry[]> {
    return (this.stmts.readDecisions.all(afterSeq, limit) as DecisionRow[]).map(toEntry);
  }

  async lastDecision(): Promise<DecisionEntry | undefined> {
    const row = this.stmts.lastDecision.get() as DecisionRow | undefined;
    return row && toEntry(row);
  }

  appendCheckpoint(c: Checkpoint): Promise<boolean> {
    return this.batcher.write(() => {
      // Compare-and-set inside the (IMMEDIATE) transaction: another Port on this file may
      // have written checkpoint c.num first; then this one is dropped, not an error.
      const newest = (this.stmts.lastCheckpointNum.get() as { num: number | null }).num ?? 0;
      if (newest !== c.num - 1) return false;
      this.stmts.insertCheckpoint.run(c.num, c.seq, c.hash, c.time, c.kid, c.jws, c.prev ?? null);
      return true;
    });
  }

  async listCheckpoints(): Promise<Checkpoint[]> {
    return (this.stmts.listCheckpoints.all() as CheckpointRow[]).map(toCheckpoint);
  }

  async lastCheckpoint(): Promise<Checkpoint | undefined> {
    const row = this.stmts.lastCheckpoint.get() as CheckpointRow | undefined;
    return row && toCheckpoint(row);
  }

  recordIssuedCredential(r: IssuedCredentialRecord): Promise<void> {
    return this.batcher.write(() => {
      this.stmts.insertIssued.run(r.id, r.credential, r.jobId, r.build, r.agentId, r.pool ?? null, r.creator ?? null, r.tokenJtiHash, r.issuedAt, r.expiresAt, JSON.stringify(r));
    });
  }

  async listIssuedCredentials(f: IssuedCredentialFilter): Promise<IssuedCredentialRecord[]> {
    const columns: [keyof IssuedCredentialFilter, string][] = [
      ['jobId', 'job_id'],
      ['build', 'build'],
      ['agentId', 'agent_id'],
      ['pool', 'pool'],
      ['creator', 'creator'],
      ['tokenJtiHash', 'token_jti_hash'],
    ];
    const where: string[] = [];
    const args: (string | number)[] = [];
    for (const [key, column] of columns) {
      const value = f[key];
      if (value !== undefined) {
        where.push(`${column} = ?`);
        args.push(value);
      }
    }
    if (f.activeAt !== undefined) {
      where.push('expires_at > ?');
      args.push(f.activeAt);
    }
    const sql = `SELECT record FROM issued_credentials${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY issued_at`;
    return (this.db.prepare(sql).all(...args) as { record: string }[]).map((r) => JSON.parse(r.record) as IssuedCredentialRecord);
  }

  async listSecretVersions(credential: string): Promise<SecretVersionRecord[]> {
    return (this.stmts.listSecretVersions.all(credential) as Record<string, unknown>[]).map((r) => ({
      credential: r.credential as string,
      version: r.version as number,
      sealedValue: (r.sealed_value as string | null) ?? null,
      createdAt: r.created_at as number,
      ...(r.retires_at !== null ? { retiresAt: r.retires_at as number } : {}),
      ...(r.retired_at !== null ? { retiredAt: r.retired_at as number } : {}),
    }));
  }

  initSecretVersion(r: SecretVersionRecord): Promise<void> {
    return this.batcher.write(() => {
      const newest = (this.stmts.newestSecretVersion.get(r.credential) as { v: number | null }).v;
      if (newest === null) this.insertSecretVersion(r);
    });
  }

  addSecretVersion(next: SecretVersionRecord, previousRetiresAt: number): Promise<boolean> {
    return this.batcher.write(() => {
      const newest = (this.stmts.newestSecretVersion.get(next.credential) as { v: number | null }).v;
      if (newest === null || newest !== next.version - 1) return false;
      this.insertSecretVersion(next);
      this.stmts.retireSecretVersionAt.run(previousRetiresAt, next.credential, newest);
      return true;
    });
  }

  markSecretVersionRetired(credential: string, version: number, at: number): Promise<void> {
    return this.batcher.write(() => {
      this.stmts.markSecretVersionRetired.run(at, credential, version);
    });
  }

  private insertSecretVersion(r: SecretVersionRecord): void {
    this.stmts.insertSecretVersion.run(r.credential, r.version, r.sealedValue, r.createdAt, r.retiresAt ?? null, r.retiredAt ?? null);
  }

  purgeExpired(now: number): Promise<void> {
    return this.batcher.write(() => {
      this.stmts.purgeReplay.run(now);
      this.stmts.purgeSessions.run(now);
      this.stmts.purgeRevocations.run(now);
      // Kept a day past expiry so revocation results and lineage can still name them.
      this.stmts.purgeIssued.run(now - 86_400_000);
      this.webhookWork.purge(now);
    });
  }

  upsertUser(user: UserRecord): Promise<void> {
    return this.batcher.write(() => {
      this.stmts.upsertUser.run(user.email.toLowerCase(), JSON.stringify({ ...user, email: user.email.toLowerCase() }));
    });
  }

  async getUser(email: string): Promise<UserRecord | undefined> {
    const row = this.stmts.getUser.get(email.toLowerCase()) as { record: string } | undefined;
    return row && (JSON.parse(row.record) as UserRecord);
  }

  createSession(s: SessionRecord): Promise<void> {
    return this.batcher.write(() => {
      this.stmts.insertSession.run(s.idHash, s.email.toLowerCase(), s.expiresAt, JSON.stringify({ ...s, email: s.email.toLowerCase() }));
    });
  }

  async getSession(idHash: string): Promise<SessionRecord | undefined> {
    const row = this.stmts.getSession.get(idHash, Date.now()) as { record: string } | undefined;
    return row && (JSON.parse(row.record) as SessionRecord);
  }

  deleteSession(idHash: string): Promise<void> {
    return this.batcher.write(() => {
      this.stmts.deleteSession.run(idHash);
    });
  }

  deleteSessionsOf(email: string): Promise<number> {
    return this.batcher.write(() => this.stmts.deleteSessionsOf.run(email.toLowerCase()).changes);
  }

  async createApprovalRequest(r: ApprovalRequestRecord): Promise<boolean> {
    return (await this.openApprovalRequest(r, [])) !== undefined;
  }

  openApprovalRequest(r: ApprovalRequestRecord, records: DecisionRecord[]): Promise<DecisionEntry[] | undefined> {
    return this.batcher.write(() => {
      if (this.stmts.insertApproval.run(r.id, r.jobId, r.status, r.expiresAt, JSON.stringify(r)).changes !== 1) return undefined;
      return this.appendInTransaction(records);
    });
  }

  async getApprovalRequest(id: string): Promise<ApprovalRequestRecord | undefined> {
    return parseApproval(this.stmts.approvalById.get(id));
  }

  async getApprovalRequestByJob(jobId: string): Promise<ApprovalRequestRecord | undefined> {
    return parseApproval(this.stmts.approvalByJob.get(jobId));
  }

  async listApprovalRequests(filter: { status?: ApprovalStatus; expiresBefore?: number }): Promise<ApprovalRequestRecord[]> {
    const rows =
      filter.status === undefined
        ? this.stmts.approvalsAll.all()
        : this.stmts.approvalsByStatus.all(filter.status, filter.expiresBefore ?? Number.MAX_SAFE_INTEGER);
    return rows.map((r) => parseApproval(r)!).filter((r) => filter.expiresBefore === undefined || r.expiresAt < filter.expiresBefore);
  }

  updatePendingApprovalRequest(id: string, change: (r: ApprovalRequestRecord) => ApprovalRequestRecord): Promise<ApprovalRequestRecord | undefined> {
    return this.batcher.write(() => {
      const current = parseApproval(this.stmts.approvalById.get(id));
      if (!current || current.status !== 'pending') return undefined;
      const next = change(current);
      this.stmts.updateApproval.run(next.status, next.expiresAt, JSON.stringify(next), id);
      return next;
    });
  }

  setApprovalStatus(id: string, status: ApprovalStatus, at: number): Promise<void> {
    return this.batcher.write(() => {
      const current = parseApproval(this.stmts.approvalById.get(id));
      if (!current) return;
      const next = { ...current, status, closedAt: at };
      this.stmts.updateApproval.run(status, next.expiresAt, JSON.stringify(next), id);
    });
  }

  // SCIM provisioning (src/scim): writes run in the batch transaction, reads directly.
  createScimUser(user: ScimUserRecord): Promise<ScimWriteResult> {
    return this.batcher.write(() => this.scim.createUser(user));
  }

  replaceScimUser(user: ScimUserRecord, expectedVersion: number): Promise<ScimWriteResult | 'conflict' | 'not_found'> {
    return this.batcher.write(() => this.scim.replaceUser(user, expectedVersion));
  }

  deleteScimUser(id: string): Promise<ScimWriteResult | 'not_found'> {
    return this.batcher.write(() => this.scim.deleteUser(id, Date.now()));
  }

  async getScimUser(id: string): Promise<ScimUserRecord | undefined> {
    return this.scim.getUser(id);
  }

  async listScimUsers(query: ScimUserQuery): Promise<ScimPage<ScimUserRecord>> {
    return this.scim.listUsers(query);
  }

  createScimGroup(group: ScimGroupRecord): Promise<ScimWriteResult> {
    return this.batcher.write(() => this.scim.createGroup(group));
  }

  replaceScimGroup(group: ScimGroupRecord, expectedVersion: number): Promise<ScimWriteResult | 'conflict' | 'not_found'> {
    return this.batcher.write(() => this.scim.replaceGroup(group, expectedVersion));
  }

  deleteScimGroup(id: string): Promise<ScimWriteResult | 'not_found'> {
    return this.batcher.write(() => this.scim.deleteGroup(id, Date.now()));
  }

  async getScimGroup(id: string): Promise<ScimGroupRecord | undefined> {
    return this.scim.getGroup(id);
  }

  async listScimGroups(query: ScimGroupQuery): Promise<ScimPage<ScimGroupRecord>> {
    return this.scim.listGroups(query);
  }

  updateUser(email: string, change: (current: UserRecord | undefined) => UserRecord | undefined): Promise<UserRecord | undefined> {
    return this.batcher.write(() => this.scim.updatePortUser(email, change));
  }

  // Webhook work (src/webhooks): writes run in the batch transaction, reads directly.
  claimWebhookWork(work: NewWebhookWork, owner: string, now: number, leaseUntil: number): Promise<WebhookWorkClaim> {
    return this.batcher.write(() => this.webhookWork.claim(work, owner, now, leaseUntil));
  }

  claimDueWebhookWork(owner: string, now: number, leaseUntil: number, limit: number): Promise<WebhookWorkRecord[]> {
    // Most passes find nothing due: answer those from a read, with no write transaction.
    if (!this.webhookWork.anyDue(now)) return Promise.resolve([]);
    return this.batcher.write(() => this.webhookWork.claimDue(owner, now, leaseUntil, limit));
  }

  finishWebhookWork(key: string, outcome: 'done' | 'dropped', now: number, keepUntil: number): Promise<boolean> {
    return this.batcher.write(() => this.webhookWork.finish(key, outcome, now, keepUntil));
  }

  releaseWebhookWork(key: string, owner: string, retry: { nextAttemptAt: number; lastError: string; now: number }): Promise<boolean> {
    return this.batcher.write(() => this.webhookWork.release(key, owner, retry));
  }

  renewWebhookWork(key: string, owner: string, now: number, leaseUntil: number): Promise<boolean> {
    return this.batcher.write(() => this.webhookWork.renew(key, owner, now, leaseUntil));
  }

  deleteWebhookWork(key: string): Promise<void> {
    return this.batcher.write(() => this.webhookWork.delete(key));
  }

  async getWebhookWork(key: string): Promise<WebhookWorkRecord | undefined> {
    return this.webhookWork.get(key);
  }

  async listWebhookWork(status?: WebhookWorkStatus): Promise<WebhookWorkRecord[]> {
    return this.webhookWork.list(status);
  }

  async ping(): Promise<void> {
    this.db.prepare('SELECT 1').get();
  }

  async close(): Promise<void> {
    // Let queued writes commit before closing.
    await this.batcher.write(() => undefined);
    this.db.close();
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

function parseApproval(row: unknown): ApprovalRequestRecord | undefined {
  return row === undefined ? undefined : (JSON.parse((row as { record: string }).record) as ApprovalRequestRecord);
}

function toEntry(row: DecisionRow): DecisionEntry {
  return { seq: row.seq, prevHash: row.prev_hash, hash: row.hash, record: JSON.parse(row.record) as DecisionRecord };
}
