import type Database from 'better-sqlite3';
import { attestationFromRow, attestationRowValues, type AttestationRow } from '../attestation-rows.js';
import { ATTESTATION_KEPT_MS, type AgentAttestationRecord, type AgentAttestationStore, type InstanceKeyBinding } from '../repositories/agent-attestations.js';
import type { WriteBatcher } from './write-batcher.js';

/**
 * The `agent_attestations` and `instance_keys` tables of the SQLite store. Writes run in
 * the store's WriteBatcher (IMMEDIATE transactions), so `bindInstanceKey`'s insert-if-absent
 * and its read are one step even with several Port processes on the file.
 */
export class SqliteAgentAttestations implements AgentAttestationStore {
  private readonly s;

  constructor(
    db: Database.Database,
    private readonly batcher: WriteBatcher,
  ) {
    this.s = {
      put: db.prepare(
        `INSERT INTO agent_attestations (agent_id, pool, job_id, methods, instance_id, account, region, iam_role, jkt, attested_at, expires_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT(agent_id) DO UPDATE SET pool = excluded.pool, job_id = excluded.job_id, methods = excluded.methods,
           instance_id = excluded.instance_id, account = excluded.account, region = excluded.region, iam_role = excluded.iam_role,
           jkt = excluded.jkt, attested_at = excluded.attested_at, expires_at = excluded.expires_at`,
      ),
      get: db.prepare('SELECT * FROM agent_attestations WHERE agent_id = ? AND expires_at > ?'),
      list: db.prepare('SELECT * FROM agent_attestations WHERE attested_at >= ? ORDER BY attested_at, agent_id'),
      listPool: db.prepare('SELECT * FROM agent_attestations WHERE attested_at >= ? AND pool = ? ORDER BY attested_at, agent_id'),
      bind: db.prepare('INSERT INTO instance_keys (instance_id, jkt, bound_at) VALUES (?, ?, ?) ON CONFLICT(instance_id) DO NOTHING'),
      binding: db.prepare('SELECT instance_id, jkt, bound_at FROM instance_keys WHERE instance_id = ?'),
      purge: db.prepare('DELETE FROM agent_attestations WHERE expires_at <= ?'),
    };
  }

  put(record: AgentAttestationRecord): Promise<void> {
    const r = record;
    return this.batcher.write(() => {
      this.s.put.run(...attestationRowValues(r));
    });
  }

  async get(agentId: string, now: number): Promise<AgentAttestationRecord | undefined> {
    const row = this.s.get.get(agentId, now) as AttestationRow | undefined;
    return row && attestationFromRow(row);
  }

  bindInstanceKey(binding: InstanceKeyBinding): Promise<InstanceKeyBinding> {
    return this.batcher.write(() => {
      this.s.bind.run(binding.instanceId, binding.jkt, binding.boundAt);
      const row = this.s.binding.get(binding.instanceId) as { instance_id: string; jkt: string; bound_at: number };
      return { instanceId: row.instance_id, jkt: row.jkt, boundAt: row.bound_at };
    });
  }

  async list(opts: { since: number; pool?: string }): Promise<AgentAttestationRecord[]> {
    const rows = (opts.pool === undefined ? this.s.list.all(opts.since) : this.s.listPool.all(opts.since, opts.pool)) as AttestationRow[];
    return rows.map(attestationFromRow);
  }

  /** Deletes attestations expired more than ATTESTATION_KEPT_MS before `now`; runs inside the store's purge batch. */
  purge(now: number): void {
    this.s.purge.run(now - ATTESTATION_KEPT_MS);
  }
}
