/**
 * bench/replicas — Port as several replicas on one PostgreSQL database:
 * token exchanges per second with 1, 2 and 3 replicas (baselines in the same run: 1
 * replica on PostgreSQL, 1 on SQLite, the embedded default), per busy core; how long a
 * revocation made on one replica takes to be refused by the others (p50/p95/p99/max;
 * target: every replica within 250 ms p99), idle and under load; and the decision log's
 * sealing lag (an exchange's 200 → its entry sealed into the hash chain) under load.
 *
 *   npm run bench:replicas [-- FLAGS]    (or, after `npm run build`: node bench/replicas.mjs FLAGS)
 *
 *   --database-url URL   a PostgreSQL server the bench may create and drop a database on
 *                        (default $PORT_BENCH_DATABASE_URL, else postgres://postgres@127.0.0.1:5432/postgres)
 *   --concurrency N      exchanges in flight in total, spread round-robin over the replicas (default 16)
 *   --duration S         measured seconds per throughput row (default 10)
 *   --warmup S           warm-up seconds before each (default 3)
 *   --probes N           revocations timed with no load (default 200)
 *   --loaded-probes N    revocations timed while the 3 replicas are under full exchange load (default 100)
 *   --poll-ms MS         pause between a probe's polls of the other replicas (default 2)
 *   --wait-quiet S       before each row, wait up to S seconds for the machine to be idle
 *                        (< 0.1 core busy over 1 s) — for shared machines (default 0: don't wait)
 *
 * How it runs: this process runs the Buildkite simulator, generates load and probes. Each
 * replica is a real `port serve` process (node bin/port.js serve -c …, from dist/) with
 * the same config — apart from its `listen` address — on one fresh database this bench
 * creates (and drops after). The load goes straight to the replicas' URLs, round-robin
 * per request (no load balancer). Rows: 1 replica on SQLite (its own temp dir), then 1, 2
 * and 3 replicas on PostgreSQL, started one after another and kept running (the first
 * started leads: it seals the outbox), then a control row: the 3 running, all the load on
 * one follower (what spreading the load costs, apart from what running replicas costs).
 * Nothing is pinned: on a 2-CPU machine the replicas, PostgreSQL and this process all share
 * both cores. "Per busy core" divides the rate by the CPU time of the replicas, this
 * database's PostgreSQL processes and this process (from /proc); the machine's busy time
 * (/proc/stat) and who else used it are reported beside it.
 * Only loopback addresses are used; temp dirs, children and the database are removed on exit.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { Pool, request } from 'undici';
import { stringify } from 'yaml';
import { BuildkiteSimulator } from '../dist/sim/index.js';
import { abortable, closedLoop, cpuMs, fmt, optionReader, procCpuMs } from './lib.mjs';
import { AUDIENCE, EXCHANGE_CREDENTIALS, EXCHANGE_POLICIES, ORGANIZATION } from './policies.mjs';

const here = (f) => fileURLToPath(new URL(f, import.meta.url));
const PORT_BIN = here('../bin/port.js');

const { values: opts } = parseArgs({
  options: {
    'database-url': { type: 'string', default: process.env.PORT_BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres' },
    concurrency: { type: 'string', default: '16' },
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '3' },
    probes: { type: 'string', default: '200' },
    'loaded-probes': { type: 'string', default: '100' },
    'poll-ms': { type: 'string', default: '2' },
    'wait-quiet': { type: 'string', default: '0' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opts.help) {
  console.log(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('*/')[0]);
  process.exit(0);
}
const { posInt, posNum, fail } = optionReader('replicas', opts);
const concurrency = posInt('concurrency');
const durationMs = posNum('duration') * 1000;
const warmupMs = posNum('warmup') * 1000;
const probes = posInt('probes');
const loadedProbes = Number(opts['loaded-probes']);
if (!Number.isSafeInteger(loadedProbes) || loadedProbes < 0) fail('--loaded-probes must be a whole number');
const pollMs = Number(opts['poll-ms']);
if (!Number.isFinite(pollMs) || pollMs < 0) fail('--poll-ms must be a number of milliseconds ≥ 0');
const waitQuietMs = Number(opts['wait-quiet']) * 1000;
if (!Number.isFinite(waitQuietMs) || waitQuietMs < 0) fail('--wait-quiet must be a number of seconds ≥ 0');
const argsText = process.argv.slice(2).join(' ');
const startLoad = os.loadavg().map((n) => n.toFixed(2)).join(' / ');
const ADMIN_TOKEN = randomBytes(24).toString('base64url');
const INTROSPECTION_TOKEN = randomBytes(24).toString('base64url');
const KEK = randomBytes(32).toString('base64url');
const FORM = 'application/x-www-form-urlencoded';
/** How long a probe waits for a replica to refuse a revoked token before counting it as never. */
const PROBE_GIVE_UP_MS = 5_000;

const log = (msg) => process.stderr.write(`· ${msg}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Nearest-rank percentile of an ascending array. */
function pct(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}
function dist(values) {
  const s = Float64Array.from(values).sort();
  return { n: s.length, p50: pct(s, 50), p95: pct(s, 95), p99: pct(s, 99), max: s.length ? s[s.length - 1] : NaN, min: s.length ? s[0] : NaN };
}

// ---- CPU accounting (Linux /proc; 10 ms ticks) -------------------------------------------

/** The machine's busy and total CPU ticks since boot (all CPUs), from /proc/stat. */
function machineTicks() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0); // user nice system idle iowait irq softirq steal
  return { busy: total - f[3] - f[4], total, irq: f[5] + f[6] };
}

function cpuOf(pid) {
  try {
    return procCpuMs(pid);
  } catch {
    return undefined; // gone
  }
}

/** With --wait-quiet: waits (at most that long) for a second in which the machine is almost idle; returns the seconds waited, or undefined if it never was. */
async function waitQuiet() {
  if (waitQuietMs === 0) return 0;
  const t0 = performance.now();
  while (performance.now() - t0 < waitQuietMs) {
    const a = machineTicks();
    await sleep(1000);
    const b = machineTicks();
    if (((b.busy - a.busy) / (b.total - a.total)) * os.cpus().length < 0.1) return (performance.now() - t0) / 1000;
  }
  return undefined;
}

/** Kernel threads, interrupts and the postmaster: busy time that is not another program's. */
const KERNELISH = /^(irq\+softirq|kdamond|kworker|ksoftirqd|rcu_|kswapd|jbd2|migration|postmaster|process_api)/;

/** CPU time (ms) and name of every process, from /proc/<pid>/stat. */
function allProcesses() {
  const out = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // Its own CPU, and its exited children's that it reaped (cutime + cstime).
      out.set(Number(name), { comm, ppid: Number(f[1]), ms: (Number(f[11]) + Number(f[12])) * 10, children: (Number(f[13]) + Number(f[14])) * 10 });
    } catch {
      // gone
    }
  }
  return out;
}

/**
 * CPU accounting over a window: the machine (busy cores), the Port replicas (by pid),
 * PostgreSQL (the backends connected to the bench database plus the server's background
 * processes, by pid from pg_stat_activity), and this process (load generator, simulator,
 * probes). What is left is "other" (anything else on the machine, the postmaster).
 */
async function cpuWindow(portPids, pgPids) {
  const m0 = machineTicks();
  const b0 = cpuMs();
  const p0 = portPids.map(cpuOf);
  const pgBefore = new Map((await pgPids()).map((pid) => [pid, cpuOf(pid)]));
  const all0 = allProcesses();
  return async () => {
    const all1 = allProcesses();
    const m1 = machineTicks();
    const b1 = cpuMs();
    const port = portPids.reduce((sum, pid, i) => sum + ((cpuOf(pid) ?? p0[i]) - p0[i]), 0);
    let pgMs = 0;
    const pgNow = await pgPids();
    for (const pid of pgNow) {
      const now = cpuOf(pid);
      if (now === undefined) continue;
      const before = pgBefore.get(pid);
      pgMs += before === undefined ? now : now - before; // a backend that connected during the window: all of it
    }
    const machineMs = (m1.busy - m0.busy) * 10;
    const busyCores = ((m1.busy - m0.busy) / (m1.total - m0.total)) * os.cpus().length;
    const bench = b1 - b0;
    const elapsedMs = ((m1.total - m0.total) * 10) / os.cpus().length;
    // Who else was busy (by process name), for the notes.
    // A process's exited children count under it (tsc, test workers under their npm/vitest parent).
    const ours = new Set([process.pid, ...portPids, ...pgBefore.keys(), ...pgNow]);
    const postmaster = all1.get(pgNow[0])?.ppid;
    const others = new Map();
    for (const [pid, p] of all1) {
      if (ours.has(pid)) continue;
      const before = all0.get(pid);
      // Not the postmaster's: its reaped children include this database's pool connections
      // that closed when idle, with all the CPU of their lifetime.
      const withChildren = (q) => q.ms + (pid === postmaster ? 0 : q.children);
      const d = withChildren(p) - (before ? withChildren(before) : 0);
      const key = pid === postmaster ? 'postmaster' : p.comm;
      if (d > 0) others.set(key, (others.get(key) ?? 0) + d);
    }
    const irqMs = (m1.irq - m0.irq) * 10;
    if (irqMs > 0) others.set('irq+softirq (kernel)', irqMs);
    const sortedOthers = [...others].sort((a, b) => b[1] - a[1]);
    const topOthers = sortedOthers.slice(0, 4);
    const attributed = sortedOthers.reduce((sum, [, ms]) => sum + ms, 0);
    // Other programs (not kernel threads, interrupts or the postmaster): someone else using the machine.
    const foreign = sortedOthers.filter(([comm]) => !KERNELISH.test(comm)).reduce((sum, [, ms]) => sum + ms, 0);
    return { machineMs, busyCores, oursCores: (port + pgMs + bench) / elapsedMs, portCores: port / elapsedMs, port, pg: pgMs, bench, other: machineMs - port - pgMs - bench, topOthers, attributed, foreign };
  };
}

// ---- processes -----------------------------------------------------------------------------

async function freePort() {
  const srv = createServer();
  await new Promise((resolve, reject) => srv.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return port;
}

/** Starts `port serve -c file` and waits until /readyz answers 200. */
async function startReplica(name, configFile, env, { create = false } = {}) {
  const listen = /listen: (\S+)/.exec(readFileSync(configFile, 'utf8'))[1];
  const url = `http://${listen}`;
  const child = spawn(process.execPath, [PORT_BIN, 'serve', '-c', configFile, '--workers', '1', ...(create ? ['--create-store'] : [])], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  // Port logs at warn: anything it says is worth seeing, but not ten thousand times.
  let lines = 0;
  const forward = (chunk) => {
    for (const line of String(chunk).split('\n')) {
      if (!line.trim()) continue;
      lines++;
      if (lines <= 20) process.stderr.write(`  [${name}] ${line.slice(0, 600)}\n`);
      else if (lines === 21) process.stderr.write(`  [${name}] (further output not shown)\n`);
    }
  };
  child.stdout.on('data', forward);
  child.stderr.on('data', forward);
  let exited;
  const exit = new Promise((resolve) =>
    child.once('exit', (code, signal) => {
      exited = { code, signal };
      resolve(exited);
    }),
  );
  const replica = {
    name,
    url,
    pid: child.pid,
    get lines() {
      return lines;
    },
    async stop() {
      if (exited) return exited;
      child.kill('SIGTERM');
      const timer = setTimeout(() => exited || child.kill('SIGKILL'), 12_000);
      const info = await exit;
      clearTimeout(timer);
      return info;
    },
  };
  const deadline = Date.now() + 30_000;
  let last = 'no answer';
  for (;;) {
    if (exited) throw new Error(`${name} exited (code ${exited.code}, signal ${exited.signal}) before it was ready`);
    if (Date.now() > deadline) {
      await replica.stop();
      throw new Error(`${name} not ready within 30 s: ${last}`);
    }
    try {
      const res = await request(`${url}/readyz`);
      const body = await res.body.json();
      if (res.statusCode === 200) {
        replica.role = body.checks?.role;
        return replica;
      }
      last = `${res.statusCode} ${JSON.stringify(body.checks)}`;
    } catch (err) {
      last = String(err?.message ?? err);
    }
    await sleep(100);
  }
}

// ---- main ------------------------------------------------------------------------------------

const { cleanups, cleanup, abort, aborted } = abortable('bench/replicas');
const budgetMs = 120_000 + 5 * (durationMs + warmupMs) * 1.5 + probes * 100 + loadedProbes * 400 + 6 * waitQuietMs;
const deadline = setTimeout(() => abort(`did not finish within ${Math.round(budgetMs / 1000)} s; giving up`), budgetMs);
try {
  await main();
} catch (err) {
  if (!aborted()) console.error(`bench/replicas failed: ${err?.stack ?? err}`);
  process.exitCode = 1;
} finally {
  clearTimeout(deadline);
  await cleanup();
}

async function main() {
  const notes = [];
  const startedAt = performance.now();

  // 1. A fresh database.
  const adminUrl = new URL(opts['database-url']);
  const dbName = `port_bench_replicas_${process.pid}_${randomBytes(3).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl.toString() });
  await admin.connect();
  cleanups.push(() => admin.end());
  const pgSettings = Object.fromEntries(
    (await admin.query(`SELECT name, setting FROM pg_settings WHERE name IN ('server_version', 'fsync', 'synchronous_commit', 'shared_buffers', 'max_connections')`)).rows.map((r) => [r.name, r.setting]),
  );
  await admin.query(`CREATE DATABASE ${dbName}`);
  cleanups.push(() => admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`));
  const dbUrl = new URL(adminUrl);
  dbUrl.pathname = `/${dbName}`;
  log(`database ${dbName} on ${adminUrl.host} (PostgreSQL ${pgSettings.server_version}, fsync=${pgSettings.fsync}, synchronous_commit=${pgSettings.synchronous_commit})`);

  // 2. The Buildkite simulator, and the shared config (one file per replica: only `listen` differs).
  const sim = await BuildkiteSimulator.start({ organization: ORGANIZATION, host: '127.0.0.1' });
  cleanups.push(() => sim.close());
  const dir = mkdtempSync(join(os.tmpdir(), 'port-bench-replicas-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'policies'));
  for (const [name, text] of Object.entries(EXCHANGE_POLICIES)) writeFileSync(join(dir, 'policies', name), text);
  const env = {
    PORT_DATABASE_URL: dbUrl.toString(),
    PORT_BENCH_ADMIN_TOKEN: ADMIN_TOKEN,
    PORT_BENCH_INTROSPECTION_TOKEN: INTROSPECTION_TOKEN,
    PORT_BENCH_KEK: KEK,
  };
  const pgStore = { postgres: 'env:PORT_DATABASE_URL', postgres_pool_size: 10, lease_ttl: 15, feed_max_lag: 5 };
  const writeConfig = async (file, store) => {
    const raw = {
      server: { listen: `127.0.0.1:${await freePort()}`, public_url: AUDIENCE, log_level: 'warn', admin_token: 'env:PORT_BENCH_ADMIN_TOKEN' },
      store,
      buildkite: { organization: ORGANIZATION, issuer: sim.issuer, jwks_url: sim.jwksUrl, audience: AUDIENCE },
      policies: './policies',
      issuer: { introspection_token: 'env:PORT_BENCH_INTROSPECTION_TOKEN', key_encryption_key: 'env:PORT_BENCH_KEK' },
      credentials: EXCHANGE_CREDENTIALS,
    };
    const path = join(dir, file);
    writeFileSync(path, stringify(raw));
    return path;
  };
  const running = [];
  cleanups.push(() => Promise.all(running.map((r) => r.stop())));

  // The bench's own connection: outbox backlog, seal lag, PostgreSQL's pids.
  const db = new pg.Client({ connectionString: dbUrl.toString() });
  await db.connect();
  cleanups.push(() => db.end());
  const pgPids = async () =>
    (await db.query(`SELECT pid FROM pg_stat_activity WHERE datname = $1 OR backend_type <> 'client backend'`, [dbName])).rows.map((r) => r.pid);

  // 3. Single-use Buildkite tokens, minted before each timed run.
  const loadJob = sim.createJob({ pipelineSlug: 'deploy', branch: 'main' });
  let mintMs = 0;
  let minted = 0;
  const mint = async (n, job = loadJob, scope = 'deploy-token') => {
    const t0 = performance.now();
    const out = new Array(n);
    let i = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (i < n) {
          const k = i++;
          const token = await sim.mintToken(typeof job === 'function' ? job(k) : job, { audience: AUDIENCE, lifetime: 3600 });
          out[k] = new URLSearchParams({
            grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
            subject_token: token,
            subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
            ...(scope ? { scope } : {}),
          }).toString();
        }
      }),
    );
    mintMs += performance.now() - t0;
    minted += n;
    return out;
  };

  /** Load: `concurrency` exchanges in flight in total, each sent to the next replica in turn. */
  const makeLoad = (replicas) => {
    const pools = replicas.map((r) => new Pool(r.url, { connections: concurrency, pipelining: 1 }));
    const state = { bodies: [], next: 0, rr: 0, errors: {}, firstError: undefined, track: undefined, stop: false };
    const exchange = async () => {
      if (state.stop || state.next >= state.bodies.length) return false;
      const body = state.bodies[state.next++];
      const pool = pools[state.rr++ % pools.length];
      try {
        const res = await pool.request({ path: '/oauth/token', method: 'POST', headers: { 'content-type': FORM }, body });
        const text = await res.body.text();
        if (res.statusCode === 200) {
          if (state.track) state.track.push(Date.now(), text);
          return true;
        }
        state.errors[res.statusCode] = (state.errors[res.statusCode] ?? 0) + 1;
        state.firstError ??= `${res.statusCode} ${text.slice(0, 300)}`;
      } catch (err) {
        state.errors[err.code ?? 'network'] = (state.errors[err.code ?? 'network'] ?? 0) + 1;
        state.firstError ??= String(err?.message ?? err);
      }
      return 'error';
    };
    return { pools, state, exchange, close: () => Promise.all(pools.map((p) => p.close())) };
  };

  /** The outbox's backlog, sampled every 100 ms: most rows waiting, and the oldest row's age. */
  const backlogSampler = () => {
    let maxRows = 0;
    let maxAgeMs = 0;
    let samples = 0;
    let stopped = false;
    const loop = (async () => {
      while (!stopped) {
        const r = (await db.query('SELECT count(*)::int AS n, min(created_at) AS oldest FROM decision_outbox')).rows[0];
        samples++;
        maxRows = Math.max(maxRows, r.n);
        if (r.oldest !== null) maxAgeMs = Math.max(maxAgeMs, Date.now() - Number(r.oldest));
        await sleep(100);
      }
    })();
    return async () => {
      stopped = true;
      await loop;
      return { maxRows, maxAgeMs, samples };
    };
  };

  /**
   * Transaction ids handed out so far, cluster-wide (exact, unlike the statistics views,
   * which backends publish up to 10 s late): each transaction that writes takes one.
   */
  const pgStats = async () => ({ xid: Number((await db.query('SELECT pg_snapshot_xmax(pg_current_snapshot())::text AS x')).rows[0].x) });
  const diffStats = (a, b) => ({ writeTransactions: b.xid - a.xid });

  const sealedHead = async () => Number((await db.query('SELECT coalesce(max(seq), 0) AS s FROM decisions')).rows[0].s);

  /** Waits for the outbox to empty, then matches the timed run's exchanges to their sealed entries. */
  const sealLag = async (afterSeq, track) => {
    const t0 = Date.now();
    while ((await db.query('SELECT count(*)::int AS n FROM decision_outbox')).rows[0].n > 0) {
      if (Date.now() - t0 > 15_000) throw new Error('the decision outbox did not empty within 15 s of the run');
      await sleep(50);
    }
    const rows = (
      await db.query(
        `SELECT sealed_at, record::jsonb #>> '{context,port_token,jti_sha256}' AS h, record::jsonb ->> 'time' AS t
           FROM decisions WHERE seq > $1 AND action = 'exchange'`,
        [afterSeq],
      )
    ).rows;
    const sealed = new Map(rows.map((r) => [r.h, { sealedAt: Number(r.sealed_at), decidedAt: Date.parse(r.t) }]));
    const fromResponse = [];
    const fromDecision = [];
    let missing = 0;
    for (let i = 0; i < track.length; i += 2) {
      const payload = JSON.parse(Buffer.from(JSON.parse(track[i + 1]).access_token.split('.')[1], 'base64url').toString());
      const entry = sealed.get(createHash('sha256').update(payload.jti).digest('hex'));
      if (entry === undefined) {
        missing++;
        continue;
      }
      fromResponse.push(entry.sealedAt - track[i]);
      fromDecision.push(entry.sealedAt - entry.decidedAt);
    }
    return { ...dist(fromResponse), decided: dist(fromDecision), missing };
  };

  /** One throughput row: warm-up, then `durationMs` measured, against these replicas. */
  /** `replicas` get the load; `running` (default: the same) are all that run, whose CPU counts. */
  const measure = async (label, store, replicas, running = replicas) => {
    const load = makeLoad(replicas);
    const { state } = load;
    try {
      // One exchange per replica first: a broken setup fails loudly, not as a table of errors.
      const first = await mint(replicas.length);
      for (const [i, r] of replicas.entries()) {
        const res = await load.pools[i].request({ path: '/oauth/token', method: 'POST', headers: { 'content-type': FORM }, body: first[i] });
        const json = await res.body.json();
        if (res.statusCode !== 200 || typeof json.access_token !== 'string') throw new Error(`${r.name}: first exchange failed: ${res.statusCode} ${JSON.stringify(json)}`);
      }
      state.bodies = await mint(Math.ceil((warmupMs / 1000) * 2000));
      const waited = await waitQuiet();
      if (waited === undefined) notes.push(`${label}: the machine was not idle within --wait-quiet ${waitQuietMs / 1000} s; measured anyway.`);
      log(`${label}: ${waited ? `waited ${waited.toFixed(0)} s for a quiet machine; ` : ''}warming up ${warmupMs / 1000} s`);
      const warm = await closedLoop({ concurrency, durationMs: warmupMs, op: load.exchange });
      const warmRate = (warm.latencies.length / warm.elapsedMs) * 1000;
      if (Object.keys(state.errors).length) throw new Error(`${label}: errors during warm-up: ${JSON.stringify(state.errors)}; first: ${state.firstError}`);
      // Steady state runs up to ~2× the warm-up's rate (JIT): mint for 2.2×.
      state.bodies = await mint(Math.min(200_000, Math.ceil(Math.max(warmRate, 300) * (durationMs / 1000) * 2.2) + concurrency * 4));
      state.next = 0;
      log(`${label}: warm-up ran at ${fmt.int(warmRate)}/s; measuring ${durationMs / 1000} s with ${state.bodies.length} tokens`);
      state.errors = {};
      state.firstError = undefined;
      const onPg = store === 'postgres';
      const seq0 = onPg ? await sealedHead() : 0;
      const stats0 = onPg ? await pgStats() : undefined;
      if (onPg) state.track = [];
      const sampler = onPg ? backlogSampler() : undefined;
      const window = await cpuWindow(
        running.map((r) => r.pid),
        onPg ? pgPids : async () => [],
      );
      const timed = await closedLoop({ concurrency, durationMs, op: load.exchange });
      const cpu = await window();
      if (timed.exhausted) notes.push(`${label}: ran out of pre-minted tokens after ${(timed.elapsedMs / 1000).toFixed(1)} s; its rate uses the time actually run.`);
      const backlog = await sampler?.();
      const track = state.track;
      state.track = undefined;
      const lat = dist(timed.latencies);
      const row = {
        label,
        store,
        replicas: running.length,
        targets: replicas.length,
        ops: timed.latencies.length,
        elapsedMs: timed.elapsedMs,
        rate: (timed.latencies.length / timed.elapsedMs) * 1000,
        lat,
        cpu,
        halves: timed.halves,
        exhausted: timed.exhausted,
        errors: { ...state.errors },
        firstError: state.firstError,
        backlog,
      };
      if (onPg) {
        row.seal = await sealLag(seq0, track);
        row.db = diffStats(stats0, await pgStats());
      }
      log(`${label}: ${fmt.int(row.rate)} exchanges/s, p50 ${fmt.ms(lat.p50)}, p99 ${fmt.ms(lat.p99)}, busy cores ${cpu.busyCores.toFixed(2)}`);
      return row;
    } finally {
      await load.close();
    }
  };

  // 4. Baseline: one replica on SQLite.
  const rows = [];
  {
    const sqliteDir = join(dir, 'sqlite');
    mkdirSync(sqliteDir);
    const file = await writeConfig('port-sqlite.yaml', { sqlite: './sqlite/port.db' });
    const r = await startReplica('sqlite', file, env, { create: true });
    running.push(r);
    log(`SQLite replica (pid ${r.pid}) at ${r.url}; simulator at ${sim.url}`);
    rows.push(await measure('SQLite, 1 replica', 'sqlite', [r]));
    await r.stop();
    running.splice(running.indexOf(r), 1);
  }

  // 5. PostgreSQL: 1, then 2, then 3 replicas (each added to those running).
  const replicas = [];
  for (let n = 1; n <= 3; n++) {
    const file = await writeConfig(`port-${n}.yaml`, pgStore);
    const r = await startReplica(`r${n}`, file, env);
    running.push(r);
    replicas.push(r);
    log(`replica r${n} (pid ${r.pid}) at ${r.url}, ${r.role}`);
    rows.push(await measure(`PostgreSQL, ${n} replica${n > 1 ? 's' : ''}`, 'postgres', [...replicas]));
  }
  // Control: the same 3 replicas running, all the load on one of them (a follower).
  rows.push(await measure('PostgreSQL, 3 replicas, all load to r2', 'postgres', [replicas[1]], [...replicas]));
  // What 3 replicas cost doing nothing (the leader seals every 50 ms and renews its lease; every replica's change feed reads every 250 ms).
  await sleep(1000);
  const idleWindow = await cpuWindow([], pgPids);
  const idleCpu0 = replicas.map((r) => cpuOf(r.pid));
  const idleT0 = performance.now();
  await sleep(5000);
  const idleCpu = replicas.map((r, i) => ((cpuOf(r.pid) ?? idleCpu0[i]) - idleCpu0[i]) / (performance.now() - idleT0));
  const idlePg = (await idleWindow()).pg / (performance.now() - idleT0);
  const roles = [];
  for (const r of replicas) {
    const res = await request(`${r.url}/readyz`);
    roles.push(`${r.name} ${(await res.body.json()).checks?.role ?? '?'}`);
  }

  // 6. Revocation propagation: revoke a fresh job on replica A; poll B and C until they refuse its token.
  const probePools = replicas.map((r) => new Pool(r.url, { connections: 4, pipelining: 1 }));
  cleanups.push(() => Promise.all(probePools.map((p) => p.destroy())));
  const post = async (pool, path, headers, body) => {
    const res = await pool.request({ path, method: 'POST', headers, body });
    return { status: res.statusCode, json: await res.body.json() };
  };
  const introspect = (pool, token) => post(pool, '/oauth/introspect', { 'content-type': FORM, authorization: `Bearer ${INTROSPECTION_TOKEN}` }, `token=${encodeURIComponent(token)}`);
  const pollRtts = [];
  const poll = async (pool, token, give) => {
    let polls = 0;
    for (;;) {
      const sent = performance.now();
      const { status, json } = await introspect(pool, token);
      const recv = performance.now();
      polls++;
      pollRtts.push(recv - sent);
      if (status !== 200) throw new Error(`introspection answered ${status} ${JSON.stringify(json)}`);
      if (json.active === false) return { sent, recv, polls };
      if (recv > give) return { sent, recv: Infinity, polls };
      if (pollMs > 0) await sleep(pollMs);
    }
  };
  const propagation = async (label, n) => {
    const jobs = Array.from({ length: n }, () => sim.createJob({ pipelineSlug: 'deploy', branch: 'main' }));
    const bodies = await mint(n, (k) => jobs[k], undefined);
    const times = []; // per revocation: the slower of B and C ("every replica"), from A's 200
    const each = []; // per observer, from A's 200
    const fromSent = []; // per revocation, the slower of B and C, from the moment the revocation was sent to A
    const acks = [];
    let polls = 0;
    let never = 0;
    for (let i = 0; i < n; i++) {
      const a = i % replicas.length;
      const observers = [...replicas.keys()].filter((k) => k !== a);
      const ex = await post(probePools[a], '/oauth/token', { 'content-type': FORM }, bodies[i]);
      if (ex.status !== 200) throw new Error(`${label}: probe exchange on ${replicas[a].name} failed: ${ex.status} ${JSON.stringify(ex.json)}`);
      const token = ex.json.access_token;
      for (const o of observers) {
        const r = await introspect(probePools[o], token);
        if (r.status !== 200 || r.json.active !== true) throw new Error(`${label}: ${replicas[o].name} does not see the fresh token as active: ${r.status} ${JSON.stringify(r.json)}`);
      }
      const sent = performance.now();
      // The observers poll from before the revocation is sent: a refusal may come before A's answer.
      const watching = observers.map((o) => poll(probePools[o], token, sent + PROBE_GIVE_UP_MS));
      const rv = await post(probePools[a], '/v1/revocations', { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_TOKEN}` }, JSON.stringify({ scope: 'job', id: jobs[i].jobId, reason: 'bench/replicas' }));
      const acked = performance.now();
      if (rv.status !== 200) throw new Error(`${label}: revocation on ${replicas[a].name} answered ${rv.status} ${JSON.stringify(rv.json)}`);
      acks.push(acked - sent);
      let slowest = -Infinity;
      for (const w of await Promise.all(watching)) {
        polls += w.polls;
        if (w.recv === Infinity) never++;
        each.push(w.recv - acked);
        slowest = Math.max(slowest, w.recv);
      }
      times.push(slowest - acked);
      fromSent.push(slowest - sent);
      // A's own view: refused at once (it applied the revocation before answering).
      const own = await introspect(probePools[a], token);
      if (own.json.active !== false) throw new Error(`${label}: ${replicas[a].name} still answers active after its own revocation`);
    }
    return { label, ...dist(times), each: dist(each), fromSent: dist(fromSent), never, acks: dist(acks), polls };
  };

  await waitQuiet();
  log(`revocation propagation, no load: ${probes} revocations, each seen by 2 replicas`);
  pollRtts.length = 0;
  const idle = await propagation('no load', probes);
  idle.pollRtt = dist(pollRtts);
  let loaded;
  if (loadedProbes > 0) {
    const load = makeLoad(replicas);
    try {
      // Tokens for the fastest row's rate over the time the probes should take, with room to spare.
      const fastest = Math.max(...rows.map((r) => r.rate));
      load.state.bodies = await mint(Math.min(200_000, Math.ceil(fastest * Math.max(20, loadedProbes * 0.25) * 1.5)));
      log(`revocation propagation under load: ${loadedProbes} revocations while ${concurrency} exchanges stay in flight (${load.state.bodies.length} tokens)`);
      const background = closedLoop({ concurrency, durationMs: 600_000, op: load.exchange });
      await sleep(1000);
      pollRtts.length = 0;
      const t0 = performance.now();
      loaded = await propagation('under load', loadedProbes);
      const probeMs = performance.now() - t0;
      loaded.pollRtt = dist(pollRtts);
      const outOfTokens = load.state.next >= load.state.bodies.length;
      load.state.stop = true;
      const bg = await background;
      loaded.background = { ops: bg.latencies.length, rate: (bg.latencies.length / bg.elapsedMs) * 1000, errors: load.state.errors, probeMs, outOfTokens };
      if (outOfTokens) notes.push(`The load during the loaded revocation probes ran out of pre-minted tokens before the probes ended (${(probeMs / 1000).toFixed(1)} s of probing); the tail ran with less load.`);
    } finally {
      await load.close();
    }
  }

  // Autovacuum on this database (its workers are short-lived: their CPU shows as the postmaster's reaped children).
  const vacuum = (
    await db.query(
      `SELECT relname, autovacuum_count::int AS v, autoanalyze_count::int AS a FROM pg_stat_user_tables WHERE autovacuum_count + autoanalyze_count > 0 ORDER BY relname`,
    )
  ).rows;

  // 7. The table.
  const pgRows = rows.filter((r) => r.store === 'postgres');
  const pg1 = pgRows[0];
  const pg3 = pgRows.find((r) => r.replicas === 3 && r.targets === 3);
  const sqlite = rows[0];
  const us = (ms, ops) => fmt.us((ms / ops) * 1000);
  const errText = (r) => {
    const n = Object.values(r.errors).reduce((a, b) => a + b, 0);
    return n === 0 ? '0' : `${n} ${JSON.stringify(r.errors)}`;
  };
  const dash = '—';
  const name = (r) => `${r.store === 'sqlite' ? 'SQLite' : 'PostgreSQL'}, ${r.replicas}${r.targets < r.replicas ? ' (load on r2 only)' : ''}`;
  const lines = [
    '| Measurement | Store, replicas | Ops | Rate | p50 | p95 | p99 | max | Busy cores: ours (machine) | Exchanges/s per busy core | CPU per exchange: Port / PostgreSQL / load generator | Errors |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows.map(
      (r) =>
        `| Token exchange, ${concurrency} in flight${r.targets > 1 ? ' round-robin' : ''}${r === sqlite || r === pg1 ? ' (baseline)' : ''}${r.targets < r.replicas ? ' (control: one replica loaded)' : ''} | ${name(r)} | ${fmt.int(r.ops)} | ${fmt.int(r.rate)}/s | ${fmt.ms(r.lat.p50)} | ${fmt.ms(r.lat.p95)} | ${fmt.ms(r.lat.p99)} | ${fmt.ms(r.lat.max)} | ${r.cpu.oursCores.toFixed(2)} (${r.cpu.busyCores.toFixed(2)}) | ${fmt.int(r.rate / r.cpu.oursCores)} | ${us(r.cpu.port, r.ops)} / ${us(r.cpu.pg, r.ops)} / ${us(r.cpu.bench, r.ops)} | ${errText(r)} |`,
    ),
    ...pgRows.map(
      (r) =>
        `| Sealing lag: exchange's 200 → \`decisions.sealed_at\` (same run) | ${name(r)} | ${fmt.int(r.seal.n)} | ${dash} | ${fmt.ms(r.seal.p50)} | ${fmt.ms(r.seal.p95)} | ${fmt.ms(r.seal.p99)} | ${fmt.ms(r.seal.max)} | ${dash} | ${dash} | ${dash} | ${r.seal.missing === 0 ? '0' : `${r.seal.missing} not sealed`} |`,
    ),
    ...[idle, loaded].filter(Boolean).map(
      (p) =>
        `| Revocation propagation, ${p.label}: A's 200 → refused by both B and C (poll every ${pollMs} ms) | PostgreSQL, 3 | ${fmt.int(p.n)} | ${dash} | ${fmt.ms(p.p50)} | ${fmt.ms(p.p95)} | ${fmt.ms(p.p99)} | ${fmt.ms(p.max)} | ${dash} | ${dash} | ${dash} | ${p.never === 0 ? '0' : `${p.never} never refused within ${PROBE_GIVE_UP_MS / 1000} s`} |`,
    ),
  ];
  const worstP99 = Math.max(idle.p99, loaded?.p99 ?? -Infinity);
  const verdict = worstP99 <= 250 && idle.never === 0 && (loaded?.never ?? 0) === 0 ? 'met' : 'missed';
  const cpuModel = (/^model name\s*:\s*(.*)$/m.exec(safeRead('/proc/cpuinfo')) ?? [])[1] ?? os.cpus()[0]?.model ?? 'unknown';
  const share = (r) => {
    const t = r.cpu.machineMs;
    const p = (x) => `${Math.round((x / t) * 100)}%`;
    const top = r.cpu.topOthers.filter(([, ms]) => ms / t >= 0.02).map(([comm, ms]) => `${comm} ${p(ms)}`);
    const unattributed = r.cpu.other - r.cpu.attributed;
    return `${r.label}: Port ${p(r.cpu.port)}, PostgreSQL ${p(r.cpu.pg)}, load generator ${p(r.cpu.bench)}, other ${p(r.cpu.other)}${top.length ? ` (${top.join(', ')}${unattributed > 0.02 * t ? `, unattributed ${p(unattributed)}` : ''})` : ''}`;
  };
  const noisy = rows.filter((r) => r.cpu.foreign / r.cpu.machineMs > 0.08);
  if (noisy.length > 0) {
    notes.push(
      `**The machine was not quiet**: other programs took more than 8% of the busy time during ${noisy.map((r) => `${r.label} (${Math.round((r.cpu.foreign / r.cpu.machineMs) * 100)}%)`).join('; ')}, so those rows are low; "per busy core" counts only this benchmark's processes and is less affected.`,
    );
  }
  const perPortCore = rows.map((r) => `${r.label} ${fmt.int(r.rate / r.cpu.portCores)} (${r.cpu.portCores.toFixed(2)} cores)`).join('; ');
  const out = [
    '',
    `**Revocation propagation p99: ${fmt.ms(idle.p99)} with no load${loaded ? `, ${fmt.ms(loaded.p99)} with the 3 replicas under full load` : ''}** (target: every replica refuses within 250 ms p99 — **${verdict}**). ` +
      `**3 replicas: ${fmt.int(pg3.rate)} exchanges/s** vs ${fmt.int(pg1.rate)} with 1 on PostgreSQL and ${fmt.int(sqlite.rate)} with 1 on SQLite (×${(pg3.rate / pg1.rate).toFixed(2)} and ×${(pg3.rate / sqlite.rate).toFixed(2)}), all on the same ${os.cpus().length} cores.`,
    '',
    ...lines,
    '',
    `- Load: this process keeps ${concurrency} exchanges in flight in total (closed loop, one undici pool per replica), sending each to the next replica in turn (round-robin per request, no load balancer). Each is a full RFC 8693 exchange (\`POST /oauth/token\`, \`scope=deploy-token\`) of a fresh single-use RS256 Buildkite token, minted before each timed run by the simulator (${fmt.int(minted / (mintMs / 1000))}/s): 2 Cedar decisions, 1 ES256 signature, 1 durable write (replay key + 2 decision records; on PostgreSQL into the outbox). Warm-up ${warmupMs / 1000} s, then ${durationMs / 1000} s measured per row. The control row keeps the 3 replicas running but sends every exchange to r2 (a follower); its CPU columns count all 3 replicas.`,
    `- Nothing is pinned: the replicas, PostgreSQL (${pgSettings.server_version}, same machine, fsync=${pgSettings.fsync}, synchronous_commit=${pgSettings.synchronous_commit}) and this process (load generator, simulator, probes) share the same ${os.cpus().length} cores, so a replica adds no CPU, only another process competing for it. "Busy cores: ours" is the CPU time of the replicas + PostgreSQL (this database's backends and the server's background processes) + this process over the window, from /proc (10 ms ticks); in brackets the whole machine's, from /proc/stat. "Per busy core" divides the rate by ours. Exchanges/s per core of Port alone: ${perPortCore}.`,
    `- CPU shares of the machine's busy time: ${rows.map(share).join('; ')}. "Other" is everything outside this benchmark's processes; "unattributed" is busy time in /proc/stat that no process still alive at the end accounts for (processes that came and went, the kernel's accounting).`,
    `- Write transactions in PostgreSQL per exchange (transaction ids used during the run and its sealing, cluster-wide, so anything else writing to the server counts too): ${pgRows
      .map((r) => `${name(r)} ${(r.db.writeTransactions / r.ops).toFixed(2)}`)
      .join(', ')}.`,
    `- Autovacuum / autoanalyze runs on this database's tables over the whole run: ${vacuum.length ? vacuum.map((v) => `${v.relname} ${v.v} / ${v.a}`).join(', ') : 'none'} (autovacuum workers come and go, so their CPU would fall under "other").`,
    `- Idle, 5 s with no requests: ${replicas.map((r, i) => `${r.name} ${(idleCpu[i] * 100).toFixed(1)}%`).join(', ')} of a core (r1 leads: it runs a sealing pass every 50 ms even with an empty outbox), PostgreSQL ${(idlePg * 100).toFixed(1)}%.`,
    `- Rate in the first / second half of each run: ${rows.map((r) => (r.halves ? `${r.label} ${fmt.int(r.halves[0])} / ${fmt.int(r.halves[1])}` : `${r.label} n/a`)).join('; ')}.`,
    `- Sealing: the leader (${roles.join(', ')}) seals the outbox every 50 ms (SEAL_EVERY_MS). Lag = \`decisions.sealed_at\` (the leader's clock, read just before its INSERT; readable once that transaction commits) − when this process received the 200 (same machine clock), for every exchange of the run, matched by the Port token's jti hash (${pgRows.map((r) => r.seal.missing).reduce((a, b) => a + b, 0)} unmatched). From the decision's own \`time\` instead: ${pgRows.map((r) => `${name(r)} p50 ${fmt.ms(r.seal.decided.p50)} / p99 ${fmt.ms(r.seal.decided.p99)}`).join(', ')}. Outbox sampled every 100 ms: ${pgRows.map((r) => `${name(r)}: at most ${fmt.int(r.backlog.maxRows)} rows waiting, the oldest ${fmt.ms(r.backlog.maxAgeMs)} old`).join('; ')}.`,
    `- Propagation: for each of ${fmt.int(probes)} fresh jobs${loaded ? ` (then ${fmt.int(loadedProbes)} more under load)` : ''}, a Port token is exchanged on replica A (A rotates r1, r2, r3); B and C answer \`active: true\` for it at \`POST /oauth/introspect\` (introspection secret); then \`POST /v1/revocations\` \`{"scope":"job"}\` (admin token) goes to A while B and C poll introspection — each poll waits for the previous answer, then ${pollMs} ms — until \`active: false\`. The row is per revocation, the later of B and C, from A's 200 to that \`active: false\` being received, so it includes one poll round trip (no load p50 ${fmt.ms(idle.pollRtt.p50)} / p99 ${fmt.ms(idle.pollRtt.p99)}${loaded ? `; under load ${fmt.ms(loaded.pollRtt.p50)} / ${fmt.ms(loaded.pollRtt.p99)}` : ''}) plus up to ${pollMs} ms; a negative time means both refused before A's answer arrived. Per replica (B and C counted apart): no load p50 ${fmt.ms(idle.each.p50)} / p99 ${fmt.ms(idle.each.p99)}${loaded ? `; under load ${fmt.ms(loaded.each.p50)} / ${fmt.ms(loaded.each.p99)}` : ''}. From the moment the revocation was sent to A (A's own work included): no load p50 ${fmt.ms(idle.fromSent.p50)} / p99 ${fmt.ms(idle.fromSent.p99)}${loaded ? `; under load ${fmt.ms(loaded.fromSent.p50)} / ${fmt.ms(loaded.fromSent.p99)}` : ''}. A's answer itself took p50 ${fmt.ms(idle.acks.p50)} / p99 ${fmt.ms(idle.acks.p99)}${loaded ? ` (under load ${fmt.ms(loaded.acks.p50)} / ${fmt.ms(loaded.acks.p99)})` : ''}; A refuses the token right after answering (checked each time).`,
    ...(loaded
      ? [
          `- Under load: ${concurrency} exchanges stayed in flight over the 3 replicas while probing (${fmt.int(loaded.background.rate)} exchanges/s, ${fmt.int(loaded.background.ops)} in ${(loaded.background.probeMs / 1000).toFixed(1)} s of probing, errors ${JSON.stringify(loaded.background.errors)}); the probes' requests queue behind them on each replica, and the times include that queueing.`,
        ]
      : []),
    `- Replicas: \`port serve -c\` (dist/), \`store.postgres: env:PORT_DATABASE_URL\`, \`postgres_pool_size: 10\`, \`lease_ttl: 15s\`, \`feed_max_lag: 5s\`, \`log_level: warn\`, sealed signing keys, the exchange server's 4 policies (bench/policies.mjs), all on one fresh database (created and dropped by the bench). The SQLite replica: the same config with \`store.sqlite\` (\`--create-store\`; WAL, its log synced before a write is acknowledged) in ${os.tmpdir()}.`,
    ...notes.map((n) => `- ${n}`),
    '',
    `Machine: ${os.cpus().length} CPUs (nproc), ${cpuModel}, ${Math.round(os.totalmem() / 2 ** 30)} GiB RAM, Linux ${os.release()}, Node ${process.version}; load average at the start ${startLoad}. The whole run took ${((performance.now() - startedAt) / 1000).toFixed(0)} s.`,
    `Command: \`npm run bench:replicas${argsText ? ` -- ${argsText}` : ''}\``,
  ];
  console.log(out.join('\n'));
  for (const r of rows) if (r.firstError) console.log(`\nFirst error (${r.label}): ${r.firstError}`);
}

function safeRead(file) {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}
