import { EventEmitter } from 'node:events';
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { randomUUID } from 'node:crypto';
import { errors as undiciErrors } from 'undici';
import type { DecisionLog } from '../audit/decision-log.js';
import { determiningPolicies, entityString } from '../audit/decision-from-policy.js';
import type { PortConfig } from '../config/config.js';
import { PortError } from '../errors.js';
import { jobRequestParts, upstreamRef } from '../policy/entities.js';
import { poolFor } from '../agents/pool-match.js';
import type { PolicyEngine } from '../policy/engine.js';
import { unmatchedPermitsContext } from '../policy/unmatched-permits.js';
import type { CreatorInfo } from '../policy/entities.js';
import type { Decision } from '../policy/types.js';
import { AllowLog, type AllowLogOptions } from './allow-log.js';
import type { Store } from '../store/store.js';
import { AWS_SIGV4_MAX_BUFFERED_BODY, bufferBody } from './aws-sigv4-body.js';
import { awsTargetOf, dropUnlistedAmzHeaders } from './aws-sigv4-headers.js';
import { awsQueryKeysOf } from './aws-sigv4-query.js';
import type { AwsSessionSource } from './aws-sigv4-sessions.js';
import { BodyLimit } from './body-limit.js';
import type { CallerAuthenticator, RelayCaller } from './caller-auth.js';
import type { CreatorDirectory } from './creator-directory.js';
import { DecisionCache } from './decision-cache.js';
import { checkRequestFraming, downstreamResponseHeaders, upstreamRequestHeaders } from './headers/index.js';
import { normalizeRelayPath } from './path/normalize-path.js';
import { RelayError, sendRelayError } from './relay-error.js';
import { UpstreamRoute } from './upstream-route.js';
import { mergeObjects } from '../merge-objects.js';

export const RELAY_PREFIX = '/relay';

export interface RelayDeps {
  config: PortConfig;
  policy: PolicyEngine;
  auth: CallerAuthenticator;
  /** The build creators' directory records (`active`, groups), for `principal.creator` in `proxy` policies. */
  creators: CreatorDirectory;
  log: DecisionLog;
  /**
   * Where allowed requests' counts are saved (every second) and logged; its health
   * decides whether the relay forwards at all: nothing goes out unrecorded.
   */
  store: AllowLogOptions['store'] & Pick<Store, 'health'>;
  /** Decision log entries the allow log appended (for the checkpointer). */
  onError: (err: unknown, msg: string) => void;
  /** Each refusal, by code only: never the target, a header or a token (they may hold secrets). */
  onRefused: (info: { status: number; code: string; method: string }) => void;
  /** The calling job's AWS sessions, for upstreams with `inject: aws_sigv4`. */
  awsSessions?: AwsSessionSource;
}

/**
 * The relay: `/relay/<upstream>/<path…>` is a streaming reverse
 * proxy. Every request is authenticated, its path normalised before policy, decided
 * with `proxy`, stripped of the caller's credentials, given the upstream's, and
 * streamed both ways with back-pressure. Nothing reaches the upstream unless allowed.
 */
export class Relay {
  private readonly routes: Map<string, UpstreamRoute>;
  private readonly cache: DecisionCache;
  private readonly allows: AllowLog;
  private readonly publicHost: string;
  private readonly publicProto: 'http' | 'https';

  constructor(private readonly deps: RelayDeps) {
    const { config } = deps;
    this.routes = new Map(Object.values(config.upstreams).map((u) => [u.name, new UpstreamRoute(u)]));
    this.cache = new DecisionCache(config.relay.decisionCacheTtl * 1000);
    this.allows = new AllowLog({
      store: deps.store,
      windowSeconds: config.relay.allowLogWindow,
      onError: deps.onError,
    });
    const pub = new URL(config.server.publicUrl);
    this.publicHost = pub.host;
    this.publicProto = pub.protocol === 'https:' ? 'https' : 'http';
  }

  private readonly pathOptions = { keepEncodedSlashes: (upstream: string) => this.routes.get(upstream)?.config.keepEncodedSlashes ?? false };

  /**
   * Relay paths, and every target that is not origin-form (`http://host/…`, `*`): the
   * relay refuses those with 400 `invalid_path` (RFC 9112 §3.2).
   */
  handles(url: string | undefined): boolean {
    if (url === undefined) return false;
    return !url.startsWith('/') || url === RELAY_PREFIX || url.startsWith(`${RELAY_PREFIX}/`) || url.startsWith(`${RELAY_PREFIX}?`);
  }

  /**
   * Handles one relay request; never throws. With `Expect: 100-continue` the client
   * is told to send its body only once the request is admitted (RFC 9110 §10.1.1).
   */
  async handle(req: IncomingMessage, res: ServerResponse, expectsContinue = false): Promise<void> {
    try {
      const { route, path, query, caller } = await this.admit(req);
      if (expectsContinue) res.writeContinue();
      await this.forward(req, res, route, `${path}${query}`, caller);
    } catch (err) {
      this.fail(res, err, req.method);
    }
  }

  /** Checks, in order: framing, path, route, caller, body size, policy. Throws a RelayError to refuse. */
  private async admit(req: IncomingMessage): Promise<{ route: UpstreamRoute; path: string; query: string; caller: RelayCaller }> {
    checkRequestFraming(req.rawHeaders);
    const target = normalizeRelayPath(req.url ?? '', this.pathOptions);
    const route = this.routes.get(target.upstream);
    if (!route) throw new RelayError('unknown_upstream', `No upstream named "${target.upstream}" is configured.`, 404);
    // The remote address: a token that does not verify counts against it (per-source refusal limit).
    // The method, target and DPoP fields: what a proof for a token bound to a key must match (RFC 9449 §4.3).
    const caller = await this.deps.auth.authenticate(req.headers, Date.now(), req.socket.remoteAddress, { method: req.method ?? 'GET', target: req.url ?? '', rawHeaders: req.rawHeaders });
    const length = req.headers['content-length'];
    if (length !== undefined && Number(length) > route.config.maxBody) {
      throw new RelayError('body_too_large', `The request body is larger than this route's limit of ${route.config.maxBody} bytes.`, 413);
    }
    const method = req.method ?? 'GET';
    const creator = caller.creator === undefined ? undefined : await this.creatorOf(caller.creator);
    // aws_sigv4 upstreams forwarding X-Amz-Target: the operation is part of the decision.
    const awsTarget = awsTargetOf(route.config.inject, req.rawHeaders);
    // aws_sigv4 upstreams: the query's names pick S3 operations (?acl); guarded ones are refused here.
    const awsQueryKeys = awsQueryKeysOf(route.config.inject, target.query);
    const decision = this.decide(caller, creator, route.name, method, target.path, awsTarget, awsQueryKeys);
    const principal = entityString({ type: 'Job', id: caller.identity.jobId });
    const resource = entityString(upstreamRef(route.name));
    const policies = determiningPolicies(decision);
    if (decision.decision === 'deny') {
      const id = randomUUID();
      // Denials are logged one by one, with the normalised path (never the query).
      await this.deps.log.record([
        {
          id,
          time: new Date().toISOString(),
          principal,
          action: 'proxy',
          resource,
          decision: 'deny',
          policies,
          reason: decision.reason,
          ...(decision.errors.length > 0 ? { errors: decision.errors.map((e) => ({ policyId: e.policyId ?? '', message: e.message })) } : {}),
          policyRevision: decision.revision,
          context: mergeObjects(caller.recordContext, {
            upstream: route.name,
            method,
            path: target.path,
            ...(awsTarget !== undefined ? { aws_target: awsTarget } : {}),
            ...(awsQueryKeys !== undefined ? { aws_query_keys: awsQueryKeys } : {}),
            ...unmatchedPermitsContext(decision),
          }),
        },
      ]);
      throw new RelayError('access_denied', `Policy denied ${method} ${target.path} on ${route.name}: ${decision.reason}`, 403, { 'x-port-decision-id': id });
    }
    // Fail closed: a request Port could not record (its store can't write) is not forwarded.
    const store = this.deps.store.health();
    if (!store.writable) {
      throw new RelayError('store_unavailable', `Port cannot record relay requests right now (${store.reason ?? 'its store cannot write'}), so it forwards none; retry shortly.`, 503);
    }
    this.allows.count({ principal, resource, upstream: route.name, method, token: caller.tokenId, policies, reason: decision.reason, revision: decision.revision, context: caller.recordContext });
    return { route, path: target.path, query: target.query, caller };
  }

  /**
   * Per token: a token names one job and at most one creator, so no decision serves
   * another token. The creator's record is the entry's basis: once it changes (a group
   * lost, a deactivation) the entry no longer answers.
   */
  private decide(caller: RelayCaller, creator: CreatorInfo | undefined, upstream: string, method: string, path: string, awsTarget?: string, awsQueryKeys?: string[]): Decision {
    const now = Date.now();
    // Query names may hold any decoded byte but controls: JSON keeps the key unambiguous.
    const key = `${caller.tokenId}\n${upstream}\n${method}\n${path}\n${awsTarget ?? ''}\n${awsQueryKeys ? JSON.stringify(awsQueryKeys) : ''}`;
    const cached = this.cache.get(key, this.deps.policy.revision, now, creator);
    if (cached) return cached;
    // The agent's facts come with the token (signed at exchange): no lookup per request.
    const pool = poolFor(this.deps.config, caller.identity);
    const { principal, entities } = jobRequestParts(caller.identity, { creator, agent: caller.agent, pool: pool.kind === 'pool' ? pool.pool : undefined });
    const { decision, source } = this.deps.policy.decideWithSource({ principal, action: 'proxy', resource: upstreamRef(upstream), context: { method, path, ...(awsTarget !== undefined ? { aws_target: awsTarget } : {}), ...(awsQueryKeys !== undefined ? { aws_query_keys: awsQueryKeys } : {}) }, entities });
    // A memo answer costs about what this cache's lookup does: keeping it too would only add
    // entries that outlive the young generation (measured: a new path on every request).
    if (source !== 'memo') this.cache.set(key, decision, now, creator);
    return decision;
  }

  /**
   * The creator's directory record, undefined when Port has none (policies that need it
   * don't match). A store that doesn't answer refuses the request: deciding without the
   * creator could skip a `forbid` on their groups (fail closed).
   */
  private async creatorOf(email: string): Promise<CreatorInfo | undefined> {
    try {
      return await this.deps.creators.lookup(email);
    } catch (err) {
      this.deps.onError(err, "relay: cannot read the build creator's directory record");
      throw new RelayError('creator_unavailable', "Port could not read the build creator's directory record to decide this request; retry shortly.", 503);
    }
  }

  private async forward(req: IncomingMessage, res: ServerResponse, route: UpstreamRoute, pathAndQuery: string, caller: RelayCaller): Promise<void> {
    const headers = this.outgoingHeaders(req, route);
    const hasBody = req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] ?? '0') !== '0';
    let body: BodyLimit | Buffer | null = null;
    const sigv4 = route.config.inject?.kind === 'aws_sigv4' ? route.config.inject : undefined;
    if (sigv4 && sigv4.service !== 's3') {
      // Other services sign the body's hash: read it whole (capped) before signing.
      body = hasBody ? await bufferBody(req, Math.min(route.config.maxBody, AWS_SIGV4_MAX_BUFFERED_BODY)) : null;
      if (body) headers['content-length'] = String(body.length);
    } else if (hasBody) {
      const limited = new BodyLimit(route.config.maxBody);
      body = limited;
      // `pipe` keeps back-pressure; a client that leaves mid-body fails the upstream
      // request through its body stream. (stream/promises' pipeline costs ~10 µs per
      // call on Node 20 for its AbortSignal: BENCHMARKS.md, bench/relay.)
      req.once('close', () => {
        if (!req.complete) limited.destroy(new RelayError('client_closed', 'The client closed the request.', 499));
      });
      req.pipe(limited);
    }
    if (sigv4) {
      const target = awsTargetOf(sigv4, req.rawHeaders);
      await this.signForAws(sigv4, route, req.method ?? 'GET', pathAndQuery, headers, body instanceof Buffer ? body : undefined, caller, target);
    }
    const clientGone = new ClientGone();
    // A client that goes away cancels the upstream request (and its body stream).
    res.once('close', () => {
      if (!res.writableFinished) clientGone.abort();
    });
    const upstream = await route.pool.request({
      path: `${route.basePath}${pathAndQuery}`,
      method: (req.method ?? 'GET') as 'GET',
      headers,
      body,
      signal: clientGone,
      headersTimeout: route.config.timeout * 1000,
      bodyTimeout: this.deps.config.relay.clientIdleTimeout * 1000,
    });
    const down = downstreamResponseHeaders(upstream.headers);
    addVia(down);
    res.writeHead(upstream.statusCode, down);
    await new Promise<void>((resolve) => {
      // An upstream that fails mid-body cuts the response (the status is already sent).
      upstream.body.once('error', () => {
        res.destroy();
        resolve();
      });
      // A client that goes away stops the upstream body (undici then drops the socket).
      res.once('close', () => {
        if (!upstream.body.destroyed) upstream.body.destroy();
        resolve();
      });
      upstream.body.pipe(res);
    });
  }

  /** SigV4 with the calling job's own session of the upstream's aws_role credential. */
  private async signForAws(
    inject: { service: string; region: string; credential: string; forwardHeaders: string[] },
    route: UpstreamRoute,
    method: string,
    pathAndQuery: string,
    headers: Record<string, string | string[]>,
    body: Buffer | undefined,
    caller: RelayCaller,
    /** The X-Amz-Target `proxy` decided on (aws-sigv4-headers.ts), or none. */
    awsTarget: string | undefined,
  ): Promise<void> {
    if (!this.deps.awsSessions) throw new RelayError('credential_unavailable', 'This Port has no AWS session source for SigV4 signing.', 503);
    dropUnlistedAmzHeaders(headers, inject.forwardHeaders);
    if (awsTarget === undefined) delete headers['x-amz-target'];
    else headers['x-amz-target'] = awsTarget;
    const session = await this.deps.awsSessions.session(inject.credential, caller, route.name);
    const q = pathAndQuery.indexOf('?');
    // Loaded on the first SigV4 upstream request: the AWS signer and its hashing (~6 MB
    // resident) would otherwise sit in every Port that relays nothing to AWS.
    awsSigner ??= import('./aws-sigv4-signer.js');
    const { signAwsRequest } = await awsSigner;
    await signAwsRequest({
      method,
      path: `${route.basePath}${q < 0 ? pathAndQuery : pathAndQuery.slice(0, q)}`,
      query: q < 0 ? '' : pathAndQuery.slice(q + 1),
      headers,
      body,
      service: inject.service,
      region: inject.region,
      credentials: session,
    });
  }

  /** The caller's headers, cleaned (src/relay/headers), with Port's forwarding headers and the upstream's credential. */
  private outgoingHeaders(req: IncomingMessage, route: UpstreamRoute): Record<string, string | string[]> {
    const headers = upstreamRequestHeaders(req.rawHeaders, {
      upstreamHost: route.host,
      clientIp: req.socket.remoteAddress ?? '',
      proto: this.publicProto,
      publicHost: this.publicHost,
      allowUpgrade: false,
    });
    route.inject(headers);
    addVia(headers);
    return headers;
  }

  /**
   * Upgrade requests (e.g. WebSocket) are refused unless the route allows them; an
   * allowed one is authenticated and decided like any request, then the two sockets
   * are joined. Never throws.
   */
  async handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', () => socket.destroy());
    try {
      const target = normalizeRelayPath(req.url ?? '', this.pathOptions);
      if (!this.routes.get(target.upstream)?.config.allowUpgrade) {
        throw new RelayError('upgrade_not_allowed', 'Protocol upgrades are not allowed on this route.', 403);
      }
      if (this.routes.get(target.upstream)?.config.inject?.kind === 'aws_sigv4') {
        throw new RelayError('upgrade_not_allowed', 'Protocol upgrades are not signed with SigV4; this route does not allow them.', 403);
      }
      const { route, path, query } = await this.admit(req);
      // undici's upgrade() sets Upgrade and Connection itself from `protocol`.
      const headers = this.outgoingHeaders(req, route);
      const up = await route.pool.upgrade({
        path: `${route.basePath}${path}${query}`,
        method: (req.method ?? 'GET') as 'GET',
        headers,
        protocol: String(req.headers.upgrade ?? ''),
      });
      const lines = ['HTTP/1.1 101 Switching Protocols'];
      for (const [name, value] of Object.entries(downstreamResponseHeaders(up.headers))) {
        for (const v of Array.isArray(value) ? value : [value]) lines.push(`${name}: ${v}`);
      }
      lines.push('connection: upgrade', `upgrade: ${String(up.headers.upgrade ?? req.headers.upgrade ?? '')}`);
      socket.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (head.length > 0) up.socket.write(head);
      up.socket.on('error', () => socket.destroy());
      socket.pipe(up.socket).pipe(socket);
    } catch (err) {
      const e = err instanceof PortError ? err : (upstreamFailure(err) ?? new RelayError('server_error', 'The relay failed to handle the request; see its log.', 500));
      if (!(err instanceof PortError) && !upstreamFailure(err)) this.deps.onError(err, 'relay upgrade failed');
      const body = JSON.stringify({ error: e.code, error_description: e.message });
      const extra = e instanceof RelayError ? Object.entries(e.headers).flatMap(([k, v]) => (Array.isArray(v) ? v : [v]).map((x) => `${k}: ${x}\r\n`)).join('') : '';
      socket.end(`HTTP/1.1 ${e.status} ${STATUS_CODES[e.status] ?? 'Error'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${extra}connection: close\r\n\r\n${body}`);
    }
  }

  private fail(res: ServerResponse, err: unknown, method = 'GET'): void {
    const cause = (err as { cause?: unknown })?.cause;
    let refusal = err instanceof PortError ? err : cause instanceof PortError ? cause : upstreamFailure(err);
    if (!refusal) {
      this.deps.onError(err, 'relay request failed');
      refusal = new RelayError('server_error', 'The relay failed to handle the request; see its log.', 500);
    }
    this.deps.onRefused({ status: refusal.status, code: refusal.code, method });
    sendRelayError(res, refusal);
  }

  reloadSecrets(): void {
    for (const route of this.routes.values()) {
      try {
        route.reloadSecrets();
      } catch (err) {
        this.deps.onError(err, `relay: cannot re-read the secret of upstream ${route.name}; keeping the old one`);
      }
    }
  }

  async close(): Promise<void> {
    await this.allows.close();
    await Promise.all([...this.routes.values()].map((r) => r.close()));
  }
}

/** RFC 9110 §7.6.3: an intermediary adds itself to `Via` in both directions. */
function addVia(headers: Record<string, string | string[]>): void {
  const prior = headers.via;
  headers.via = prior === undefined ? '1.1 port' : `${Array.isArray(prior) ? prior.join(', ') : prior}, 1.1 port`;
}

/** undici's failures, as the caller should see them: 504 for timeouts, 502 for the rest. */
function upstreamFailure(err: unknown): RelayError | undefined {
  if (err instanceof undiciErrors.ConnectTimeoutError || err instanceof undiciErrors.HeadersTimeoutError) {
    return new RelayError('upstream_timeout', 'The upstream did not answer in time.', 504);
  }
  if (err instanceof undiciErrors.RequestAbortedError) return new RelayError('client_closed', 'The client closed the request.', 499);
  const code = (err as NodeJS.ErrnoException)?.code;
  // undici's HTTPParserError (an upstream that doesn't speak valid HTTP) is not an UndiciError.
  if (
    err instanceof undiciErrors.UndiciError ||
    err instanceof undiciErrors.HTTPParserError ||
    (typeof code === 'string' && /^(E[A-Z]+|HPE_)/.test(code))
  ) {
    return new RelayError('upstream_unavailable', 'The upstream could not be reached or closed the connection.', 502);
  }
  return undefined;
}

/** The SigV4 signer module, loaded once on first use. */
let awsSigner: Promise<typeof import('./aws-sigv4-signer.js')> | undefined;

/**
 * The upstream request's cancellation: undici takes an EventEmitter that emits `abort` as
 * well as an AbortSignal (https://undici.nodejs.org/#/docs/api/Dispatcher.md, `signal`),
 * and one costs a fraction of an AbortController and its EventTarget listener on every
 * relayed request (measured with bench/relay's profile).
 */
class ClientGone extends EventEmitter {
  /** Read by undici; with no `reason` it fails the request with RequestAbortedError (client_closed below). */
  aborted = false;

  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.emit('abort');
  }
}
