import type Database from 'better-sqlite3';

/** Schema versions, applied in order and tracked in PRAGMA user_version. */
const MIGRATIONS: string[] = [
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
];

export function migrate(db: Database.Database): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw new Error(`the database is at schema version ${current}, newer than this Port (${MIGRATIONS.length}); upgrade Port`);
  }
  for (let v = current; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v]!);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
}
