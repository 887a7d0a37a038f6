/**
 * Two Port replicas (in this process, each a full startPort) on one PostgreSQL
 * database agree on what must be agreed: single use, revocations, the leader, the log.
 * The multi-process version, with a load balancer and kill -9, is replicas.e2e.test.ts.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configFromObject } from '../../src/config/config.js';
import { startPort, type RunningPort } from '../../src/server/port-server.js';
import { BuildkiteSimulator } from '../../src/sim/index.js';
import { verifyAuditLog } from '../../src/audit/verify.js';
import { TEST_POLICIES } from '../helpers/port-harness.js';
import { createTestDatabase, postgresUnavailable, type TestDatabase } from '../helpers/postgres.js';

const unavailable = await postgresUnavailable();
const ADMIN = 'admin-token-for-replicas';
const audience = 'https://port.acme.test';

describe.skipIf(unavailable !== undefined)('two replicas on one PostgreSQL database', () => {
  let db: TestDatabase;
  let sim: BuildkiteSimulator;
  let dir: string;
  let a: RunningPort;
  let b: RunningPort;

  const start = () => {
    const raw = {
      server: { listen: '127.0.0.1:0', public_url: audience, log_level: 'silent', admin_token: 'env:PORT_TEST_REPLICAS_ADMIN' },
      store: { postgres: 'env:PORT_TEST_REPLICAS_DB', lease_ttl: '3s' },
      buildkite: { organization: 'acme', issuer: sim.issuer, jwks_url: sim.jwksUrl, audience },
      policies: './policies',
      issuer: { introspection_token: 'env:PORT_TEST_REPLICAS_ADMIN' },
      credentials: { 'deploy-token': { type: 'port_token', audience: 'https://deploy.acme.test' } },
    };
    return startPort(configFromObject(raw, join(dir, 'port.yaml')), { logger: false });
  };

  beforeAll(async () => {
    db = await createTestDatabase();
    process.env.PORT_TEST_REPLICAS_DB = db.url;
    process.env.PORT_TEST_REPLICAS_ADMIN = ADMIN;
    sim = await BuildkiteSimulator.start({ organization: 'acme' });
    dir = mkdtempSync(join(tmpdir(), 'port-replicas-'));
    mkdirSync(join(dir, 'policies'));
    for (const [name, text] of Object.entries(TEST_POLICIES)) writeFileSync(join(dir, 'policies', name), text);
    // Both at once: migrations and the first signing key must survive the race.
    [a, b] = await Promise.all([start(), start()]);
  }, 60_000);

  afterAll(async () => {
    await Promise.allSettled([a?.close(), b?.close()]);
    await sim?.close();
    await db?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  const exchange = async (port: RunningPort, token: string) => {
    const res = await fetch(`${port.url}/oauth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: token, subject_token_type: 'urn:ietf:params:oauth:token-type:jwt' }),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  const introspect = async (port: RunningPort, token: string) => {
    const res = await fetch(`${port.url}/oauth/introspect`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Bearer ${ADMIN}` },
      body: new URLSearchParams({ token }),
    });
    return (await res.json()) as { active: boolean };
  };
  const role = async (port: RunningPort): Promise<string> => ((await (await fetch(`${port.url}/readyz`)).json()) as { checks: { role: string } }).checks.role;
  const until = async (check: () => Promise<boolean>, what: string, ms = 10_000) => {
    const deadline = Date.now() + ms;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  it('exactly one of them leads, and both are ready with a current change feed', async () => {
    const roles = await Promise.all([role(a), role(b)]);
    expect(roles.sort()).toEqual(['ok (follower, postgres)', 'ok (leader, postgres)']);
    for (const port of [a, b]) {
      const ready = await fetch(`${port.url}/readyz`);
      expect(ready.status).toBe(200);
      expect(((await ready.json()) as { checks: Record<string, string> }).checks.change_feed).toBe('ok');
    }
  });

  it('a Buildkite token exchanged on one replica is refused on the other, and a token signed by one verifies on the other', async () => {
    const token = await sim.mintToken(sim.createJob({ pipelineSlug: 'deploy', branch: 'main' }), { audience });
    const first = await exchange(a, token);
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    const again = await exchange(b, token);
    expect(again.status).toBe(400);
    expect(again.body.error).toBe('invalid_grant');
    expect(await introspect(b, first.body.access_token as string)).toMatchObject({ active: true });
  });

  it('a revocation made through one replica is refused by the other, without a restart', async () => {
    const job = sim.createJob({ pipelineSlug: 'deploy', branch: 'main' });
    const res = await exchange(b, await sim.mintToken(job, { audience }));
    const portToken = res.body.access_token as string;
    expect(await introspect(b, portToken)).toMatchObject({ active: true });
    const revoked = await fetch(`${a.url}/v1/revocations`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ scope: 'job', id: job.jobId, reason: 'replica test' }),
    });
    expect(revoked.status).toBeLessThan(300);
    await until(async () => !(await introspect(b, portToken)).active, 'replica B hears of the revocation');
    // A fresh Buildkite token of the revoked job buys nothing on B either.
    expect((await exchange(b, await sim.mintToken(job, { audience }))).status).toBe(400);
  });

  it('decisions from both replicas seal into one chain that verifies', async () => {
    await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const token = await sim.mintToken(sim.createJob({ pipelineSlug: 'deploy', branch: 'main' }), { audience });
        expect((await exchange(i % 2 ? a : b, token)).status).toBe(200);
      }),
    );
    await until(async () => (await a.store.decisions.unsealed()) === 0, 'the leader seals the outbox');
    const keys = new Map((await a.store.keys.list()).map((k) => [k.kid, k.publicJwk]));
    const report = await verifyAuditLog(b.store, keys);
    expect(report.ok, JSON.stringify(report.problems)).toBe(true);
    expect(report.entries).toBeGreaterThanOrEqual(20);
  });

  it('the leader stepping down (graceful stop) hands the lease to the other at once', async () => {
    const [leader, follower] = (await role(a)).includes('leader') ? [a, b] : [b, a];
    await leader.close();
    await until(async () => (await role(follower)).includes('leader'), 'the follower takes the lease', 6000);
    // The survivor still answers and seals on its own.
    const token = await sim.mintToken(sim.createJob({ pipelineSlug: 'deploy', branch: 'main' }), { audience });
    expect((await exchange(follower, token)).status).toBe(200);
    await until(async () => (await follower.store.decisions.unsealed()) === 0, 'the new leader seals');
    // Restart the stopped one so afterAll closes two running replicas.
    if (leader === a) a = await start();
    else b = await start();
  });
});
