import { z } from 'zod';
import { formatDuration, parseDuration } from './duration.js';
import { formatSize, parseSize } from './size.js';
import { SECRET_REF_PATTERN } from './secret-ref.js';

/**
 * The shape of `port.yaml`. Every object is strict so a misspelt key fails at start
 * instead of being silently ignored.
 *
 * Each key carries `.meta({ description, examples })`: the configuration reference
 * (docs/reference/configuration.md), the JSON Schema (`port config schema`) and the
 * error messages are all generated from it, so they cannot drift from what is parsed.
 */

/** What the error messages, the JSON Schema and the reference need beyond zod's own types. */
export interface ValueHint {
  /** A value written in a unit Port converts: durations and sizes, or a secret reference. */
  kind?: 'duration' | 'size' | 'secret' | 'secret_value' | 'http_url';
  /** The phrase after "expected" in an error message, e.g. "a string HOST:PORT". */
  expects?: string;
  /** Duration/size bounds (seconds/bytes) checked by the transform. */
  min?: number;
  max?: number;
}

/**
 * Hints keyed by a schema's definition, which `.meta()` clones share (zod's own metadata
 * is reserved for what the JSON Schema shows).
 */
const hints = new WeakMap<object, ValueHint>();

const hint = <T extends z.ZodType>(schema: T, h: ValueHint): T => {
  hints.set(schema._zod.def, h);
  return schema;
};

/** The hint given to this schema (or to one it was cloned from by `.meta()`). */
export function valueHint(schema: z.ZodType): ValueHint | undefined {
  return hints.get(schema._zod.def);
}

export const DURATION_PATTERN = '^\\s*\\d+\\s*[smhd]?\\s*$';
export const SIZE_PATTERN = '^\\s*\\d+\\s*(B|KiB|MiB|GiB|KB|MB|GB)?\\s*$';

/** A duration written `90s`, `15m`, `12h`, `30d` or a number of seconds; parsed to seconds. */
const duration = (max?: number, min?: number) =>
  hint(
    z.union([z.string(), z.number()]).transform((value, ctx) => {
      const seconds = parseDuration(value);
      if (seconds === undefined) {
        ctx.addIssue({ code: 'custom', message: 'expected a duration such as 90s, 15m, 12h or 30d (or a whole number of seconds)' });
        return z.NEVER;
      }
      if (max !== undefined && seconds > max) {
        ctx.addIssue({ code: 'custom', message: `found ${shown(value)}, longer than the allowed maximum; expected at most ${formatDuration(max)}` });
        return z.NEVER;
      }
      if (min !== undefined && seconds < min) {
        ctx.addIssue({ code: 'custom', message: `found ${shown(value)}, shorter than the allowed minimum; expected at least ${formatDuration(min)}` });
        return z.NEVER;
      }
      return seconds;
    }),
    { kind: 'duration', ...(max !== undefined ? { max } : {}), ...(min !== undefined ? { min } : {}) },
  );

/** A size written `512KiB`, `64MiB`, `1GiB` or a number of bytes; parsed to bytes. */
const size = (max?: number) =>
  hint(
    z.union([z.string(), z.number()]).transform((value, ctx) => {
      const bytes = parseSize(value);
      if (bytes === undefined) {
        ctx.addIssue({ code: 'custom', message: 'expected a size such as 512KiB, 64MiB or 1GiB (or a whole number of bytes)' });
        return z.NEVER;
      }
      if (max !== undefined && bytes > max) {
        ctx.addIssue({ code: 'custom', message: `found ${shown(value)}, larger than the allowed maximum; expected at most ${formatSize(max)}` });
        return z.NEVER;
      }
      return bytes;
    }),
    { kind: 'size', ...(max !== undefined ? { max } : {}) },
  );

function shown(value: string | number): string {
  return typeof value === 'number' ? String(value) : value.trim();
}

const listen = hint(z.string().regex(/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/), { expects: 'a string HOST:PORT' });

const httpUrl = hint(z.url({ protocol: /^https?$/ }), { kind: 'http_url', expects: 'an http:// or https:// URL' });

/** A secret is never written inline in port.yaml: it names where Port reads it. */
const secretRef = hint(z.string().regex(SECRET_REF_PATTERN), { kind: 'secret', expects: 'a secret reference env:NAME or file:PATH (never the secret itself)' });

const slug = () => hint(z.string().regex(/^[a-z0-9][a-z0-9_-]*$/), { expects: 'a name of lower-case letters, digits, - and _ (starting with a letter or digit)' });

const awsRegion = hint(z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d+$/), { expects: 'an AWS region' });

const envName = hint(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/), { expects: 'an environment variable name' });

const nonEmpty = hint(z.string().min(1), { expects: 'a non-empty string' });

/** The longest clock skew Port allows anywhere (`buildkite.clock_skew` at most); key overlaps and new keys allow for it too. */
export const MAX_CLOCK_SKEW_SECONDS = 60;

export const ASYMMETRIC_JWS_ALGS = ['RS256', 'RS384', 'RS512', 'PS256', 'ES256', 'ES384', 'EdDSA'] as const;

const serverSchema = z.strictObject({
  listen: listen.default('127.0.0.1:8080').meta({
    description: 'Address and TCP port Port listens on for HTTP. Use `0.0.0.0:8080` or `[::]:8080` to listen on every interface (put TLS in front of it); port 0 picks any free port.',
    examples: ['127.0.0.1:8080', '0.0.0.0:8080'],
  }),
  public_url: httpUrl.transform((u) => u.replace(/\/+$/, '')).meta({
    description:
      "Port's own external URL: the `iss` of the tokens it issues, the base of its OpenID discovery document (`/.well-known/openid-configuration`) and of its JWKS, and the default audience jobs request Buildkite OIDC tokens for.",
    examples: ['https://port.example.com'],
  }),
  body_limit: z
    .number()
    .int()
    .min(1024)
    .max(1024 * 1024)
    .default(64 * 1024)
    .meta({ description: "Largest request body, in bytes, Port reads on its own endpoints (token exchange, webhooks, admin API); larger bodies are answered 413. The relay's limit is `upstreams.<name>.max_body`.", examples: [65536] }),
  log_level: z
    .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
    .default('info')
    .meta({ description: 'Least severe level of the JSON log lines written to standard output. Tokens, secrets and bodies are never logged at any level.' }),
  admin_token: secretRef.optional().meta({
    description: 'Bearer token for the admin API (`/v1/admin/…`, e.g. revocations). The admin API is off while this is unset.',
    examples: ['env:PORT_ADMIN_TOKEN'],
  }),
  refusal_rate_limit: z
    .strictObject({
      burst: z.number().int().min(1).max(100_000).default(30).meta({ description: 'Refusals one remote address may have at once (the token bucket size).' }),
      per_minute: z.number().int().min(1).max(1_000_000).default(30).meta({ description: 'Refusals per minute an address earns back.' }),
      max_sources: z.number().int().min(1).max(1_000_000).default(10_000).meta({ description: 'Most addresses tracked at once; the least recently refused are forgotten first.' }),
    })
    .default({ burst: 30, per_minute: 30, max_sources: 10_000 })
    .meta({
      description:
        'Per remote address, how many requests with a token that does not verify Port answers before it answers 429 instead (a token bucket). Callers whose tokens verify are never throttled by it.',
    }),
  workers: hint(z.union([z.literal('auto'), z.number().int().min(1).max(256)]), { expects: '"auto" or a whole number from 1 to 256' })
    .default('auto')
    .meta({
      description:
        'How many processes `port serve` runs on `listen`, sharing its socket (https://nodejs.org/api/cluster.html), so Port uses every core. Each is a replica on the one store: single use, revocations, approvals and the decision log agree through it, and one of them leads the background work. `auto` is the number of CPUs Node reports (`os.availableParallelism()`); 1 runs one process, as before. `refusal_rate_limit` and `store.postgres_pool_size` count per worker. With `sso` and more than one worker, set `issuer.key_encryption_key` (a sign-in may start on one worker and finish on another); `auto` runs one worker until it is set.',
      examples: ['auto', 4],
    }),
});

const storeSchema = z.strictObject({
  sqlite: nonEmpty.default('./port.db').meta({
    description: "Path of the SQLite database file (relative to port.yaml's folder); created on first start. Unused when `store.postgres` is set.",
    examples: ['/var/lib/port/port.db'],
  }),
  postgres: secretRef.optional().meta({
    description:
      'A PostgreSQL connection URL, by reference: when set, Port uses PostgreSQL instead of SQLite and several replicas may share it. TLS settings go in the URL (`?sslmode=verify-full&sslrootcert=/etc/port/db-ca.pem`, see https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-CONNSTRING). The reference is read when the store opens.',
    examples: ['env:PORT_DATABASE_URL'],
  }),
  postgres_pool_size: z.number().int().min(2).max(1000).default(10).meta({ description: 'Connections each Port process keeps open to PostgreSQL at most.' }),
  feed_max_lag: duration(60).default(5).meta({
    description:
      "How long a replica goes on deciding with caches it cannot confirm are current (PostgreSQL's change feed down or behind) before it refuses what depends on them (fail closed).",
    examples: ['5s'],
  }),
  lease_ttl: duration(600).default(15).meta({
    description:
      'Lifetime of the leader lease. One Port process (the leader) runs the background work that must run once (sealing and signing the audit log, key rotation, expiry sweeps, secret rotation); when it dies another takes over within about this long.',
    examples: ['15s'],
  }),
});

const buildkiteSchema = z.strictObject({
  organization: hint(z.string().regex(/^[a-z0-9][a-z0-9-]*$/), { expects: 'the organization slug (lower-case letters, digits and -)' }).meta({
    description: 'Slug of the Buildkite organization whose jobs Port serves (`organization_slug` in its OIDC tokens); tokens from any other organization are refused.',
    examples: ['acme'],
  }),
  organization_id: z
    .uuid()
    .optional()
    .meta({ description: "The organization's UUID (`organization_id` claim); when set, a token must carry it as well as the slug.", examples: ['0b7d6c2b-8f1e-4a56-9d3c-2f6e1a4b5c7d'] }),
  issuer: httpUrl.default('https://agent.buildkite.com').meta({
    description: 'The `iss` Buildkite OIDC tokens carry (https://buildkite.com/docs/agent/v3/cli-oidc). Change it only for a simulator.',
  }),
  jwks_url: httpUrl.optional().meta({
    description: "Where Buildkite's token signing keys are fetched from; `<issuer>/.well-known/jwks` when unset.",
    examples: ['https://agent.buildkite.com/.well-known/jwks'],
  }),
  audience: nonEmpty.optional().meta({
    description: 'The exact `aud` Port accepts on Buildkite tokens; jobs request their token with `buildkite-agent oidc request-token --audience` set to it. `server.public_url` when unset.',
    examples: ['https://port.example.com'],
  }),
  algorithms: z
    .array(z.enum(ASYMMETRIC_JWS_ALGS))
    .min(1)
    .default(['RS256'])
    .meta({ description: "Signing algorithms accepted on Buildkite tokens (Buildkite signs with RS256, see https://buildkite.com/docs/agent/v3/cli-oidc); symmetric algorithms and `none` are never accepted." }),
  clock_skew: duration(MAX_CLOCK_SKEW_SECONDS).default(30).meta({ description: 'Leeway applied to `exp`, `nbf` and `iat` for clocks that disagree; at most 60s.', examples: ['30s'] }),
  max_token_bytes: z
    .number()
    .int()
    .min(512)
    .max(65536)
    .default(8192)
    .meta({ description: 'Tokens longer than this many bytes are refused before any parsing, so an oversized token costs no work.' }),
  jwks_refresh_interval: duration().default(600).meta({ description: "How often Buildkite's JWKS is fetched again while its keys are known.", examples: ['10m'] }),
  jwks_min_refresh_interval: duration().default(30).meta({
    description: 'Least time between JWKS fetches triggered by a token signed with a key Port has not seen (`kid`), so unknown keys cannot make Port hammer the endpoint.',
    examples: ['30s'],
  }),
  jwks_max_age: duration().default(86400).meta({ description: 'How long a cached JWKS is still used while the endpoint cannot be reached; after that, tokens are refused (fail closed).', examples: ['1d'] }),
  jwks_fetch_timeout: duration(300, 1).default(10).meta({ description: 'Total deadline for one JWKS fetch: connection, headers and body together.', examples: ['10s'] }),
  jwks_request_wait: duration(60).default(2).meta({
    description: 'How long a request carrying a key id Port has not cached waits for the JWKS fetch it triggers; 0 never waits (the request is refused and the keys are fetched in the background).',
    examples: ['2s'],
  }),
  api_url: httpUrl.default('https://api.buildkite.com').meta({
    description: "Base URL of Buildkite's REST API (https://buildkite.com/docs/apis/rest-api), used to read builds and unblock steps; the simulator's URL in tests and the demo.",
  }),
  api_token: secretRef.optional().meta({
    description: 'Buildkite REST API access token with the `read_builds`, `write_builds`, `read_organizations` and `read_agents` scopes (https://buildkite.com/docs/apis/managing-api-tokens); needed for approvals, for knowing who started a build and for the `buildkite` agent check of `pools:`.',
    examples: ['env:BUILDKITE_API_TOKEN'],
  }),
  webhook_secret: secretRef.optional().meta({
    description:
      "HMAC key that verifies the `X-Buildkite-Signature` header of Buildkite's webhooks (https://buildkite.com/docs/apis/webhooks); set this or `webhook_token`, not both.",
    examples: ['env:BUILDKITE_WEBHOOK_SECRET'],
  }),
  webhook_token: secretRef.optional().meta({
    description: 'The token Buildkite sends in `X-Buildkite-Token` with each webhook (https://buildkite.com/docs/apis/webhooks); the weaker alternative to `webhook_secret`.',
    examples: ['env:BUILDKITE_WEBHOOK_TOKEN'],
  }),
});

const issuerSchema = z.strictObject({
  token_ttl: duration(86400).default(900).meta({ description: 'Lifetime of the Port tokens issued by the token exchange (from the exchange, not capped by the Buildkite token); with Buildkite webhooks set up, a job\'s tokens are refused as soon as the job finishes.', examples: ['15m'] }),
  algorithm: z
    .enum(['ES256', 'EdDSA'])
    .default('ES256')
    .meta({ description: "Algorithm of Port's signing keys. AWS STS does not accept EdDSA-signed tokens, so `aws_role` credentials in `web_identity` mode need ES256." }),
  key_rotation: duration().default(30 * 86400).meta({ description: 'A new signing key is made this often; the previous one stays in the JWKS until the tokens it signed have expired.', examples: ['30d'] }),
  audiences: z
    .array(nonEmpty)
    .min(1)
    .optional()
    .meta({ description: 'Audiences a Port token may be issued for (the exchange\'s `audience` parameter); `[server.public_url]` when unset.', examples: [['https://port.example.com']] }),
  introspection_token: secretRef.optional().meta({
    description: 'Bearer secret that lets a resource server call `/oauth/introspect` (RFC 7662) on any Port token; without it only a token itself can be introspected.',
    examples: ['env:PORT_INTROSPECTION_TOKEN'],
  }),
  key_encryption_key: secretRef.optional().meta({
    description:
      "Seals Port's private signing keys and rotated secrets in the store (AES-256-GCM), and keys the sign-in cookie; strongly recommended, and required with `sso` on PostgreSQL (every replica must share it).",
    examples: ['env:PORT_KEY_ENCRYPTION_KEY'],
  }),
});

const ssoSchema = z.strictObject({
  issuer: httpUrl.meta({ description: "The identity provider's issuer URL; its discovery document is fetched from `<issuer>/.well-known/openid-configuration` (OpenID Connect Discovery 1.0 §4).", examples: ['https://login.example.com'] }),
  client_id: nonEmpty.meta({ description: 'The OAuth client id Port is registered under at the identity provider.', examples: ['port'] }),
  client_secret: secretRef.meta({ description: "The OAuth client's secret.", examples: ['env:PORT_SSO_CLIENT_SECRET'] }),
  groups_claim: nonEmpty.default('groups').meta({ description: "The ID token claim that lists the person's groups (matched against the groups approval policies name)." }),
  scopes: z
    .array(hint(z.string().regex(/^[!-~]+$/), { expects: 'an OAuth scope (printable characters, no spaces)' }))
    .default(['openid', 'email', 'profile'])
    .meta({ description: 'Scopes requested at sign-in; `openid` is always added.' }),
  session_ttl: duration(7 * 86400).default(8 * 3600).meta({ description: 'How long a sign-in lasts; at most 7d.', examples: ['8h'] }),
  require_email_verified: hint(z.boolean(), { expects: 'true or false (false only for an identity provider that never sends email_verified, e.g. Microsoft Entra ID)' })
    .default(true)
    .meta({
      description:
        'Sign-in needs `email_verified: true` from the identity provider. `false` also accepts an absent claim (Microsoft Entra ID never sends it); an explicit `email_verified: false` is refused either way.',
    }),
});

const approvalsSchema = z.strictObject({
  expire_after: duration(30 * 86400).default(86400).meta({ description: 'An approval request not decided within this time expires; at most 30d.', examples: ['1d'] }),
  on_expiry: z
    .enum(['fail', 'leave'])
    .default('leave')
    .meta({ description: "On expiry, `fail`: Port records the request as expired and cancels the build (Buildkite has no call that fails one block step); `leave`: the block step is left for Buildkite's own UI." }),
  timezone: nonEmpty.default('UTC').meta({ description: 'IANA time zone of the `hour` and `weekday` an `unblock` policy sees.', examples: ['Europe/Berlin'] }),
  no_creator: z
    .enum(['extra_approval', 'deny', 'allow'])
    .default('extra_approval')
    .meta({
      description:
        "A build Buildkite names no creator for (triggered by a webhook; its git author is self-reported): `extra_approval` asks one approval more than the policies, `deny` opens no request, `allow` asks what the policies ask.",
    }),
  notify: z
    .strictObject({
      slack_webhook: secretRef.optional().meta({ description: 'A Slack (or Slack-compatible) incoming-webhook URL, by reference.', examples: ['env:PORT_SLACK_WEBHOOK'] }),
      webhook: secretRef.optional().meta({
        description: 'A URL, by reference, that receives a JSON body (`approval.opened` / `approval.closed`) for each request.',
        examples: ['env:PORT_APPROVALS_WEBHOOK'],
      }),
    })
    .optional()
    .meta({ description: 'Where Port says an approval request opened or closed. The URLs carry credentials, so they are secret references.' }),
});

const headerName = (what: string) => hint(z.string().regex(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/), { expects: what });

const checkpointSinkSchema = z.union([
  z.strictObject({
    file: nonEmpty.meta({ description: 'Append each checkpoint to this file as one JSON line, fsynced (relative to port.yaml\'s folder).', examples: ['/var/log/port/checkpoints.jsonl'] }),
  }),
  z.strictObject({
    url: httpUrl.meta({ description: 'POST each checkpoint to this URL as JSON.', examples: ['https://anchor.example.com/port'] }),
    headers: hint(z.record(headerName('an HTTP header name (an RFC 9110 §5.6.2 token)'), secretRef), { expects: 'a map of header name: secret reference' })
      .optional()
      .meta({ description: 'Headers sent with each POST: header name → secret reference for its value.', examples: [{ Authorization: 'env:PORT_ANCHOR_AUTH' }] }),
  }),
]);

const auditSchema = z.strictObject({
  checkpoint_sinks: z
    .array(checkpointSinkSchema)
    .default([])
    .meta({
      description:
        'Where each signed checkpoint of the audit log is shipped as it is made: a file or a URL. Copies held outside Port are the anchors `port audit verify --anchor` checks the log against.',
      examples: [[{ file: '/var/log/port/checkpoints.jsonl' }]],
    }),
  checkpoint_every: z.number().int().min(1).default(1000).meta({ description: 'A signed checkpoint is written after this many audit entries, or after `checkpoint_interval`, whichever comes first.' }),
  checkpoint_interval: duration().default(300).meta({ description: 'A signed checkpoint is written this long after the last one, or after `checkpoint_every` entries, whichever comes first.', examples: ['5m'] }),
  refusal_window: duration(3600).default(60).meta({
    description: 'Unauthenticated refusals beyond the first of each kind are logged as one count per kind, action and source per window this long, so a flood cannot fill the log.',
    examples: ['1m'],
  }),
});

const injectSchema = z.union([
  z.strictObject({ bearer: secretRef.meta({ description: 'Send `Authorization: Bearer <secret>`.', examples: ['env:NPM_TOKEN'] }) }),
  z.strictObject({
    basic: z
      .strictObject({
        username: nonEmpty.meta({ description: 'The user name.', examples: ['port'] }),
        password: secretRef.meta({ description: 'The password, by reference.', examples: ['env:ARTIFACTORY_PASSWORD'] }),
      })
      .meta({ description: 'Send `Authorization: Basic` (RFC 7617) with this user name and password.' }),
  }),
  z.strictObject({
    header: z
      .strictObject({
        name: headerName('an HTTP header name (RFC 9110 §5.1)').meta({ description: 'The header name.', examples: ['X-Api-Key'] }),
        value: secretRef.meta({ description: "The header's value, by reference.", examples: ['env:SERVICE_API_KEY'] }),
      })
      .meta({ description: 'Send one header with a secret value.' }),
  }),
  z.strictObject({
    aws_sigv4: z
      .strictObject({
        service: hint(z.string().regex(/^[a-z0-9-]+$/), { expects: 'an AWS service signing name (lower-case letters, digits and -)' }).meta({
          description: 'The signing name of the AWS service (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv.html).',
          examples: ['s3'],
        }),
        region: awsRegion.meta({ description: 'The AWS region requests are signed for.', examples: ['us-east-1'] }),
        credential: nonEmpty.meta({ description: 'Name of an `aws_role` credential under `credentials`; each request is signed with the calling job\'s session of that role.', examples: ['deploy-aws'] }),
        forward_headers: z
          .array(
            hint(z.string().regex(/^x-amz-[a-z0-9]+(-[a-z0-9]+)*(-\*)?$/i), { expects: 'an x-amz-* header name or a family ending in -*' })
              .transform((h) => h.toLowerCase())
              .meta({ examples: ['x-amz-server-side-encryption', 'x-amz-meta-*'] }),
          )
          .default([])
          .meta({ description: "Caller `x-amz-*` headers forwarded (and signed): exact names or a family ending in `-*`; all other `x-amz-*` headers are dropped." }),
        allow_subresources: z
          .array(nonEmpty)
          .default([])
          .meta({ description: 'With `service: s3` only: guarded S3 sub-resources (`acl`, `policy`, …) let through to the policies instead of refused outright.', examples: [['acl']] }),
      })
      .meta({ description: "Sign each request with AWS Signature Version 4 using the job's session of an `aws_role` credential." }),
  }),
]);

const upstreamSchema = z.strictObject({
  url: httpUrl.transform((u) => u.replace(/\/+$/, '')).meta({ description: 'Base URL: `/relay/<name>/<path>` goes to `<url>/<path>`.', examples: ['https://registry.npmjs.org'] }),
  timeout: duration(3600).default(30).meta({ description: "How long to wait for the upstream's response headers before answering 504.", examples: ['30s'] }),
  connect_timeout: duration(300).default(10).meta({ description: 'How long to wait for a TCP connection to the upstream before answering 504.', examples: ['10s'] }),
  max_body: size().default(1024 ** 3).meta({ description: 'Largest request body forwarded; larger ones are answered 413.', examples: ['1GiB', '64MiB'] }),
  encoded_slashes: z
    .enum(['reject', 'keep'])
    .default('reject')
    .meta({
      description:
        '`reject`: a path containing `%2F` is refused. `keep`: `%2F` is kept encoded and never treated as a separator (npm registries name scoped packages `@scope%2Fname`).',
    }),
  allow_upgrade: z.boolean().default(false).meta({ description: 'Allow `Upgrade` requests (e.g. WebSocket, RFC 6455) on this route.' }),
  connections: z.number().int().min(1).max(1024).default(64).meta({ description: 'Keep-alive connections kept open to the upstream at most.' }),
  inject: injectSchema.optional().meta({
    description: "How Port authenticates itself to the upstream: exactly one of `bearer`, `basic`, `header` or `aws_sigv4`. The caller's own credentials are never passed on.",
    examples: [{ bearer: 'env:NPM_TOKEN' }],
  }),
});

const relaySchema = z.strictObject({
  accept_buildkite_tokens: z.boolean().default(false).meta({ description: "Also accept a Buildkite OIDC token (for Port's audience) directly as the caller's credential, without an exchange first." }),
  decision_cache_ttl: duration(60).default(5).meta({ description: 'How long an allow or deny for the same token, upstream, method and path is reused; 0 decides every request.', examples: ['5s'] }),
  allow_log_window: duration(3600).default(60).meta({ description: 'Allowed requests are audited as one entry per job, upstream, method and policies per window this long.', examples: ['1m'] }),
  max_header_bytes: size(1024 * 1024).default(16 * 1024).meta({ description: 'Largest request head (request line and headers) accepted; larger ones are answered 431.', examples: ['16KiB'] }),
  client_header_timeout: duration(300).default(10).meta({ description: 'A client must send its whole request head within this time (defends against slowloris); 408 after.', examples: ['10s'] }),
  client_idle_timeout: duration(3600).default(60).meta({ description: 'A connection idle this long (no bytes either way) is closed.', examples: ['1m'] }),
});

const secretValueRef = hint(z.string().regex(/^(env:[A-Za-z_][A-Za-z0-9_]*|file:.+|command:\s*\S.*)$/s), {
  kind: 'secret_value',
  expects: 'env:NAME, file:PATH or command:CMD',
});

function secretValueRefFile() {
  return hint(z.string().regex(/^file:.+$/s), { kind: 'secret', expects: 'file:PATH' });
}

const description = z.string().optional().meta({ description: 'What the credential is for; shown by `port credentials` and in the audit log.' });

const portTokenCredentialSchema = z
  .strictObject({
    type: z.literal('port_token').meta({ description: 'A JWT signed by Port for a downstream service that trusts Port\'s JWKS.' }),
    description,
    audience: nonEmpty.meta({ description: "`aud` of the minted JWT: the downstream service's identifier. Never one of Port's own audiences or an AWS STS audience.", examples: ['https://deploy.example.com'] }),
    ttl: duration(86400).default(900).meta({ description: "Lifetime of the minted JWT; never beyond the bearer's own Port token.", examples: ['15m'] }),
  })
  .meta({ description: 'A Port-signed JWT for a downstream audience.' });

/**
 * Names of Port's environment variables a command may see besides PATH, HOME, LANG,
 * LC_ALL, TZ and TMPDIR; Port sets PORT_CREDENTIAL itself.
 */
const commandEnv = z
  .array(envName)
  .max(64)
  .refine((names) => !names.includes('PORT_CREDENTIAL'), "found PORT_CREDENTIAL in the list; expected it left out, because Port sets PORT_CREDENTIAL to the credential's name itself")
  .default([])
  .meta({ description: "Names of Port's environment variables the command may see besides PATH, HOME, LANG, LC_ALL, TZ and TMPDIR; Port sets `PORT_CREDENTIAL` itself.", examples: [['AWS_PROFILE']] });

const rotationHookSchema = z.union([
  z.strictObject({
    command: nonEmpty.meta({ description: 'Run with the rotation request as JSON on standard input; prints the new value on standard output.', examples: ['/usr/local/bin/rotate-db-password'] }),
    command_env: commandEnv,
  }),
  z.strictObject({
    url: httpUrl.meta({ description: 'POSTed the rotation request, HMAC-signed with `signing_secret`; answers `{"value": "..."}`. https:// (plain http:// only to this machine).', examples: ['https://rotator.example.com/hook'] }),
    signing_secret: secretRef.meta({ description: 'HMAC key that signs the rotation request.', examples: ['env:PORT_ROTATION_SIGNING_SECRET'] }),
  }),
]);

const secretCredentialSchema = z
  .strictObject({
    type: z.literal('secret').meta({ description: 'A secret value released to jobs the policies allow.' }),
    description,
    value: secretValueRef.meta({ description: 'Where the value comes from (until the first rotation): `env:NAME`, `file:PATH` or `command:CMD` (its standard output, run when released).', examples: ['env:NPM_TOKEN', 'command:vault kv get -field=token secret/npm'] }),
    command_timeout: duration(300).default(10).meta({ description: 'How long a `command:` value may run.', examples: ['10s'] }),
    command_env: commandEnv,
    command_concurrency: z.number().int().min(1).max(64).default(4).meta({ description: 'At most this many runs of the `command:` at once; further releases wait briefly, then get 503.' }),
    cache_for: duration(3600).default(0).meta({ description: "Serve the `command:`'s last output this long (held in memory only); 0 runs it on each release.", examples: ['5m'] }),
    rotation: z
      .strictObject({
        every: duration().optional().meta({ description: 'Rotate on this schedule; without it only `port rotate <name>` rotates.', examples: ['30d'] }),
        overlap: duration().default(3600).meta({ description: 'After a rotation the previous value stays valid (and is still released) this long.', examples: ['1h'] }),
        timeout: duration(600).default(30).meta({ description: 'How long the rotation hook may take.', examples: ['30s'] }),
        hook: rotationHookSchema.meta({ description: 'What makes the new value: a `command` (with optional `command_env`) or a `url` with its `signing_secret`.', examples: [{ command: '/usr/local/bin/rotate-db-password' }] }),
      })
      .optional()
      .meta({ description: 'Rotation of the value by a hook; rotated values are kept sealed in the store.' }),
  })
  .meta({ description: 'A brokered secret.' });

const awsRoleCredentialSchema = z
  .strictObject({
    type: z.literal('aws_role').meta({ description: 'Temporary AWS credentials from AWS STS.' }),
    description,
    role_arn: hint(z.string().regex(/^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]{1,512}$/), { expects: 'an IAM role ARN' }).meta({
      description: 'The IAM role the job receives a session of.',
      examples: ['arn:aws:iam::123456789012:role/deploy'],
    }),
    mode: z
      .enum(['web_identity', 'assume_role'])
      .default('web_identity')
      .meta({
        description:
          '`web_identity`: AssumeRoleWithWebIdentity with a token Port signs as an OIDC issuer, so Port holds no AWS keys (https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRoleWithWebIdentity.html). `assume_role`: AssumeRole with Port\'s own AWS credentials.',
      }),
    region: awsRegion.default('us-east-1').meta({ description: 'Region of the STS endpoint.', examples: ['eu-west-1'] }),
    sts_endpoint: httpUrl.optional().meta({ description: 'STS endpoint URL; the regional AWS endpoint when unset.', examples: ['https://sts.eu-west-1.amazonaws.com'] }),
    duration: duration(43200).default(3600).meta({
      description: "Session duration, from 15m to 12h and capped by the role's own maximum session duration (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_use.html).",
      examples: ['1h'],
    }),
    session_tags: hint(
      z.record(hint(z.string().regex(/^[\p{L}\p{Z}\p{N}_.:/=+\-@]{1,128}$/u), { expects: 'an AWS tag key (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_session-tags.html)' }), nonEmpty),
      { expects: 'a map of tag key: claim name' },
    )
      .default({})
      .meta({ description: 'Session tags: tag key → the Port token claim whose value it carries (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_session-tags.html).', examples: [{ pipeline: 'pipeline_slug' }] }),
    transitive_tag_keys: z.array(nonEmpty).default([]).meta({ description: 'Tag keys that pass on to chained role sessions.', examples: [['pipeline']] }),
    session_policy: nonEmpty.optional().meta({
      description: "A session policy template (JSON, relative to port.yaml's folder) that narrows the role per job; `${claim}` placeholders are filled from the job's claims.",
      examples: ['./policies/deploy-session.json'],
    }),
    web_identity_audience: nonEmpty.default('sts.amazonaws.com').meta({ description: '`aud` of the web identity token: the client id registered on the IAM OIDC identity provider.' }),
    sts_concurrency: z.number().int().min(1).max(256).default(8).meta({ description: 'At most this many STS calls in flight at once for this credential; more are answered 503.' }),
    access_key_id: secretRef.optional().meta({ description: "Port's own AWS access key id for `mode: assume_role`; without it and `secret_access_key`, the AWS SDK's default credential chain.", examples: ['env:AWS_ACCESS_KEY_ID'] }),
    secret_access_key: secretRef.optional().meta({ description: "Port's own AWS secret access key for `mode: assume_role`.", examples: ['env:AWS_SECRET_ACCESS_KEY'] }),
  })
  .meta({ description: 'A session of an IAM role through AWS STS.' });

const credentialSchema = z.discriminatedUnion('type', [portTokenCredentialSchema, secretCredentialSchema, awsRoleCredentialSchema]);

const scimSchema = z.strictObject({
  token: secretRef.meta({ description: 'The bearer token the identity provider presents to `/scim/v2`.', examples: ['env:PORT_SCIM_TOKEN'] }),
});

const ATTESTATION_METHODS = ['none', 'buildkite', 'aws_iam', 'aws_iid'] as const;
const awsAccount = hint(z.string().regex(/^\d{12}$/), { expects: 'a 12-digit AWS account id' });
/** An IAM role ARN, or a pattern with `*` (any run of characters) in it. */
const roleArnPattern = hint(z.string().regex(/^arn:aws[a-z-]*:(iam|sts)::(\d{12}|\*):(role|assumed-role)\/[\w+=,.@/*-]{1,512}$/), {
  expects: 'an IAM role ARN (arn:aws:iam::123456789012:role/NAME), where * matches any run of characters',
});
const poolKey = hint(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*\/([A-Za-z0-9][A-Za-z0-9_.-]*|\*)$/), {
  expects: 'a pool written CLUSTER_NAME/QUEUE_KEY (or CLUSTER_NAME/* for every queue of the cluster)',
});

const poolSchema = z
  .strictObject({
    attestation: z
      .array(z.enum(ATTESTATION_METHODS))
      .min(1)
      .default(['none'])
      .meta({
        description:
          'What a job\'s agent must prove before Port hands the job anything, all of them: `buildkite` (a live check with Buildkite\'s REST API that the job runs on the token\'s agent, which is connected and in this pool), `aws_iam` (a signed sts:GetCallerIdentity from the agent host\'s instance role, by `port agent attest`), `aws_iid` (the EC2 instance identity document and its signature, by `port agent attest`); `none` alone: nothing.',
        examples: [['buildkite', 'aws_iam']],
      }),
    enforcement: z
      .enum(['enforce', 'audit'])
      .default('enforce')
      .meta({
        description:
          '`enforce`: a job whose agent lacks the attestation is refused. `audit`: it is served and the decision log says what was missing, so `port agents audit` shows what enforcing would refuse before you turn it on.',
      }),
    aws: z
      .strictObject({
        accounts: z.array(awsAccount).default([]).meta({ description: 'AWS accounts an attested agent host may be in; required when the pool requires `aws_iam` or `aws_iid` (else a host of any AWS account, an attacker\'s own too, could attest).', examples: [['123456789012']] }),
        regions: z.array(awsRegion).default([]).meta({ description: 'AWS regions an attested agent host may run in (`aws_iid`); empty: any.', examples: [['eu-west-1']] }),
        roles: z
          .array(roleArnPattern)
          .default([])
          .meta({ description: 'IAM roles an `aws_iam`-attested host may hold (its instance profile role); `*` matches any run of characters; empty: any.', examples: [['arn:aws:iam::123456789012:role/buildkite-deploy-agent']] }),
      })
      .default({ accounts: [], regions: [], roles: [] })
      .meta({ description: 'What an AWS attestation must show for this pool.' }),
    host_bound: z
      .boolean()
      .default(false)
      .meta({
        description:
          'Port tokens of jobs in this pool are sender-constrained with DPoP (RFC 9449): bound to the key `port agent attest` keeps on the agent host, and the relay and `/v1/credentials` require a proof made with it. Needs `aws_iam` or `aws_iid` attestation.',
      }),
    attestation_ttl: duration(7 * 86400, 60)
      .default(86400)
      .meta({ description: 'How long an agent\'s attestation lasts before `port agent attest` must run again; at most 7d.', examples: ['24h'] }),
    autoscalers: z
      .array(slug())
      .default([])
      .meta({ description: 'Autoscalers (from `scaling.autoscalers`) that may ask for `scale` decisions on this pool; policy decides each.', examples: [['elastic-stack']] }),
  })
  .meta({ description: 'One agent pool: a Buildkite cluster\'s queue.' });

const attestationSchema = z.strictObject({
  aws_iam: z
    .strictObject({
      sts_endpoint: httpUrl.default('https://sts.amazonaws.com').meta({
        description: 'Where Port sends the signed sts:GetCallerIdentity it receives; the host in the signed request must be this endpoint\'s.',
        examples: ['https://sts.eu-west-1.amazonaws.com'],
      }),
      server_id: nonEmpty.optional().meta({
        description: 'The value the signed request\'s `X-Port-Server-ID` header must carry (so a request signed for one Port can\'t be replayed at another); `server.public_url` when unset.',
        examples: ['https://port.example.com'],
      }),
      max_age: duration(900, 10).default(300).meta({ description: 'A signed request older (by its X-Amz-Date) or further in the future than this is refused.', examples: ['5m'] }),
    })
    .default({ sts_endpoint: 'https://sts.amazonaws.com', max_age: 300 })
    .meta({ description: '`aws_iam` attestation: the approach of Vault\'s aws auth method (https://developer.hashicorp.com/vault/docs/auth/aws#iam-auth-method).' }),
  aws_iid: z
    .strictObject({
      certificates: hint(z.record(z.string().regex(/^([a-z]{2}(-[a-z]+)+-\d+|default)$/), secretValueRefFile()), {
        expects: 'a map of AWS region (or default): file:PATH of the PEM certificate',
      }).meta({
        description:
          'The AWS public certificates that verify instance identity document signatures, by region (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/regions-certs.html); `default` for regions not listed.',
        examples: [{ default: 'file:/etc/port/aws/ec2-identity.pem' }],
      }),
      max_age: duration(30 * 86400, 60)
        .default(3600)
        .meta({
          description:
            'An instance attests by its identity document for the first time within this long of its launch (`pendingTime`); later attestations must prove the host key registered first, so a copied document alone is useless.',
          examples: ['1h'],
        }),
    })
    .optional()
    .meta({ description: '`aws_iid` attestation (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/verify-signature.html).' }),
  buildkite_cache_ttl: duration(60).default(5).meta({ description: 'How long an answer of Buildkite\'s REST API about a job or agent is reused for the `buildkite` check; 0: ask every time.', examples: ['5s'] }),
  dpop_max_age: duration(300, 5).default(60).meta({ description: 'A DPoP proof (RFC 9449 §11.1) older or further in the future than this (by its `iat`) is refused.', examples: ['60s'] }),
});

const scalingSchema = z.strictObject({
  autoscalers: hint(
    z.record(slug(), z.strictObject({ token: secretRef.meta({ description: 'The bearer token this autoscaler presents to `/v1/pools/…/scale`.', examples: ['env:PORT_SCALER_TOKEN'] }) })),
    { expects: 'a map of autoscaler name: settings' },
  )
    .default({})
    .meta({ description: 'Autoscalers that ask Port before they add agents; each name is a Cedar `Port::Autoscaler` id.' }),
});

const pathPattern = hint(z.string().regex(/^\/[^\s]*$/), { expects: 'a path pattern starting with /, where * matches any run of characters' });
const refPattern = hint(z.string().min(1).max(256), { expects: 'a branch or tag pattern, where * matches any run of characters' });

const roleSchema = z
  .strictObject({
    description: z.string().optional().meta({ description: 'What the role is for; becomes the `@reason` of its compiled policies.' }),
    credentials: z.array(slug()).default([]).meta({ description: 'Credentials the role may `assume`.', examples: [['aws-prod-deploy']] }),
    upstreams: z
      .array(
        z.strictObject({
          upstream: slug().meta({ description: 'The upstream.' }),
          methods: z
            .array(hint(z.string().regex(/^[A-Z]+$/), { expects: 'an HTTP method in capitals' }))
            .default([])
            .meta({ description: 'Methods allowed; empty: any.', examples: [['GET', 'HEAD']] }),
          paths: z.array(pathPattern).default([]).meta({ description: 'Normalised paths allowed (`*` matches any run of characters); empty: any.', examples: [['/repos/acme/*']] }),
        }),
      )
      .default([])
      .meta({ description: 'Upstreams the role may reach through the relay (`proxy`).' }),
    approve: z
      .array(hint(z.string().regex(/^[a-z0-9][a-z0-9-]*(\/[a-z0-9][a-z0-9-]*)?$/), { expects: 'a pipeline slug or ORG/PIPELINE' }))
      .default([])
      .meta({ description: 'Pipelines whose block steps the role\'s people may approve (never their own builds\'): needs `groups` in the binding.', examples: [['deploy']] }),
    scale: z.array(poolKey).default([]).meta({ description: 'Pools the role may scale (`scale`): needs `autoscalers` in the binding.', examples: [['linux/deploy']] }),
  })
  .meta({ description: 'A role: a named bundle of permissions.' });

const bindingSchema = z
  .strictObject({
    role: slug().meta({ description: 'The role granted.' }),
    pipelines: z
      .array(
        z.strictObject({
          pipeline: hint(z.string().regex(/^[a-z0-9][a-z0-9-]*(\/[a-z0-9][a-z0-9-]*)?$/), { expects: 'a pipeline slug or ORG/PIPELINE' }).meta({ description: 'The pipeline (its slug, in `buildkite.organization`).' }),
          branches: z.array(refPattern).default([]).meta({ description: 'Branch patterns; a job of a build on one of them matches.', examples: [['main', 'release/*']] }),
          tags: z.array(refPattern).default([]).meta({ description: 'Tag patterns; a job of a tag build matching one of them matches. With neither branches nor tags: any build.', examples: [['v*']] }),
        }),
      )
      .default([])
      .meta({ description: 'Jobs of these pipelines (any one).' }),
    pools: z.array(poolKey).default([]).meta({ description: 'Jobs running in these pools (any one).', examples: [['linux/deploy']] }),
    groups: z.array(nonEmpty).default([]).meta({ description: 'IdP groups: for jobs, builds whose creator is in one of them; for approvals, the approvers.', examples: [['deployers']] }),
    autoscalers: z.array(slug()).default([]).meta({ description: 'Autoscalers (for a role with `scale`).', examples: [['elastic-stack']] }),
  })
  .meta({ description: 'Grants a role to subjects: every kind of subject listed must match (pipelines and pools and groups), any one within a kind.' });

const grantsSchema = z.strictObject({
  roles: hint(z.record(slug(), roleSchema), { expects: 'a map of role name: permissions' }).default({}).meta({ description: 'Roles by name.' }),
  bindings: z.array(bindingSchema).default([]).meta({ description: 'Who holds which role.' }),
  directory: nonEmpty.optional().meta({
    description: "A folder (relative to port.yaml's folder) of `*.yaml` (or `*.yml`) files, read when Port starts, each with `roles:` and `bindings:` like this section; they add to it.",
    examples: ['./grants'],
  }),
});

const namingSchema = z.strictObject({
  roles: nonEmpty.optional().meta({ description: 'A regular expression every grants role name must match as a whole (`port policy lint`; `^…$` is implied).', examples: ['^ci-(dev|staging|prod)-[a-z-]+$'] }),
  aws_role_name: nonEmpty.optional().meta({
    description:
      'The IAM role name an `aws_role` credential granted by a role must have, with `{role}` standing for the Port role name, so `ci-prod-deployer` in Port is `role/ci-prod-deployer` in AWS (`port policy lint`).',
    examples: ['{role}'],
  }),
  trust_policies: z
    .array(nonEmpty)
    .default([])
    .meta({ description: 'IAM role trust policy JSON files (relative to port.yaml\'s folder) that `port policy lint` checks against Port\'s issuer, audience and subject.', examples: [['./aws/deploy-trust.json']] }),
});

export const configSchema = z.strictObject({
  server: serverSchema.meta({ description: 'The HTTP server.' }),
  store: storeSchema
    .default({ sqlite: './port.db', postgres_pool_size: 10, feed_max_lag: 5, lease_ttl: 15 })
    .meta({ description: 'Where Port keeps its state: signing keys, revocations, approvals, the audit log. SQLite by default, PostgreSQL for several replicas.' }),
  buildkite: buildkiteSchema.meta({ description: 'The Buildkite organization whose OIDC tokens Port accepts, and its REST API and webhooks.' }),
  policies: nonEmpty.default('./policies').meta({ description: "Folder of Cedar policies (`*.cedar`), relative to port.yaml's folder; it must exist.", examples: ['./policies'] }),
  issuer: issuerSchema
    .default({ token_ttl: 900, algorithm: 'ES256', key_rotation: 30 * 86400 })
    .meta({ description: 'The tokens Port issues itself (RFC 8693 token exchange) and its signing keys.' }),
  audit: auditSchema
    .default({ checkpoint_sinks: [], checkpoint_every: 1000, checkpoint_interval: 300, refusal_window: 60 })
    .meta({ description: 'The tamper-evident audit log: signed checkpoints and where copies go.' }),
  sso: ssoSchema.optional().meta({ description: 'Sign-in for approvers through your identity provider: OpenID Connect authorization code flow with PKCE (RFC 7636). Approvals by people need it.' }),
  scim: scimSchema.optional().meta({ description: "SCIM 2.0 provisioning (RFC 7644) at `/scim/v2`, which keeps approvers' groups current; on when `token` is set." }),
  approvals: approvalsSchema
    .default({ expire_after: 86400, on_expiry: 'leave', timezone: 'UTC', no_creator: 'extra_approval' })
    .meta({ description: 'Approval requests for Buildkite block steps (https://buildkite.com/docs/pipelines/configure/step-types/block-step) that policies do not unblock outright.' }),
  relay: relaySchema
    .default({
      accept_buildkite_tokens: false,
      decision_cache_ttl: 5,
      allow_log_window: 60,
      max_header_bytes: 16 * 1024,
      client_header_timeout: 10,
      client_idle_timeout: 60,
    })
    .meta({ description: 'The policy relay at `/relay/<upstream>/…` as a whole; each service is under `upstreams`.' }),
  upstreams: hint(z.record(slug(), upstreamSchema), { expects: 'a map of upstream name: settings' })
    .default({})
    .meta({ description: 'Services reachable through the relay at `/relay/<name>/…`; each name is a Cedar `Port::Upstream` id.', examples: [{ npm: { url: 'https://registry.npmjs.org', inject: { bearer: 'env:NPM_TOKEN' } } }] }),
  credentials: hint(z.record(slug(), credentialSchema), { expects: 'a map of credential name: settings' })
    .default({})
    .meta({
      description: 'Credentials a job may request by name as the exchange\'s `scope`; each release is decided by the `assume` action. Each has a `type`: `port_token`, `secret` or `aws_role`.',
      examples: [{ npm: { type: 'secret', value: 'env:NPM_TOKEN' } }],
    }),
  pools: hint(z.record(poolKey, poolSchema), { expects: 'a map of CLUSTER_NAME/QUEUE_KEY: settings' })
    .default({})
    .meta({
      description:
        "Agent pools (a Buildkite cluster's queue, as the token's `cluster_name` and `queue_key` claims name it) and what their agents must prove. With any pool set, a token without those two claims is refused: request it with `--claim cluster_name,queue_key`.",
      examples: [{ 'linux/deploy': { attestation: ['buildkite', 'aws_iam'], host_bound: true } }],
    }),
  attestation: attestationSchema
    .default({ aws_iam: { sts_endpoint: 'https://sts.amazonaws.com', max_age: 300 }, buildkite_cache_ttl: 5, dpop_max_age: 60 })
    .meta({ description: 'How agents attest (`POST /v1/agents/attest`, `port agent attest`) and how long answers are reused.' }),
  scaling: scalingSchema.default({ autoscalers: {} }).meta({ description: 'Autoscalers and `POST /v1/pools/{cluster}/{queue}/scale`.' }),
  grants: grantsSchema
    .default({ roles: {}, bindings: [] })
    .meta({ description: 'RBAC: roles bundling permissions, bound to pipelines, pools, IdP groups and autoscalers; compiled to Cedar policies (`port policy show --compiled`) that combine with `policies:` (a forbid still wins).' }),
  naming: namingSchema.default({ trust_policies: [] }).meta({ description: 'Naming rules `port policy lint` checks, so names agree across Port and IAM.' }),
});

export type RawConfig = z.input<typeof configSchema>;
export type ParsedConfig = z.output<typeof configSchema>;
