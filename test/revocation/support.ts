import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'vitest';
import type { ApprovalRequestRecord } from '../../src/store/records/approvals.js';
import { TEST_POLICIES, startHarness, type Harness } from '../helpers/port-harness.js';
import { spawnPort } from '../helpers/spawn-port.js';
import { SCIM_TOKEN } from '../scim/scim-client.js';
import type { SimJob } from '../../src/sim/index.js';

export const ADMIN_TOKEN = 'revocation-test-admin-token';
export const WEBHOOK_SECRET = 'revocation-test-webhook-secret';

export const REVOCATION_POLICIES: Record<string, string> = {
  ...TEST_POLICIES,
  'relay.cedar': `
@id("echo-for-jobs")
permit (principal is Port::Job, action == Port::Action::"proxy", resource == Port::Upstream::"echo");
`,
  'creator.cedar': `
@id("npm-by-deployers")
@reason("deployers' builds may publish")
permit (principal, action == Port::Action::"assume", resource == Port::Credential::"npm-publish")
when { principal has creator && principal.creator in Port::Group::"deployers" };
`,
};

export interface RevocationHarnessOptions {
  /** Turn SCIM on (token SCIM_TOKEN from test/scim/scim-client.ts). */
  scim?: boolean;
  /** Give Port `buildkite.api_token` (default true): without it Port never knows build creators. */
  buildkiteApi?: boolean;
  /** `relay.accept_buildkite_tokens`. */
  relayBuildkiteTokens?: boolean;
}

export interface RevocationHarness extends Harness {
  upstream: Server;
  relay(token: string): Promise<number>;
  /** The relay's status and JSON error body. */
  relayAnswer(token: string): Promise<{ status: number; body: any }>;
  /** POST /v1/credentials/{name} with the bearer. */
  credential(name: string, bearer: string): Promise<{ status: number; body: any }>;
  /** DELETE /v1/revocations (lift) with a bearer (the admin token by default). */
  lift(body: unknown, bearer?: string): Promise<{ status: number; body: any }>;
  introspect(token: string): Promise<boolean>;
  /** A Port token for a Buildkite token of `job` (200 expected). */
  portToken(job: SimJob, opts?: { scope?: string; now?: number }): Promise<string>;
  bkToken(job: SimJob, now?: number): Promise<string>;
  /** POST /v1/revocations with a bearer (the admin token by default). */
  revoke(body: unknown, bearer?: string, init?: { contentType?: string; raw?: string }): Promise<{ status: number; body: any }>;
  /** `port revoke …` through the real CLI (admin token from the environment). */
  cli(args: string[], input?: string): Promise<{ code: number | null; stdout: string; stderr: string }>;
}

let harnesses = 0;

export async function startRevocationHarness(opts: RevocationHarnessOptions = {}): Promise<RevocationHarness> {
  const upstream = createServer((_req, res) => res.end('ok'));
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  process.env.PORT_TEST_ADMIN_TOKEN = ADMIN_TOKEN;
  process.env.PORT_TEST_WEBHOOK_SECRET = WEBHOOK_SECRET;
  process.env.PORT_TEST_UPSTREAM_SECRET = 'upstream-secret';
  process.env.PORT_TEST_INTROSPECTION = 'introspection-secret';
  process.env.PORT_TEST_REVOCATION_SCIM_TOKEN = SCIM_TOKEN;
  const apiTokenVar = `PORT_TEST_BK_API_TOKEN_${process.pid}_${++harnesses}`;
  const h = await startHarness({
    policies: REVOCATION_POLICIES,
    config: (sim) => {
      // One variable per harness: Port reads it on every call, and tests may run two harnesses at once.
      process.env[apiTokenVar] = sim.apiToken;
      return {
        server: { listen: '127.0.0.1:0', public_url: 'https://port.acme.test', log_level: 'silent', admin_token: 'env:PORT_TEST_ADMIN_TOKEN' },
        issuer: { introspection_token: 'env:PORT_TEST_INTROSPECTION' },
        buildkite: {
          organization: 'acme',
          issuer: sim.issuer,
          jwks_url: sim.jwksUrl,
          audience: 'https://port.acme.test',
          api_url: sim.url,
          ...(opts.buildkiteApi === false ? {} : { api_token: `env:${apiTokenVar}` }),
          webhook_secret: 'env:PORT_TEST_WEBHOOK_SECRET',
        },
        upstreams: { echo: { url: upstreamUrl, inject: { bearer: 'env:PORT_TEST_UPSTREAM_SECRET' } } },
        ...(opts.relayBuildkiteTokens ? { relay: { accept_buildkite_tokens: true } } : {}),
        ...(opts.scim ? { scim: { token: 'env:PORT_TEST_REVOCATION_SCIM_TOKEN' } } : {}),
      };
    },
  });
  const bkToken = (job: SimJob, now?: number) =>
    h.sim.mintToken(job, { audience: h.audience, claims: ['cluster_name', 'queue_key'], ...(now !== undefined ? { now } : {}) });
  return {
    ...h,
    upstream,
    async relay(token) {
      const res = await fetch(`${h.url}/relay/echo/x`, { headers: { authorization: `Bearer ${token}` } });
      await res.text();
      return res.status;
    },
    async relayAnswer(token) {
      const res = await fetch(`${h.url}/relay/echo/x`, { headers: { authorization: `Bearer ${token}` } });
      const text = await res.text();
      return { status: res.status, body: res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text };
    },
    async credential(name, bearer) {
      const res = await fetch(`${h.url}/v1/credentials/${name}`, { method: 'POST', headers: { authorization: `Bearer ${bearer}` } });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : undefined };
    },
    async lift(body, bearer = ADMIN_TOKEN) {
      const res = await fetch(`${h.url}/v1/revocations`, {
        method: 'DELETE',
        headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : undefined };
    },
    async introspect(token) {
      const res = await h.post('/oauth/introspect', { token }, { authorization: 'Bearer introspection-secret' });
      expect(res.status).toBe(200);
      return res.body.active === true;
    },
    bkToken,
    async portToken(job, opts = {}) {
      const res = await h.exchange(await bkToken(job, opts.now), opts.scope ? { scope: opts.scope } : {});
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      return res.body.access_token as string;
    },
    async revoke(body, bearer = ADMIN_TOKEN, init = {}) {
      const res = await fetch(`${h.url}/v1/revocations`, {
        method: 'POST',
        headers: { authorization: `Bearer ${bearer}`, 'content-type': init.contentType ?? 'application/json' },
        body: init.raw ?? JSON.stringify(body),
      });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : undefined };
    },
    async cli(args, input) {
      const p = spawnPort(['revoke', ...args, '--url', h.url], { env: { PORT_ADMIN_TOKEN: ADMIN_TOKEN, PORT_URL: '' }, ...(input !== undefined ? { input } : {}) });
      const code = await p.exited;
      return { code, stdout: p.stdout(), stderr: p.stderr() };
    },
    async close() {
      await h.close();
      await new Promise((r) => upstream.close(r));
    },
  };
}

/** A pending approval request for a build (inserted as the approvals flow would). */
export function pendingRequest(init: { build: { pipeline: string; number: number; creator?: string }; jobId: string; approvals?: string[] }): ApprovalRequestRecord {
  const now = Date.now();
  return {
    id: crypto.randomUUID(),
    jobId: init.jobId,
    buildId: crypto.randomUUID(),
    build: {
      organization: 'acme',
      pipeline: init.build.pipeline,
      number: init.build.number,
      branch: 'main',
      tag: null,
      commit: 'a'.repeat(40),
      source: 'ui',
      ...(init.build.creator ? { creator: { email: init.build.creator, active: true, groups: [] } } : {}),
    },
    step: { step: 'deploy', fields: {}, label: 'Deploy?', key: 'deploy' },
    authors: init.build.creator ? [init.build.creator] : [],
    requirement: { approvals: 2, groups: [], policies: [], reason: 'two approvals' },
    status: 'pending',
    createdAt: now,
    expiresAt: now + 3_600_000,
    approvals: (init.approvals ?? []).map((email) => ({ email, groups: [], decision: 'approve' as const, comment: '', at: now, policies: [] })),
  };
}

/** A build of acme/deploy on main by `email` (null: no creator), with two running command jobs. */
export function buildBy(h: Harness, email: string | null): { build: import('../../src/sim/index.js').SimBuild; a: SimJob; b: SimJob } {
  const creator = email === null ? null : h.sim.createUser({ name: email, email });
  const build = h.sim.createBuild({ pipelineSlug: 'deploy', branch: 'main', creator, steps: [{ type: 'command', key: 'a' }, { type: 'command', key: 'b' }] });
  const [a, b] = build.jobs.map((j) => j.oidcJob!);
  return { build, a: a!, b: b! };
}

/** Whether the token still works: the relay and introspection must agree. */
export async function works(h: RevocationHarness, token: string): Promise<boolean> {
  const relay = await h.relay(token);
  const active = await h.introspect(token);
  expect(relay === 200, `relay ${relay} but introspection active=${active}`).toBe(active);
  return active;
}

/** Waits past the current second: Buildkite's `iat` is in whole seconds. */
export const nextSecond = () => new Promise((r) => setTimeout(r, 1100));
