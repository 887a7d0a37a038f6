/**
 * Several real `port serve` processes (the compiled bin, as an operator runs it) on one
 * PostgreSQL database, behind a small round-robin TCP load balancer — a replica
 * setup for end-to-end tests.
 *
 * One config file serves every replica: one Buildkite simulator, one recording upstream
 * for the relay (`files`), `store.postgres: env:PORT_DATABASE_URL`. Each replica listens
 * on a port of its own (`127.0.0.1:0`, read from its "Port is listening" log line).
 *
 * The balancer picks the next replica for every new client connection and pipes bytes
 * both ways; a replica that refuses the connection (it is dead) is skipped for the next.
 * It keeps a record of every connection (which replica, when opened and closed), which is
 * how a test proves traffic was spread and counts what was in flight to a replica.
 */
import { request as httpRequest } from 'node:http';
import { mkdirSync, writeFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import pg from 'pg';
import { stringify } from 'yaml';
import { BuildkiteSimulator } from '../../src/sim/index.js';
import { createTestDatabase, type TestDatabase } from './postgres.js';
import { RELAY_POLICIES } from './relay-harness.js';
import { startRecordingUpstream, type RecordingUpstream } from './relay/recording-upstream.js';
import { makeTempDir, removeDir, sleep } from './relay/util.js';
import { spawnPort, type Spawned } from './spawn-port.js';

export const CLUSTER_AUDIENCE = 'https://port.acme.test';
export const CLUSTER_ADMIN_TOKEN = 'replica-cluster-admin-token';
export const CLUSTER_WEBHOOK_TOKEN = 'replica-cluster-webhook-token';
export const CLUSTER_UPSTREAM_SECRET = 'replica-cluster-upstream-secret';

// ---------------------------------------------------------------------------------------
// One HTTP request per TCP connection.

export interface HttpAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  /** The JSON body, when there is one. */
  body: any;
}

/**
 * One request on a connection of its own (`agent: false`, `Connection: close`), so a
 * balancer in between picks a replica for each. Connection failures reject (code kept).
 */
export function send(url: string, init: { method?: string; headers?: Record<string, string>; body?: string; timeoutMs?: number } = {}): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: init.method ?? 'GET', headers: { connection: 'close', ...init.headers }, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('error', reject);
      res.on('end', () => {
        let body: unknown;
        if (text !== '' && String(res.headers['content-type'] ?? '').includes('json')) {
          try {
            body = JSON.parse(text);
          } catch {
            body = undefined;
          }
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, body });
      });
      // The connection closing before the body ended (a replica killed mid-answer).
      res.on('aborted', () => reject(Object.assign(new Error('the response was cut off'), { code: 'ECONNRESET' })));
    });
    req.setTimeout(init.timeoutMs ?? 15_000, () => req.destroy(Object.assign(new Error('request timed out'), { code: 'ETIMEDOUT' })));
    req.on('error', reject);
    req.end(init.body);
  });
}

// ---------------------------------------------------------------------------------------
// The balancer.

export interface BalancedConnection {
  id: number;
  /** Index of the replica it was piped to; undefined while connecting or when every replica refused. */
  replica: number | undefined;
  /** Replicas that refused it first (skipped). */
  refusedBy: number[];
  openedAt: number;
  closedAt?: number;
}

export interface Balancer {
  url: string;
  connections: BalancedConnection[];
  /** Connections piped to each replica so far. */
  perReplica(): number[];
  /** Connections to `replica` open at some moment in [from, to] (opened by `to`, not closed before `from`). */
  openDuring(replica: number, from: number, to: number): BalancedConnection[];
  close(): Promise<void>;
}

export async function startBalancer(targets: { host: string; port: number }[]): Promise<Balancer> {
  const connections: BalancedConnection[] = [];
  const sockets = new Set<Socket>();
  let next = 0;
  const server: Server = createServer({ pauseOnConnect: true }, (client) => {
    const conn: BalancedConnection = { id: connections.length, replica: undefined, refusedBy: [], openedAt: Date.now() };
    connections.push(conn);
    sockets.add(client);
    client.on('error', () => undefined);
    client.once('close', () => {
      conn.closedAt = Date.now();
      sockets.delete(client);
    });
    const first = next;
    next = (next + 1) % targets.length;
    const attempt = (tried: number) => {
      if (tried === targets.length || client.destroyed) return void client.destroy();
      const index = (first + tried) % targets.length;
      const upstream = connect(targets[index]!);
      sockets.add(upstream);
      upstream.once('close', () => sockets.delete(upstream));
      const refused = (err: NodeJS.ErrnoException) => {
        if (err.code === 'ECONNREFUSED') {
          conn.refusedBy.push(index);
          attempt(tried + 1);
        } else client.destroy();
      };
      upstream.once('error', refused);
      upstream.once('connect', () => {
        upstream.off('error', refused);
        conn.replica = index;
        // A reset on either side ends the other at once; an orderly end is passed on by pipe.
        upstream.on('error', () => client.destroy());
        client.on('error', () => upstream.destroy());
        client.once('close', () => upstream.destroy());
        upstream.pipe(client);
        client.pipe(upstream);
        client.resume();
      });
    };
    attempt(0);
  });
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    connections,
    perReplica() {
      const counts = targets.map(() => 0);
      for (const c of connections) if (c.replica !== undefined) counts[c.replica]!++;
      return counts;
    },
    openDuring(replica, from, to) {
      return connections.filter((c) => c.replica === replica && c.openedAt <= to && (c.closedAt === undefined || c.closedAt >= from));
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((res) => server.close(() => res()));
    },
  };
}

// ---------------------------------------------------------------------------------------
// The cluster.

export interface Replica {
  index: number;
  /** A, B, C, … */
  name: string;
  url: string;
  pid: number;
  proc: Spawned;
  /** Whether the process has not exited. */
  alive(): boolean;
  /** Whether this replica's request log names the request (Fastify logs `reqId` = the X-Request-Id Port answers with). */
  served(requestId: string): boolean;
}

export interface ReadyAnswer {
  status: number;
  checks: Record<string, string>;
}

export interface ReplicaCluster {
  dir: string;
  configFile: string;
  db: TestDatabase;
  sim: BuildkiteSimulator;
  upstream: RecordingUpstream;
  replicas: Replica[];
  balancer: Balancer;
  /** Environment every `port` process of this cluster needs (the database URL, secrets). */
  env: Record<string, string>;
  /** How long each replica took from spawn to /readyz 200 (ms). */
  startupMs: number[];
  readyz(replica: Replica): Promise<ReadyAnswer>;
  /** 'leader' / 'follower' from /readyz checks.role, or undefined when it doesn't answer. */
  role(replica: Replica): Promise<'leader' | 'follower' | undefined>;
  /** Live replicas whose /readyz says leader. */
  leaders(): Promise<Replica[]>;
  /** A query on the cluster's database (for assertions: decisions, outbox, leases). */
  query<R extends pg.QueryResultRow = any>(sql: string, params?: unknown[]): Promise<R[]>;
  /** Waits until the decision outbox is empty (the leader sealed everything committed so far). */
  sealed(timeoutMs?: number): Promise<void>;
  /** `port <args>` to completion with the cluster's environment. */
  runPort(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }>;
  close(): Promise<void>;
}

export interface ReplicaClusterOptions {
  replicas?: number;
  leaseTtl?: string;
  feedMaxLag?: string;
}

export async function startReplicaCluster(opts: ReplicaClusterOptions = {}): Promise<ReplicaCluster> {
  const count = opts.replicas ?? 3;
  const cleanups: (() => Promise<unknown>)[] = [];
  const cleanup = async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  };
  try {
    const dir = await makeTempDir('replica-cluster');
    cleanups.push(() => removeDir(dir));
    const db = await createTestDatabase();
    cleanups.push(() => db.drop());
    const sim = await BuildkiteSimulator.start({ organization: 'acme' });
    cleanups.push(() => sim.close());
    const upstream = await startRecordingUpstream();
    cleanups.push(() => upstream.close());

    mkdirSync(join(dir, 'policies'));
    for (const [name, text] of Object.entries(RELAY_POLICIES)) writeFileSync(join(dir, 'policies', name), text);
    const configFile = join(dir, 'port.yaml');
    writeFileSync(
      configFile,
      stringify({
        server: { listen: '127.0.0.1:0', public_url: CLUSTER_AUDIENCE, log_level: 'info', admin_token: 'env:PORT_CLUSTER_ADMIN_TOKEN' },
        store: { postgres: 'env:PORT_DATABASE_URL', lease_ttl: opts.leaseTtl ?? '3s', feed_max_lag: opts.feedMaxLag ?? '5s' },
        buildkite: {
          organization: 'acme',
          issuer: sim.issuer,
          jwks_url: sim.jwksUrl,
          audience: CLUSTER_AUDIENCE,
          webhook_token: 'env:PORT_CLUSTER_WEBHOOK_TOKEN',
        },
        policies: './policies',
        audit: { checkpoint_every: 50 },
        relay: { decision_cache_ttl: 5 },
        upstreams: { files: { url: `${upstream.url}/base`, timeout: 5, connect_timeout: 2, inject: { bearer: 'env:PORT_CLUSTER_UPSTREAM_SECRET' } } },
        credentials: { 'deploy-token': { type: 'port_token', audience: 'https://deploy.acme.test' } },
      }),
    );
    const env = {
      PORT_DATABASE_URL: db.url,
      PORT_CLUSTER_ADMIN_TOKEN: CLUSTER_ADMIN_TOKEN,
      PORT_CLUSTER_WEBHOOK_TOKEN: CLUSTER_WEBHOOK_TOKEN,
      PORT_CLUSTER_UPSTREAM_SECRET: CLUSTER_UPSTREAM_SECRET,
    };

    // All at once, as an orchestrator starts replicas: one migrates while the others wait
    // on the migration lock. (Each may store a signing key of its own on this first start;
    // they agree on the newest one to sign with once the change feed tells them.)
    const startedAt = Date.now();
    const procs = Array.from({ length: count }, () => spawnPort(['serve', '-c', configFile], { cwd: dir, env }));
    cleanups.push(async () => {
      await Promise.all(procs.map((p) => stopProcess(p)));
    });
    const urls = await Promise.all(procs.map(async (p) => (await p.waitFor(/"url":"(http:\/\/127\.0\.0\.1:\d+)"[^\n]*"msg":"Port is listening"/, 45_000))[1]!));
    const replicas: Replica[] = procs.map((proc, index) => ({
      index,
      name: String.fromCharCode(65 + index),
      url: urls[index]!,
      pid: proc.child.pid!,
      proc,
      alive: () => proc.child.exitCode === null && proc.child.signalCode === null,
      served: (requestId) => proc.stdout().includes(`"reqId":"${requestId}"`),
    }));
    const readyz = async (r: Replica): Promise<ReadyAnswer> => {
      const res = await send(`${r.url}/readyz`, { timeoutMs: 5000 });
      return { status: res.status, checks: (res.body as { checks?: Record<string, string> } | undefined)?.checks ?? {} };
    };
    const startupMs = await Promise.all(
      replicas.map(async (r) => {
        for (;;) {
          const ready = await readyz(r).catch(() => undefined);
          if (ready?.status === 200) return Date.now() - startedAt;
          if (!r.alive()) throw new Error(`replica ${r.name} exited: ${r.proc.stderr() || r.proc.stdout()}`);
          if (Date.now() - startedAt > 45_000) throw new Error(`replica ${r.name} not ready after 45 s: ${JSON.stringify(ready)}`);
          await sleep(50);
        }
      }),
    );

    const balancer = await startBalancer(replicas.map((r) => ({ host: '127.0.0.1', port: Number(new URL(r.url).port) })));
    cleanups.push(() => balancer.close());

    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    // Before the database is dropped (cleanups run in reverse).
    cleanups.push(() => client.end());
    const query = async <R extends pg.QueryResultRow>(sql: string, params: unknown[] = []) => (await client.query<R>(sql, params)).rows;

    const role = async (r: Replica) => {
      if (!r.alive()) return undefined;
      const ready = await readyz(r).catch(() => undefined);
      return /\b(leader|follower)\b/.exec(ready?.checks.role ?? '')?.[1] as 'leader' | 'follower' | undefined;
    };

    return {
      dir,
      configFile,
      db,
      sim,
      upstream,
      replicas,
      balancer,
      env,
      startupMs,
      readyz,
      role,
      async leaders() {
        const roles = await Promise.all(replicas.map(role));
        return replicas.filter((_, i) => roles[i] === 'leader');
      },
      query,
      async sealed(timeoutMs = 15_000) {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
          const n = Number((await query<{ n: string }>('SELECT count(*) AS n FROM decision_outbox'))[0]!.n);
          if (n === 0) return;
          if (Date.now() > deadline) throw new Error(`${n} decisions still unsealed after ${timeoutMs} ms`);
          await sleep(50);
        }
      },
      async runPort(args) {
        const p = spawnPort(args, { cwd: dir, env });
        const code = await p.exited;
        return { code, stdout: p.stdout(), stderr: p.stderr() };
      },
      close: cleanup,
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

/** SIGTERM (Port drains and gives up its lease), SIGKILL if it is still there after 10 s. */
async function stopProcess(p: Spawned): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  p.child.kill('SIGTERM');
  const timer = setTimeout(() => p.child.kill('SIGKILL'), 10_000);
  await p.exited;
  clearTimeout(timer);
}
