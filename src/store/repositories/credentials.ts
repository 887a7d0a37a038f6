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

export interface IssuedCredentialFilter {
  jobId?: string;
  build?: string;
  agentId?: string;
  pool?: string;
  creator?: string;
  tokenJtiHash?: string;
  activeAt?: number;
}

/** Issued credentials are kept this long past their expiry, so revocation results and lineage can still name them. */
export const ISSUED_KEPT_MS = 86_400_000;

/**
 * What was handed to which job, for revocation results and lineage; never the secret
 * material. Rows are kept ISSUED_KEPT_MS past expiry.
 */
export interface IssuedCredentialStore {
  record(record: IssuedCredentialRecord): Promise<void>;
  /** Issued credentials matching every given field, still valid at `activeAt` when given, by issue time. */
  list(filter: IssuedCredentialFilter): Promise<IssuedCredentialRecord[]>;
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

/** Secret versions (src/broker/credentials/secret-rotation.ts), values sealed by the caller. */
export interface SecretVersionStore {
  /** Every stored version of a secret credential, oldest first. */
  list(credential: string): Promise<SecretVersionRecord[]>;
  /**
   * Records a secret's first version (the configured value) unless it has one: the
   * rotation schedule counts from when Port first served it, across restarts.
   */
  init(record: SecretVersionRecord): Promise<void>;
  /**
   * Compare-and-set rotation, in one transaction: adds `next` and sets `retiresAt` on the
   * previous version only while `next.version` is one more than the newest stored
   * version. False when another rotation got there first (nothing changes then).
   */
  add(next: SecretVersionRecord, previousRetiresAt: number): Promise<boolean>;
  /** Marks a version retired (its retire hook call succeeded). */
  markRetired(credential: string, version: number, at: number): Promise<void>;
}
