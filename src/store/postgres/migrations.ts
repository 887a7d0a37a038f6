import type { PostgresMigration } from './migrate.js';

/**
 * The PostgreSQL store's schema, one migration per change, never edited once released
 * (src/store/postgres/migrate.ts applies them). Times are bigint milliseconds since the
 * epoch, as in the SQLite store.
 */
export const POSTGRES_MIGRATIONS: readonly PostgresMigration[] = [
  {
    version: 1,
    name: 'leases',
    sql: `CREATE TABLE leases (
            name text PRIMARY KEY,
            owner text NOT NULL,
            until bigint NOT NULL
          );`,
  },
  {
    version: 2,
    name: 'repositories',
    sql: `CREATE TABLE signing_keys (
            kid text PRIMARY KEY,
            alg text NOT NULL,
            public_jwk text NOT NULL,
            private_key text NOT NULL,
            created_at bigint NOT NULL,
            retires_at bigint NOT NULL,
            expires_at bigint NOT NULL
          );
          CREATE TABLE revocations (
            id text PRIMARY KEY,
            kind text NOT NULL CHECK (kind IN ('revocation', 'lift')),
            scope text NOT NULL,
            target text NOT NULL,
            origin text NOT NULL,
            revoked_at bigint NOT NULL,
            expires_at bigint NOT NULL,
            reason text NOT NULL,
            subject text
          );
          CREATE INDEX revocations_expires ON revocations (expires_at);
          CREATE INDEX revocations_target ON revocations (scope, target);
          CREATE TABLE replay_cache (
            key text PRIMARY KEY,
            expires_at bigint NOT NULL
          );
          CREATE INDEX replay_cache_expires ON replay_cache (expires_at);
          -- Decisions committed by any replica, not yet numbered: the sealer moves them to
          -- decisions in id order (src/store/postgres/decision-log.ts).
          CREATE TABLE decision_outbox (
            id bigserial PRIMARY KEY,
            record text NOT NULL,
            created_at bigint NOT NULL
          );
          CREATE TABLE decisions (
            seq bigint PRIMARY KEY,
            time text NOT NULL,
            action text NOT NULL,
            decision text NOT NULL,
            principal text,
            record text NOT NULL,
            prev_hash text NOT NULL,
            hash text NOT NULL,
            sealed_at bigint NOT NULL
          );
          CREATE TABLE checkpoints (
            num bigint PRIMARY KEY,
            seq bigint NOT NULL,
            hash text NOT NULL,
            time text NOT NULL,
            kid text NOT NULL,
            jws text NOT NULL,
            prev text
          );
          CREATE TABLE users (
            email text PRIMARY KEY,
            record text NOT NULL
          );
          CREATE TABLE sessions (
            id_hash text PRIMARY KEY,
            email text NOT NULL,
            expires_at bigint NOT NULL,
            record text NOT NULL
          );
          CREATE INDEX sessions_email ON sessions (email);
          CREATE INDEX sessions_expires ON sessions (expires_at);
          CREATE TABLE approval_requests (
            id text PRIMARY KEY,
            job_id text NOT NULL UNIQUE,
            status text NOT NULL,
            expires_at bigint NOT NULL,
            record text NOT NULL
          );
          CREATE INDEX approval_requests_status ON approval_requests (status, expires_at);
          CREATE TABLE scim_users (
            id text PRIMARY KEY,
            user_name_key text NOT NULL UNIQUE,
            external_id text,
            email text UNIQUE,
            created_at bigint NOT NULL,
            version bigint NOT NULL,
            record text NOT NULL
          );
          CREATE INDEX scim_users_external_id ON scim_users (external_id);
          CREATE TABLE scim_groups (
            id text PRIMARY KEY,
            display_name text NOT NULL,
            display_name_key text NOT NULL UNIQUE,
            external_id text,
            created_at bigint NOT NULL,
            version bigint NOT NULL,
            record text NOT NULL
          );
          CREATE INDEX scim_groups_external_id ON scim_groups (external_id);
          CREATE TABLE scim_members (
            group_id text NOT NULL REFERENCES scim_groups (id) ON DELETE CASCADE,
            user_id text NOT NULL REFERENCES scim_users (id) ON DELETE CASCADE,
            PRIMARY KEY (group_id, user_id)
          );
          CREATE INDEX scim_members_user ON scim_members (user_id);
          CREATE TABLE issued_credentials (
            id text PRIMARY KEY,
            credential text NOT NULL,
            job_id text NOT NULL,
            build text NOT NULL,
            agent_id text NOT NULL,
            pool text,
            creator text,
            token_jti_hash text NOT NULL,
            issued_at bigint NOT NULL,
            expires_at bigint NOT NULL,
            record text NOT NULL
          );
          CREATE INDEX issued_credentials_job ON issued_credentials (job_id);
          CREATE INDEX issued_credentials_build ON issued_credentials (build);
          CREATE INDEX issued_credentials_creator ON issued_credentials (creator);
          CREATE INDEX issued_credentials_expires ON issued_credentials (expires_at);
          CREATE TABLE secret_versions (
            credential text NOT NULL,
            version integer NOT NULL,
            sealed_value text,
            created_at bigint NOT NULL,
            retires_at bigint,
            retired_at bigint,
            PRIMARY KEY (credential, version)
          );
          CREATE TABLE relay_allow_pending (
            owner text NOT NULL,
            key text NOT NULL,
            updated_at bigint NOT NULL,
            record text NOT NULL,
            PRIMARY KEY (owner, key)
          );
          CREATE INDEX relay_allow_pending_updated ON relay_allow_pending (updated_at);
          CREATE TABLE webhook_work (
            key text PRIMARY KEY,
            event text NOT NULL,
            payload text NOT NULL,
            status text NOT NULL,
            attempts integer NOT NULL,
            next_attempt_at bigint NOT NULL,
            lease_owner text,
            lease_until bigint NOT NULL,
            last_error text,
            created_at bigint NOT NULL,
            updated_at bigint NOT NULL,
            expires_at bigint
          );
          CREATE INDEX webhook_work_due ON webhook_work (status, next_attempt_at);
          CREATE INDEX webhook_work_expires ON webhook_work (expires_at);
          CREATE TABLE write_probe (
            id integer PRIMARY KEY,
            at bigint NOT NULL
          );
          -- The change feed (src/store/postgres/change-feed.ts): one row per change other
          -- replicas' caches must hear of, numbered; NOTIFY wakes listeners, and a listener
          -- that reconnects reads what it missed by version.
          CREATE TABLE changes (
            version bigserial PRIMARY KEY,
            topic text NOT NULL,
            key text NOT NULL,
            at bigint NOT NULL
          );
          CREATE INDEX changes_at ON changes (at);`,
  },
  {
    version: 3,
    name: 'agent attestations',
    // One current record per agent (purged a while after it expires), and the first host
    // key each EC2 instance registered, kept (one small row per instance).
    sql: `CREATE TABLE agent_attestations (
            agent_id text PRIMARY KEY,
            pool text NOT NULL,
            job_id text NOT NULL,
            methods text NOT NULL,
            instance_id text,
            account text,
            region text,
            iam_role text,
            jkt text,
            attested_at bigint NOT NULL,
            expires_at bigint NOT NULL
          );
          CREATE INDEX agent_attestations_attested ON agent_attestations (attested_at);
          CREATE INDEX agent_attestations_expires ON agent_attestations (expires_at);
          CREATE TABLE instance_keys (
            instance_id text PRIMARY KEY,
            jkt text NOT NULL,
            bound_at bigint NOT NULL
          );`,
  },
];
