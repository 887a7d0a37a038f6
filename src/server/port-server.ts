import { randomUUID } from 'node:crypto';
import { createServer, STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { hostname } from 'node:os';
import { Leadership } from '../cluster/leadership.js';
import formbody from '@fastify/formbody';
import Fastify, { type FastifyInstance } from 'fastify';
import { CheckpointSinks } from '../audit/checkpoint-sinks.js';
import { Checkpointer } from '../audit/checkpointer.js';
import { RefusalLog } from '../audit/refusal-log.js';
import { SourceRateLimiter } from '../audit/source-rate-limit.js';
import { installRetryAfter } from './retry-after.js';
import { TokenExchange } from '../broker/token-exchange.js';
import type { PortConfig } from '../config/config.js';
import { MAX_CLOCK_SKEW_SECONDS } from '../config/schema.js';
import { BuildkiteTokenVerifier } from '../identity/buildkite-token-verifier.js';
import { PortTokenIssuer } from '../issuer/port-token.js';
import { deriveKeyEncryptionKey } from '../issuer/key-wrap.js';
import { SigningKeys } from '../issuer/signing-keys.js';
import { PolicyEngine } from '../policy/engine.js';
import { compileGrants } from '../grants/compile.js';
import { ApprovalService } from '../approvals/approval-service.js';
import { ApprovalNotifier } from '../approvals/notifier.js';
import { approvalWebhookHandlers } from '../approvals/webhook-handlers.js';
import { buildkiteApiFromConfig } from '../buildkite/from-config.js';
import { webhookCredentials } from '../webhooks/credentials.js';
import { webhookRoutes } from '../webhooks/webhook-route.js';
import { describeOutcome, WebhookWork } from '../webhooks/webhook-work.js';
import { WebhookReconciler } from '../webhooks/webhook-reconciler.js';
import { CallerAuthenticator } from '../relay/caller-auth.js';
import { Relay } from '../relay/relay.js';
import { CreatorDirectory } from '../relay/creator-directory.js';
import { RevocationList } from '../revocation/revocation-list.js';
import { RevocationService } from '../revocation/revocation-service.js';
import { BuildCreatorLookup } from '../broker/build-creator.js';
import { adminAuthenticator } from './admin-auth.js';
import { revocationRoutes } from './routes/revocations.js';
import { openStore } from '../store/open-store.js';
import type { Store } from '../store/store.js';
import { StoreUnavailableError } from '../store/errors.js';
import { installErrorHandler } from './error-handler.js';
import { healthRoutes } from './routes/health.js';
import { oauthRoutes } from './routes/oauth.js';
import { wellKnownRoutes } from './routes/well-known.js';
import { credentialRoutes } from './routes/credentials.js';
import { agentRoutes } from './routes/agents.js';
import { attestationEnabled, attestationServiceFromConfig } from '../agents/attestation-service.js';
import { poolRoutes } from './routes/pools.js';
import { AutoscalerAuthenticator } from '../agents/scale-auth.js';
import { ScaleDecisions } from '../agents/scale-decision.js';
import { CredentialService } from '../broker/credentials/credential-service.js';
import { agentGateFromConfig } from '../agents/agent-gate.js';
import { DpopVerifier } from '../dpop/proof-verifier.js';
import { credentialProviders } from '../broker/credentials/providers.js';
import { AwsRoleProvider } from '../broker/credentials/aws-role-provider.js';
import { AwsRelaySessions } from '../relay/aws-sigv4-sessions.js';
import { SecretRotation } from '../broker/credentials/secret-rotation.js';
import { unsealedRotationWarning } from '../broker/credentials/secret-seal.js';
import { holdCommandRunner } from '../broker/credentials/command-runner.js';
import type { SecretCredentialConfig } from '../config/config.js';

export interface RunningPort {
  /** Base URL the server listens on (may differ from public_url behind a proxy). */
  url: string;
  app: FastifyInstance;
  store: Store;
  policy: PolicyEngine;
  keys: SigningKeys;
  verifier: BuildkiteTokenVerifier;
  /** Revocation by token, job, build, user, agent or pool, with its effects (SCIM deactivation uses it). */
  revocations: RevocationService;
  /** The decision log, with unauthenticated refusals counted per window (`flush()` writes the counts now). */
  log: RefusalLog;
  close(): Promise<void>;
}

export interface StartOptions {
  /** Log destination; false silences Port's request log (tests). */
  logger?: boolean;
  /** Reload policies on SIGHUP (the CLI's `port serve` turns this on). */
  handleSignals?: boolean;
  /** Reload policies when a file in the folder changes. */
  watchPolicies?: boolean;
  /**
   * Webhook work retries (tests): the first retry's wait and the cap (ms; defaults 2 s and
   * 5 min, see src/webhooks/webhook-work.ts) and how often the reconciler looks (default 1 s).
   */
  webhookRetry?: { retryBaseMs?: number; retryMaxMs?: number; intervalMs?: number };
  /**
   * Create the store when it does not exist (first run, `port demo`, `port serve
   * --create-store`). Otherwise a missing store is refused: starting afresh would forget
   * revocations and accept Buildkite tokens that were already exchanged.
   */
  createStore?: boolean;
}

/** How often the leader seals the PostgreSQL decision outbox into the chain (the sealing lag is about this). */
const SEAL_EVERY_MS = 50;

/**
 * Builds Port from a validated config and starts listening. Everything that can
 * fail (store, keys, policies) is checked before the socket opens.
 */
export async function startPort(config: PortConfig, options: StartOptions = {}): Promise<RunningPort> {
  // grants: compiled first: a grant that can't be right refuses the start before the store is touched.
  const grantPolicies = compileGrants(config).sources;
  // Store failures in the background (PostgreSQL's change feed connection) go to the log once it exists.
  let storeError = (err: unknown): void => process.emitWarning(`store: ${(err as Error).message}`);
  const store = await openStore(config, { create: options.createStore ?? false, onError: (err) => storeError(err) });
  const feedMaxLagMs = config.store.feedMaxLag * 1000;
  const feedCurrent = () => store.changes.health(feedMaxLagMs).current;
  // The relay's build creators' records, briefly cached: every change to a person (SCIM,
  // SSO sign-in) by any Port process sharing the store drops them, so it applies to the next request.
  const creatorRecords = new CreatorDirectory(store.users, { current: feedCurrent });
  const stopCreatorFeed = store.changes.subscribe((changes) => creatorRecords.forget(changes.filter((c) => c.topic === 'users').map((c) => c.key)));
  // One Port process among those sharing the store runs the work that must run once.
  const leadership = new Leadership(store.leases, {
    owner: `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`,
    ttlMs: config.store.leaseTtl * 1000,
    onError: (err) => storeError(err),
  });
  const timers: NodeJS.Timeout[] = [];
  let stopWatching: (() => void) | undefined;
  let stopSecrets: (() => Promise<void>) | undefined;
  let stopJwks: (() => void) | undefined;
  let stopReconciler: (() => Promise<void>) | undefined;
  // The process that spawns `command:` secrets and hook commands (started on first use); close() stops it.
  const commandRunner = holdCommandRunner();
  try {
    const keys = await SigningKeys.open(store, {
      algorithm: config.issuer.algorithm,
      rotation: config.issuer.keyRotation,
      overlap: config.issuer.tokenTtl + MAX_CLOCK_SKEW_SECONDS,
      ...(config.issuer.keyEncryptionKey !== undefined ? { keyEncryptionKey: deriveKeyEncryptionKey(config.issuer.keyEncryptionKey) } : {}),
    });
    const revocations = await RevocationList.open(store, Date.now(), { maxLagMs: feedMaxLagMs });
    await leadership.start();
    // The relay answers /relay/… on the raw server, before Fastify, so proxied requests
    // pay for neither its routing nor its body parsing; everything else is Fastify's.
    let relay: Relay | undefined;
    const app = Fastify({
      serverFactory: (handler) => {
        const server = createServer(
          {
            maxHeaderSize: config.relay.maxHeaderBytes,
            headersTimeout: config.relay.clientHeaderTimeout * 1000,
            // Node enforces headersTimeout only when it sweeps connections (default every
            // 30 s); sweep often enough that the configured limit is the real one.
            connectionsCheckingInterval: Math.min(1000, config.relay.clientHeaderTimeout * 250),
            requestTimeout: 0,
            // Never the lenient parser: Node documents that it exposes the application to
            // request smuggling (https://nodejs.org/api/cli.html#--insecure-http-parser).
            insecureHTTPParser: false,
          },
          (req, res) => (relay?.handles(req.url) ? void relay.handle(req, res) : handler(req, res)),
        );
        server.on('checkContinue', (req, res) => {
          if (relay?.handles(req.url)) return void relay.handle(req, res, true);
          res.writeContinue();
          handler(req, res);
        });
        server.on('upgrade', (req, socket, head) => {
          if (relay?.handles(req.url)) return void relay.handleUpgrade(req, socket, head);
          socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
        });
        return server;
      },
      logger:
        options.logger === false
          ? false
          : {
              level: config.server.logLevel,
              // Credentials never reach the log: it records reasons, not payloads.
              redact: ['req.headers.authorization', 'req.headers.cookie', 'req.headers["proxy-authorization"]'],
            },
      bodyLimit: config.server.bodyLimit,
      clientErrorHandler: answerClientError,
      genReqId: () => randomUUID(),
      requestIdHeader: false,
      trustProxy: false,
      keepAliveTimeout: 5_000,
    });
    if (config.issuer.keyEncryptionKey === undefined) {
      app.log.warn('issuer.key_encryption_key is not set: Port\'s private signing keys are stored unencrypted in the store');
    }
    const unsealedRotation = unsealedRotationWarning(
      Object.values(config.credentials).filter((c): c is SecretCredentialConfig => c.type === 'secret'),
      config.issuer.keyEncryptionKey,
    );
    if (unsealedRotation !== undefined) app.log.warn(unsealedRotation);
    const logError = (msg: string) => (err: unknown) => app.log.error({ err: { message: (err as Error).message } }, msg);
    storeError = logError('store background failure');

    // grants: compiled to Cedar join the folder's policies (a hand-written forbid still wins).
    const policy = await PolicyEngine.open(config.policies, {
      compiled: grantPolicies,
      onReload: (r) => app.log.info({ revision: r.revision, ...(r.afterQuietPeriod ? { after_quiet_period: true } : {}) }, 'policies reloaded'),
      onError: (err) => app.log.error({ problems: (err as { problems?: unknown }).problems ?? err.message }, 'policy reload refused; keeping the last good set'),
      // A set that lost policies while their files are still there (a half-written save?) waits for a quiet folder.
      onDeferred: (d) => app.log.warn({ revision: d.revision, lost: d.lost, quiet_period_ms: d.quietPeriodMs }, `policy reload deferred: ${d.reason}`),
    });
    // Compile the wasm paths before /readyz says ready: the first Cedar decision in a
    // process otherwise pays a few hundred milliseconds of lazy wasm compilation.
    policy.warmUp();
    const warmed = true;

    const checkpointSinks = CheckpointSinks.fromConfig(config.audit.checkpointSinks, { onError: logError('audit checkpoint sink failed') });
    const checkpointer = new Checkpointer(store, keys, {
      every: config.audit.checkpointEvery,
      intervalSeconds: config.audit.checkpointInterval,
      onError: logError('audit checkpoint failed'),
      ...(checkpointSinks ? { sinks: checkpointSinks } : {}),
      active: () => leadership.isLeader(),
    });
    checkpointer.start();
    // Unauthenticated refusals are throttled per source and counted per window, so junk
    // can't fill the disk; every other decision is logged one by one.
    const log = new RefusalLog(
      {
        windowSeconds: config.audit.refusalWindow,
        limiter: new SourceRateLimiter(config.server.refusalRateLimit),
        onError: logError('refusal counts could not be logged'),
      },
      store,
    );
    const verifier = new BuildkiteTokenVerifier(config.buildkite, {
      onJwksError: (err) => app.log.warn({ jwks: { reason: err.reason } }, `Buildkite JWKS refresh failed (${err.message}); cached keys stay in use until jwks_max_age`),
    });
    // Buildkite's keys are fetched now and refreshed in the background: requests
    // never wait for a routine refresh. Waits at most jwks_request_wait; /readyz tells the rest.
    stopJwks = () => verifier.jwks.stop();
    await verifier.jwks.start();
    const issuer = new PortTokenIssuer(keys, config.server.publicUrl);
    // A Buildkite token lives up to 2 h (https://buildkite.com/docs/platform/limits); the Port token after it, token_ttl.
    const maxTokenLifetime = 7200 + config.issuer.tokenTtl + MAX_CLOCK_SKEW_SECONDS;
    const revocationService = new RevocationService({ revocations, store, log, maxTokenLifetime, knowsCreators: config.buildkite.apiToken !== undefined });
    // Who started each build (the token doesn't say): short timeout, one retry — an
    // unanswered lookup leaves the creator unknown, it never fails the exchange.
    const creators = new BuildCreatorLookup(
      config.buildkite.apiToken ? buildkiteApiFromConfig(config.buildkite, { timeoutMs: 3000, maxRetries: 1 }) : undefined,
      store,
      { onError: (err) => app.log.warn({ err: { message: (err as Error).message } }, 'build creator lookup failed; the creator is unknown') },
    );
    // pools: every job's agent against its pool's rules (src/agents/agent-gate.ts), shared by the exchange, /v1/credentials and the relay.
    const agents = agentGateFromConfig(config, store);
    if (agents.uncheckable.length > 0) app.log.warn(`pools ${agents.uncheckable.join(', ')} require the buildkite check but buildkite.api_token is not set: their jobs are refused until it is`);
    const exchange = new TokenExchange({ config, verifier, policy, issuer, log, revocations, creators, agents });
    // Brokered credentials (POST /v1/credentials/{name}) and secret rotation.
    const secrets = new SecretRotation({
      store,
      log,
      credentials: Object.values(config.credentials).filter((c): c is SecretCredentialConfig => c.type === 'secret'),
      ...(config.issuer.keyEncryptionKey !== undefined ? { keyEncryptionKey: deriveKeyEncryptionKey(config.issuer.keyEncryptionKey) } : {}),
      onError: (err, msg) => logError(msg)(err),
      scheduling: () => leadership.isLeader(),
    });
    stopSecrets = () => secrets.stop();
    // One aws_role provider, so /v1/credentials and the relay share each job's STS session.
    const awsRoles = new AwsRoleProvider({ issuerUrl: config.server.publicUrl, keys });
    // RFC 9449 proofs: at /oauth/token (binding) and for bound tokens at /v1/credentials and the relay; single use via the store.
    const dpop = new DpopVerifier({ maxAge: config.attestation.dpopMaxAge, replay: store.replay });
    const credentialService = new CredentialService({
      agents,
      dpop,
      config,
      issuer,
      revocations,
      policy,
      log,
      store,
      providers: credentialProviders({ config, keys, issuerUrl: config.server.publicUrl, secrets, awsRoles }),
      // A Buildkite token as the bearer: verified, single use and revocation-checked as at exchange.
      verifier,
      creators,
      onError: (err, msg) => logError(msg)(err),
    });
    relay = new Relay({
      config,
      policy,
      log,
      auth: new CallerAuthenticator(issuer, config.issuer.audiences, revocations, config.relay.acceptBuildkiteTokens ? verifier : undefined, creators, log, {
        verifier: dpop,
        publicUrl: config.server.publicUrl,
      }, agents),
      creators: creatorRecords,
      store,
      onError: (err, msg) => logError(msg)(err),
      onRefused: (info) => app.log.info({ relay: info }, 'relay refused a request'),
      // Upstreams with inject: aws_sigv4 sign with the calling job's own STS session.
      awsSessions: new AwsRelaySessions(awsRoles, config, log),
    });
    // Before any route that reads forms (the web pages check for an existing parser).
    await app.register(formbody, { bodyLimit: config.server.bodyLimit });
    const notifier = config.buildkite.apiToken
      ? ApprovalNotifier.fromConfig(config, {
          log,
          onError: (err) =>
            app.log.warn({ notification: { sink: err.sink, event: err.event, request_id: err.requestId, status: err.httpStatus } }, err.message),
        })
      : undefined;
    const approvals = config.buildkite.apiToken
      ? new ApprovalService({
          config,
          policy,
          store,
          log,
          api: buildkiteApiFromConfig(config.buildkite),
          revocations,
          ...(notifier ? { notifier } : {}),
          onNotifyError: logError('approval notification failed'),
        })
      : undefined;
    const webhookCreds = webhookCredentials(config.buildkite);
    const webhookHandlers = approvalWebhookHandlers({
      approvals,
      revocations,
      log,
      organization: config.buildkite.organization,
      maxTokenLifetime,
      onUnconfigured: (what) => app.log.warn(what),
    });
    // Each delivery's work stays in the store until done; the reconciler retries what failed.
    const webhookWork = new WebhookWork({
      store,
      handlers: webhookHandlers,
      ...(options.webhookRetry?.retryBaseMs !== undefined ? { retryBaseMs: options.webhookRetry.retryBaseMs } : {}),
      ...(options.webhookRetry?.retryMaxMs !== undefined ? { retryMaxMs: options.webhookRetry.retryMaxMs } : {}),
      onError: logError('webhook handler failed'),
      onOutcome: (o) => {
        const line = describeOutcome(o);
        if (line) app.log[line.level]({ webhook: line.fields }, line.message);
      },
    });
    webhookRoutes(app, { secret: webhookCreds.secret, token: webhookCreds.token, store, handlers: webhookHandlers, work: webhookWork, onError: logError('webhook handler failed') });
    const reconciler = new WebhookReconciler(webhookWork, {
      ...(options.webhookRetry?.intervalMs !== undefined ? { intervalMs: options.webhookRetry.intervalMs } : {}),
      onError: logError('webhook reconciliation failed; Port keeps trying and logs again when the failure changes'),
      onRecovered: () => app.log.info('webhook reconciliation works again'),
    });
    reconciler.start();
    stopReconciler = () => reconciler.stop();
    // The people side (SSO sign-in, approval pages) exists only with sso:, and so does its
    // OpenID Connect client library: loaded then, not on every start (bench/startup).
    if (config.sso) {
      const { webRoutes } = await import('../web/approvals-pages.js');
      webRoutes(app, { config, store, ...(approvals ? { approvals } : {}), publicUrl: config.server.publicUrl, revocations });
    }
    if (approvals) leadership.repeat(30_000, () => approvals.expireDue(), logError('approval expiry failed'));
    // Idle connections (no bytes either way) are closed; long transfers that keep moving are not.
    app.server.timeout = config.relay.clientIdleTimeout * 1000;

    installErrorHandler(app);
    installRetryAfter(app);
    // A callback hook, not an async one: no promise and microtask on every response.
    app.addHook('onSend', (request, reply, payload, done) => {
      reply.header('X-Request-Id', request.id);
      done(null, payload);
    });
    wellKnownRoutes(app, { publicUrl: config.server.publicUrl, keys, algorithm: config.issuer.algorithm });
    oauthRoutes(app, {
      dpop,
      publicUrl: config.server.publicUrl,
      exchange,
      issuer,
      revocations,
      log,
      audiences: config.issuer.audiences,
      ...(config.issuer.introspectionToken !== undefined ? { introspectionToken: config.issuer.introspectionToken } : {}),
      refusals: log,
    });
    revocationRoutes(app, { service: revocationService, admin: adminAuthenticator(config.server.adminToken), issuer, audiences: config.issuer.audiences, log, refusals: log });
    credentialRoutes(app, { config, credentials: credentialService, secrets, admin: adminAuthenticator(config.server.adminToken) });
    // Agent hosts attest (POST /v1/agents/attest) when some pool requires aws_iam or aws_iid.
    if (attestationEnabled(config)) {
      agentRoutes(app, { attestations: attestationServiceFromConfig(config, { verifier, revocations, log, attestations: store.attestations, replay: store.replay, dpop }) });
    }
    // Autoscalers ask before they change a fleet (POST /v1/pools/{cluster}/{queue}/scale); absent without scaling.autoscalers.
    if (Object.keys(config.scaling.autoscalers).length > 0) {
      const autoscalers = new AutoscalerAuthenticator(config.scaling.autoscalers, logError('an autoscaler token could not be read; that autoscaler is refused'));
      await poolRoutes(app, { autoscalers, scale: new ScaleDecisions({ config, policy, log }), log });
    }
    if (config.scim) {
      // SCIM's modules (and the SCIMMY library) load only when scim: is configured.
      const [{ ScimProvisioning }, { SCIM_PREFIX, scimRoutes }] = await Promise.all([import('../scim/provisioning.js'), import('../scim/scim-routes.js')]);
      // SCIM deprovisioning revokes at once: everything the person started or holds.
      const provisioning = new ScimProvisioning({
        store,
        log,
        baseUrl: `${config.server.publicUrl.replace(/\/+$/, '')}${SCIM_PREFIX}`,
        revokeUser: (email, reason) => revocationService.revoke({ scope: 'user', id: email, reason, actor: 'scim' }),
        liftUser: (email, reason) => revocationService.lift({ scope: 'user', id: email, reason, actor: 'scim', origin: 'scim' }),
      });
      await scimRoutes(app, { token: config.scim.token, provisioning });
    }
    await secrets.start();
    healthRoutes(app, async () => {
      const checks: Record<string, string> = {};
      try {
        // Not a read: the store must take a write (its file in place, disk not full).
        await store.checkWritable();
        checks.store = 'ok';
      } catch (err) {
        checks.store = `failing: ${err instanceof StoreUnavailableError ? err.reason : (err as Error).message}`;
      }
      checks.policies = warmed ? `ok (${policy.policies.length} policies, revision ${policy.revision.slice(0, 12)})` : 'not loaded';
      checks.signing_key = safe(() => keys.signer().kid) ? 'ok' : 'missing';
      const buildkiteKeys = verifier.jwks.readiness();
      checks.buildkite_keys = buildkiteKeys.ready ? `ok (${buildkiteKeys.detail})` : `not ready: ${buildkiteKeys.detail}`;
      const feed = store.changes.health(feedMaxLagMs);
      checks.change_feed = feed.current ? 'ok' : `behind: ${feed.reason}`;
      checks.role = `ok (${leadership.isLeader() ? 'leader' : 'follower'}, ${store.kind})`;
      return { ready: Object.values(checks).every((c) => c.startsWith('ok')), checks };
    });

    leadership.repeat(60_000, () => keys.rotateIfDue(), logError('signing key rotation failed'));
    leadership.repeat(600_000, () => store.purgeExpired(Date.now()), logError('store purge failed'));
    // PostgreSQL: decisions wait in the outbox until the leader seals them into the chain.
    if (store.kind === 'postgres') leadership.repeat(SEAL_EVERY_MS, () => store.decisions.seal(), logError('decision log sealing failed'));
    // Every process: signing moves to a pre-published key when it is due; expired revocations leave memory.
    timers.push(setInterval(() => void keys.tick().catch(logError('signing key switch failed')), 1000));
    timers.push(setInterval(() => revocations.prune(), 600_000));
    timers.forEach((t) => t.unref());

    const onHup = () => {
      void policy.reload();
      relay?.reloadSecrets();
      try {
        webhookCreds.reload();
      } catch (err) {
        logError('webhook secret reload failed; keeping the old one')(err);
      }
      app.log.info('relay secrets reloaded');
    };
    if (options.handleSignals) process.on('SIGHUP', onHup);
    if (options.watchPolicies !== false) stopWatching = policy.watch();

    await app.listen({ host: config.server.listen.host, port: config.server.listen.port });
    const address = app.server.address();
    const url =
      typeof address === 'object' && address
        ? `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`
        : config.server.publicUrl;

    return {
      url,
      app,
      store,
      policy,
      keys,
      verifier,
      revocations: revocationService,
      log,
      async close() {
        process.off('SIGHUP', onHup);
        // Another process takes the singleton work over at once, while this one drains.
        await leadership.stop();
        stopWatching?.();
        policy.close();
        stopJwks?.();
        timers.forEach(clearInterval);
        await stopReconciler?.();
        await stopSecrets?.();
        await app.close();
        await relay?.close();
        // The window's refusal counts, before the checkpointer's last word and the store closes.
        await log.close();
        await notifier?.idle();
        await checkpointer.stop();
        await commandRunner.release();
        stopCreatorFeed();
        revocations.close();
        keys.close();
        await store.close();
      },
    };
  } catch (err) {
    stopWatching?.();
    stopJwks?.();
    await stopSecrets?.().catch(() => undefined);
    await stopReconciler?.();
    await commandRunner.release();
    timers.forEach(clearInterval);
    await leadership.stop();
    stopCreatorFeed();
    await store.close().catch(() => undefined);
    throw err;
  }
}

/**
 * Requests Node's parser refuses (smuggling attempts, oversized or slow heads) get
 * the same JSON error shape as everything else, then the connection is closed.
 */
function answerClientError(err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  const [status, code, message] =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'invalid_request', 'The request head is larger than Port accepts.']
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'request_timeout', 'The request head was not received in time.']
        : [400, 'invalid_request', 'The request is not valid HTTP/1.1 (refused by the parser).'];
  const body = JSON.stringify({ error: code, error_description: message });
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}

function safe<T>(fn: () => T): T | undefined {
  try {
    return fn();
  } catch {
    return undefined;
  }
}
