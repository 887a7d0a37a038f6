import type { AgentAttestationStore } from './repositories/agent-attestations.js';
import type { AllowCountStore } from './repositories/allow-counts.js';
import type { ChangeFeed } from './repositories/changes.js';
import type { ApprovalStore } from './repositories/approvals.js';
import type { IssuedCredentialStore, SecretVersionStore } from './repositories/credentials.js';
import type { DecisionLogStore } from './repositories/decision-log.js';
import type { LeaseStore } from './repositories/leases.js';
import type { ReplayStore } from './repositories/replay.js';
import type { RevocationStore } from './repositories/revocations.js';
import type { ScimStore } from './repositories/scim.js';
import type { SigningKeyStore } from './repositories/signing-keys.js';
import type { SessionStore, UserStore } from './repositories/users.js';
import type { WebhookWorkStore } from './repositories/webhook-work.js';

export type * from './repositories/agent-attestations.js';
export type * from './repositories/allow-counts.js';
export type * from './repositories/approvals.js';
export type * from './repositories/changes.js';
export type * from './repositories/credentials.js';
export type * from './repositories/decision-log.js';
export type * from './repositories/leases.js';
export type * from './repositories/replay.js';
export type * from './repositories/revocations.js';
export type * from './repositories/signing-keys.js';
export type * from './repositories/users.js';
export type * from './repositories/webhook-work.js';

/**
 * Port's storage: a set of small repositories, each owned by the store layer and
 * implemented for every backend (SQLite, the embedded default; PostgreSQL, for replicas),
 * which pass one contract suite (test/store). Features depend on these interfaces and
 * their record types, never on tables. Every write resolves only once it is durable.
 */
export interface Store {
  readonly kind: 'sqlite' | 'postgres';

  readonly decisions: DecisionLogStore;
  readonly replay: ReplayStore;
  readonly revocations: RevocationStore;
  readonly keys: SigningKeyStore;
  readonly users: UserStore;
  readonly sessions: SessionStore;
  readonly scim: ScimStore;
  readonly approvals: ApprovalStore;
  readonly issued: IssuedCredentialStore;
  readonly secretVersions: SecretVersionStore;
  readonly allowCounts: AllowCountStore;
  readonly webhookWork: WebhookWorkStore;
  readonly leases: LeaseStore;
  /** What agent hosts proved (src/agents), and the host key each EC2 instance bound first. */
  readonly attestations: AgentAttestationStore;
  /** What changed, for caches that must agree across processes (revocations, people, signing keys). */
  readonly changes: ChangeFeed;

  /**
   * Whether the store can take writes now; synchronous and cheap (the relay asks on
   * every request): the last commit succeeded (and, for SQLite, its file is still the one opened).
   */
  health(): StoreHealth;
  /**
   * Resolves once a write is known to succeed — a clean commit within `maxAgeMs`, else a
   * probe write — and rejects with StoreUnavailableError otherwise (readiness).
   */
  checkWritable(maxAgeMs?: number): Promise<void>;
  /** Deletes expired replay keys, revocations, sessions, issued credentials, webhook dedupe keys and agent attestations. */
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
