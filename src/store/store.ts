import type { JWK } from 'jose';
import type { ApprovalRequestRecord, ApprovalStatus, SessionRecord, UserRecord } from '../approvals/records.js';
import type { Checkpoint, DecisionEntry, DecisionRecord } from '../audit/decision-record.js';
import type { ScimStore } from './scim-store.js';

/**
 * Port's storage, one interface for every backend (SQLite now, PostgreSQL later).
 * Each capability owns its methods; nothing outside a store implementation touches
 * tables. Every write resolves only once it is durable.
 */
export interface Store extends ScimStore {
  readonly kind: string;

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
  appendCheckpoint(checkpoint: Checkpoint): Promise<void>;
  listCheckpoints(): Promise<Checkpoint[]>;

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

  /** Deletes expired replay and revocation rows. */
  purgeExpired(now: number): Promise<void>;
  /** Resolves when the store answers (readiness). */
  ping(): Promise<void>;
  close(): Promise<void>;
}

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
