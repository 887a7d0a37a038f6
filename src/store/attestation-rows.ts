import type { AgentAttestationRecord } from './repositories/agent-attestations.js';

/** An `agent_attestations` row as both backends return it (PostgreSQL's bigints arrive as strings); `methods` is a JSON array. */
export interface AttestationRow {
  agent_id: string;
  pool: string;
  job_id: string;
  methods: string;
  instance_id: string | null;
  account: string | null;
  region: string | null;
  iam_role: string | null;
  jkt: string | null;
  attested_at: number | string;
  expires_at: number | string;
}

/** Sorted and without duplicates, whatever the caller passed: the record's documented form. */
export function encodeMethods(methods: readonly string[]): string {
  return JSON.stringify([...new Set(methods)].sort());
}

/** A row (SQLite or PostgreSQL, whose bigints arrive as strings) as the record; absent facts stay absent. */
export function attestationFromRow(row: AttestationRow): AgentAttestationRecord {
  const parsed: unknown = JSON.parse(row.methods);
  const methods = Array.isArray(parsed) ? parsed.filter((m): m is string => typeof m === 'string') : [];
  return {
    agentId: row.agent_id,
    pool: row.pool,
    jobId: row.job_id,
    methods,
    ...(row.instance_id !== null ? { instanceId: row.instance_id } : {}),
    ...(row.account !== null ? { account: row.account } : {}),
    ...(row.region !== null ? { region: row.region } : {}),
    ...(row.iam_role !== null ? { iamRole: row.iam_role } : {}),
    ...(row.jkt !== null ? { jkt: row.jkt } : {}),
    attestedAt: Number(row.attested_at),
    expiresAt: Number(row.expires_at),
  };
}

/** The record's columns in table order (agent_id … expires_at), for both backends' upserts. */
export function attestationRowValues(r: AgentAttestationRecord): (string | number | null)[] {
  return [r.agentId, r.pool, r.jobId, encodeMethods(r.methods), r.instanceId ?? null, r.account ?? null, r.region ?? null, r.iamRole ?? null, r.jkt ?? null, r.attestedAt, r.expiresAt];
}
