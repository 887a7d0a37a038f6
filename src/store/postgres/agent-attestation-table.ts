import { StoreError } from '../../errors.js';
import { attestationFromRow, attestationRowValues, type AttestationRow } from '../attestation-rows.js';
import { ATTESTATION_KEPT_MS, type AgentAttestationRecord, type AgentAttestationStore, type InstanceKeyBinding } from '../repositories/agent-attestations.js';
import type { PgDatabase, Queryable } from './pg-database.js';

/**
 * The `agent_attestations` and `instance_keys` tables on PostgreSQL, shared by every replica.
 */
export class PostgresAgentAttestations implements AgentAttestationStore {
  constructor(private readonly db: PgDatabase) {}

  async put(r: AgentAttestationRecord): Promise<void> {
    await this.db.write(
      `INSERT INTO agent_attestations (agent_id, pool, job_id, methods, instance_id, account, region, iam_role, jkt, attested_at, expires_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
       ON CONFLICT (agent_id) DO UPDATE SET pool = EXCLUDED.pool, job_id = EXCLUDED.job_id, methods = EXCLUDED.methods,
         instance_id = EXCLUDED.instance_id, account = EXCLUDED.account, region = EXCLUDED.region, iam_role = EXCLUDED.iam_role,
         jkt = EXCLUDED.jkt, attested_at = EXCLUDED.attested_at, expires_at = EXCLUDED.expires_at`,
      attestationRowValues(r),
    );
  }

  async get(agentId: string, now: number): Promise<AgentAttestationRecord | undefined> {
    const r = await this.db.query<AttestationRow>('SELECT * FROM agent_attestations WHERE agent_id = $1 AND expires_at > $2', [agentId, now]);
    const row = r.rows[0];
    return row && attestationFromRow(row);
  }

  /**
   * Two statements on purpose. `ON CONFLICT DO NOTHING` waits for a concurrent insert of
   * the same instance to commit (or roll back) before deciding, so exactly one binding is
   * ever written; the SELECT that follows is a new statement with a new snapshot under
   * READ COMMITTED, so it sees that committed row. One statement (a CTE) would read with
   * the snapshot taken before the other insert committed and could find no row
   * (https://www.postgresql.org/docs/current/sql-insert.html#SQL-ON-CONFLICT,
   * https://www.postgresql.org/docs/current/transaction-iso.html#XACT-READ-COMMITTED).
   */
  async bindInstanceKey(binding: InstanceKeyBinding): Promise<InstanceKeyBinding> {
    const inserted = await this.db.write<{ instance_id: string; jkt: string; bound_at: string }>(
      'INSERT INTO instance_keys (instance_id, jkt, bound_at) VALUES ($1, $2, $3) ON CONFLICT (instance_id) DO NOTHING RETURNING instance_id, jkt, bound_at',
      [binding.instanceId, binding.jkt, binding.boundAt],
    );
    const row =
      inserted.rows[0] ??
      (await this.db.query<{ instance_id: string; jkt: string; bound_at: string }>('SELECT instance_id, jkt, bound_at FROM instance_keys WHERE instance_id = $1', [binding.instanceId]))
        .rows[0];
    // Bindings are never deleted, so the row the conflict found is still there.
    if (row === undefined) throw new StoreError('an instance key binding was missing right after its insert conflicted');
    return { instanceId: row.instance_id, jkt: row.jkt, boundAt: Number(row.bound_at) };
  }

  async list(opts: { since: number; pool?: string }): Promise<AgentAttestationRecord[]> {
    const r =
      opts.pool === undefined
        ? await this.db.query<AttestationRow>('SELECT * FROM agent_attestations WHERE attested_at >= $1 ORDER BY attested_at, agent_id', [opts.since])
        : await this.db.query<AttestationRow>('SELECT * FROM agent_attestations WHERE attested_at >= $1 AND pool = $2 ORDER BY attested_at, agent_id', [
            opts.since,
            opts.pool,
          ]);
    return r.rows.map(attestationFromRow);
  }

  /**
   * Deletes attestations expired more than ATTESTATION_KEPT_MS before `now`: with `tx`
   * inside the store's purge transaction, else as one autocommitted write.
   */
  async purge(now: number, tx?: Queryable): Promise<void> {
    const sql = 'DELETE FROM agent_attestations WHERE expires_at <= $1';
    const values = [now - ATTESTATION_KEPT_MS];
    await (tx ? tx.query(sql, values) : this.db.write(sql, values));
  }
}
