/**
 * bench/startup — how fast `port serve` is ready and how much memory it holds once idle.
 * Aim: idle RSS ≤ 120 MB, ready ≤ 1.5 s after start.
 *
 *   npm run bench:startup [-- FLAGS]    (or, after `npm run build`: node bench/startup.mjs FLAGS)
 *
 *   --runs N         starts per row; the table shows the median (default 5)
 *   --idle S         seconds idle after ready before the second memory reading (default 5)
 *   --settle S       seconds idle after ready before the third, "settled" reading (default 30;
 *                    0: none). V8's memory reducer gives unused heap pages back some 10–20 s
 *                    after the start's last big collection, so this one reads what an idle
 *                    Port holds for good.
 *   --node-args="…"  extra node arguments for the measured Port processes, for experiments
 *                    (--node-args=--v8-pool-size=1); the baseline runs without them
 *
 * How it runs: `port init --org acme` writes its starter port.yaml and policies/ into a temp
 * dir — the config a new operator starts from. Two lines are added: `buildkite.jwks_url`
 * points at a JWKS this process serves on loopback (so /readyz can say ready without
 * reaching Buildkite), and the env holds the two secrets init asks for. One unmeasured start
 * with --create-store creates the SQLite store and the signing keys; every measured start
 * then opens the existing store, as a restart does. Each start is a real process,
 * `node bin/port.js serve -c …` (from dist/), timed from spawn: "listening" is the first
 * HTTP answer from /readyz, "ready" its first 200 (the bench polls every 5 ms); "CPU to
 * ready" is the process's CPU time (all threads) by then, which a busy machine inflates
 * less than the wall-clock time. Memory is
 * read inside the child through a preloaded probe (an IPC listener answering with
 * process.memoryUsage(), and the WebAssembly memories' size; no GC is forced): at ready, and
 * again after --idle and --settle seconds with no requests. cedar-wasm's linear memory is its own column:
 * memoryUsage() counts it nowhere. What RSS holds beyond the columns is mostly native: code,
 * and malloc's free memory kept in its per-thread arenas (V8 compiles hot wasm functions with
 * TurboFan on its worker threads, in zones of up to tens of MB that are freed afterwards).
 *
 * Rows: the init config; the same plus `sso:`, `scim:` and an `aws_role` credential (the
 * optional stacks: openid-client, SCIMMY, the AWS SDK); and the baseline, measured in the
 * same run: a bare Fastify hello server started with `node -e`, with the same probe. Where
 * `port serve` has `--workers` (server.workers), the Port rows run one process
 * (`--workers 1`), and one more row starts the init config with its default number of
 * workers and sums RSS and CPU over the primary and its workers (from /proc; the number of
 * processes in brackets).
 * Only loopback addresses are used; the temp dir and children are removed on exit.
 */
import { spawn, spawnSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer } from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { parseDocument } from 'yaml';
import { abortable, optionReader, procCpuMs, rssBytes } from './lib.mjs';

const here = (f) => fileURLToPath(new URL(f, import.meta.url));
const ROOT = here('..');
const PORT_BIN = here('../bin/port.js');
const POLL_MS = 5;
const MB = 1024 * 1024;

const { values: opts } = parseArgs({
  options: {
    runs: { type: 'string', default: '5' },
    idle: { type: 'string', default: '5' },
    settle: { type: 'string', default: '30' },
    'node-args': { type: 'string', default: '' },
    help: { type: 'boolean', default: false },
  },
});
if (opts.help) {
  console.log(readFileSync(here('./startup.mjs'), 'utf8').split('*/')[0]);
  process.exit(0);
}
const { posInt, posNum, fail } = optionReader('startup', opts);
const RUNS = posInt('runs');
const IDLE_MS = posNum('idle') * 1000;
const SETTLE_MS = Number(opts.settle) * 1000;
if (!Number.isFinite(SETTLE_MS) || (SETTLE_MS !== 0 && SETTLE_MS <= IDLE_MS)) fail('--settle must be 0 or more seconds than --idle');
const NODE_ARGS = opts['node-args'].split(' ').filter(Boolean);

/**
 * Preloaded into every measured process: answers 'mem' over IPC with process.memoryUsage()
 * and the size of every WebAssembly memory instantiated (cedar-wasm's linear memory, which
 * memoryUsage() does not count), noted by wrapping the WebAssembly.Instance constructor.
 */
const PROBE = `data:text/javascript,${encodeURIComponent(`
const memories = [];
WebAssembly.Instance = new Proxy(WebAssembly.Instance, {
  construct(target, args, newTarget) {
    const instance = Reflect.construct(target, args, newTarget);
    for (const e of Object.values(instance.exports)) if (e instanceof WebAssembly.Memory) memories.push(new WeakRef(e));
    return instance;
  },
});
// Not in a cluster worker (server.workers): its channel is the cluster's.
if (process.send && process.env.NODE_UNIQUE_ID === undefined) {
  process.on('message', (m) => {
    if (m !== 'mem') return;
    const wasm = memories.reduce((n, r) => n + (r.deref()?.buffer.byteLength ?? 0), 0);
    const cpu = process.cpuUsage();
    process.send({ mem: { ...process.memoryUsage(), wasm, cpuMs: (cpu.user + cpu.system) / 1000 } });
  });
  process.channel?.unref();
}
`)}`;

const BASELINE_SERVER = `
import Fastify from 'fastify';
const app = Fastify();
app.get('/readyz', async () => ({ status: 'ready' }));
await app.listen({ host: '127.0.0.1', port: Number(process.env.BENCH_PORT) });
`;

const { cleanups, cleanup, abort } = abortable('bench/startup');
const children = new Set();
cleanups.push(() => {
  for (const c of children) c.kill('SIGKILL');
});

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** A JWKS on loopback so the Buildkite key check passes without the internet. */
async function jwksServer() {
  const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...publicKey.export({ format: 'jwk' }), kid: 'bench', alg: 'RS256', use: 'sig' };
  const body = JSON.stringify({ keys: [jwk] });
  const server = createHttpServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(body));
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise((r) => server.close(r)));
  return `http://127.0.0.1:${server.address().port}/.well-known/jwks`;
}

/** `port init` in `dir`, then the bench's additions; returns the config path. */
function initConfig(dir, port, jwksUrl, extras) {
  const url = `http://127.0.0.1:${port}`;
  const init = spawnSync(process.execPath, [PORT_BIN, 'init', '--org', 'acme', '--dir', dir, '--listen', `127.0.0.1:${port}`, '--public-url', url], {
    encoding: 'utf8',
  });
  if (init.status !== 0) throw new Error(`port init failed: ${init.stderr}`);
  const file = join(dir, 'port.yaml');
  const doc = parseDocument(readFileSync(file, 'utf8'));
  doc.setIn(['buildkite', 'jwks_url'], jwksUrl);
  if (extras) {
    doc.set('sso', { issuer: 'http://127.0.0.1:9/idp', client_id: 'port', client_secret: 'env:PORT_SSO_CLIENT_SECRET' });
    doc.set('scim', { token: 'env:PORT_SCIM_TOKEN' });
    doc.setIn(['credentials', 'aws-deploy'], { type: 'aws_role', role_arn: 'arn:aws:iam::123456789012:role/deploy', region: 'us-east-1' });
  }
  writeFileSync(file, doc.toString());
  return file;
}

const SECRETS = {
  PORT_ADMIN_TOKEN: randomBytes(32).toString('hex'),
  PORT_KEY_ENCRYPTION_KEY: randomBytes(32).toString('hex'),
  PORT_SSO_CLIENT_SECRET: randomBytes(16).toString('hex'),
  PORT_SCIM_TOKEN: randomBytes(32).toString('hex'),
};

const ask = (child) =>
  new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no answer from the memory probe')), 5000);
    child.once('message', (m) => {
      clearTimeout(t);
      resolve(m.mem);
    });
    child.send('mem');
  });

/**
 * RSS and CPU time summed over a process and its descendants (a `port serve` with
 * server.workers > 1 is a primary and its workers), from /proc; the probe's other
 * figures are per process, so they are left out.
 */
function treeUsage(pid) {
  const parentOf = new Map();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      parentOf.set(Number(d), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // gone meanwhile
    }
  }
  const tree = [pid];
  for (let i = 0; i < tree.length; i++) for (const [p, parent] of parentOf) if (parent === tree[i]) tree.push(p);
  let rss = 0;
  let cpuMs = 0;
  for (const p of tree) {
    try {
      rss += rssBytes(p);
      cpuMs += procCpuMs(p);
    } catch {
      // gone meanwhile
    }
  }
  return { rss, cpuMs, processes: tree.length };
}

/**
 * Starts one process, times listening and ready from spawn, reads memory at ready and
 * after the idle periods (`settle: false`: at once), stops it. `args` are node's arguments
 * after the probe. `tree`: memory and CPU of the whole process tree, from /proc.
 */
async function measure(args, port, { env = {}, cwd = ROOT, settle = true, tree = false } = {}) {
  const t0 = performance.now();
  const child = spawn(process.execPath, ['--import', PROBE, ...args], {
    cwd,
    env: { ...process.env, ...SECRETS, ...env },
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });
  children.add(child);
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  let exited = false;
  child.once('exit', () => (exited = true));
  let listening = NaN;
  let ready = NaN;
  let lastBody = '';
  const deadline = t0 + 30_000;
  while (Number.isNaN(ready)) {
    if (exited) throw new Error(`the server exited before it was ready:\n${stderr}`);
    if (performance.now() > deadline) throw new Error(`not ready after 30 s; last /readyz: ${lastBody}\n${stderr}`);
    try {
      const res = await fetch(`http://127.0.0.1:${port}/readyz`);
      const now = performance.now();
      lastBody = await res.text();
      if (Number.isNaN(listening)) listening = now - t0;
      if (res.status === 200) ready = now - t0;
    } catch {
      // not listening yet
    }
    if (Number.isNaN(ready)) await new Promise((r) => setTimeout(r, POLL_MS));
  }
  const read = () => (tree ? treeUsage(child.pid) : ask(child));
  const atReady = await read();
  const readyAt = performance.now();
  const idleFor = async (ms) => {
    await new Promise((r) => setTimeout(r, Math.max(0, readyAt + ms - performance.now())));
    return read();
  };
  const idle = await idleFor(settle ? IDLE_MS : 0);
  const settled = settle && SETTLE_MS > 0 ? await idleFor(SETTLE_MS) : undefined;
  child.kill('SIGTERM');
  await new Promise((r) => (exited ? r() : child.once('exit', r)));
  children.delete(child);
  return { listening, ready, atReady, idle, settled };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

function summarizeRuns(name, runs) {
  const m = (f) => median(runs.map(f));
  return {
    name,
    listening: m((r) => r.listening),
    ready: m((r) => r.ready),
    readyMax: Math.max(...runs.map((r) => r.ready)),
    cpuReady: m((r) => r.atReady.cpuMs),
    rssReady: m((r) => r.atReady.rss),
    rssIdle: m((r) => r.idle.rss),
    rssIdleMax: Math.max(...runs.map((r) => r.idle.rss)),
    processes: Math.max(...runs.map((r) => r.idle.processes ?? 1)),
    rssSettled: runs[0].settled ? m((r) => r.settled.rss) : NaN,
    rssSettledMax: runs[0].settled ? Math.max(...runs.map((r) => r.settled.rss)) : NaN,
    heapTotalSettled: runs[0].settled ? m((r) => r.settled.heapTotal) : NaN,
    heapUsed: m((r) => r.idle.heapUsed),
    heapTotal: m((r) => r.idle.heapTotal),
    external: m((r) => r.idle.external),
    arrayBuffers: m((r) => r.idle.arrayBuffers),
    wasm: m((r) => r.idle.wasm),
  };
}

async function row(name, start) {
  const runs = [];
  for (let i = 0; i < RUNS; i++) {
    runs.push(await start());
    process.stderr.write('.');
  }
  return summarizeRuns(name, runs);
}

async function main() {
  const tmp = mkdtempSync(join(os.tmpdir(), 'port-bench-startup-'));
  cleanups.push(() => rmSync(tmp, { recursive: true, force: true }));
  const jwksUrl = await jwksServer();

  const rows = [];
  const configs = [
    { name: '`port serve`, the `port init` config', extras: false },
    { name: '`port serve`, + `sso:`, `scim:`, an `aws_role` credential', extras: true },
  ];
  // A Port with server.workers forks workers: the rows above measure one process
  // (--workers 1), and one more row the whole tree with the default number of workers.
  const workers = spawnSync(process.execPath, [PORT_BIN, 'serve', '--help'], { encoding: 'utf8' }).stdout.includes('--workers');
  for (const c of configs) {
    const dir = join(tmp, c.extras ? 'extras' : 'init');
    const port = await freePort();
    const config = initConfig(dir, port, jwksUrl, c.extras);
    const serve = [...NODE_ARGS, PORT_BIN, 'serve', '-c', config];
    const one = workers ? ['--workers', '1'] : [];
    // The first start creates the store and the signing keys; not measured.
    await measure([...serve, ...one, '--create-store'], port, { settle: false });
    rows.push(await row(`${c.name}${workers ? ', `--workers 1`' : ''}`, () => measure([...serve, ...one], port)));
    if (workers && !c.extras) {
      rows.push(await row('`port serve`, the `port init` config, default `server.workers`: all processes', () => measure(serve, port, { tree: true })));
    }
  }
  const basePort = await freePort();
  const baseline = await row('Baseline: bare Fastify hello server (`node -e`)', () =>
    measure(['--input-type=module', '-e', BASELINE_SERVER], basePort, { env: { BENCH_PORT: String(basePort) } }),
  );
  rows.push(baseline);
  process.stderr.write('\n');

  const mb = (n) => (Number.isFinite(n) ? `${(n / MB).toFixed(1)} MB` : 'n/a');
  const ms = (n) => `${Math.round(n).toLocaleString('en-US')} ms`;
  const settle = SETTLE_MS > 0;
  console.log(
    `\nNode ${process.version}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? 'unknown'}); ${RUNS} starts per row, medians (max in brackets)` +
      `${NODE_ARGS.length > 0 ? `; Port run with node ${NODE_ARGS.join(' ')}` : ''}.\n`,
  );
  console.log('| Process | Listening | Ready | CPU to ready |');
  console.log('| --- | --- | --- | --- |');
  for (const r of rows) console.log(`| ${r.name} | ${ms(r.listening)} | ${ms(r.ready)} (${ms(r.readyMax)}) | ${ms(r.cpuReady)} |`);
  const idleS = IDLE_MS / 1000;
  const settleS = SETTLE_MS / 1000;
  console.log(
    `\n| Process | RSS at ready | RSS, ${idleS} s idle | ${settle ? `RSS, ${settleS} s idle | ` : ''}Heap used / total, ${idleS} s${settle ? ` | Heap total, ${settleS} s` : ''} | External | Wasm memory | RSS over the baseline${settle ? `, ${settleS} s` : ''} |`,
  );
  console.log(`| --- | --- | --- | ${settle ? '--- | ' : ''}--- | ${settle ? '--- | ' : ''}--- | --- | --- |`);
  const last = (r) => (settle ? r.rssSettled : r.rssIdle);
  for (const r of rows) {
    const over = r === baseline ? '—' : `+${mb(last(r) - last(baseline))}`;
    const name = r.processes > 1 ? `${r.name} (${r.processes})` : r.name;
    console.log(
      `| ${name} | ${mb(r.rssReady)} | ${mb(r.rssIdle)} (${mb(r.rssIdleMax)}) | ${settle ? `${mb(r.rssSettled)} (${mb(r.rssSettledMax)}) | ` : ''}${mb(r.heapUsed)} / ${mb(r.heapTotal)}${settle ? ` | ${mb(r.heapTotalSettled)}` : ''} | ${mb(r.external)} | ${mb(r.wasm)} | ${over} |`,
    );
  }
  const init = rows[0];
  const verdict = (ok) => (ok ? 'met' : 'missed');
  console.log(
    `\nThe init config: RSS ${mb(init.rssIdle)} after ${idleS} s idle${settle ? `, ${mb(init.rssSettled)} after ${settleS} s` : ''} (aim ≤ 120 MB: ${verdict(last(init) <= 120 * MB)}); ` +
      `ready ${ms(init.ready)} after spawn (aim ≤ 1,500 ms: ${verdict(init.ready <= 1500)}).`,
  );
}

main()
  .then(cleanup)
  .catch((err) => abort(err.stack ?? String(err)));
