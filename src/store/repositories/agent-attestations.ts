/**
 * Agent attestations (src/agents): what an agent host proved at `POST /v1/agents/attest`,
 * kept until it expires, and the first host key each EC2 instance registered (so an
 * instance identity document copied elsewhere can't register another key).
 */
export interface AgentAttestationRecord {
  /** The Buildkite agent id (UUID) of the attesting job's token. */
  agentId: string;
  /** `cluster_name/queue_key` the attesting job's token claimed. */
  pool: string;
  /** The job whose Buildkite token came with the attestation. */
  jobId: string;
  /** What was verified: `aws_iam`, `aws_iid` (sorted, no duplicates). */
  methods: string[];
  instanceId?: string;
  account?: string;
  region?: string;
  /** `arn:aws:iam::ACCOUNT:role/NAME` (from the assumed-role ARN STS returned). */
  iamRole?: string;
  /** RFC 7638 thumbprint of the host key registered with this attestation (host-bound pools). */
  jkt?: string;
  /** Milliseconds since the epoch. */
  attestedAt: number;
  expiresAt: number;
}

/**
 * Attestations are kept this long past their expiry, then purged (Store.purgeExpired):
 * a record only gates requests while current, and `port agents audit` reads history
 * from the decision log, not from here.
 */
export const ATTESTATION_KEPT_MS = 30 * 86_400_000;

export interface InstanceKeyBinding {
  instanceId: string;
  jkt: string;
  /** Milliseconds since the epoch. */
  boundAt: number;
}

export interface AgentAttestationStore {
  /** Records (or replaces) the agent's attestation; durable when it resolves. */
  put(record: AgentAttestationRecord): Promise<void>;
  /** The agent's attestation, unless expired at `now` (ms). */
  get(agentId: string, now: number): Promise<AgentAttestationRecord | undefined>;
  /**
   * Binds the instance to `jkt` unless it is bound already; resolves to the binding in
   * force (the existing one when there was one, so the caller compares jkt). Atomic
   * across processes: two first attestations racing agree on one key.
   */
  bindInstanceKey(binding: InstanceKeyBinding): Promise<InstanceKeyBinding>;
  /** Attestations made at or after `since` (ms), optionally of one pool, oldest first (expired ones included until purged). */
  list(opts: { since: number; pool?: string }): Promise<AgentAttestationRecord[]>;
}
