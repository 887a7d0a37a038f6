import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { availableParallelism } from 'node:os';
import { ConfigError } from '../errors.js';
import { describeIssues, REFERENCE } from './issues.js';
import { configSchema, type ParsedConfig } from './schema.js';
import { resolveSecretRef } from './secret-ref.js';
import { parseYamlConfig } from './yaml-errors.js';
import { guardedS3Subresource, S3_GUARDED_SUBRESOURCES } from '../relay/aws-sigv4-query.js';

/** A secret reference kept for re-reading on reload; `key` names it in errors. */
export interface SecretSource {
  ref: string;
  key: string;
  baseDir: string;
}

/** `audit.checkpoint_sinks[i]`: a file (resolved against the config's folder) or a URL with secret headers. */
export type CheckpointSinkConfig = { kind: 'file'; path: string } | { kind: 'http'; url: string; headers: Record<string, SecretSource> };

export type InjectConfig =
  | { kind: 'bearer'; token: SecretSource }
  | { kind: 'basic'; username: string; password: SecretSource }
  | { kind: 'header'; name: string; value: SecretSource }
  /**
   * SigV4-sign each request with the job's session of an `aws_role` credential.
   * `forwardHeaders`: the caller `x-amz-*` headers kept (lower-case names, or `…-*` families).
   * `allowSubresources`: guarded S3 sub-resources let through to policy (lower-case; src/relay/aws-sigv4-query.ts).
   */
  | { kind: 'aws_sigv4'; service: string; region: string; credential: string; forwardHeaders: string[]; allowSubresources: string[] };

/** A Port-signed JWT for a downstream audience. */
export interface PortTokenCredentialConfig {
  name: string;
  type: 'port_token';
  description?: string;
  audience: string;
  /** Seconds; capped by the bearer's Port token. */
  ttl: number;
}

/** `commandEnv`: the names of Port's environment variables the hook command may see (`command_env`). */
export type RotationHookConfig = { kind: 'command'; command: string; commandEnv: string[] } | { kind: 'http'; url: string; signingSecret: SecretSource };

/** A brokered secret: `value` is env:, file: or command: (`SecretSource.ref` keeps the prefix). */
export interface SecretCredentialConfig {
  name: string;
  type: 'secret';
  description?: string;
  value: SecretSource;
  /** Seconds a `command:` may run. */
  commandTimeout: number;
  /** Names of Port's environment variables a `command:` may see besides the basic ones (`command_env`). */
  commandEnv: string[];
  /** Most runs of the `command:` at once. */
  commandConcurrency: number;
  /** Seconds the `command:`'s output is reused; 0: none. */
  cacheFor: number;
  rotation?: { every?: number; overlap: number; timeout: number; hook: RotationHookConfig };
}

/** AWS credentials through STS. Durations in seconds. */
export interface AwsRoleCredentialConfig {
  name: string;
  type: 'aws_role';
  description?: string;
  roleArn: string;
  mode: 'web_identity' | 'assume_role';
  region: string;
  stsEndpoint?: string;
  duration: number;
  /** Session tag key → Port token claim name. */
  sessionTags: Record<string, string>;
  transitiveTagKeys: string[];
  /** Absolute path of the session policy template. */
  sessionPolicy?: string;
  webIdentityAudience: string;
  /** Most STS calls in flight at once for this credential. */
  stsConcurrency: number;
  accessKeyId?: SecretSource;
  secretAccessKey?: SecretSource;
}

export type CredentialConfig = PortTokenCredentialConfig | SecretCredentialConfig | AwsRoleCredentialConfig;

export interface UpstreamConfig {
  name: string;
  url: string;
  /** Seconds to wait for response headers. */
  timeout: number;
  connectTimeout: number;
  maxBody: number;
  allowUpgrade: boolean;
  keepEncodedSlashes: boolean;
  connections: number;
  inject?: InjectConfig;
}

export interface RelayConfig {
  acceptBuildkiteTokens: boolean;
  decisionCacheTtl: number;
  allowLogWindow: number;
  maxHeaderBytes: number;
  clientHeaderTimeout: number;
  clientIdleTimeout: number;
}

/** `none`, `buildkite`, `aws_iam`, `aws_iid` (`pools.*.attestation`). */
export type AttestationMethod = 'buildkite' | 'aws_iam' | 'aws_iid';

/** `pools.<cluster>/<queue>`; `key` is that name (a queue of `*` covers the cluster's every queue). */
export interface PoolConfig {
  key: string;
  clusterName: string;
  /** `*` for every queue of the cluster. */
  queueKey: string;
  /** Required attestation, all of it; empty for `none`. */
  attestation: AttestationMethod[];
  enforcement: 'enforce' | 'audit';
  aws: { accounts: string[]; regions: string[]; roles: string[] };
  hostBound: boolean;
  /** Seconds. */
  attestationTtl: number;
  autoscalers: string[];
}

export interface AttestationConfig {
  awsIam: { stsEndpoint: string; serverId: string; maxAge: number };
  /** `certificates`: region (or `default`) → PEM text (read at load unless read-only). */
  awsIid?: { certificates: Record<string, SecretSource>; maxAge: number };
  buildkiteCacheTtl: number;
  dpopMaxAge: number;
}

export interface GrantRoleConfig {
  name: string;
  description?: string;
  credentials: string[];
  upstreams: { upstream: string; methods: string[]; paths: string[] }[];
  approve: string[];
  scale: string[];
}

export interface GrantBindingConfig {
  role: string;
  pipelines: { pipeline: string; branches: string[]; tags: string[] }[];
  pools: string[];
  groups: string[];
  autoscalers: string[];
  /** Where the binding was written: `port.yaml` or a file of `grants.directory`, and its index there. */
  source: string;
  index: number;
}

export interface GrantsConfig {
  roles: Record<string, GrantRoleConfig & { source: string }>;
  bindings: GrantBindingConfig[];
  /** Absolute path of `grants.directory`, when set (its files are read by src/grants). */
  directory?: string;
}

export interface NamingConfig {
  roles?: string;
  awsRoleName?: string;
  /** Absolute paths. */
  trustPolicies: string[];
}

/** The validated configuration with paths made absolute and defaults filled in. */
export interface PortConfig {
  file: string;
  server: {
    listen: { host: string; port: number };
    publicUrl: string;
    bodyLimit: number;
    logLevel: string;
    adminToken?: SecretSource;
    /** Per-source limit on tokens that don't verify (`server.refusal_rate_limit`). */
    refusalRateLimit: { burst: number; perMinute: number; maxSources: number };
    /** `server.workers`, resolved: how many processes `port serve` runs (src/cluster/workers.ts); `auto` is the CPU count. */
    workers: number;
    /** Why `auto` resolved to fewer workers than CPUs, for the log; unset otherwise. */
    workersLimitedBy?: string;
  };
  store: {
    sqlite: string;
    /** `store.postgres`: set, Port runs on PostgreSQL (the URL is resolved when the store opens). */
    postgres?: SecretSource;
    postgresPoolSize: number;
    /** `store.feed_max_lag`, in seconds. */
    feedMaxLag: number;
    /** `store.lease_ttl`, in seconds. */
    leaseTtl: number;
  };
  buildkite: {
    organization: string;
    organizationId?: string;
    issuer: string;
    jwksUrl: string;
    audience: string;
    algorithms: string[];
    clockSkew: number;
    maxTokenBytes: number;
    jwksRefreshInterval: number;
    jwksMinRefreshInterval: number;
    jwksMaxAge: number;
    /** Seconds: total deadline for one JWKS fetch. */
    jwksFetchTimeout: number;
    /** Seconds a request with an uncached `kid` waits for a JWKS fetch. */
    jwksRequestWait: number;
    apiUrl: string;
    apiToken?: SecretSource;
    webhookSecret?: SecretSource;
    webhookToken?: SecretSource;
  };
  policies: string;
  issuer: {
    tokenTtl: number;
    algorithm: 'ES256' | 'EdDSA';
    keyRotation: number;
    audiences: string[];
    /** The secret itself (read lazily when the config was loaded with `resolveSecrets: false`). */
    introspectionToken?: string;
    keyEncryptionKey?: string;
    /** Where those two come from. */
    introspectionTokenSource?: SecretSource;
    keyEncryptionKeySource?: SecretSource;
  };
  audit: { checkpointEvery: number; checkpointInterval: number; refusalWindow: number; checkpointSinks: CheckpointSinkConfig[] };
  approvals: {
    expireAfter: number;
    onExpiry: 'fail' | 'leave';
    timezone: string;
    /** A build Buildkite names no creator for: one approval more, no request, or as the policies say. */
    noCreator: 'extra_approval' | 'deny' | 'allow';
    /** Notification sinks (secret references: the URLs are credentials). */
    notify?: { slackWebhook?: SecretSource; webhook?: SecretSource };
  };
  sso?: {
    issuer: string;
    clientId: string;
    clientSecret: SecretSource;
    groupsClaim: string;
    scopes: string[];
    sessionTtl: number;
    /** Sign-in needs `email_verified: true` (else an absent claim is accepted; `false` never is). */
    requireEmailVerified: boolean;
  };
  /** SCIM 2.0 provisioning; `token` is the bearer the IdP presents. */
  scim?: { token: SecretSource };
  credentials: Record<string, CredentialConfig>;
  relay: RelayConfig;
  upstreams: Record<string, UpstreamConfig>;
  pools: Record<string, PoolConfig>;
  attestation: AttestationConfig;
  /** Autoscaler name → its bearer token's reference. */
  scaling: { autoscalers: Record<string, { token: SecretSource }> };
  grants: GrantsConfig;
  naming: NamingConfig;
}

export interface LoadOptions {
  /**
   * `false`: validate everything but read no secret reference (env:, file:, command:), so
   * read-only commands (audit, policy) run without the upstream keys or credential
   * secrets. References are still checked for syntax; `store.postgres` is read when the
   * store opens, `issuer.introspection_token` and `issuer.key_encryption_key` when first used.
   * Default `true`: every env: and file: reference must resolve now, so a missing secret
   * fails at start rather than on the first request that needs it.
   */
  resolveSecrets?: boolean;
}

/** Loads and validates `port.yaml`; every problem is one sentence naming the key and the fix. */
export function loadConfig(file: string, options: LoadOptions = {}): PortConfig {
  const path = resolve(file);
  if (!existsSync(path)) {
    throw new ConfigError(`${file}: no such file; pass the config with -c PATH or create ./port.yaml (see ${REFERENCE}).`);
  }
  const raw = parseYamlConfig(readFileSync(path, 'utf8'), file);
  return validate(raw, path, file, options);
}

/** Validates an already-parsed config object (used by `loadConfig` and the demo). */
export function configFromObject(raw: unknown, path: string, options: LoadOptions = {}): PortConfig {
  return validate(raw, path, path, options);
}

function validate(raw: unknown, path: string, display: string, options: LoadOptions): PortConfig {
  const parsed = configSchema.safeParse(raw, { reportInput: true });
  if (!parsed.success) throw new ConfigError(describeIssues(display, parsed.error.issues, raw).join('\n'));
  return finish(parsed.data, path, display, options.resolveSecrets !== false);
}

/**
 * Every secret reference in a loaded config, with the key that names it, so `port config
 * check` can try each one and report every failure. `kind: 'command'` references (a
 * `secret` credential's `command:` value) run a program: try those only if you mean to.
 */
export function secretReferences(config: PortConfig): (SecretSource & { kind: 'env' | 'file' | 'command' })[] {
  const found: (SecretSource & { kind: 'env' | 'file' | 'command' })[] = [];
  const seen = new Set<object>();
  const walk = (value: unknown): void => {
    if (value === null || typeof value !== 'object' || seen.has(value)) return;
    seen.add(value);
    if (isSecretSource(value)) {
      const kind = value.ref.startsWith('command:') ? 'command' : value.ref.startsWith('file:') ? 'file' : 'env';
      found.push({ ref: value.ref, key: value.key, baseDir: value.baseDir, kind });
      return;
    }
    // Data properties only: a lazily resolved secret is a getter, and reading it would resolve it.
    for (const descriptor of Object.values(Object.getOwnPropertyDescriptors(value))) {
      if ('value' in descriptor) walk(descriptor.value);
    }
  };
  walk(config);
  return found;
}

function isSecretSource(value: object): value is SecretSource {
  const v = value as Partial<SecretSource>;
  return typeof v.ref === 'string' && typeof v.key === 'string' && typeof v.baseDir === 'string' && Object.keys(value).length === 3;
}

function finish(c: ParsedConfig, path: string, file: string, resolveSecrets: boolean): PortConfig {
  const baseDir = dirname(path);
  /** Reads a reference; a problem names this file. */
  const readSecret = (ref: string, key: string): string => {
    try {
      return resolveSecretRef(ref, key, baseDir);
    } catch (err) {
      if (err instanceof ConfigError) throw new ConfigError(`${file}: ${err.message}`, { cause: err });
      throw err;
    }
  };
  /** Reads a reference now (a missing secret fails at start) unless this is a read-only load. */
  const check = (ref: string, key: string): void => {
    if (resolveSecrets) readSecret(ref, key);
  };
  const optionalSecret = <K extends string>(name: K, ref: string | undefined, key: string): Partial<Record<K, SecretSource>> => {
    if (ref === undefined) return {};
    check(ref, key);
    return { [name]: { ref, key, baseDir } } as Partial<Record<K, SecretSource>>;
  };
  const [, host, port] = /^\[?(.*?)\]?:(\d+)$/.exec(c.server.listen)!;
  const portNumber = Number(port);
  if (portNumber > 65535) throw new ConfigError(`${file}: server.listen: port ${portNumber} is out of range; use 1–65535 (or 0 for any free port).`);
  if (c.store.postgres !== undefined && c.sso !== undefined && c.issuer.key_encryption_key === undefined) {
    // The login cookie is sealed under a key derived from it (src/web/login-cookie.ts); without
    // it each process picks its own, and a sign-in started on one replica fails on another.
    throw new ConfigError(
      `${file}: issuer.key_encryption_key: not set, but sso with store.postgres needs it (the same on every replica) so a sign-in started on one replica can finish on another; e.g. key_encryption_key: env:PORT_KEY_ENCRYPTION_KEY.`,
    );
  }
  const { workers, workersLimitedBy } = resolveWorkers(c.server.workers, { sso: c.sso !== undefined, keyEncryptionKey: c.issuer.key_encryption_key !== undefined }, `${file}: server.workers`);
  if (c.buildkite.webhook_secret !== undefined && c.buildkite.webhook_token !== undefined) {
    throw new ConfigError(`${file}: buildkite.webhook_secret and buildkite.webhook_token are both set; a Buildkite webhook uses one of them — keep the one its Token setting uses.`);
  }
  const policies = resolve(baseDir, c.policies);
  if (!existsSync(policies) || !statSync(policies).isDirectory()) {
    throw new ConfigError(`${file}: policies: folder ${policies} does not exist; create it or point policies at your *.cedar folder.`);
  }
  return {
    file: path,
    server: {
      listen: { host: host!, port: portNumber },
      publicUrl: c.server.public_url,
      bodyLimit: c.server.body_limit,
      logLevel: c.server.log_level,
      ...optionalSecret('adminToken', c.server.admin_token, 'server.admin_token'),
      refusalRateLimit: {
        burst: c.server.refusal_rate_limit.burst,
        perMinute: c.server.refusal_rate_limit.per_minute,
        maxSources: c.server.refusal_rate_limit.max_sources,
      },
      workers,
      ...(workersLimitedBy !== undefined ? { workersLimitedBy } : {}),
    },
    store: {
      sqlite: resolve(baseDir, c.store.sqlite),
      ...optionalSecret('postgres', c.store.postgres, 'store.postgres'),
      postgresPoolSize: c.store.postgres_pool_size,
      feedMaxLag: c.store.feed_max_lag,
      leaseTtl: c.store.lease_ttl,
    },
    buildkite: {
      organization: c.buildkite.organization,
      organizationId: c.buildkite.organization_id,
      issuer: c.buildkite.issuer.replace(/\/+$/, ''),
      jwksUrl: c.buildkite.jwks_url ?? `${c.buildkite.issuer.replace(/\/+$/, '')}/.well-known/jwks`,
      audience: c.buildkite.audience ?? c.server.public_url,
      algorithms: c.buildkite.algorithms,
      clockSkew: c.buildkite.clock_skew,
      maxTokenBytes: c.buildkite.max_token_bytes,
      jwksRefreshInterval: c.buildkite.jwks_refresh_interval,
      jwksMinRefreshInterval: c.buildkite.jwks_min_refresh_interval,
      jwksMaxAge: c.buildkite.jwks_max_age,
      jwksFetchTimeout: c.buildkite.jwks_fetch_timeout,
      jwksRequestWait: c.buildkite.jwks_request_wait,
      apiUrl: c.buildkite.api_url.replace(/\/+$/, ''),
      ...optionalSecret('apiToken', c.buildkite.api_token, 'buildkite.api_token'),
      ...optionalSecret('webhookSecret', c.buildkite.webhook_secret, 'buildkite.webhook_secret'),
      ...optionalSecret('webhookToken', c.buildkite.webhook_token, 'buildkite.webhook_token'),
    },
    policies,
    issuer: issuerConfig(c, baseDir, resolveSecrets ? 'now' : 'on_use', readSecret),
    audit: {
      checkpointEvery: c.audit.checkpoint_every,
      checkpointInterval: c.audit.checkpoint_interval,
      refusalWindow: c.audit.refusal_window,
      checkpointSinks: c.audit.checkpoint_sinks.map((sink, i) => checkpointSink(sink, i, baseDir, check)),
    },
    ...(c.sso
      ? {
          sso: {
            issuer: c.sso.issuer.replace(/\/+$/, ''),
            clientId: c.sso.client_id,
            clientSecret: optionalSecret('s', c.sso.client_secret, 'sso.client_secret').s!,
            groupsClaim: c.sso.groups_claim,
            scopes: c.sso.scopes.includes('openid') ? c.sso.scopes : ['openid', ...c.sso.scopes],
            sessionTtl: c.sso.session_ttl,
            requireEmailVerified: c.sso.require_email_verified,
          },
        }
      : {}),
    approvals: {
      expireAfter: c.approvals.expire_after,
      onExpiry: c.approvals.on_expiry,
      timezone: checkTimeZone(c.approvals.timezone, file),
      noCreator: c.approvals.no_creator,
      ...(c.approvals.notify
        ? {
            notify: {
              ...optionalSecret('slackWebhook', c.approvals.notify.slack_webhook, 'approvals.notify.slack_webhook'),
              ...optionalSecret('webhook', c.approvals.notify.webhook, 'approvals.notify.webhook'),
            },
          }
        : {}),
    },
    ...(c.scim ? { scim: { token: optionalSecret('t', c.scim.token, 'scim.token').t! } } : {}),
    credentials: Object.fromEntries(Object.entries(c.credentials).map(([name, cred]) => [name, credentialConfig(name, cred, c, file, baseDir, check, optionalSecret)])),
    relay: {
      acceptBuildkiteTokens: c.relay.accept_buildkite_tokens,
      decisionCacheTtl: c.relay.decision_cache_ttl,
      allowLogWindow: c.relay.allow_log_window,
      maxHeaderBytes: c.relay.max_header_bytes,
      clientHeaderTimeout: c.relay.client_header_timeout,
      clientIdleTimeout: c.relay.client_idle_timeout,
    },
    upstreams: Object.fromEntries(Object.entries(c.upstreams).map(([name, u]) => [name, upstreamConfig(name, u, c, file, baseDir, check)])),
    pools: Object.fromEntries(Object.entries(c.pools).map(([key, p]) => [key, poolConfig(key, p, c, file, resolveSecrets)])),
    attestation: {
      awsIam: { stsEndpoint: c.attestation.aws_iam.sts_endpoint.replace(/\/+$/, ''), serverId: c.attestation.aws_iam.server_id ?? c.server.public_url, maxAge: c.attestation.aws_iam.max_age },
      ...(c.attestation.aws_iid
        ? {
            awsIid: {
              certificates: Object.fromEntries(
                Object.entries(c.attestation.aws_iid.certificates).map(([region, ref]) => {
                  const key = `attestation.aws_iid.certificates.${region}`;
                  check(ref, key);
                  return [region, { ref, key, baseDir }];
                }),
              ),
              maxAge: c.attestation.aws_iid.max_age,
            },
          }
        : {}),
      buildkiteCacheTtl: c.attestation.buildkite_cache_ttl,
      dpopMaxAge: c.attestation.dpop_max_age,
    },
    scaling: {
      autoscalers: Object.fromEntries(
        Object.entries(c.scaling.autoscalers).map(([name, a]) => [name, { token: optionalSecret('t', a.token, `scaling.autoscalers.${name}.token`).t! }]),
      ),
    },
    grants: {
      roles: Object.fromEntries(
        Object.entries(c.grants.roles).map(([name, r]) => [
          name,
          { name, ...(r.description !== undefined ? { description: r.description } : {}), credentials: r.credentials, upstreams: r.upstreams, approve: r.approve, scale: r.scale, source: 'port.yaml' },
        ]),
      ),
      bindings: c.grants.bindings.map((b, index) => ({ ...b, source: 'port.yaml', index })),
      ...(c.grants.directory !== undefined ? { directory: resolve(baseDir, c.grants.directory) } : {}),
    },
    naming: {
      ...(c.naming.roles !== undefined ? { roles: c.naming.roles } : {}),
      ...(c.naming.aws_role_name !== undefined ? { awsRoleName: c.naming.aws_role_name } : {}),
      trustPolicies: c.naming.trust_policies.map((f) => resolve(baseDir, f)),
    },
  };
}

/** `pools.<key>`: `none` stands alone, and a host-bound pool needs an attestation that registers the host key. */
function poolConfig(key: string, p: ParsedConfig['pools'][string], c: ParsedConfig, file: string, serving: boolean): PoolConfig {
  const [clusterName, queueKey] = key.split('/') as [string, string];
  const at = `pools.${key}`;
  if (p.attestation.includes('none') && p.attestation.length > 1) {
    throw new ConfigError(`${file}: ${at}.attestation: none can't be combined with ${p.attestation.filter((m) => m !== 'none').join(', ')}; list only what agents must prove.`);
  }
  const attestation = [...new Set(p.attestation.filter((m): m is AttestationMethod => m !== 'none'))];
  if (attestation.some((m) => m === 'aws_iam' || m === 'aws_iid') && p.aws.accounts.length === 0) {
    // Without it any AWS account passes — one an attacker opens for the purpose included.
    throw new ConfigError(`${file}: ${at}.aws.accounts: empty, so a host of any AWS account (an attacker's own too) could attest for this pool; list your account ids, e.g. accounts: ["123456789012"].`);
  }
  if (p.host_bound && !attestation.some((m) => m === 'aws_iam' || m === 'aws_iid')) {
    throw new ConfigError(`${file}: ${at}.host_bound: true needs aws_iam or aws_iid in ${at}.attestation (attestation is what registers the host's key).`);
  }
  // Checked where Port will serve (a full load); read-only commands (audit, lint) don't ask Buildkite.
  if (serving && attestation.includes('buildkite') && c.buildkite.api_token === undefined) {
    throw new ConfigError(`${file}: ${at}.attestation: buildkite needs buildkite.api_token (a REST API token with read_builds and read_agents) to check each job's agent live.`);
  }
  if (attestation.includes('aws_iid') && c.attestation.aws_iid === undefined) {
    throw new ConfigError(`${file}: ${at}.attestation: aws_iid needs attestation.aws_iid.certificates (the AWS public certificates for your regions).`);
  }
  for (const name of p.autoscalers) {
    if (!Object.hasOwn(c.scaling.autoscalers, name)) throw new ConfigError(`${file}: ${at}.autoscalers: "${name}" is not under scaling.autoscalers; add it there with its token.`);
  }
  return {
    key,
    clusterName,
    queueKey,
    attestation,
    enforcement: p.enforcement,
    aws: { accounts: p.aws.accounts, regions: p.aws.regions, roles: p.aws.roles },
    hostBound: p.host_bound,
    attestationTtl: p.attestation_ttl,
    autoscalers: p.autoscalers,
  };
}

type Check = (ref: string, key: string) => void;
type OptionalSecret = <K extends string>(name: K, ref: string | undefined, key: string) => Partial<Record<K, SecretSource>>;

/**
 * `issuer`: the introspection token and key encryption key are used as strings. A full
 * load reads them now; a read-only load reads each the first time it is used (a getter),
 * so a command that never signs or unseals anything never needs them.
 */
function issuerConfig(c: ParsedConfig, baseDir: string, when: 'now' | 'on_use', readSecret: (ref: string, key: string) => string): PortConfig['issuer'] {
  const source = (ref: string | undefined, key: string): SecretSource | undefined => (ref === undefined ? undefined : { ref, key, baseDir });
  const introspectionTokenSource = source(c.issuer.introspection_token, 'issuer.introspection_token');
  const keyEncryptionKeySource = source(c.issuer.key_encryption_key, 'issuer.key_encryption_key');
  const issuer: PortConfig['issuer'] = {
    tokenTtl: c.issuer.token_ttl,
    algorithm: c.issuer.algorithm,
    keyRotation: c.issuer.key_rotation,
    audiences: c.issuer.audiences ?? [c.server.public_url],
    ...(introspectionTokenSource ? { introspectionTokenSource } : {}),
    ...(keyEncryptionKeySource ? { keyEncryptionKeySource } : {}),
  };
  // Each read once: now on a full load, on first use on a read-only one.
  for (const [field, src] of [
    ['introspectionToken', introspectionTokenSource],
    ['keyEncryptionKey', keyEncryptionKeySource],
  ] as const) {
    if (src === undefined) continue;
    const read = (): string => readSecret(src.ref, src.key);
    if (when === 'now') issuer[field] = read();
    else {
      let value: string | undefined;
      Object.defineProperty(issuer, field, { enumerable: true, configurable: true, get: () => (value ??= read()) });
    }
  }
  return issuer;
}

/** `audit.checkpoint_sinks[i]`: header secrets are checked now (a missing one fails at start) and re-read on every send. */
function checkpointSink(sink: ParsedConfig['audit']['checkpoint_sinks'][number], i: number, baseDir: string, check: Check): CheckpointSinkConfig {
  if ('file' in sink) return { kind: 'file', path: resolve(baseDir, sink.file) };
  const headers = Object.entries(sink.headers ?? {}).map(([name, ref]) => {
    const key = `audit.checkpoint_sinks[${i}].headers.${name}`;
    check(ref, key);
    return [name, { ref, key, baseDir }] as const;
  });
  return { kind: 'http', url: sink.url, headers: Object.fromEntries(headers) };
}

function checkTimeZone(zone: string, file: string): string {
  // UTC (the default) is valid everywhere; checking it would load ICU's zone data (~8 MB
  // resident) in every process that never formats a time in another zone.
  if (zone === 'UTC') return zone;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return zone;
  } catch {
    throw new ConfigError(`${file}: approvals.timezone: "${zone}" is not an IANA time zone; write e.g. Europe/Berlin or UTC.`);
  }
}

function upstreamConfig(name: string, u: ParsedConfig['upstreams'][string], c: ParsedConfig, file: string, baseDir: string, check: Check): UpstreamConfig {
  const source = (ref: string, key: string): SecretSource => {
    check(ref, key);
    return { ref, key, baseDir };
  };
  const at = `upstreams.${name}.inject`;
  let inject: InjectConfig | undefined;
  const i = u.inject;
  if (i === undefined) inject = undefined;
  else if ('bearer' in i) inject = { kind: 'bearer', token: source(i.bearer, `${at}.bearer`) };
  else if ('basic' in i) inject = { kind: 'basic', username: i.basic.username, password: source(i.basic.password, `${at}.basic.password`) };
  else if ('header' in i) inject = { kind: 'header', name: i.header.name, value: source(i.header.value, `${at}.header.value`) };
  else {
    const cred = c.credentials[i.aws_sigv4.credential];
    if (cred?.type !== 'aws_role') {
      throw new ConfigError(`${file}: ${at}.aws_sigv4.credential: "${i.aws_sigv4.credential}" is not a credential of type aws_role; add it under credentials:.`);
    }
    for (const h of i.aws_sigv4.forward_headers) {
      // The signature's own headers: Port always sets them, a caller's never pass.
      if (['x-amz-date', 'x-amz-security-token', 'x-amz-content-sha256'].includes(h)) {
        throw new ConfigError(`${file}: ${at}.aws_sigv4.forward_headers: ${h} is set by Port's signature and never forwarded; remove it.`);
      }
    }
    const allowSubresources = i.aws_sigv4.allow_subresources.map((name) => {
      if (i.aws_sigv4.service !== 's3') {
        throw new ConfigError(`${file}: ${at}.aws_sigv4.allow_subresources: only applies to service: s3; remove it.`);
      }
      const guarded = guardedS3Subresource(name);
      if (guarded === undefined) {
        throw new ConfigError(`${file}: ${at}.aws_sigv4.allow_subresources: "${name}" is not a sub-resource Port refuses; use one of ${S3_GUARDED_SUBRESOURCES.join(', ')}.`);
      }
      return guarded.toLowerCase();
    });
    inject = {
      kind: 'aws_sigv4',
      service: i.aws_sigv4.service,
      region: i.aws_sigv4.region,
      credential: i.aws_sigv4.credential,
      forwardHeaders: i.aws_sigv4.forward_headers,
      allowSubresources,
    };
  }
  return {
    name,
    url: u.url,
    timeout: u.timeout,
    connectTimeout: u.connect_timeout,
    maxBody: u.max_body,
    allowUpgrade: u.allow_upgrade,
    keepEncodedSlashes: u.encoded_slashes === 'keep',
    connections: u.connections,
    ...(inject ? { inject } : {}),
  };
}

function credentialConfig(
  name: string,
  cred: ParsedConfig['credentials'][string],
  c: ParsedConfig,
  file: string,
  baseDir: string,
  check: Check,
  optionalSecret: OptionalSecret,
): CredentialConfig {
  const at = `credentials.${name}`;
  const description = cred.description === undefined ? {} : { description: cred.description };
  switch (cred.type) {
    case 'port_token': {
      const audiences = c.issuer.audiences ?? [c.server.public_url];
      // A token for Port's own audience would be a Port token: it could call the relay.
      if (audiences.includes(cred.audience)) {
        throw new ConfigError(`${file}: ${at}.audience: "${cred.audience}" is one of Port's own audiences; name the downstream service instead.`);
      }
      // A Port-signed JWT for STS's audience could be taken straight to AssumeRoleWithWebIdentity,
      // bypassing the aws_role credential's assume decision, session policy, tags and duration cap.
      const stsAudiences = new Set(['sts.amazonaws.com', ...Object.values(c.credentials).flatMap((o) => (o.type === 'aws_role' ? [o.web_identity_audience] : []))].map((a) => a.toLowerCase()));
      if (stsAudiences.has(cred.audience.toLowerCase())) {
        throw new ConfigError(
          `${file}: ${at}.audience: "${cred.audience}" is an AWS STS audience (sts.amazonaws.com or an aws_role web_identity_audience); a job could call STS with it directly, bypassing the aws_role decision — name the downstream service instead.`,
        );
      }
      return { name, type: 'port_token', ...description, audience: cred.audience, ttl: cred.ttl };
    }
    case 'secret': {
      // command: values run on demand, not at start; env: and file: must resolve now.
      if (!cred.value.startsWith('command:')) {
        check(cred.value, `${at}.value`);
        if (cred.command_env.length > 0) throw new ConfigError(`${file}: ${at}.command_env: only a command: value runs a command; remove it.`);
        if (cred.cache_for > 0) throw new ConfigError(`${file}: ${at}.cache_for: only a command: value is cached (env: and file: are read on each release); remove it.`);
      }
      const r = cred.rotation;
      // The HTTP hook's answer is the new secret: never in clear text off this machine.
      if (r !== undefined && 'url' in r.hook && !isHttpsOrLoopback(r.hook.url)) {
        throw new ConfigError(`${file}: ${at}.rotation.hook.url: ${r.hook.url} is plain http:// to a host other than this machine; use https:// (http:// is allowed only for localhost, 127.0.0.0/8 or [::1]).`);
      }
      return {
        name,
        type: 'secret',
        ...description,
        value: { ref: cred.value, key: `${at}.value`, baseDir },
        commandTimeout: cred.command_timeout,
        commandEnv: cred.command_env,
        commandConcurrency: cred.command_concurrency,
        cacheFor: cred.cache_for,
        ...(r
          ? {
              rotation: {
                ...(r.every !== undefined ? { every: r.every } : {}),
                overlap: r.overlap,
                timeout: r.timeout,
                hook:
                  'command' in r.hook
                    ? { kind: 'command' as const, command: r.hook.command, commandEnv: r.hook.command_env }
                    : { kind: 'http' as const, url: r.hook.url, signingSecret: optionalSecret('s', r.hook.signing_secret, `${at}.rotation.hook.signing_secret`).s! },
              },
            }
          : {}),
      };
    }
    case 'aws_role': {
      if (cred.mode === 'web_identity' && (cred.access_key_id !== undefined || cred.secret_access_key !== undefined)) {
        throw new ConfigError(`${file}: ${at}: access_key_id/secret_access_key are for mode: assume_role; web_identity needs no AWS keys in Port.`);
      }
      if ((cred.access_key_id === undefined) !== (cred.secret_access_key === undefined)) {
        throw new ConfigError(`${file}: ${at}: set both access_key_id and secret_access_key, or neither (the AWS SDK's default chain).`);
      }
      if (cred.duration < 900) throw new ConfigError(`${file}: ${at}.duration: AWS sessions last at least 15m (900 s).`);
      // STS accepts web identity tokens signed RS256/384/512 or ES256/384/512 only (STS API
      // reference, AssumeRoleWithWebIdentity, WebIdentityToken): Port's EdDSA key can't sign them.
      if (cred.mode === 'web_identity' && c.issuer.algorithm === 'EdDSA') {
        throw new ConfigError(`${file}: ${at}: mode web_identity needs issuer.algorithm: ES256 (AWS STS does not accept EdDSA-signed tokens); change issuer.algorithm or use mode: assume_role.`);
      }
      const sessionPolicy = cred.session_policy === undefined ? undefined : resolve(baseDir, cred.session_policy);
      if (sessionPolicy !== undefined && !existsSync(sessionPolicy)) {
        throw new ConfigError(`${file}: ${at}.session_policy: ${sessionPolicy} does not exist; point it at a JSON policy template.`);
      }
      if (sessionPolicy !== undefined) checkPolicyTemplate(sessionPolicy, `${file}: ${at}.session_policy`);
      return {
        name,
        type: 'aws_role',
        ...description,
        roleArn: cred.role_arn,
        mode: cred.mode,
        region: cred.region,
        ...(cred.sts_endpoint !== undefined ? { stsEndpoint: cred.sts_endpoint.replace(/\/+$/, '') } : {}),
        duration: cred.duration,
        sessionTags: cred.session_tags,
        transitiveTagKeys: cred.transitive_tag_keys,
        ...(sessionPolicy !== undefined ? { sessionPolicy } : {}),
        webIdentityAudience: cred.web_identity_audience,
        stsConcurrency: cred.sts_concurrency,
        ...optionalSecret('accessKeyId', cred.access_key_id, `${at}.access_key_id`),
        ...optionalSecret('secretAccessKey', cred.secret_access_key, `${at}.secret_access_key`),
      };
    }
  }
}

/** https://, or http:// to a loopback host (the hook runs beside Port). */
function isHttpsOrLoopback(url: string): boolean {
  const u = new URL(url);
  if (u.protocol === 'https:') return true;
  return u.hostname === 'localhost' || u.hostname === '[::1]' || /^127(\.\d{1,3}){3}$/.test(u.hostname);
}

/**
 * A session policy template must be JSON once its `${claim}` placeholders are filled
 * (src/broker/credentials/aws-session-policy.ts): checked at start with stand-in values.
 */
function checkPolicyTemplate(path: string, at: string): void {
  try {
    JSON.parse(readFileSync(path, 'utf8').replace(/\$\{[A-Za-z_][A-Za-z0-9_]*\}/g, 'x'));
  } catch {
    throw new ConfigError(`${at}: ${path} is not a JSON policy once its \${claim} placeholders are filled; fix the template.`);
  }
}

/**
 * How many processes `port serve` runs for `server.workers` (or `port serve --workers`,
 * named by `what` in the error): `auto` is the CPU count (os.availableParallelism(), at
 * most 256). With `sso`, workers need `issuer.key_encryption_key`, as replicas do: the
 * login cookie is sealed under a key derived from it (src/web/login-cookie.ts), and
 * without it each process picks its own, so a sign-in started on one worker would fail on
 * another. An explicit count above 1 is then refused; `auto` runs one worker.
 */
export function resolveWorkers(
  requested: number | 'auto',
  has: { sso: boolean; keyEncryptionKey: boolean },
  what: string,
): { workers: number; workersLimitedBy?: string } {
  const ssoWithoutKek = has.sso && !has.keyEncryptionKey;
  if (requested !== 'auto') {
    if (ssoWithoutKek && requested > 1) {
      throw new ConfigError(
        `${what}: ${requested} with sso needs issuer.key_encryption_key (so a sign-in started on one worker can finish on another); set it, e.g. key_encryption_key: env:PORT_KEY_ENCRYPTION_KEY, or run 1 worker.`,
      );
    }
    return { workers: requested };
  }
  const cpus = Math.min(availableParallelism(), 256);
  if (ssoWithoutKek && cpus > 1) return { workers: 1, workersLimitedBy: 'sso is set without issuer.key_encryption_key, which workers need to share sign-ins' };
  return { workers: cpus };
}
