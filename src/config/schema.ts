import { z } from 'zod';
import { parseDuration } from './duration.js';
import { parseSize } from './size.js';
import { SECRET_REF_PATTERN } from './secret-ref.js';

/**
 * The shape of `port.yaml` (DESIGN "Configuration"). Every object is strict so a
 * misspelt key fails at start instead of being silently ignored.
 */

const duration = (max?: number) =>
  z.union([z.string(), z.number()]).transform((value, ctx) => {
    const seconds = parseDuration(value);
    if (seconds === undefined) {
      ctx.addIssue({ code: 'custom', message: `"${value}" is not a duration; write e.g. 90s, 15m, 12h or 30d` });
      return z.NEVER;
    }
    if (max !== undefined && seconds > max) {
      ctx.addIssue({ code: 'custom', message: `${value} is longer than the allowed maximum of ${max}s` });
      return z.NEVER;
    }
    return seconds;
  });

const listen = z.string().regex(/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'must be HOST:PORT, e.g. 127.0.0.1:8080');

const httpUrl = z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' });

const secretRef = z.string().regex(SECRET_REF_PATTERN, 'must be a secret reference: env:NAME or file:PATH');

export const ASYMMETRIC_JWS_ALGS = ['RS256', 'RS384', 'RS512', 'PS256', 'ES256', 'ES384', 'EdDSA'] as const;

const serverSchema = z.strictObject({
  listen: listen.default('127.0.0.1:8080'),
  /** Port's issuer URL: `iss` of its tokens and the base of its discovery document. */
  public_url: httpUrl.transform((u) => u.replace(/\/+$/, '')),
  /** Largest request body Port reads on its own endpoints (bytes). */
  body_limit: z.number().int().min(1024).max(1024 * 1024).default(64 * 1024),
  log_level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Bearer token for the admin API (/v1/admin/…: revocations); the API is off without it. */
  admin_token: secretRef.optional(),
  /**
   * Per remote address, how many tokens that don't verify Port answers before it answers
   * 429 instead (a token bucket); verified callers are never throttled by it.
   */
  refusal_rate_limit: z
    .strictObject({
      /** Refusals an address may have at once. */
      burst: z.number().int().min(1).max(100_000).default(30),
      /** Refusals per minute an address earns back. */
      per_minute: z.number().int().min(1).max(1_000_000).default(30),
      /** Most addresses tracked at once (least recently refused forgotten first). */
      max_sources: z.number().int().min(1).max(1_000_000).default(10_000),
    })
    .default({ burst: 30, per_minute: 30, max_sources: 10_000 }),
});

const storeSchema = z.strictObject({
  sqlite: z.string().min(1).default('./port.db'),
  /**
   * A PostgreSQL connection URL, by reference (env:PORT_DATABASE_URL): when set, Port uses
   * PostgreSQL instead of SQLite, and several replicas may share it. TLS goes in the URL
   * (`sslmode=verify-full&sslrootcert=/etc/port/db-ca.pem`).
   */
  postgres: secretRef.optional(),
  /** Connections each Port process keeps open at most. */
  postgres_pool_size: z.number().int().min(2).max(1000).default(10),
  /**
   * How long a replica goes on deciding with caches it can't confirm are current (the
   * change feed down or behind) before it refuses what depends on them (fail closed).
   */
  feed_max_lag: duration(60).default(5),
  /**
   * The leader lease's lifetime: one Port process (the leader) runs the background work
   * that must run once (sealing and signing the log, key rotation, expiry sweeps, secret
   * rotation); when it dies another takes over within about this long.
   */
  lease_ttl: duration(600).default(15),
});

const buildkiteSchema = z.strictObject({
  organization: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'must be the organization slug, e.g. acme'),
  organization_id: z.uuid().optional(),
  issuer: httpUrl.default('https://agent.buildkite.com'),
  jwks_url: httpUrl.optional(),
  /** The exact `aud` Port accepts; jobs request tokens with `--audience` set to it. */
  audience: z.string().min(1).optional(),
  /** Accepted signing algorithms for Buildkite tokens (buildkite.md §1.3: RS256 in practice). */
  algorithms: z.array(z.enum(ASYMMETRIC_JWS_ALGS)).min(1).default(['RS256']),
  /** Leeway on exp/nbf/iat; capped at 60 s. */
  clock_skew: duration(60).default(30),
  /** Tokens longer than this are refused before any parsing (security-notes §4.1 #17). */
  max_token_bytes: z.number().int().min(512).max(65536).default(8192),
  /** How often the JWKS is refreshed while keys are known. */
  jwks_refresh_interval: duration().default(600),
  /** Minimum time between refreshes triggered by an unknown `kid` (rate limit). */
  jwks_min_refresh_interval: duration().default(30),
  /** How long a cached JWKS is still used while the endpoint is down; then fail closed. */
  jwks_max_age: duration().default(86400),
  /** Total deadline for one JWKS fetch (connect, headers and body together; issue #9). */
  jwks_fetch_timeout: duration(300)
    .refine((s) => s >= 1, 'must be at least 1s')
    .default(10),
  /** How long a request with a `kid` Port hasn't cached waits for a JWKS fetch; 0 never waits. */
  jwks_request_wait: duration(60).default(2),
  /** Buildkite REST API base (buildkite.md §4.1); the simulator's URL in tests and the demo. */
  api_url: httpUrl.default('https://api.buildkite.com'),
  /** REST API token (`read_builds`, `write_builds`, `read_agents`). */
  api_token: secretRef.optional(),
  /** Webhook verification: HMAC key for `X-Buildkite-Signature`… */
  webhook_secret: secretRef.optional(),
  /** …or the token Buildkite sends as `X-Buildkite-Token` (buildkite.md §3). */
  webhook_token: secretRef.optional(),
});

const issuerSchema = z.strictObject({
  token_ttl: duration(86400).default(900),
  algorithm: z.enum(['ES256', 'EdDSA']).default('ES256'),
  /** A new signing key is made this often. */
  key_rotation: duration().default(30 * 86400),
  /** Audiences a Port token may be issued for; the default is the public URL. */
  audiences: z.array(z.string().min(1)).min(1).optional(),
  /** Bearer secret for resource servers calling /oauth/introspect on any token. */
  introspection_token: secretRef.optional(),
  /** Seals Port's private signing keys in the store (AES-256-GCM); strongly recommended. */
  key_encryption_key: secretRef.optional(),
});

/** SSO sign-in for approvers: OIDC authorization code with PKCE (DESIGN capability 5). */
const ssoSchema = z.strictObject({
  /** The IdP's issuer URL (its discovery document is fetched from it). */
  issuer: httpUrl,
  client_id: z.string().min(1),
  client_secret: secretRef,
  /** The ID token claim that lists the person's groups. */
  groups_claim: z.string().min(1).default('groups'),
  scopes: z.array(z.string().regex(/^[!-~]+$/)).default(['openid', 'email', 'profile']),
  /** How long a sign-in lasts. */
  session_ttl: duration(7 * 86400).default(8 * 3600),
  /**
   * Sign-in needs `email_verified: true` from the IdP. `false` accepts an absent claim
   * (Microsoft Entra ID never sends it); an explicit `false` is refused either way.
   */
  require_email_verified: z
    .custom<boolean>((v) => typeof v === 'boolean', { error: 'must be true or false (false only for an IdP that never sends email_verified, e.g. Entra ID)' })
    .default(true),
});

const approvalsSchema = z.strictObject({
  /** An approval request not decided within this time expires. */
  expire_after: duration(30 * 86400).default(86400),
  /** On expiry: `fail` the block step (Port records it and never unblocks) or `leave` it for Buildkite's own UI. */
  on_expiry: z.enum(['fail', 'leave']).default('leave'),
  /** IANA time zone for the `hour` and `weekday` an `unblock` policy sees. */
  timezone: z.string().min(1).default('UTC'),
  /**
   * A build Buildkite names no creator for (webhook-triggered; its git author is
   * self-reported): `extra_approval` asks one approval more than the policies,
   * `deny` opens no request, `allow` asks what the policies ask.
   */
  no_creator: z.enum(['extra_approval', 'deny', 'allow']).default('extra_approval'),
  /** Where Port says a request opened or closed; the URLs are secrets, so references. */
  notify: z
    .strictObject({
      /** A Slack (or Slack-compatible) incoming-webhook URL. */
      slack_webhook: secretRef.optional(),
      /** A URL that receives the generic JSON body (`approval.opened` / `approval.closed`). */
      webhook: secretRef.optional(),
    })
    .optional(),
});

/**
 * One `audit.checkpoint_sinks` entry: each signed checkpoint is appended to a file (one
 * JSON line, fsynced) or POSTed to a URL with optional headers whose values are secrets.
 */
const checkpointSinkSchema = z.union([
  z.strictObject({ file: z.string().min(1) }),
  z.strictObject({
    url: httpUrl,
    /** Header name (an RFC 9110 §5.6.2 token) → secret reference for its value. */
    headers: z.record(z.string().regex(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/, 'must be an HTTP header name'), secretRef).optional(),
  }),
]);

const auditSchema = z.strictObject({
  /** Where each signed checkpoint is shipped as it is made (external anchors for `port audit verify --anchor`). */
  checkpoint_sinks: z.array(checkpointSinkSchema).default([]),
  /** A signed checkpoint is written after this many entries… */
  checkpoint_every: z.number().int().min(1).default(1000),
  /** …or this long after the last one, whichever comes first. */
  checkpoint_interval: duration().default(300),
  /** Unauthenticated refusals beyond the first of each kind are logged as one count per kind, action and source per window this long. */
  refusal_window: duration(3600).default(60),
});

const size = (max?: number) =>
  z.union([z.string(), z.number()]).transform((value, ctx) => {
    const bytes = parseSize(value);
    if (bytes === undefined) {
      ctx.addIssue({ code: 'custom', message: `"${value}" is not a size; write e.g. 512KiB, 64MiB or 1GiB` });
      return z.NEVER;
    }
    if (max !== undefined && bytes > max) {
      ctx.addIssue({ code: 'custom', message: `${value} is larger than the allowed maximum of ${max} bytes` });
      return z.NEVER;
    }
    return bytes;
  });

/** How Port authenticates itself to an upstream; the caller's credentials never pass. */
const injectSchema = z.union([
  z.strictObject({ bearer: secretRef }),
  z.strictObject({ basic: z.strictObject({ username: z.string().min(1), password: secretRef }) }),
  z.strictObject({
    header: z.strictObject({
      name: z.string().regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, 'must be an HTTP header name (RFC 9110 §5.1)'),
      value: secretRef,
    }),
  }),
  z.strictObject({
    aws_sigv4: z.strictObject({
      service: z.string().regex(/^[a-z0-9-]+$/),
      region: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d+$/, 'must be an AWS region, e.g. us-east-1'),
      credential: z.string().min(1),
      /** Caller `x-amz-*` headers forwarded (and signed): exact names or a `-*` family; all others are dropped. */
      forward_headers: z
        .array(
          z
            .string()
            .regex(/^x-amz-[a-z0-9]+(-[a-z0-9]+)*(-\*)?$/i, 'must be an x-amz-* header name (x-amz-server-side-encryption) or a family ending in -* (x-amz-meta-*)')
            .transform((h) => h.toLowerCase()),
        )
        .default([]),
      /** `service: s3` only: guarded S3 sub-resources (`?acl`, `?policy`…) let through to policy (src/relay/aws-sigv4-query.ts). */
      allow_subresources: z.array(z.string().min(1)).default([]),
    }),
  }),
]);

const upstreamSchema = z.strictObject({
  /** Base URL; `/relay/<name>/<path>` goes to `<url>/<path>`. */
  url: httpUrl.transform((u) => u.replace(/\/+$/, '')),
  /** Time to wait for the upstream's response headers (504 after). */
  timeout: duration(3600).default(30),
  /** Time to wait for a TCP connection to the upstream (504 after). */
  connect_timeout: duration(300).default(10),
  /** Largest request body forwarded (413 beyond). */
  max_body: size().default(1024 ** 3),
  /**
   * `reject` (default): a path with `%2F` is refused. `keep`: `%2F` is kept encoded and
   * never treated as a separator (npm registries: scoped names are `@scope%2Fname`).
   */
  encoded_slashes: z.enum(['reject', 'keep']).default('reject'),
  /** Allow `Upgrade` requests (e.g. WebSocket) on this route. */
  allow_upgrade: z.boolean().default(false),
  /** Keep-alive connections kept open to the upstream. */
  connections: z.number().int().min(1).max(1024).default(64),
  inject: injectSchema.optional(),
});

const relaySchema = z.strictObject({
  /** Also accept a Buildkite OIDC token (with Port's audience) directly as the caller's credential. */
  accept_buildkite_tokens: z.boolean().default(false),
  /** How long an allow/deny for (token, upstream, method, path) is reused; 0 disables. */
  decision_cache_ttl: duration(60).default(5),
  /** Allowed requests are logged as one entry per (job, upstream, method, policies) per window. */
  allow_log_window: duration(3600).default(60),
  /** Largest request head (request line + headers) accepted, in bytes (431 beyond). */
  max_header_bytes: size(1024 * 1024).default(16 * 1024),
  /** A client must send its full request head within this time (slowloris; 408). */
  client_header_timeout: duration(300).default(10),
  /** A connection idle this long (no bytes either way) is closed. */
  client_idle_timeout: duration(3600).default(60),
});

/** A secret's value: env:NAME, file:PATH, or command:CMD (its stdout, run with a timeout). */
const secretValueRef = z
  .string()
  .regex(/^(env:[A-Za-z_][A-Za-z0-9_]*|file:.+|command:\s*\S.*)$/s, 'must be env:NAME, file:PATH or command:CMD');

const portTokenCredentialSchema = z.strictObject({
  type: z.literal('port_token'),
  description: z.string().optional(),
  /** `aud` of the minted JWT: the downstream service that trusts Port's JWKS. */
  audience: z.string().min(1),
  /** Lifetime; never beyond the bearer's own Port token. */
  ttl: duration(86400).default(900),
});

/**
 * Names of Port's environment variables a command may see besides PATH, HOME, LANG,
 * LC_ALL, TZ and TMPDIR (src/broker/credentials/run-command.ts); Port sets PORT_CREDENTIAL.
 */
const commandEnv = z
  .array(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name'))
  .max(64)
  .refine((names) => !names.includes('PORT_CREDENTIAL'), 'must not list PORT_CREDENTIAL: Port sets it to the credential\'s name')
  .default([]);

const rotationHookSchema = z.union([
  /** Run with the rotation request as JSON on stdin; prints the new value on stdout. */
  z.strictObject({ command: z.string().min(1), command_env: commandEnv }),
  /** POSTed the rotation request, HMAC-signed with `signing_secret`; answers `{"value": "..."}`. */
  z.strictObject({ url: httpUrl, signing_secret: secretRef }),
]);

const secretCredentialSchema = z.strictObject({
  type: z.literal('secret'),
  description: z.string().optional(),
  /** Where the value comes from (until the first rotation). */
  value: secretValueRef,
  /** How long a `command:` may run. */
  command_timeout: duration(300).default(10),
  /** Environment variables of Port's a `command:` may see (only with a command: value). */
  command_env: commandEnv,
  /** At most this many runs of the `command:` at once; more releases wait briefly, then 503. */
  command_concurrency: z.number().int().min(1).max(64).default(4),
  /** Serve the `command:`'s last output this long (held in memory only); 0: run it on each release. */
  cache_for: duration(3600).default(0),
  rotation: z
    .strictObject({
      /** Rotate on this schedule; without it only `port rotate <name>` rotates. */
      every: duration().optional(),
      /** After a rotation the previous value stays valid (and is still reported) this long. */
      overlap: duration().default(3600),
      /** How long the hook may take. */
      timeout: duration(600).default(30),
      hook: rotationHookSchema,
    })
    .optional(),
});

const awsRoleCredentialSchema = z.strictObject({
  type: z.literal('aws_role'),
  description: z.string().optional(),
  role_arn: z.string().regex(/^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]{1,512}$/, 'must be an IAM role ARN, e.g. arn:aws:iam::123456789012:role/deploy'),
  /**
   * `web_identity` (default): AssumeRoleWithWebIdentity with a token Port mints as an
   * OIDC issuer, so Port holds no AWS keys. `assume_role`: AssumeRole with Port's own
   * AWS credentials.
   */
  mode: z.enum(['web_identity', 'assume_role']).default('web_identity'),
  region: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d+$/, 'must be an AWS region, e.g. us-east-1').default('us-east-1'),
  /** STS endpoint; the regional AWS endpoint when unset. */
  sts_endpoint: httpUrl.optional(),
  /** Session duration, capped by the role's own maximum (AWS: 15 min to 12 h). */
  duration: duration(43200).default(3600),
  /** Session tag name → job claim (Port token claim name, e.g. pipeline_slug). */
  session_tags: z.record(z.string().regex(/^[\p{L}\p{Z}\p{N}_.:/=+\-@]{1,128}$/u, 'must be an AWS tag key'), z.string().min(1)).default({}),
  /** Tag keys that pass on to chained role sessions. */
  transitive_tag_keys: z.array(z.string().min(1)).default([]),
  /** A session policy (JSON) template file narrowing the role per job; `${claim}` placeholders. */
  session_policy: z.string().min(1).optional(),
  /** `aud` of the web identity token (the IAM OIDC provider's client id). */
  web_identity_audience: z.string().min(1).default('sts.amazonaws.com'),
  /** At most this many STS calls in flight at once for this credential; more: 503 busy. */
  sts_concurrency: z.number().int().min(1).max(256).default(8),
  /** Port's own AWS keys for `assume_role`; without them, the AWS SDK's default chain. */
  access_key_id: secretRef.optional(),
  secret_access_key: secretRef.optional(),
});

const credentialSchema = z.discriminatedUnion('type', [portTokenCredentialSchema, secretCredentialSchema, awsRoleCredentialSchema]);

/** SCIM 2.0 provisioning (RFC 7644) at /scim/v2; enabled by the bearer token the IdP presents. */
const scimSchema = z.strictObject({
  token: secretRef,
});

export const configSchema = z.strictObject({
  server: serverSchema,
  store: storeSchema.default({ sqlite: './port.db', postgres_pool_size: 10, feed_max_lag: 5, lease_ttl: 15 }),
  buildkite: buildkiteSchema,
  policies: z.string().min(1).default('./policies'),
  issuer: issuerSchema.default({ token_ttl: 900, algorithm: 'ES256', key_rotation: 30 * 86400 }),
  audit: auditSchema.default({ checkpoint_sinks: [], checkpoint_every: 1000, checkpoint_interval: 300, refusal_window: 60 }),
  sso: ssoSchema.optional(),
  scim: scimSchema.optional(),
  approvals: approvalsSchema.default({ expire_after: 86400, on_expiry: 'leave', timezone: 'UTC', no_creator: 'extra_approval' }),
  relay: relaySchema.default({
    accept_buildkite_tokens: false,
    decision_cache_ttl: 5,
    allow_log_window: 60,
    max_header_bytes: 16 * 1024,
    client_header_timeout: 10,
    client_idle_timeout: 60,
  }),
  /** Services reachable through the relay at /relay/<name>/…; names are Cedar Upstream ids. */
  upstreams: z.record(z.string().regex(/^[a-z0-9][a-z0-9_-]*$/, 'upstream names are lower-case letters, digits, - and _'), upstreamSchema).default({}),
  /** Grant names a job may request as `scope`; each is decided with `assume`. */
  credentials: z.record(z.string().regex(/^[a-z0-9][a-z0-9_-]*$/, 'credential names are lower-case letters, digits, - and _'), credentialSchema).default({}),
});

export type RawConfig = z.input<typeof configSchema>;
export type ParsedConfig = z.output<typeof configSchema>;
