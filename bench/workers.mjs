/**
 * bench/workers — what `server.workers` buys: token exchanges per second, and per busy
 * core, with one Port process on one CPU (the baseline, in the same run) and with N worker
 * processes on all CPUs; the efficiency ratio says how much of a core's work each worker
 * keeps (1.0: running N processes on one store costs nothing per exchange).
 *
 *   npm run bench:workers [-- FLAGS]      (or, after `npm run build`: node bench/workers.mjs FLAGS)
 *
 *   --workers N         workers in the second row (default: the machine's CPUs)
 *   --concurrency N     exchanges in flight (default 16)
 *   --duration S        measured seconds per row (default 10)
 *   --warmup S          warm-up seconds before each (default 8: each worker's JIT warms on its
 *                       share of the load only, so a short warm-up understates the workers)
 *   --store-dir DIR     where Port's temp dir (config, policies, SQLite) goes; /dev/shm takes fsync out
 *   --postgres URL      run every row on PostgreSQL instead: a fresh database per row, created
 *                       through URL (an admin connection, e.g. postgres://postgres@127.0.0.1:5432/postgres)
 *                       and dropped at the end; Port's processes use \`store.postgres\` with sealed keys.
 *                       PostgreSQL is not pinned: on a small machine it shares Port's cores.
 *   --no-pin            pin nothing
 *
 * Rows, each a real `port serve` (node bin/port.js serve -c …, from dist/) on a fresh SQLite
 * store with the exchange policies of bench/exchange:
 *   1 worker   server.workers: 1 (no fork), pinned to CPU 1 with `taskset`
 *   N workers  server.workers: N, on CPUs 0…N-1 (the primary and its workers)
 *   control    server.workers: N, all on CPU 1 (pinned runs only): the cost of N processes on
 *              one store without more cores, apart from what sharing cores costs
 * This process — the load generator and the Buildkite simulator — is pinned to CPU 0 in both
 * rows: alone on its core in the first, sharing it with a worker in the second (on a 2-CPU
 * machine there is no core left for it), so the second row's raw rate understates what N
 * workers do on a machine with cores to spare. "Per busy core" divides each row's rate by
 * the CPU time Port's processes used (primary and workers, from /proc) per second of the
 * run, which this sharing does not skew. The undici pool keeps `concurrency` connections;
 * the primary hands new connections to the workers in turn, and the table shows how they
 * were spread (from /proc: which process holds each accepted socket).
 * Only loopback addresses are used; temp dirs and children are removed on exit.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { Client, Pool } from 'undici';
import { stringify } from 'yaml';
import { BuildkiteSimulator } from '../dist/sim/index.js';
import { abortable, closedLoop, cpuMs, fmt, optionReader, procCpuMs, reexecPinned, tasksetWorks } from './lib.mjs';
import { AUDIENCE, EXCHANGE_CREDENTIALS, EXCHANGE_POLICIES, ORGANIZATION } from './policies.mjs';

const here = (f) => fileURLToPath(new URL(f, import.meta.url));
const PORT_BIN = here('../bin/port.js');
const FORM = 'application/x-www-form-urlencoded';

const { values: opts } = parseArgs({
  options: {
    // The machine's CPUs (os.availableParallelism() would say 1 in the copy pinned to CPU 0).
    workers: { type: 'string', default: String(os.cpus().length) },
    concurrency: { type: 'string', default: '16' },
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '8' },
    'store-dir': { type: 'string' },
    postgres: { type: 'string' },
    'no-pin': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opts.help) {
  console.log(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('*/')[0]);
  process.exit(0);
}
const { posInt, posNum, fail } = optionReader('workers', opts);
const workers = posInt('workers');
if (workers < 2 || workers > 256) fail('--workers must be from 2 to 256 (the first row is the one-worker baseline)');
const concurrency = posInt('concurrency');
const durationMs = posNum('duration') * 1000;
const warmupMs = posNum('warmup') * 1000;
const cpus = os.cpus().length;
const canPin = !opts['no-pin'] && cpus >= 2 && tasksetWorks(0) && tasksetWorks(1);
// The load generator on CPU 0, for both rows (the re-executed copy does the work).
if (canPin && reexecPinned(fileURLToPath(import.meta.url), 0)) await new Promise(() => {});

const log = (msg) => process.stderr.write(`· ${msg}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The machine's busy and total CPU ticks since boot (all CPUs), from /proc/stat. */
function machineTicks() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: total - f[3] - f[4], total };
}

/** Pids whose parent is `pid` (a primary's workers), from /proc. */
function childrenOf(pid) {
  const out = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) out.push(Number(name));
    } catch {
      // gone
    }
  }
  return out;
}

/**
 * Which of `pids` holds each accepted connection on `port` (established, from /proc/net/tcp
 * and the processes' socket fds): the spread of connections over the workers.
 */
function connectionsByPid(port, pids) {
  const inodes = new Set();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10) continue;
      // local_address is HEXIP:HEXPORT; state 01 is ESTABLISHED.
      if (parseInt(f[1].split(':')[1], 16) === port && f[3] === '01') inodes.add(f[9]);
    }
  }
  const counts = new Map(pids.map((p) => [p, 0]));
  for (const pid of pids) {
    let fds = [];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (m && inodes.has(m[1])) counts.set(pid, counts.get(pid) + 1);
      } catch {
        // closed meanwhile
      }
    }
  }
  return counts;
}

async function freePort() {
  const srv = createServer();
  await new Promise((resolve, reject) => srv.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return port;
}

const { cleanups, cleanup, abort, aborted } = abortable('bench/workers');
const budgetMs = 120_000 + 3 * (durationMs + warmupMs) * 3;
const deadline = setTimeout(() => abort(`did not finish within ${Math.round(budgetMs / 1000)} s; giving up`), budgetMs);
try {
  await main();
} catch (err) {
  if (!aborted()) console.error(`bench/workers failed: ${err?.stack ?? err}`);
  process.exitCode = 1;
} finally {
  clearTimeout(deadline);
  await cleanup();
}

async function main() {
  const notes = [];
  const sim = await BuildkiteSimulator.start({ organization: ORGANIZATION, host: '127.0.0.1' });
  cleanups.push(() => sim.close());
  const job = sim.createJob({ pipelineSlug: 'deploy', branch: 'main' });

  /** Single-use Buildkite tokens as exchange request bodies, minted before a timed run. */
  const mint = async (n) => {
    const out = new Array(n);
    let i = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (i < n) {
          const k = i++;
          const token = await sim.mintToken(job, { audience: AUDIENCE, lifetime: 3600 });
          out[k] = new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: token, subject_token_type: 'urn:ietf:params:oauth:token-type:jwt', scope: 'deploy-token' }).toString();
        }
      }),
    );
    return out;
  };

  /** A new, empty database for one row (dropped at the end), as a connection URL. */
  const freshDatabase = async (adminUrl) => {
    const name = `port_bench_workers_${process.pid}_${randomBytes(3).toString('hex')}`;
    const admin = new pg.Client({ connectionString: adminUrl });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${name}`);
    cleanups.push(async () => {
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end();
    });
    const url = new URL(adminUrl);
    url.pathname = `/${name}`;
    return url.toString();
  };

  /** Starts `port serve` with `count` workers on `cpuList`, and waits until every worker answers. */
  const start = async (label, count, cpuList) => {
    const dir = mkdtempSync(join(opts['store-dir'] ?? os.tmpdir(), 'port-bench-workers-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    mkdirSync(join(dir, 'policies'));
    for (const [name, text] of Object.entries(EXCHANGE_POLICIES)) writeFileSync(join(dir, 'policies', name), text);
    const listenPort = await freePort();
    const env = { ...process.env };
    let store = { sqlite: './port.db' };
    let issuer = {};
    if (opts.postgres) {
      env.PORT_DATABASE_URL = await freshDatabase(opts.postgres);
      env.PORT_BENCH_KEK = randomBytes(32).toString('base64url');
      store = { postgres: 'env:PORT_DATABASE_URL', postgres_pool_size: 10 };
      issuer = { issuer: { key_encryption_key: 'env:PORT_BENCH_KEK' } };
    }
    writeFileSync(
      join(dir, 'port.yaml'),
      stringify({
        server: { listen: `127.0.0.1:${listenPort}`, public_url: AUDIENCE, log_level: 'warn', workers: count },
        store,
        buildkite: { organization: ORGANIZATION, issuer: sim.issuer, jwks_url: sim.jwksUrl, audience: AUDIENCE },
        policies: './policies',
        credentials: EXCHANGE_CREDENTIALS,
        ...issuer,
      }),
    );
    const argv = [PORT_BIN, 'serve', '--create-store', '-c', join(dir, 'port.yaml')];
    const spawnOpts = { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] };
    const child = canPin ? spawn('taskset', ['-c', cpuList, process.execPath, ...argv], spawnOpts) : spawn(process.execPath, argv, spawnOpts);
    let output = '';
    const keep = (d) => (output = (output + d).slice(-4000));
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    let exited = false;
    const exit = new Promise((resolve) => child.once('exit', () => resolve((exited = true))));
    const stop = async () => {
      if (exited) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exit;
      clearTimeout(timer);
    };
    cleanups.push(stop);
    const url = `http://127.0.0.1:${listenPort}`;
    const until = Date.now() + 60_000;
    // Every worker ready: `count` fresh connections in a row, handed out in turn, land on `count` processes.
    for (;;) {
      if (exited) throw new Error(`${label}: port serve exited before it was ready: ${output}`);
      if (Date.now() > until) throw new Error(`${label}: not every worker answered within 60 s: ${output}`);
      const pids = count === 1 ? [child.pid] : childrenOf(child.pid);
      if (pids.length === count) {
        const clients = Array.from({ length: count }, () => new Client(url));
        try {
          const answers = await Promise.all(clients.map((c) => c.request({ path: '/readyz', method: 'GET' }).then(async (r) => (await r.body.text(), r.statusCode))));
          const spread = connectionsByPid(listenPort, pids);
          if (answers.every((s) => s === 200) && [...spread.values()].every((n) => n >= 1)) return { url, pid: child.pid, pids, listenPort, stop };
        } catch {
          // not listening yet
        } finally {
          await Promise.all(clients.map((c) => c.close()));
        }
      }
      await sleep(200);
    }
  };

  const row = async (label, count, cpuList) => {
    const server = await start(label, count, cpuList);
    log(`${label}: port serve (pid ${server.pid}${count > 1 ? `, workers ${server.pids.join(', ')}` : ''}) at ${server.url}${canPin ? ` on CPU ${cpuList}` : ''}`);
    const pool = new Pool(server.url, { connections: concurrency, pipelining: 1 });
    cleanups.push(() => pool.close());
    const errors = {};
    let firstError;
    let bodies = [];
    let next = 0;
    const exchange = async () => {
      if (next >= bodies.length) return false;
      const body = bodies[next++];
      try {
        const res = await pool.request({ path: '/oauth/token', method: 'POST', headers: { 'content-type': FORM }, body });
        const text = await res.body.text();
        if (res.statusCode === 200) return true;
        errors[res.statusCode] = (errors[res.statusCode] ?? 0) + 1;
        firstError ??= `${res.statusCode} ${text.slice(0, 300)}`;
      } catch (err) {
        errors[err.code ?? 'network'] = (errors[err.code ?? 'network'] ?? 0) + 1;
        firstError ??= String(err?.message ?? err);
      }
      return 'error';
    };
    bodies = await mint(Math.ceil((warmupMs / 1000) * 1500));
    log(`${label}: warming up ${warmupMs / 1000} s`);
    const warm = await closedLoop({ concurrency, durationMs: warmupMs, op: exchange });
    if (Object.keys(errors).length) throw new Error(`${label}: errors during warm-up: ${JSON.stringify(errors)}; first: ${firstError}`);
    const warmRate = (warm.latencies.length / warm.elapsedMs) * 1000;
    bodies = await mint(Math.min(200_000, Math.ceil(Math.max(warmRate, 300) * (durationMs / 1000) * 2.2) + concurrency * 4));
    next = 0;
    log(`${label}: warm-up ran at ${fmt.int(warmRate)}/s; measuring ${durationMs / 1000} s with ${bodies.length} tokens`);
    const procs = count === 1 ? [server.pid] : [server.pid, ...server.pids];
    // Sampled mid-run: idle connections may have been closed (keep-alive timeout) while tokens were minted.
    let spread = new Map();
    const sampler = setTimeout(() => (spread = connectionsByPid(server.listenPort, server.pids)), durationMs / 2);
    const cpu0 = procs.map((p) => procCpuMs(p));
    const m0 = machineTicks();
    const b0 = cpuMs();
    const timed = await closedLoop({ concurrency, durationMs, op: exchange });
    clearTimeout(sampler);
    const m1 = machineTicks();
    const portMs = procs.reduce((sum, p, i) => sum + procCpuMs(p) - cpu0[i], 0);
    const benchMs = cpuMs() - b0;
    if (timed.exhausted) notes.push(`${label}: ran out of pre-minted tokens after ${(timed.elapsedMs / 1000).toFixed(1)} s; its rate uses the time actually run.`);
    if (Object.keys(errors).length) notes.push(`${label}: errors ${JSON.stringify(errors)}; first: ${firstError}`);
    await pool.close();
    await server.stop();
    const sorted = Float64Array.from(timed.latencies).sort();
    const pct = (p) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
    const rate = (timed.latencies.length / timed.elapsedMs) * 1000;
    const portCores = portMs / timed.elapsedMs;
    return {
      label,
      rate,
      p50: pct(50),
      p99: pct(99),
      portCores,
      perCore: rate / portCores,
      benchCores: benchMs / timed.elapsedMs,
      machineCores: ((m1.busy - m0.busy) / (m1.total - m0.total)) * cpus,
      spread: count === 1 ? `${concurrency}` : spread.size > 0 ? [...spread.values()].join(' / ') : 'n/a',
      halves: timed.halves,
    };
  };

  const one = await row('1 worker', 1, '1');
  const many = await row(`${workers} workers`, workers, `0-${Math.min(workers, cpus) - 1}`);
  // The control: the same workers on the one worker's CPU. What they lose per core here is
  // the cost of several processes on one store (smaller group commits, SQLite's write lock,
  // the change feed), apart from what sharing the machine's cores costs.
  const control = canPin ? await row(`${workers} workers on CPU 1`, workers, '1') : undefined;

  const out = [];
  out.push(`bench/workers — ${os.cpus()[0]?.model ?? 'cpu'} ×${cpus}, Node ${process.version}, ${os.platform()}; concurrency ${concurrency}, ${durationMs / 1000} s measured after ${warmupMs / 1000} s warm-up`);
  if (opts.postgres) out.push('Store: PostgreSQL on this machine (not pinned; it shares the cores), a fresh database per row, `postgres_pool_size: 10` per process.');
  out.push(canPin ? `Pinned: load generator and simulator on CPU 0; Port on CPU 1 (1 worker), then on CPUs 0-${Math.min(workers, cpus) - 1} (${workers} workers).` : 'Not pinned: everything shares every CPU.');
  if (cpus <= workers) out.push(`This machine has ${cpus} CPUs: with ${workers} workers the load generator shares a core with Port, so the raw rate of that row is lower than the workers could do; compare per busy core.`);
  out.push('');
  const header = ['row', 'exchanges/s', 'p50', 'p99', "Port's busy cores", 'exchanges/s per busy core', 'load gen cores', 'machine busy cores', 'connections per worker'];
  const rows = [one, many, ...(control ? [control] : [])];
  const cells = rows.map((r) => [r.label, fmt.int(r.rate), fmt.ms(r.p50), fmt.ms(r.p99), r.portCores.toFixed(2), fmt.int(r.perCore), r.benchCores.toFixed(2), r.machineCores.toFixed(2), r.spread]);
  out.push(`| ${header.join(' | ')} |`, `| ${header.map(() => '---').join(' | ')} |`, ...cells.map((c) => `| ${c.join(' | ')} |`));
  out.push('');
  out.push(`Per-core efficiency (${workers} workers ÷ 1 worker, exchanges/s per busy core): ${(many.perCore / one.perCore).toFixed(2)} (1.00: a worker does as much per core as one process alone).`);
  out.push(`Throughput: ${(many.rate / one.rate).toFixed(2)}× the one-worker row.`);
  if (control) out.push(`Control, ${workers} workers on one CPU ÷ 1 worker on that CPU, per busy core: ${(control.perCore / one.perCore).toFixed(2)} (the cost of several processes on one store, without more cores).`);
  for (const r of rows) if (r.halves) out.push(`${r.label}: first/second half of the run ${fmt.int(r.halves[0])}/s and ${fmt.int(r.halves[1])}/s.`);
  for (const n of notes) out.push(`Note: ${n}`);
  out.push('', `Command: node bench/workers.mjs ${process.argv.slice(2).join(' ')}`.trimEnd());
  console.log(out.join('\n'));
}
