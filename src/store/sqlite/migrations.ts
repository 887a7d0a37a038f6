import type Database from 'better-sqlite3';
import { StoreTooNewError } from '../errors.js';
import { parseLegacyKey } from './legacy-revocation-keys.js';

/** Schema versions, applied in order and tracked in PRAGMA user_version: DDL, or a function for data moves. */
const MIGRATIONS: (string | ((db: Database.Database) => void))[] = [
  `CREATE TABLE signing_keys (
     kid TEXT PRIMARY KEY,
     alg TEXT NOT NULL,
     public_jwk TEXT NOT NULL,
     private_key TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     retires_at INTEGER NOT NULL,
     expires_at INTEGER NOT NULL
   );
   CREATE TABLE revocations (
     jti TEXT PRIMARY KEY,
     expires_at INTEGER NOT NULL,
     revoked_at INTEGER NOT NULL,
     subject TEXT,
     reason TEXT NOT NULL
   );
   CREATE INDEX revocations_expires ON revocations(expires_at);
   CREATE TABLE replay_cache (
     key TEXT PRIMARY KEY,
     expires_at INTEGER NOT NULL
   );
   CREATE INDEX replay_cache_expires ON replay_cache(expires_at);
   CREATE TABLE decisions (
     seq INTEGER PRIMARY KEY,
     time TEXT NOT NULL,
     action TEXT NOT NULL,
     decision TEXT NOT NULL,
     principal TEXT,
     record TEXT NOT NULL,
     prev_hash TEXT NOT NULL,
     hash TEXT NOT NULL
   );
   CREATE TABLE checkpoints (
     seq INTEGER PRIMARY KEY,
     hash TEXT NOT NULL,
     time TEXT NOT NULL,
     kid TEXT NOT NULL,
     jws TEXT NOT NULL
   );`,
  `CREATE TABLE users (
     email TEXT PRIMARY KEY,
     record TEXT NOT NULL
   );
   CREATE TABLE approval_requests (
     id TEXT PRIMARY KEY,
     job_id TEXT NOT NULL UNIQUE,
     status TEXT NOT NULL,
     expires_at INTEGER NOT NULL,
     record TEXT NOT NULL
   );
   CREATE INDEX approval_requests_status ON approval_requests(status, expires_at);
   CREATE TABLE sessions (
     id_hash TEXT PRIMARY KEY,
     email TEXT NOT NULL,
     expires_at INTEGER NOT NULL,
     record TEXT NOT NULL
   );
   CREATE INDEX sessions_email ON sessions(email);`,
  // 3: SCIM users and groups (src/scim, src/store/sqlite/scim-tables.ts).
  `CREATE TABLE scim_users (
     id TEXT PRIMARY KEY,
     user_name_key TEXT NOT NULL UNIQUE,
     external_id TEXT,
     email TEXT UNIQUE,
     created_at INTEGER NOT NULL,
     version INTEGER NOT NULL,
     record TEXT NOT NULL
   );
   CREATE INDEX scim_users_external_id ON scim_users(external_id);
   CREATE TABLE scim_groups (
     id TEXT PRIMARY KEY,
     display_name TEXT NOT NULL,
     display_name_key TEXT NOT NULL UNIQUE,
     external_id TEXT,
     created_at INTEGER NOT NULL,
     version INTEGER NOT NULL,
     record TEXT NOT NULL
   );
   CREATE INDEX scim_groups_external_id ON scim_groups(external_id);
   CREATE TABLE scim_members (
     group_id TEXT NOT NULL REFERENCES scim_groups(id) ON DELETE CASCADE,
     user_id TEXT NOT NULL REFERENCES scim_users(id) ON DELETE CASCADE,
     PRIMARY KEY (group_id, user_id)
   );
   CREATE INDEX scim_members_user ON scim_members(user_id);`,
  // 4: brokered credentials: issued credentials (and secret versions) (src/broker/credentials).
  `CREATE TABLE issued_credentials (
     id TEXT PRIMARY KEY,
     credential TEXT NOT NULL,
     job_id TEXT NOT NULL,
     build TEXT NOT NULL,
     agent_id TEXT NOT NULL,
     pool TEXT,
     creator TEXT,
     token_jti_hash TEXT NOT NULL,
     issued_at INTEGER NOT NULL,
     expires_at INTEGER NOT NULL,
     record TEXT NOT NULL
   );
   CREATE INDEX issued_credentials_job ON issued_credentials(job_id);
   CREATE INDEX issued_credentials_build ON issued_credentials(build);
   CREATE INDEX issued_credentials_creator ON issued_credentials(creator);
   CREATE INDEX issued_credentials_expires ON issued_credentials(expires_at);
   CREATE TABLE secret_versions (
     credential TEXT NOT NULL,
     version INTEGER NOT NULL,
     sealed_value TEXT,
     created_at INTEGER NOT NULL,
     retires_at INTEGER,
     retired_at INTEGER,
     PRIMARY KEY (credential, version)
   );`,
  // Store health: one row a readiness probe rewrites to prove the file takes writes.
  // Relay allow counts (src/relay/allow-log.ts): each process's running counts, saved
  // every second so a crash loses at most that much; rows of a dead process are recovered.
  `CREATE TABLE write_probe (
     id INTEGER PRIMARY KEY,
     at INTEGER NOT NULL
   );
   CREATE TABLE relay_allow_pending (
     owner TEXT NOT NULL,
     key TEXT NOT NULL,
     updated_at INTEGER NOT NULL,
     record TEXT NOT NULL,
     PRIMARY KEY (owner, key)
   );
   CREATE INDEX relay_allow_pending_updated ON relay_allow_pending(updated_at);`,
  // Audit checkpoints as a chain of their own (src/audit/checkpoint-jws.ts): numbered
  // apart from the entry they cover (heartbeats repeat a seq) and linked by `prev`.
  // Existing (legacy) checkpoints keep their order as numbers 1…n with no link.
  `CREATE TABLE checkpoints_chained (
     num INTEGER PRIMARY KEY,
     seq INTEGER NOT NULL,
     hash TEXT NOT NULL,
     time TEXT NOT NULL,
     kid TEXT NOT NULL,
     jws TEXT NOT NULL,
     prev TEXT
   );
   INSERT INTO checkpoints_chained (num, seq, hash, time, kid, jws, prev)
     SELECT row_number() OVER (ORDER BY seq), seq, hash, time, kid, jws, NULL FROM checkpoints;
   DROP TABLE checkpoints;
   ALTER TABLE checkpoints_chained RENAME TO checkpoints;`,
  // Webhook work (src/webhooks, src/store/sqlite/webhook-work-table.ts): each delivery Port
  // acts on, pending (leased while worked, retried with backoff) until done; a done row is
  // the delivery's dedupe key until it expires.
  `CREATE TABLE webhook_work (
     key TEXT PRIMARY KEY,
     event TEXT NOT NULL,
     payload TEXT NOT NULL,
     status TEXT NOT NULL,
     attempts INTEGER NOT NULL,
     next_attempt_at INTEGER NOT NULL,
     lease_owner TEXT,
     lease_until INTEGER NOT NULL,
     last_error TEXT,
     created_at INTEGER NOT NULL,
     updated_at INTEGER NOT NULL,
     expires_at INTEGER
   );
   CREATE INDEX webhook_work_due ON webhook_work(status, next_attempt_at);
   CREATE INDEX webhook_work_expires ON webhook_work(expires_at);`,
  // Leases for background work that must run on one Port at a time (src/store/leases.ts).
  `CREATE TABLE leases (
     name TEXT PRIMARY KEY,
     owner TEXT NOT NULL,
     until INTEGER NOT NULL
   );`,
  // 10: revocations get real columns for what was packed into their key (kind, scope,
  // target, origin); the key stays the row's id (legacy-revocation-keys.ts reads it).
  (db) => {
    db.exec(`CREATE TABLE revocations_v2 (
       id TEXT PRIMARY KEY,
       kind TEXT NOT NULL CHECK (kind IN ('revocation', 'lift')),
       scope TEXT NOT NULL,
       target TEXT NOT NULL,
       origin TEXT NOT NULL,
       revoked_at INTEGER NOT NULL,
       expires_at INTEGER NOT NULL,
       reason TEXT NOT NULL,
       subject TEXT
     )`);
    const insert = db.prepare('INSERT INTO revocations_v2 (id, kind, scope, target, origin, revoked_at, expires_at, reason, subject) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)');
    for (const r of db.prepare('SELECT * FROM revocations').all() as { jti: string; expires_at: number; revoked_at: number; subject: string | null; reason: string }[]) {
      const k = parseLegacyKey(r.jti);
      insert.run(r.jti, k.kind, k.scope, k.target, k.origin, r.revoked_at, r.expires_at, r.reason, r.subject);
    }
    db.exec(`DROP TABLE revocations;
       ALTER TABLE revocations_v2 RENAME TO revocations;
       CREATE INDEX revocations_expires ON revocations(expires_at);
       CREATE INDEX revocations_target ON revocations(scope, target);`);
  },
  // 11: agent attestations (src/store/sqlite/agent-attestation-table.ts): one current record
  // per agent, purged a while after it expires; and the first host key each EC2 instance
  // registered, kept (one small row per instance).
  `CREATE TABLE agent_attestations (
     agent_id TEXT PRIMARY KEY,
     pool TEXT NOT NULL,
     job_id TEXT NOT NULL,
     methods TEXT NOT NULL,
     instance_id TEXT,
     account TEXT,
     region TEXT,
     iam_role TEXT,
     jkt TEXT,
     attested_at INTEGER NOT NULL,
     expires_at INTEGER NOT NULL
   );
   CREATE INDEX agent_attestations_attested ON agent_attestations(attested_at);
   CREATE INDEX agent_attestations_expires ON agent_attestations(expires_at);
   CREATE TABLE instance_keys (
     instance_id TEXT PRIMARY KEY,
     jkt TEXT NOT NULL,
     bound_at INTEGER NOT NULL
   );`,
  // The change feed (src/store/sqlite/change-feed.ts): one row per change the caches of
  // other processes on this file must hear of (server.workers), numbered in commit order.
  // AUTOINCREMENT, so a number is never taken twice, even after the rows are purged.
  `CREATE TABLE changes (
     version INTEGER PRIMARY KEY AUTOINCREMENT,
     topic TEXT NOT NULL,
     key TEXT NOT NULL,
     at INTEGER NOT NULL
   );
   CREATE INDEX changes_at ON changes(at);`,
];

/**
 * Brings the schema up to date, one step per transaction. Several processes may open one
 * file at once (`server.workers`, two `port serve`): each step re-reads the version inside
 * an IMMEDIATE transaction (the write lock, waited for under busy_timeout), so a step
 * another process applied meanwhile is not applied twice.
 */
export function migrate(db: Database.Database): void {
  const version = () => {
    const current = db.pragma('user_version', { simple: true }) as number;
    if (current > MIGRATIONS.length) {
      throw new StoreTooNewError(`the database is at schema version ${current}, newer than this Port (${MIGRATIONS.length}); upgrade Port`);
    }
    return current;
  };
  // Up to date (every start but the first after an upgrade): no write lock taken.
  if (version() === MIGRATIONS.length) return;
  const step = db.transaction((): boolean => {
    const v = version();
    if (v === MIGRATIONS.length) return false;
    const migration = MIGRATIONS[v]!;
    if (typeof migration === 'string') db.exec(migration);
    else migration(db);
    db.pragma(`user_version = ${v + 1}`);
    return true;
  });
  while (step.immediate());
}
