import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'vitest';
import type { ApprovalRequestRecord } from '../../src/approvals/records.js';
import { TEST_POLICIES, startHarness, type Harness } from '../helpers/port-harness.js';
import { spawnPort } from '../helpers/spawn-port.js';
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

export interface RevocationHarness extends Harness {
  upstream: Server;
  relay(token: string): Promise<number>;
  introspect(token: string): Promise<boolean>;
  /** A Port token for a Buildkite token of `job` (200 expected). */
  portToken(job: SimJob, opts?: { scope?: string; now?: number }): Promise<string>;
  bkToken(job: SimJob, now?: number): Promise<string>;
  /** POST /v1/revocations with a bearer (the admin token by default). */
  revoke(body: unknown, bearer?: string, init?: { contentType?: string; raw?: string }): Promise<{ status: number; body: any }>;
  /** `port revoke …` through the real CLI (admin token from the environment). */
  cli(args: string[], input?: string): Promise<{ code: number | null; stdout: string; stderr: string }>;
}

export async function startRevocationHarness(): Promise<RevocationHarness> {
  const upstream = createServer((_req, res) => res.end('ok'));
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  process.env.PORT_TEST_ADMIN_TOKEN = ADMIN_TOKEN;
  process.env.PORT_TEST_WEBHOOK_SECRET = WEBHOOK_SECRET;
  process.env.PORT_TEST_UPSTREAM_SECRET = 'upstream-secret';
  process.env.PORT_TEST_INTROSPECTION = 'introspection-secret';
  const h = await startHarness({
    policies: REVOCATION_POLICIES,
    config: (sim) => {
      process.env.PORT_TEST_BK_API_TOKEN = sim.apiToken;
      return {
        server: { listen: '127.0.0.1:0', public_url: 'https://port.acme.test', log_level: 'silent', admin_token: 'env:PORT_TEST_ADMIN_TOKEN' },
        issuer: { introspection_token: 'env:PORT_TEST_INTROSPECTION' },
        buildkite: {
          organization: 'acme',
          issuer: sim.issuer,
          jwks_url: sim.jwksUrl,
          audience: 'https://port.acme.test',
          api_url: sim.url,
          api_token: 'env:PORT_TEST_BK_API_TOKEN',
          webhook_secret: 'env:PORT_TEST_WEBHOOK_SECRET',
        },
        upstreams: { echo: { url: upstreamUrl, inject: { bearer: 'env:PORT_TEST_UPSTREAM_SECRET' } } },
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
