import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { installErrorHandler } from '../../src/server/error-handler.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import type { BuildFinishedPayload, JobPayload, WebhookHandlers, WebhookRouteDeps } from '../../src/webhooks/webhook-route.js';
import { webhookRoutes } from '../../src/webhooks/webhook-route.js';
import { WebhookWork, type WebhookWorkOptions, type WebhookWorkOutcome } from '../../src/webhooks/webhook-work.js';

export const SECRET = 'whsec-test-0123456789abcdef';

/** https://buildkite.com/docs/apis/webhooks/pipelines: HMAC-SHA256 keyed with the webhook token over `<timestamp>.<raw body>`, lowercase hex. */
export function sign(body: string | Buffer, timestamp: number | string, secret = SECRET): string {
  return createHmac('sha256', secret).update(`${timestamp}.`).update(body).digest('hex');
}

export function signatureHeader(body: string | Buffer, timestamp = Math.floor(Date.now() / 1000), secret = SECRET): string {
  return `timestamp=${timestamp},signature=${sign(body, timestamp, secret)}`;
}

export function buildFinishedBody(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    event: 'build.finished',
    build: {
      id: '01908f3a-7d1e-4b5c-9a43-2f4f0b2c1d11',
      graphql_id: 'QnVpbGQtLS0wMTkw',
      url: 'https://api.buildkite.com/v2/organizations/acme/pipelines/deploy/builds/42',
      web_url: 'https://buildkite.com/acme/deploy/builds/42',
      number: 42,
      state: 'passed',
      blocked: true,
      blocked_state: 'passed',
      message: 'Release 1.2.3',
      commit: '9f0c1e2d3b4a5f60718293a4b5c6d7e8f9012345',
      branch: 'main',
      tag: 'v1.2.3',
      env: {},
      source: 'ui',
      author: null,
      creator: { id: '0188a1b2-c3d4-4e5f-8a9b-0c1d2e3f4a5b', name: 'Dana Deployer', email: 'dana@acme.test', avatar_url: 'https://x', created_at: '2024-01-01T00:00:00.000Z' },
      created_at: '2025-01-01T10:00:00.000Z',
      scheduled_at: '2025-01-01T10:00:00.000Z',
      started_at: '2025-01-01T10:00:01.000Z',
      finished_at: '2025-01-01T10:02:00.000Z',
      meta_data: {},
      pull_request: null,
    },
    pipeline: { id: '0187f0e1-aaaa-4bbb-8ccc-000000000001', slug: 'deploy', name: 'Deploy', repository: 'git@github.com:acme/app.git' },
    sender: { id: '0188a1b2-0000-4e5f-8a9b-0c1d2e3f4a5b', name: 'Webhook Owner' },
    ...overrides,
  };
}

export function jobBody(event: 'job.finished' | 'job.activated', job: Record<string, unknown> = {}): Record<string, unknown> {
  const build = buildFinishedBody().build as Record<string, unknown>;
  return {
    event,
    job: {
      id: '01908f3a-9999-4b5c-9a43-2f4f0b2c1d22',
      graphql_id: 'Sm9iLS0t',
      type: 'manual',
      label: 'Deploy to production?',
      step_key: 'approve-prod',
      state: 'unblocked',
      unblocked_by: { id: '0188a1b2-1111-4e5f-8a9b-0c1d2e3f4a5b', name: 'Ann Approver', email: 'ann@acme.test' },
      unblocked_at: '2025-01-01T10:05:00.000Z',
      unblockable: false,
      retry_source: null,
      ...job,
    },
    build: { ...build, blocked: false, state: 'running' },
    pipeline: { id: '0187f0e1-aaaa-4bbb-8ccc-000000000001', slug: 'deploy', name: 'Deploy' },
    sender: { id: '0188a1b2-0000-4e5f-8a9b-0c1d2e3f4a5b', name: 'Webhook Owner' },
  };
}

export interface Recorded {
  buildFinished: BuildFinishedPayload[];
  jobFinished: JobPayload[];
  jobActivated: JobPayload[];
  errors: unknown[];
  dropped: { event: string; problems: string[] }[];
  /** What became of each delivery's work (WebhookWork's onOutcome). */
  outcomes: WebhookWorkOutcome[];
}

export interface Harness {
  url: string;
  app: FastifyInstance;
  store: SqliteStore;
  /** The delivery work queue the route uses (shared with a reconciler in tests). */
  work: WebhookWork;
  handlers: WebhookHandlers;
  calls: Recorded;
  /** POSTs to /webhooks/buildkite with the given raw body and headers. */
  post(body: string | Buffer, headers: Record<string, string>): Promise<{ status: number; body: any; text: string; headers: Headers }>;
  /** A signed delivery of `payload` as `event` (defaults: now, SECRET). */
  deliver(event: string, payload: unknown, opts?: { timestamp?: number; secret?: string }): Promise<{ status: number; body: any; text: string }>;
  close(): Promise<void>;
}

export async function startWebhookHarness(
  opts: {
    secret?: string | undefined;
    token?: string | undefined;
    maxBytes?: number;
    handlers?: (calls: Recorded) => WebhookHandlers;
    extra?: (app: FastifyInstance) => void;
    /** WebhookWork options (clock, backoff, owner). */
    work?: Partial<Omit<WebhookWorkOptions, 'store' | 'handlers'>>;
    /** An existing store file to open (two processes on one store, restarts). */
    storePath?: string;
  } = {},
): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'port-webhooks-'));
  const store = SqliteStore.open(opts.storePath ?? join(dir, 'port.db'));
  const calls: Recorded = { buildFinished: [], jobFinished: [], jobActivated: [], errors: [], dropped: [], outcomes: [] };
  const handlers: WebhookHandlers = opts.handlers?.(calls) ?? {
    async buildFinished(p) {
      calls.buildFinished.push(p);
    },
    async jobFinished(p) {
      calls.jobFinished.push(p);
    },
    async jobActivated(p) {
      calls.jobActivated.push(p);
    },
  };
  const app = Fastify({ logger: false });
  installErrorHandler(app);
  opts.extra?.(app);
  const work = new WebhookWork({
    store,
    handlers,
    onError: (err) => calls.errors.push(err),
    onOutcome: (o) => calls.outcomes.push(o),
    ...opts.work,
  });
  const deps: WebhookRouteDeps = {
    work,
    secret: () => ('secret' in opts ? opts.secret : SECRET),
    token: () => opts.token,
    store,
    handlers,
    onError: (err) => calls.errors.push(err),
    onDropped: (info) => calls.dropped.push({ event: info.event, problems: info.problems }),
    ...(opts.maxBytes !== undefined ? { maxBytes: opts.maxBytes } : {}),
  };
  webhookRoutes(app, deps);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  const url = typeof address === 'object' && address ? `http://127.0.0.1:${address.port}` : '';

  const post: Harness['post'] = async (body, headers) => {
    const res = await fetch(`${url}/webhooks/buildkite`, { method: 'POST', body: typeof body === 'string' ? body : new Uint8Array(body), headers: { 'content-type': 'application/json', ...headers } });
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    return { status: res.status, body: parsed, text, headers: res.headers };
  };
  return {
    url,
    app,
    store,
    work,
    handlers,
    calls,
    post,
    deliver(event, payload, o = {}) {
      const body = JSON.stringify(payload);
      return post(body, { 'x-buildkite-event': event, 'x-buildkite-signature': signatureHeader(body, o.timestamp, o.secret) });
    },
    async close() {
      await app.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Lets queued setImmediate dispatches and their handlers run. */
export async function settle(ms = 50): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

/** A POST with a chunked body (no Content-Length), through node:http. */
export function postChunked(url: string, headers: Record<string, string>, chunks: Buffer[]): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${url}/webhooks/buildkite`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers } }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => {
        const text = Buffer.concat(parts).toString();
        resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : undefined });
      });
    });
    // The server may answer and close before every chunk is written.
    req.on('error', reject);
    for (const c of chunks) req.write(c);
    req.end();
  });
}
