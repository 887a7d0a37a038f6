import type { JWK } from 'jose';
import type { ApprovalRequestRecord, ApprovalStatus, SessionRecord, UserRecord } from '../approvals/records.js';
import type { Checkpoint, DecisionEntry, DecisionRecord } from '../audit/decision-record.js';
import type { LeaseStore } from './leases.js';
import type { ScimStore } from './scim-store.js';

/**
 * Port's storage, one interface for every backend (SQLite now, PostgreSQL later).
 * Each capability owns its methods; nothing outside a store implementation touches
 * tables. Every write resolves only once it is durable.
 */
export interface Store extends ScimStore {
  readonly kind: string;

  /** Leases for background work that must run on one Port at a time (src/store/leases.ts). */
  readonly leases: LeaseStore;

  // Issuer signing keys (src/issuer). Keys are never deleted: old checkpoints need them.
  listSigningKeys(): Promise<SigningKeyRecord[]>;
  insertSigningKey(key: SigningKeyRecord): Promise<void>;

  // Revocation list (src/revocation), RFC 7009.
  addRevocation(entry: RevocationEntry): Promise<void>;
  isRevoked(jti: string): Promise<boolean>;
  /** Revocations that have not expired yet, for warming an in-memory cache. */
  listActiveRevocations(now: number): Promise<RevocationEntry[]>;

  // Replay cache for single-use subject tokens (src/identity).
  /** Records `key` as used until `expiresAt`; false when it was already used. */
  consumeOnce(key: string, expiresAt: number): Promise<boolean>;
  /**
   * In one transaction: consumes `key` and appends `ifFirstUse`, or, when the key was
   * already used, appends `ifReplayed` instead. One durable write per token exchange.
   */
  consumeOnceAndAppend(
    key: string,
    expiresAt: number,
    ifFirstUse: DecisionRecord[],
    ifReplayed: DecisionRecord[],
  ): Promise<{ firstUse: boolean; entries: DecisionEntry[] }>;

  // Decision log (src/audit): hash-chained, append-only.
  /** Appends records in order, chaining each to the previous entry. */
  appendDecisions(records: DecisionRecord[]): Promise<DecisionEntry[]>;
  /** Entries with seq > afterSeq, in order, at most `limit`. */
  readDecisions(afterSeq: number, limit: number): Promise<DecisionEntry[]>;
  lastDecision(): Promise<DecisionEntry | undefined>;
  /**
   * Compare-and-set: stores `checkpoint` only while the newest stored checkpoint is
   * number `checkpoint.num - 1` (none, for number 1), in one transaction. False when
   * another writer (a second Port on the same store) got there first: re-read and move on.
   */
  appendCheckpoint(checkpoint: Checkpoint): Promise<boolean>;
  /** Every checkpoint, by number. */
  listCheckpoints(): Promise<Checkpoint[]>;
  /** The newest checkpoint (highest number). */
  lastCheckpoint(): Promise<Checkpoint | undefined>;

  // People (src/approvals now; SCIM later).
  upsertUser(user: UserRecord): Promise<void>;
  getUser(email: string): Promise<UserRecord | undefined>;

  // Approver sessions (src/web).
  createSession(session: SessionRecord): Promise<void>;
  getSession(idHash: string): Promise<SessionRecord | undefined>;
  deleteSession(idHash: string): Promise<void>;
  /** Ends every session of a person (deactivation); returns how many. */
  deleteSessionsOf(email: string): Promise<number>;

  // Approval requests (src/approvals).
  /** Creates the request unless one exists for its job (webhooks repeat); false then. */
  createApprovalRequest(request: ApprovalRequestRecord): Promise<boolean>;
  /**
   * In one transaction: creates the request and appends `records` (the decision that
   * opened it) to the decision log; undefined, writing nothing, when one exists for its
   * job. One transaction, so a retried webhook never finds a request whose log entries
   * (and notification) were lost to a failed second write.
   */
  openApprovalRequest(request: ApprovalRequestRecord, records: DecisionRecord[]): Promise<DecisionEntry[] | undefined>;
  getApprovalRequest(id: string): Promise<ApprovalRequestRecord | undefined>;
  getApprovalRequestByJob(jobId: string): Promise<ApprovalRequestRecord | undefined>;
  listApprovalRequests(filter: { status?: ApprovalStatus; expiresBefore?: number }): Promise<ApprovalRequestRecord[]>;
  /**
   * Compare-and-set: applies `change` only while the request's status is `pending`,
   * in one transaction, and returns the updated request (undefined when it was no
   * longer pending — a concurrent approval or expiry won).
   */
  updatePendingApprovalRequest(id: string, change: (r: ApprovalRequestRecord) => ApprovalRequestRecord): Promise<ApprovalRequestRecord | undefined>;
  /** Sets the status of a request whatever it was (after the unblock call). */
  setApprovalStatus(id: string, status: ApprovalStatus, at: number): Promise<void>;

  // Brokered credentials (src/broker/credentials): what was handed to which job, for
  // revocation results and lineage. Never the secret material.
  recordIssuedCredential(record: IssuedCredentialRecord): Promise<void>;
  /** Issued credentials matching every given field, still valid at `activeAt` when given. */
  listIssuedCredentials(filter: IssuedCredentialFilter): Promise<IssuedCredentialRecord[]>;

  // Secret versions (src/broker/credentials/secret-rotation.ts), values sealed by the caller.
  /** Every stored version of a secret credential, oldest first. */
  listSecretVersions(credential: string): Promise<SecretVersionRecord[]>;
  /**
   * Records a secret's first version (the configured value) unless it has one: the
   * rotation schedule counts from when Port first served it, across restarts.
   */
  initSecretVersion(record: SecretVersionRecord): Promise<void>;
  /**
   * Compare-and-set rotation, in one transaction: adds `next` and sets `retiresAt` on the
   * previous version only while `next.version` is one more than the newest stored
   * version. False when another rotation got there first (nothing changes then).
   */
  addSecretVersion(next: SecretVersionRecord, previousRetiresAt: number): Promise<boolean>;
  /** Marks a version retired (its retire hook call succeeded). */
  markSecretVersionRetired(credential: string, version: number, at: number): Promise<void>;

  // Relay allow counts (src/relay/allow-log.ts): each process's running counts per
  // aggregation bucket, saved every second, so a crash loses at most a second of them.
  /** Upserts `owner`'s pending counts and marks all its rows as alive at `now`. */
  saveAllowCounts(owner: string, pending: PendingAllowRecord[], now: number): Promise<void>;
  /** In one transaction: appends `records` to the decision log and deletes `owner`'s pending rows for `keys`. */
  commitAllowWindow(owner: string, keys: string[], records: DecisionRecord[]): Promise<DecisionEntry[]>;
  /**
   * In one transaction: appends the pending records of owners other than `recoverer`
   * not seen since `staleBefore` (a process that died), each passed through `mark`, and
   * deletes them. Never the recoverer's own rows: a live process whose saves failed for
   * a while (a full disk) still holds those counts and logs them itself.
   */
  recoverAllowCounts(recoverer: string, staleBefore: number, mark: (record: DecisionRecord) => DecisionRecord): Promise<DecisionEntry[]>;

  /**
   * Whether the store can take writes now; synchronous and cheap (the relay asks on
   * every request): its file is still the one opened and the last commit succeeded.
   */
  health(): StoreHealth;
  /**
   * Resolves once a write is known to succeed — a clean commit within `maxAgeMs`, else a
   * probe write — and rejects with StoreUnavailableError otherwise (readiness).
   */
  checkWritable(maxAgeMs?: number): Promise<void>;

  // Webhook work (src/webhooks): each delivery Port acts on, from receipt until its work
  // is done. A finished row is the delivery's dedupe key, kept until its `expiresAt`.
  /**
   * In one transaction: records `work` as pending and leased to `owner` (until
   * `leaseUntil`) unless its key is known; a known pending row whose lease has lapsed is
   * leased to `owner` again. Says `busy` while another lease holds it, `finished` once done.
   */
  claimWebhookWork(work: NewWebhookWork, owner: string, now: number, leaseUntil: number): Promise<WebhookWorkClaim>;
  /** Compare-and-set: leases to `owner` up to `limit` pending rows due at `now` whose lease lapsed. */
  claimDueWebhookWork(owner: string, now: number, leaseUntil: number, limit: number): Promise<WebhookWorkRecord[]>;
  /** Marks a pending row done (or dropped as moot), kept as the dedupe key until `keepUntil`; false if it was not pending. */
  finishWebhookWork(key: string, outcome: 'done' | 'dropped', now: number, keepUntil: number): Promise<boolean>;
  /** Compare-and-set on the lease: `owner` hands the row back, one attempt more, due again at `nextAttemptAt`. */
  releaseWebhookWork(key: string, owner: string, retry: { nextAttemptAt: number; lastError: string; now: number }): Promise<boolean>;
  /** Compare-and-set on the lease: `owner`, still holding it, extends it to `leaseUntil`; false once it lost it. */
  renewWebhookWork(key: string, owner: string, now: number, leaseUntil: number): Promise<boolean>;
  /** Forgets a row (work given up on): a later re-send is new work. */
  deleteWebhookWork(key: string): Promise<void>;
  getWebhookWork(key: string): Promise<WebhookWorkRecord | undefined>;
  listWebhookWork(status?: WebhookWorkStatus): Promise<WebhookWorkRecord[]>;

  /** Deletes expired replay and revocation rows. */
  purgeExpired(now: number): Promise<void>;
  /** Resolves when the store answers (readiness). */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export interface StoreHealth {
  writable: boolean;
  /** Why not, in a few path-free words (e.g. "the disk is full"). */
  reason?: string;
}

/** One aggregation bucket of allowed relay requests, as it would be logged now. */
export interface PendingAllowRecord {
  key: string;
  record: DecisionRecord;
}

export type WebhookWorkStatus = 'pending' | 'done' | 'dropped';

/** A delivery's work as received (src/webhooks). Times in ms since the epoch. */
export interface NewWebhookWork {
  /** The delivery's dedupe key (a hash of its body). */
  key: string;
  event: string;
  /** The validated payload as JSON (only the fields handlers use). */
  payload: string;
  createdAt: number;
}

export interface WebhookWorkRecord extends NewWebhookWork {
  status: WebhookWorkStatus;
  /** Failed attempts so far. */
  attempts: number;
  nextAttemptAt: number;
  /** Who works it now (a process id), while `leaseUntil` is in the future. */
  leaseOwner: string | null;
  leaseUntil: number;
  /** Why the last attempt failed (one sentence, no payload). */
  lastError: string | null;
  updatedAt: number;
  /** Finished rows: when the dedupe key may go. Null while pending. */
  expiresAt: number | null;
}

export type WebhookWorkClaim =
  | { outcome: 'claimed'; work: WebhookWorkRecord; fresh: boolean }
  | { outcome: 'busy' }
  | { outcome: 'finished'; status: 'done' | 'dropped' };

/** Times are milliseconds since the epoch. */
export interface SigningKeyRecord {
  kid: string;
  alg: 'ES256' | 'EdDSA';
  publicJwk: JWK;
  /** The private JWK, serialized and possibly sealed (src/issuer/key-wrap.ts); opaque to the store. */
  privateKey: string;
  createdAt: number;
  /** After this the key no longer signs. */
  retiresAt: number;
  /** After this the key leaves the JWKS (retiresAt + the longest token lifetime). */
  expiresAt: number;
}

export interface RevocationEntry {
  jti: string;
  /** When the token would have expired anyway; the row can go after this. */
  expiresAt: number;
  revokedAt: number;
  /** The token's subject (the job), for audit. */
  subject?: string;
  reason: string;
}

/** One credential handed to a job (src/broker/credentials). Times in ms since the epoch. */
export interface IssuedCredentialRecord {
  id: string;
  /** The credential's name in the config. */
  credential: string;
  type: 'port_token' | 'secret' | 'aws_role';
  jobId: string;
  /** `org/pipeline/number`. */
  build: string;
  agentId: string;
  pool?: string;
  /** The build creator's lower-cased e-mail, when known. */
  creator?: string;
  /** SHA-256 of the bearer Port token's jti. */
  tokenJtiHash: string;
  issuedAt: number;
  expiresAt: number;
  /** False when Port can't make it stop working early (AWS STS sessions). */
  recallable: boolean;
  /** Non-secret facts (role ARN, session name, secret version…). */
  facts: Record<string, unknown>;
}

/** One version of a brokered secret. Times in ms since the epoch. */
export interface SecretVersionRecord {
  credential: string;
  /** 0 is the configured value (`value:`); each rotation adds one. */
  version: number;
  /** The value sealed by the caller (opaque to the store); null for version 0, read from its reference. */
  sealedValue: string | null;
  createdAt: number;
  /** Set when a newer version replaced it: the end of its overlap. */
  retiresAt?: number;
  /** When the retire hook call succeeded. */
  retiredAt?: number;
}

export interface IssuedCredentialFilter {
  jobId?: string;
  build?: string;
  agentId?: string;
  pool?: string;
  creator?: string;
  tokenJtiHash?: string;
  activeAt?: number;
}
