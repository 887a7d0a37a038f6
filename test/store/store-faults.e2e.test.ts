/**
 * The store disappears, moves or fills up under a running Port.
 * Port notices on the next write and fails closed — exchanges, credential releases,
 * revocations and relay requests answer 503 with the reason, /readyz says not ready —
 * and a restart never silently starts on an empty store.
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startPort } from '../../src/server/port-server.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { startHarness, TEST_POLICIES, type Harness } from '../helpers/port-harness.js';
import { RELAY_POLICIES } from '../helpers/relay-harness.js';
import { startRecordingUpstream, type RecordingUpstream } from '../helpers/relay/recording-upstream.js';
import { runPort } from '../helpers/spawn-port.js';

let h: Harness | undefined;
let upstream: RecordingUpstream | undefined;
const cleanups: (() => void)[] = [];
afterEach(async () => {
  await h?.close().catch(() => undefined);
  await upstream?.close();
  h = undefined;
  upstream = undefined;
  for (const c of cleanups.splice(0)) c();
});

/** A Port whose store lives in `storeDir` (absolute), with a relay upstream `files`. */
async function portWithStoreIn(storeDir: string): Promise<Harness> {
  upstream = await startRecordingUpstream();
  process.env.PORT_TEST_UPSTREAM_SECRET = 'upstream-secret';
  h = await startHarness({
    policies: RELAY_POLICIES,
    config: {
      store: { sqlite: join(storeDir, 'port.db') },
      upstreams: { files: { url: `${upstream.url}/base`, inject: { bearer: 'env:PORT_TEST_UPSTREAM_SECRET' } } },
      server: { listen: '127.0.0.1:0', public_url: 'https://port.acme.test', log_level: 'silent', admin_token: 'env:PORT_TEST_ADMIN' },
    },
  });
  return h;
}
process.env.PORT_TEST_ADMIN = 'admin-token-for-store-faults';

async function portToken(port: Harness, init: Record<string, unknown> = {}): Promise<string> {
  const job = port.sim.createJob({ pipelineSlug: 'deploy', branch: 'main', ...init });
  const res = await port.exchange(await port.sim.mintToken(job, { audience: port.audience }), { scope: 'deploy-token' });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body.access_token as string;
}

/** Everything that must fail closed, with the status and body each answered. */
async function attempts(port: Harness, token: string) {
  const exchange = await port.exchange(await port.sim.mintToken(port.sim.createJob({ pipelineSlug: 'deploy', branch: 'main' }), { audience: port.audience }));
  const credential = await fetch(`${port.url}/v1/credentials/deploy-token`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
  const revoke = await fetch(`${port.url}/v1/revocations`, {
    method: 'POST',
    headers: { authorization: `Bearer ${process.env.PORT_TEST_ADMIN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ scope: 'job', id: randomUUID(), reason: 'test' }),
  });
  const relay = await fetch(`${port.url}/relay/files/readme.txt`, { headers: { authorization: `Bearer ${token}` } });
  const ready = await fetch(`${port.url}/readyz`);
  return {
    exchange: { status: exchange.status, body: exchange.body },
    credential: { status: credential.status, body: await credential.json() },
    revoke: { status: revoke.status, body: await revoke.json() },
    relay: { status: relay.status, body: await relay.json() },
    ready: { status: ready.status, body: (await ready.json()) as { checks: Record<string, string> } },
  };
}

function expectFailedClosed(r: Awaited<ReturnType<typeof attempts>>, reason: RegExp) {
  for (const [what, res] of Object.entries({ exchange: r.exchange, credential: r.credential, revoke: r.revoke, relay: r.relay })) {
    expect(res.status, `${what}: ${JSON.stringify(res.body)}`).toBe(503);
    expect(res.body.error, what).toBe('store_unavailable');
    expect(res.body.error_description, what).toMatch(reason);
    expect(res.body.error_description, what).not.toMatch(/\bat .*\.js:\d+/);
  }
  expect(r.ready.status).toBe(503);
  expect(r.ready.body.checks.store).toMatch(reason);
}

describe('the store is deleted, moved or replaced under a running Port', () => {
  it('deleting the store directory: every write fails closed with 503 and the reason, readyz says not ready, nothing reaches the upstream', async () => {
    const root = mkdtempSync(join(tmpdir(), 'port-store-gone-'));
    cleanups.push(() => rmSync(root, { recursive: true, force: true }));
    const port = await portWithStoreIn(join(root, 'data'));
    const token = await portToken(port);
    expect((await fetch(`${port.url}/relay/files/ok.txt`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
    expect((await fetch(`${port.url}/readyz`)).status).toBe(200);
    const forwarded = upstream!.requests.length;

    rmSync(join(root, 'data'), { recursive: true, force: true });

    expectFailedClosed(await attempts(port, token), /deleted or moved/);
    // The relay refused before forwarding: no request went out unrecorded, with injected credentials.
    expect(upstream!.requests.length).toBe(forwarded);
    // The store was not silently re-created.
    expect(existsSync(join(root, 'data', 'port.db'))).toBe(false);
  });

  it('renaming the store away and putting another file in its place: refused as replaced; renaming it back recovers', async () => {
    const root = mkdtempSync(join(tmpdir(), 'port-store-moved-'));
    cleanups.push(() => rmSync(root, { recursive: true, force: true }));
    const port = await portWithStoreIn(root);
    const token = await portToken(port);
    const db = join(root, 'port.db');
    renameSync(db, `${db}.moved`);
    await SqliteStore.open(db).close();
    expectFailedClosed(await attempts(port, token), /replaced/);

    rmSync(db);
    renameSync(`${db}.moved`, db);
    // Health re-checks the file at most every 100 ms.
    await new Promise((res) => setTimeout(res, 200));
    const relay = await fetch(`${port.url}/relay/files/again.txt`, { headers: { authorization: `Bearer ${token}` } });
    expect(relay.status).toBe(200);
    expect((await fetch(`${port.url}/readyz`)).status).toBe(200);
  });

  it('a restart never starts on an empty store: startPort and `port serve` refuse, naming the path and the fix', async () => {
    const root = mkdtempSync(join(tmpdir(), 'port-store-missing-'));
    cleanups.push(() => rmSync(root, { recursive: true, force: true }));
    const port = await portWithStoreIn(join(root, 'data'));
    await portToken(port);
    await port.port.close();
    rmSync(join(root, 'data'), { recursive: true, force: true });

    await expect(startPort(port.config, { logger: false })).rejects.toMatchObject({ code: 'store_missing' });
    expect(existsSync(join(root, 'data'))).toBe(false);

    const r = await runPort(['serve', '-c', join(port.dir, 'port.yaml')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(join(root, 'data', 'port.db'));
    expect(r.stderr).toMatch(/--create-store/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(existsSync(join(root, 'data', 'port.db'))).toBe(false);
    // An existing store is opened as before.
    h = undefined;
  });

  it('`port serve --create-store` creates a store on a first start', async () => {
    const root = mkdtempSync(join(tmpdir(), 'port-store-first-'));
    cleanups.push(() => rmSync(root, { recursive: true, force: true }));
    const policies = join(root, 'policies');
    mkdirSync(policies);
    for (const [name, text] of Object.entries(TEST_POLICIES)) writeFileSync(join(policies, name), text);
    const file = join(root, 'port.yaml');
    writeFileSync(
      file,
      [
        'server: { listen: "127.0.0.1:0", public_url: "https://port.acme.test" }',
        'store: { sqlite: ./state/port.db }',
        'buildkite: { organization: acme, issuer: "https://agent.buildkite.com", jwks_url: "http://127.0.0.1:9/jwks" }',
        'policies: ./policies',
      ].join('\n'),
    );
    const { spawnPort } = await import('../helpers/spawn-port.js');
    const p = spawnPort(['serve', '--create-store', '-c', file]);
    try {
      await p.waitFor(/Port is listening/);
      expect(existsSync(join(root, 'state', 'port.db'))).toBe(true);
    } finally {
      await p.stop();
    }
  });
});

/** Root can mount a small tmpfs; elsewhere the test says why it did not run. */
function mountTmpfs(dir: string, size: string): boolean {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'pipe' });
    return true;
  } catch (err) {
    if (process.env.CI) throw new Error(`CI must be able to mount a tmpfs (root): ${(err as Error).message}`);
    return false;
  }
}

/** Writes zeros until the file system refuses. */
function fill(file: string): void {
  try {
    execFileSync('dd', ['if=/dev/zero', `of=${file}`, 'bs=4096'], { stdio: 'pipe' });
  } catch {
    // dd exits 1 with "No space left on device": the point.
  }
}

describe('the disk fills up', () => {
  it('a full 2 MiB tmpfs: exchanges, releases, revocations and the relay answer 503 "disk is full"; freeing space recovers', async (ctx) => {
    const root = mkdtempSync(join(tmpdir(), 'port-store-full-'));
    if (!mountTmpfs(root, '2m')) {
      ctx.skip();
      return;
    }
    cleanups.push(() => {
      execFileSync('umount', ['-l', root]);
      rmSync(root, { recursive: true, force: true });
    });
    const port = await portWithStoreIn(root);
    const token = await portToken(port);
    fill(join(root, 'filler'));

    const r = await attempts(port, token);
    expectFailedClosed(r, /disk is full/);

    rmSync(join(root, 'filler'));
    // Readiness probes the store with a write; once it succeeds, Port serves again.
    const deadline = Date.now() + 10_000;
    while ((await fetch(`${port.url}/readyz`)).status !== 200 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 100));
    expect((await fetch(`${port.url}/readyz`)).status).toBe(200);
    expect((await fetch(`${port.url}/relay/files/after.txt`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
    expect((await portToken(port)).split('.')).toHaveLength(3);
  });
});
