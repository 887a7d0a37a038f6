import type Database from 'better-sqlite3';
import type {
  IssuedCredentialFilter,
  IssuedCredentialRecord,
  IssuedCredentialStore,
  SecretVersionRecord,
  SecretVersionStore,
} from '../repositories/credentials.js';
import { issuedWhere } from '../issued-where.js';
import type { WriteBatcher } from './write-batcher.js';

/** Issued credentials on SQLite (`issued_credentials`). */
export class SqliteIssuedCredentials implements IssuedCredentialStore {
  private readonly insert;

  constructor(
    private readonly db: Database.Database,
    private readonly batcher: WriteBatcher,
  ) {
    this.insert = db.prepare(
      `INSERT INTO issued_credentials (id, credential, job_id, build, agent_id, pool, creator, token_jti_hash, issued_at, expires_at, record)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
  }

  record(r: IssuedCredentialRecord): Promise<void> {
    return this.batcher.write(() => {
      this.insert.run(r.id, r.credential, r.jobId, r.build, r.agentId, r.pool ?? null, r.creator ?? null, r.tokenJtiHash, r.issuedAt, r.expiresAt, JSON.stringify(r));
    });
  }

  async list(f: IssuedCredentialFilter): Promise<IssuedCredentialRecord[]> {
    const where = issuedWhere(f, () => '?');
    const sql = `SELECT record FROM issued_credentials${where.sql} ORDER BY issued_at`;
    return (this.db.prepare(sql).all(...where.values) as { record: string }[]).map((r) => JSON.parse(r.record) as IssuedCredentialRecord);
  }
}

/** Secret versions on SQLite (`secret_versions`). */
export class SqliteSecretVersions implements SecretVersionStore {
  private readonly s;

  constructor(
    db: Database.Database,
    private readonly batcher: WriteBatcher,
  ) {
    this.s = {
      list: db.prepare('SELECT * FROM secret_versions WHERE credential = ? ORDER BY version'),
      newest: db.prepare('SELECT max(version) AS v FROM secret_versions WHERE credential = ?'),
      insert: db.prepare(
        'INSERT INTO secret_versions (credential, version, sealed_value, created_at, retires_at, retired_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING',
      ),
      retireAt: db.prepare('UPDATE secret_versions SET retires_at = ? WHERE credential = ? AND version = ?'),
      markRetired: db.prepare('UPDATE secret_versions SET retired_at = ? WHERE credential = ? AND version = ?'),
    };
  }

  async list(credential: string): Promise<SecretVersionRecord[]> {
    return (this.s.list.all(credential) as Record<string, unknown>[]).map((r) => ({
      credential: r.credential as string,
      version: r.version as number,
      sealedValue: (r.sealed_value as string | null) ?? null,
      createdAt: r.created_at as number,
      ...(r.retires_at !== null ? { retiresAt: r.retires_at as number } : {}),
      ...(r.retired_at !== null ? { retiredAt: r.retired_at as number } : {}),
    }));
  }

  init(r: SecretVersionRecord): Promise<void> {
    return this.batcher.write(() => {
      if (this.newest(r.credential) === null) this.insertVersion(r);
    });
  }

  add(next: SecretVersionRecord, previousRetiresAt: number): Promise<boolean> {
    return this.batcher.write(() => {
      const newest = this.newest(next.credential);
      if (newest === null || newest !== next.version - 1) return false;
      this.insertVersion(next);
      this.s.retireAt.run(previousRetiresAt, next.credential, newest);
      return true;
    });
  }

  markRetired(credential: string, version: number, at: number): Promise<void> {
    return this.batcher.write(() => {
      this.s.markRetired.run(at, credential, version);
    });
  }

  private newest(credential: string): number | null {
    return (this.s.newest.get(credential) as { v: number | null }).v;
  }

  private insertVersion(r: SecretVersionRecord): void {
    this.s.insert.run(r.credential, r.version, r.sealedValue, r.createdAt, r.retiresAt ?? null, r.retiredAt ?? null);
  }
}
