/**
 * bench/relay — what Port's relay costs next to the floor any Node relay pays (a bare
 * undici proxy) and next to nginx: wrk at a fixed concurrency against each, req/s, p50,
 * p99 and the proxy's CPU per request; the ratios Port/bare-Node and Port/nginx; then
 * 1 GiB streamed down and up through each proxy, MiB/s and peak RSS.
 * Aim: Port keeps ≥ 85 % of the bare Node proxy's throughput with policy on
 * every request (`relay.decision_cache_ttl: 0`), and adds < 1 ms at p99.
 *
 *   npm run bench:relay [-- FLAGS]      (or, after `npm run build`: node bench/relay.mjs FLAGS)
 *
 *   --concurrency N        wrk connections (default 32; one wrk thread)
 *   --duration S           measured seconds per wrk run (default 8)
 *   --warmup S             wrk warm-up before each measured run (default 2)
 *   --latency-duration S   seconds of the concurrency-1 latency runs; 0 skips them (default 3)
 *   --stream-mib N         MiB streamed down and up through each proxy; 0 skips (default 1024)
 *   --profile              V8 CPU profiles of Port during its cache-hit and no-cache timed runs, summarized
 *   --no-agents            skip the host-bound rows (a DPoP proof on every request) and their Bearer control
 *   --no-pin, --proxy-cpu N (1), --load-cpu N (0)   CPU placement
 *
 * Host-bound rows (after the Bearer Port rows): a Port token bound to an agent host's key
 * (pool `host_bound: true`, exchanged with a DPoP proof), sent as `Authorization: DPoP` with
 * a fresh proof on every request — proofs pre-made before each wrk run and fed to wrk by a
 * Lua script — with the decision cache on and with `decision_cache_ttl: 0`; a Bearer token
 * of the same pool without the binding as the control; and `store.replay.consume` (the
 * proof's jti write) measured alone.
 *
 * Layout on a 2-CPU machine: the proxy under test (nginx's one worker, the bare proxy, Port)
 * alone on CPU 1; wrk, the upstream, the Buildkite simulator and this process on CPU 0.
 * The proxies run one after another, never together. Requirements: `nginx` and `wrk`
 * (Debian: `apt-get install -y nginx-light wrk`; installed automatically when run as root).
 * Only loopback addresses are used; temp dirs and children are removed on exit.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { createServer } from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createProof, loadOrCreateHostKey } from '../dist/dpop/host-key.js';
import { BuildkiteSimulator } from '../dist/sim/index.js';
import { byteStream, cpuMs, procCpuMs, procIo, reexecPinned, rssBytes, rssSampler, startChild, tasksetWorks, abortable } from './lib.mjs';
import { AUDIENCE, ORGANIZATION } from './policies.mjs';
import { relayProfile } from './relay-profile.mjs';

const here = (f) => fileURLToPath(new URL(f, import.meta.url));
const MiB = 1024 ** 2;
/** What bench/relay-upstream.mjs answers to any plain request. */
const UPSTREAM_BODY = 'hello from the upstream\n';

const { values: opts } = parseArgs({
  options: {
    concurrency: { type: 'string', default: '32' },
    duration: { type: 'string', default: '8' },
    warmup: { type: 'string', default: '2' },
    'latency-duration': { type: 'string', default: '3' },
    'stream-mib': { type: 'string', default: '1024' },
    'proxy-cpu': { type: 'string', default: '1' },
    'load-cpu': { type: 'string', default: '0' },
    'no-pin': { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    'no-agents': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opts.help) {
  console.log(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('*/')[0]);
  process.exit(0);
}
const num = (name, min) => {
  const n = Number(opts[name]);
  if (!Number.isFinite(n) || n < min) fail(`--${name} must be a number ≥ ${min}`);
  return n;
};
const concurrency = Math.round(num('concurrency', 1));
const durationS = num('duration', 1);
const warmupS = num('warmup', 0);
const latencyS = num('latency-duration', 0);
const streamBytes = Math.round(num('stream-mib', 0) * MiB);
const proxyCpu = Number(opts['proxy-cpu']);
const loadCpu = Number(opts['load-cpu']);
const argsText = process.argv.slice(2).join(' ');
const withAgents = !opts['no-agents'];
/** The host-bound rows' pool: CLUSTER_NAME/QUEUE_KEY as the job's token claims it. */
const AGENT_POOL = 'default/deploy';
/** What the host-bound pool allows of an AWS attestation (Port refuses an `aws_iam` pool open to any account). */
const AGENT_AWS = { accounts: ['123456789012'] };

function fail(msg) {
  console.error(`bench/relay: ${msg}`);
  process.exit(2);
}

const canPin = !opts['no-pin'] && os.cpus().length >= 2 && tasksetWorks(proxyCpu) && tasksetWorks(loadCpu);
if (!(canPin && reexecPinned(fileURLToPath(import.meta.url), loadCpu))) await main();

// ---- tools ------------------------------------------------------------------------------

function findTool(name) {
  for (const dir of [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/sbin', '/usr/bin']) {
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

/** nginx and wrk from Debian; installed with apt-get when missing and running as root. */
function ensureTools() {
  const want = { nginx: 'nginx-light', wrk: 'wrk' };
  let missing = Object.keys(want).filter((t) => !findTool(t));
  if (missing.length === 0) return { nginx: findTool('nginx'), wrk: findTool('wrk') };
  const pkgs = missing.map((t) => want[t]);
  if (process.getuid?.() !== 0) fail(`needs ${missing.join(' and ')}; install with: sudo apt-get install -y ${pkgs.join(' ')}`);
  console.error(`· installing ${pkgs.join(' ')} with apt-get`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = (names) => spawnSync('apt-get', ['install', '-y', '-q', ...names], { stdio: ['ignore', 'ignore', 'inherit'], env }).status === 0;
  if (!install(pkgs)) {
    spawnSync('apt-get', ['update', '-q'], { stdio: ['ignore', 'ignore', 'inherit'], env });
    // Older or newer Debian releases may only have `nginx`.
    if (!install(pkgs) && !install(pkgs.map((p) => (p === 'nginx-light' ? 'nginx' : p)))) fail(`apt-get could not install ${pkgs.join(' ')}`);
  }
  missing = Object.keys(want).filter((t) => !findTool(t));
  if (missing.length) fail(`still missing after apt-get: ${missing.join(', ')}`);
  return { nginx: findTool('nginx'), wrk: findTool('wrk') };
}

// ---- main -------------------------------------------------------------------------------

async function main() {
  const tools = ensureTools();
  const pinned = canPin;
  const proxyAt = pinned ? proxyCpu : undefined;
  const onLoad = (cmd, args) => (pinned ? ['taskset', ['-c', String(loadCpu), cmd, ...args]] : [cmd, args]);
  const onProxy = (cmd, args) => (pinned ? ['taskset', ['-c', String(proxyCpu), cmd, ...args]] : [cmd, args]);
  const log = (msg) => process.stderr.write(`· ${msg}\n`);
  const loadAtStart = os.loadavg()[0];
  const t0 = performance.now();

  const { cleanups, cleanup, abort, aborted } = abortable('bench/relay');
  const wrkRuns = 7 + (withAgents ? 3 : 0);
  const budgetMs = 90_000 + (withAgents ? 90_000 : 0) + wrkRuns * (durationS + warmupS) * 1000 + 4 * latencyS * 1000 + (streamBytes / MiB) * 60;
  const deadline = setTimeout(() => abort(`did not finish within ${Math.round(budgetMs / 1000)} s; giving up`), budgetMs);

  const work = mkdtempSync(join(os.tmpdir(), 'port-bench-relay-'));
  cleanups.push(() => rmSync(work, { recursive: true, force: true }));

  try {
    // ---- wrk ----
    const uniqueScript = join(work, 'unique-paths.lua');
    writeFileSync(
      uniqueScript,
      [
        '-- Every request a path never seen before: /relay/bench/u/<run>/<n> (cache misses).',
        'local prefix, n = "0", 0',
        'function init(args) prefix = args[1] or "0" end',
        'function request()',
        '  n = n + 1',
        '  return wrk.format(nil, "/relay/bench/u/" .. prefix .. "/" .. n)',
        'end',
        '',
      ].join('\n'),
    );
    // Host-bound rows: each request the bound token and the next pre-made proof, read from a file.
    const dpopScript = join(work, 'dpop-proofs.lua');
    writeFileSync(
      dpopScript,
      [
        '-- File (args[1]): the bound Port token, the request path, then one DPoP proof per line.',
        'local auth, path, proofs, count, n = nil, nil, {}, 0, 0',
        'function init(args)',
        '  local f = assert(io.open(args[1], "r"))',
        '  auth = "DPoP " .. f:read("*l")',
        '  path = f:read("*l")',
        '  for line in f:lines() do count = count + 1; proofs[count] = line end',
        '  f:close()',
        'end',
        'function request()',
        '  n = n + 1',
        '  -- Past the last proof the last is sent again: Port refuses the replay (non-2xx).',
        '  return wrk.format("GET", path, { ["Authorization"] = auth, ["DPoP"] = proofs[math.min(n, count)] })',
        'end',
        '',
      ].join('\n'),
    );
    let runId = 0;
    const wrk = async ({ url, conns, seconds, headers = [], script, scriptArgs }) => {
      const args = ['-t1', `-c${conns}`, `-d${seconds}s`, '--latency', '--timeout', '5s'];
      for (const h of headers) args.push('-H', h);
      if (script) args.push('-s', script);
      args.push(url);
      if (script) args.push('--', ...(scriptArgs ?? [`r${process.pid}x${++runId}`]));
      const [cmd, argv] = onLoad(tools.wrk, args);
      const out = await run(cmd, argv, (seconds + 20) * 1000);
      if (out.code !== 0) throw new Error(`wrk failed (${out.code}): ${out.stderr || out.stdout}`);
      return parseWrk(out.stdout);
    };

    // ---- upstream, simulator ----
    const upstream = startChild(here('./relay-upstream.mjs'), { cpu: pinned ? loadCpu : undefined });
    cleanups.push(() => upstream.stop());
    await upstream.next('hello');
    upstream.send({ type: 'start' });
    const upstreamUrl = (await upstream.next('ready')).url;
    const sim = await BuildkiteSimulator.start({ organization: ORGANIZATION, host: '127.0.0.1' });
    cleanups.push(() => sim.close());
    const job = sim.createJob({ pipelineSlug: 'deploy', branch: 'main' });
    // Every target gets the same request, the last Port token included (only Port reads it).
    let auth;
    log(`upstream (pid ${upstream.pid}) at ${upstreamUrl}${pinned ? ` on CPU ${loadCpu}` : ''}`);

    const results = [];
    const latency = [];
    const streams = [];
    const profiles = [];

    /** warm-up, then the timed run; the proxy's CPU from /proc around the timed run. */
    const measure = async (row, { url, pid, script, scriptArgs, warm = warmupS, hooks, headers }) => {
      const hs = headers ?? [auth];
      if (warm > 0) await wrk({ url, conns: concurrency, seconds: warm, headers: hs, script, scriptArgs });
      await hooks?.before();
      const c0 = pid ? procCpuMs(pid) : undefined;
      const io0 = pid ? procIo(pid) : undefined;
      const r = await wrk({ url, conns: concurrency, seconds: durationS, headers: hs, script, scriptArgs });
      const cpu = pid ? procCpuMs(pid) - c0 : undefined;
      const io1 = pid ? procIo(pid) : undefined;
      await hooks?.after(r, cpu);
      results.push({ ...row, ...r, cpuMs: cpu, io: io0 && io1 ? { writeBytes: io1.writeBytes - io0.writeBytes, syscw: io1.syscw - io0.syscw } : undefined });
      log(`${row.name}: ${Math.round(r.rps)} req/s, p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms${cpu !== undefined ? `, ${Math.round((cpu / r.requests) * 1000)} µs CPU/req` : ''}`);
      return r;
    };
    const measureLatency = async (name, url) => {
      if (latencyS <= 0) return;
      const r = await wrk({ url, conns: 1, seconds: latencyS, headers: [auth] });
      latency.push({ name, ...r });
    };
    const check = async (url, expectBody = UPSTREAM_BODY) => {
      const res = await fetch(url, { headers: { authorization: auth.slice('Authorization: '.length) } });
      const text = await res.text();
      if (res.status !== 200 || text !== expectBody) throw new Error(`sanity check of ${url} failed: ${res.status} ${text.slice(0, 300)}`);
    };
    const streamBoth = async (name, base, pid) => {
      if (streamBytes <= 0) return;
      const headers = { authorization: auth.slice('Authorization: '.length) };
      const dl = await transfer(pid, () => download(`${base}/stream/download/${streamBytes}`, headers));
      if (dl.bytes !== streamBytes) throw new Error(`${name}: download got ${dl.bytes} of ${streamBytes} bytes`);
      const ul = await transfer(pid, () => upload(`${base}/stream/upload/bench.bin`, headers, streamBytes));
      if (ul.bytes !== streamBytes) throw new Error(`${name}: upstream got ${ul.bytes} of ${streamBytes} uploaded bytes`);
      streams.push({ name, dl, ul });
      log(`${name}: download ${Math.round(dl.mibps)} MiB/s (+${(dl.growth / MiB).toFixed(1)} MiB RSS), upload ${Math.round(ul.mibps)} MiB/s (+${(ul.growth / MiB).toFixed(1)} MiB RSS)`);
    };

    // 1. Port with the decision cache (5 s, the default), then 2. without it (policy on every request).
    // Port goes first: its token is then the Authorization header every other target gets too.
    const startPortChild = async (ttl) => {
      const port = startChild(here('./relay-server.mjs'), { cpu: proxyAt });
      cleanups.push(() => port.stop());
      await port.next('hello');
      port.send({ type: 'start', issuer: sim.issuer, jwksUrl: sim.jwksUrl, audience: AUDIENCE, organization: ORGANIZATION, upstreamUrl, decisionCacheTtl: ttl });
      const { url } = await port.next('ready');
      const res = await fetch(`${url}/oauth/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
          subject_token: await sim.mintToken(job, { audience: AUDIENCE, lifetime: 3600 }),
          subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
        }),
      });
      const body = await res.json();
      if (res.status !== 200) throw new Error(`token exchange with Port failed: ${res.status} ${JSON.stringify(body)}`);
      auth = `Authorization: Bearer ${body.access_token}`;
      log(`Port (pid ${port.pid}, decision_cache_ttl ${ttl}) at ${url}; token of ${body.access_token.length} bytes`);
      await check(`${url}/relay/bench/hello`);
      return { port, url };
    };
    const profileDir = opts.profile ? mkdtempSync(join(os.tmpdir(), 'port-bench-relay-profile-')) : undefined;
    /** With --profile: V8's sampling profiler on in Port during exactly the timed run. */
    const profiled = (port, label, file) =>
      profileDir && {
        before: async () => {
          port.send({ type: 'profile-start' });
          await port.next('profile-started');
        },
        after: async (r, cpu) => {
          const path = join(profileDir, file);
          port.send({ type: 'profile-stop', file: path });
          await port.next('profile-stopped');
          profiles.push(`### CPU profile of Port, ${label}, during the timed run (${path})\n\n${relayProfile(path, { ops: r.requests, processCpuMs: cpu }).text}`);
        },
      };
    {
      const { port, url } = await startPortChild(5);
      await measure(
        { name: 'Port relay, decision cache on (5 s), same path', key: 'port-cache', where: `CPU ${proxyCpu}` },
        { url: `${url}/relay/bench/hello`, pid: port.pid, hooks: profiled(port, 'decision cache on, same path', 'port-relay-cached.cpuprofile') },
      );
      await measure(
        { name: 'Port relay, decision cache on (5 s), a new path every request', key: 'port-unique', where: `CPU ${proxyCpu}` },
        { url: `${url}/relay/bench/hello`, pid: port.pid, script: uniqueScript, warm: Math.min(warmupS, 1) },
      );
      await port.stop();
    }
    {
      const { port, url } = await startPortChild(0);
      await measure(
        { name: 'Port relay, `decision_cache_ttl: 0` (policy on every request)', key: 'port', where: `CPU ${proxyCpu}` },
        { url: `${url}/relay/bench/hello`, pid: port.pid, hooks: profiled(port, '`decision_cache_ttl: 0`', 'port-relay-nocache.cpuprofile') },
      );
      await measureLatency('Port relay (`decision_cache_ttl: 0`)', `${url}/relay/bench/hello`);
      await streamBoth('Port relay', `${url}/relay/bench`, port.pid);
      await port.stop();
    }

    // 2b. Host-bound: the same relay request with a token bound to the agent host's key.
    const dpop = withAgents ? await measureHostBound({ sim, upstreamUrl, work, proxyAt, cleanups, measure, wrk, dpopScript, log, results, profiled }) : undefined;

    // 3. Direct: wrk → upstream. Not a proxy: the reference for latency, and what CPU 0 can serve.
    await check(`${upstreamUrl}/hello`);
    await measure({ name: 'Direct to the upstream (no proxy)', key: 'direct', where: `upstream on CPU ${loadCpu}` }, { url: `${upstreamUrl}/hello`, pid: upstream.pid });
    await measureLatency('Direct to the upstream', `${upstreamUrl}/hello`);

    // 4. nginx, one worker.
    {
      const ng = await startNginx(tools.nginx, work, upstreamUrl, onProxy);
      cleanups.push(() => ng.stop());
      log(`${ng.version} (worker pid ${ng.workerPid}) at ${ng.url}`);
      await check(`${ng.url}/hello`);
      await measure({ name: `${ng.version} (\`worker_processes 1\`, upstream keepalive)`, key: 'nginx', where: `CPU ${proxyCpu}` }, { url: `${ng.url}/hello`, pid: ng.workerPid });
      await measureLatency('nginx', `${ng.url}/hello`);
      await streamBoth('nginx', ng.url, ng.workerPid);
      await ng.stop();
    }

    // 5. The bare undici proxy.
    {
      const bare = startChild(here('./relay-bare-proxy.mjs'), { cpu: proxyAt, env: { BARE_PROXY_UPSTREAM: upstreamUrl } });
      cleanups.push(() => bare.stop());
      const { url } = await bare.next('ready');
      log(`bare undici proxy (pid ${bare.pid}) at ${url}`);
      await check(`${url}/hello`);
      await measure({ name: 'Bare Node proxy (`http` + undici `Pool`, pipe-through only)', key: 'bare', where: `CPU ${proxyCpu}` }, { url: `${url}/hello`, pid: bare.pid });
      await measureLatency('Bare Node proxy', `${url}/hello`);
      await streamBoth('Bare Node proxy', url, bare.pid);
      await bare.stop();
    }

    // ---- the report ----
    const ORDER = ['direct', 'nginx', 'bare', 'port-cache', 'port-unique', 'port', 'port-pool-bearer', 'port-dpop', 'port-dpop-nocache'];
    results.sort((a, b) => ORDER.indexOf(a.key) - ORDER.indexOf(b.key));
    const LAT_ORDER = ['Direct', 'nginx', 'Bare', 'Port'];
    latency.sort((a, b) => LAT_ORDER.findIndex((p) => a.name.startsWith(p)) - LAT_ORDER.findIndex((p) => b.name.startsWith(p)));
    const STREAM_ORDER = ['nginx', 'Bare', 'Port'];
    streams.sort((a, b) => STREAM_ORDER.findIndex((p) => a.name.startsWith(p)) - STREAM_ORDER.findIndex((p) => b.name.startsWith(p)));
    const by = Object.fromEntries(results.map((r) => [r.key, r]));
    const bare = by.bare;
    const ms = (v) => (v >= 10 ? v.toFixed(1) : v.toFixed(2)) + ' ms';
    const signed = (v) => `${v >= 0 ? '+' : '−'}${ms(Math.abs(v))}`;
    const pct = (a, b) => `${((a / b) * 100).toFixed(0)} %`;
    const errs = (r) => (r.non2xx || r.socketErrors ? `${r.non2xx} non-2xx, ${r.socketErrors} socket` : '0');
    const table = [
      `| Target (wrk -t1 -c${concurrency} -d${durationS}s) | Where | Requests | Req/s | p50 | p99 | p99 vs bare Node | Proxy CPU busy | CPU / req | Errors |`,
      '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
      ...results.map((r) => {
        const busy = r.cpuMs !== undefined ? `${((r.cpuMs / (r.seconds * 1000)) * 100).toFixed(0)} %` : '—';
        const per = r.cpuMs !== undefined ? `${Math.round((r.cpuMs / r.requests) * 1000)} µs` : '—';
        const vsBare = r.key === 'bare' || r.key === 'direct' ? '—' : signed(r.p99 - bare.p99);
        return `| ${r.name} | ${r.where} | ${r.requests.toLocaleString('en-US')} | ${Math.round(r.rps).toLocaleString('en-US')} | ${ms(r.p50)} | ${ms(r.p99)} | ${vsBare} | ${busy} | ${per} | ${errs(r)} |`;
      }),
    ];
    const port = by.port;
    const keep = port.rps / bare.rps;
    const added = port.p99 - bare.p99;
    const cpuPer = (r) => r.cpuMs / r.requests;
    const head = [
      `**Port keeps ${pct(port.rps, bare.rps)} of the bare Node proxy's throughput with policy on every request** (${Math.round(port.rps).toLocaleString('en-US')} vs ${Math.round(bare.rps).toLocaleString('en-US')} req/s; aim ≥ 85 % — **${keep >= 0.85 ? 'met' : 'missed'}**), ` +
        `**and adds ${signed(added)} at p99** (${ms(port.p99)} vs ${ms(bare.p99)} at ${concurrency} connections; aim < 1 ms — **${added < 1 ? 'met' : 'missed'}**).`,
      '',
      `| Ratio | Req/s | p99 added | CPU per request |`,
      '| --- | --- | --- | --- |',
      ...[
        ['Port (no cache) / bare Node', port, bare],
        ['Port (no cache) / nginx', port, by.nginx],
        ['Port (cache, same path) / bare Node', by['port-cache'], bare],
        ['Port (cache, new path every request) / bare Node', by['port-unique'], bare],
        ['Bare Node / nginx', bare, by.nginx],
        ...(by['port-dpop'] ? [['Port DPoP (cache, same path) / Port Bearer (cache, same path)', by['port-dpop'], by['port-cache']]] : []),
        ...(by['port-dpop'] && by['port-pool-bearer'] ? [['Port DPoP (cache) / attested-pool Bearer (cache), same pool', by['port-dpop'], by['port-pool-bearer']]] : []),
        ...(by['port-dpop-nocache'] ? [['Port DPoP (no cache) / Port Bearer (no cache)', by['port-dpop-nocache'], port]] : []),
      ].map(([name, a, b]) => `| ${name} | ${pct(a.rps, b.rps)} | ${signed(a.p99 - b.p99)} | ${(cpuPer(a) / cpuPer(b)).toFixed(2)}× (${Math.round(cpuPer(a) * 1000)} vs ${Math.round(cpuPer(b) * 1000)} µs) |`),
    ];
    const out = ['', ...head, '', ...table];
    if (latency.length) {
      const direct = latency[0];
      out.push(
        '',
        `Latency with one connection (wrk -t1 -c1 -d${latencyS}s, same CPU layout): what each hop adds without queueing. The p99 here is sensitive to scheduling noise (a 2-vCPU VM waking an idle vCPU); read it across runs.`,
        '',
        '| Target | Req/s | p50 | p90 | p99 | p50 added over direct | p99 added over direct |',
        '| --- | --- | --- | --- | --- | --- | --- |',
        ...latency.map((r) => `| ${r.name} | ${Math.round(r.rps).toLocaleString('en-US')} | ${ms(r.p50)} | ${ms(r.p90)} | ${ms(r.p99)} | ${r === direct ? '—' : signed(r.p50 - direct.p50)} | ${r === direct ? '—' : signed(r.p99 - direct.p99)} |`),
      );
    }
    if (streams.length) {
      const mibs = (t) => `${Math.round(t.mibps).toLocaleString('en-US')} MiB/s`;
      const mem = (t) => `${(t.peak / MiB).toFixed(0)} MiB (+${(t.growth / MiB).toFixed(1)})`;
      out.push(
        '',
        `Streaming ${streamBytes / MiB} MiB through each proxy (Node client → proxy → upstream, one transfer at a time; peak RSS of the proxy process sampled every 50 ms, growth over the pre-transfer baseline):`,
        '',
        '| Proxy | Download | Peak RSS (download) | Proxy CPU (download) | Upload (Content-Length) | Peak RSS (upload) | Proxy CPU (upload) |',
        '| --- | --- | --- | --- | --- | --- | --- |',
        ...streams.map((s) => `| ${s.name} | ${mibs(s.dl)} | ${mem(s.dl)} | ${s.dl.cpuShare} | ${mibs(s.ul)} | ${mem(s.ul)} | ${s.ul.cpuShare} |`),
      );
    }
    const cpuModel = (/^model name\s*:\s*(.*)$/m.exec(safeRead('/proc/cpuinfo')) ?? [])[1] ?? os.cpus()[0]?.model ?? 'unknown';
    out.push(
      '',
      `- Layout: ${pinned ? `proxy under test alone on CPU ${proxyCpu}; wrk (1 thread), the upstream (Node \`http\`, ${UPSTREAM_BODY.length}-byte body), the Buildkite simulator and this script on CPU ${loadCpu}` : 'not pinned (--no-pin, or taskset unavailable / fewer than 2 CPUs): everything shares all CPUs'}. ` +
        `The direct row is wrk → upstream with no proxy: a proxy row near it is limited by CPU ${loadCpu}, not by the proxy. "Proxy CPU busy" and "CPU / req" are the proxy process's user+system time from /proc during the timed run (10 ms ticks).`,
      `- Every request carries the same \`Authorization: Bearer <Port token>\` (${auth.length - 'Authorization: Bearer '.length} bytes); only Port reads it. Port: one upstream with a bearer credential injected, 3 relay policies + 4 exchange/assume policies (Cedar), a warm-up of ${warmupS} s before each timed run. ` +
        `"A new path every request" uses a wrk Lua script (\`/relay/bench/u/<run>/<n>\`), so every decision misses the cache; the Lua costs wrk some CPU on CPU ${loadCpu}.`,
      ...(dpop ? hostBoundNotes(dpop, by, { loadCpu, proxyCpu }) : []),
      `- 1-min load average just before the run: ${loadAtStart.toFixed(2)} (the run itself keeps both CPUs busy); the run took ${Math.round((performance.now() - t0) / 1000)} s.`,
      '',
      `Machine: ${os.cpus().length} CPUs (nproc), ${cpuModel}, ${Math.round(os.totalmem() / 2 ** 30)} GiB RAM, Linux ${os.release()}, Node ${process.version}, ${by.nginx.name.split(' (')[0]}, wrk ${wrkVersion(tools.wrk)}.`,
      `Command: \`npm run bench:relay${argsText ? ` -- ${argsText}` : ''}\``,
    );
    console.log(out.join('\n'));
    if (profiles.length) console.log(`\nProfiled run (--profile): the sampling profiler slows Port down (roughly 1.5–2× CPU per request), so the Port rows above are not representative; shares are.\n\n${profiles.join('\n\n')}`);
  } catch (err) {
    if (!aborted()) console.error(`bench/relay failed: ${err?.stack ?? err}`);
    process.exitCode = 1;
  } finally {
    clearTimeout(deadline);
    await cleanup();
  }
}

// ---- pieces -----------------------------------------------------------------------------

function run(cmd, args, timeoutMs) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (err) => (clearTimeout(timer), reject(err)));
    child.once('close', (code) => (clearTimeout(timer), resolve({ code, stdout, stderr })));
  });
}

/** wrk's report → { requests, seconds, rps, p50, p75, p90, p99 (ms), non2xx, socketErrors }. */
function parseWrk(text) {
  const unit = { us: 1e-3, ms: 1, s: 1000, m: 60_000 };
  const pcts = {};
  for (const m of text.matchAll(/^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$/gm)) pcts[m[1]] = Number(m[2]) * unit[m[3]];
  const total = /(\d+) requests in ([\d.]+)(us|ms|s|m)/.exec(text);
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(text);
  if (!total || !rps || pcts[99] === undefined) throw new Error(`cannot read wrk's output:\n${text}`);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  return {
    requests: Number(total[1]),
    seconds: (Number(total[2]) * unit[total[3]]) / 1000,
    rps: Number(rps[1]),
    p50: pcts[50],
    p75: pcts[75],
    p90: pcts[90],
    p99: pcts[99],
    non2xx: Number(/Non-2xx or 3xx responses: (\d+)/.exec(text)?.[1] ?? 0),
    socketErrors: sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0,
  };
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** nginx with a minimal generated config: one worker, upstream keep-alive, streaming both ways. */
async function startNginx(bin, work, upstreamUrl, onProxy) {
  const dir = join(work, 'nginx');
  mkdirSync(dir);
  for (const d of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(dir, d));
  const listen = await freePort();
  const conf = join(dir, 'nginx.conf');
  writeFileSync(
    conf,
    `worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  keepalive_requests 10000000;
  upstream up {
    server ${new URL(upstreamUrl).host};
    keepalive 64;
    keepalive_requests 10000000;
  }
  server {
    listen 127.0.0.1:${listen};
    client_max_body_size 0;
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_request_buffering off;
      proxy_buffering off;
    }
  }
}
`,
  );
  const [cmd, args] = onProxy(bin, ['-p', dir, '-e', join(dir, 'error.log'), '-c', conf]);
  const master = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  master.stderr.on('data', (d) => (stderr += d));
  let exited = false;
  master.once('exit', () => (exited = true));
  const stop = async () => {
    if (exited) return;
    const done = new Promise((r) => master.once('exit', r));
    master.kill('SIGTERM');
    const t = setTimeout(() => master.kill('SIGKILL'), 5_000);
    await done;
    clearTimeout(t);
  };
  const url = `http://127.0.0.1:${listen}`;
  const started = Date.now();
  let workerPid;
  for (;;) {
    if (exited) throw new Error(`nginx exited: ${stderr}${safeRead(join(dir, 'error.log'))}`);
    workerPid ??= Number(safeRead(`/proc/${master.pid}/task/${master.pid}/children`).trim().split(/\s+/)[0]) || undefined;
    if (workerPid && (await fetch(`${url}/`).then(() => true, () => false))) break;
    if (Date.now() - started > 10_000) {
      await stop();
      throw new Error(`nginx did not start: ${stderr}${safeRead(join(dir, 'error.log'))}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const version = /nginx\/([\d.]+)/.exec(spawnSync(bin, ['-v'], { encoding: 'utf8' }).stderr ?? '')?.[1] ?? '';
  return { url, workerPid, version: `nginx ${version}`.trim(), stop };
}

/** Runs one transfer while sampling the proxy's RSS; adds MiB/s and the proxy's CPU share. */
async function transfer(pid, fn) {
  const rss = rssSampler(pid);
  await rss.start();
  const c0 = procCpuMs(pid);
  const t0 = performance.now();
  const { bytes } = await fn();
  const ms = performance.now() - t0;
  const cpu = procCpuMs(pid) - c0;
  const mem = rss.stop();
  return { bytes, ms, mibps: bytes / MiB / (ms / 1000), cpuShare: `${Math.round((cpu / ms) * 100)} %`, ...mem, rssNow: rssBytes(pid) };
}

function download(url, headers) {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers, agent: false }, (res) => {
      let bytes = 0;
      res.on('data', (c) => (bytes += c.length));
      res.once('end', () => (res.statusCode === 200 ? resolve({ bytes }) : reject(new Error(`download: ${res.statusCode}`))));
      res.once('error', reject);
    });
    req.once('error', reject);
    req.end();
  });
}

function upload(url, headers, bytes) {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'PUT', headers: { ...headers, 'content-type': 'application/octet-stream', 'content-length': String(bytes) }, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.once('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`upload: ${res.statusCode} ${text.slice(0, 300)}`));
        resolve({ bytes: JSON.parse(text).bytes });
      });
    });
    req.once('error', reject);
    pipeline(byteStream(bytes), req).catch(reject);
  });
}

function wrkVersion(bin) {
  const r = spawnSync(bin, ['-v'], { encoding: 'utf8' });
  return /wrk (\S+)/.exec(`${r.stdout}${r.stderr}`)?.[1] ?? '?';
}

function safeRead(file) {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

// ---- host-bound rows ------------------------------------------------------------------------

/**
 * The relay with a Port token bound to an agent host's key (RFC 9449): pool
 * `default/deploy` with `attestation: [aws_iam]` and `host_bound: true`, the agent's
 * attestation (with the key's thumbprint) written into Port's store at start, the token
 * from a real exchange with a DPoP proof. Every request then carries
 * `Authorization: DPoP <token>` and a fresh proof with `ath`. Proofs are made here on the
 * load CPU before each wrk run — signing during the run would take that CPU from wrk — and
 * fed to wrk one per request by a Lua script. Rows: the Bearer control (the same pool
 * without the binding), DPoP with the decision cache on, DPoP with `decision_cache_ttl: 0`;
 * then `store.replay.consume` (a proof's jti write) alone on the same Port.
 */
async function measureHostBound({ sim, upstreamUrl, work, proxyAt, cleanups, measure, wrk, dpopScript, log, results, profiled }) {
  const job = sim.createJob({ pipelineSlug: 'deploy', branch: 'main', clusterName: AGENT_POOL.split('/')[0], queueKey: AGENT_POOL.split('/')[1] });
  // The host key as `port agent attest` keeps it: a private JWK file, 0600 in a 0700 directory.
  const hostKey = await loadOrCreateHostKey(join(work, 'host-key', 'host-key.json'));
  const record = (jkt) => ({
    agentId: job.agentId,
    pool: AGENT_POOL,
    methods: ['aws_iam'],
    account: '123456789012',
    iamRole: 'arn:aws:iam::123456789012:role/bench-deploy-agent',
    instanceId: 'i-0bench0000000001',
    ...(jkt ? { jkt } : {}),
  });
  const where = `CPU ${proxyCpu}`;
  const path = '/relay/bench/hello';
  const out = { proofs: { made: 0, wallMs: 0, cpuMs: 0, maxAgeS: 0 }, rows: {} };

  const startAgentPort = async (ttl, hostBound) => {
    const port = startChild(here('./relay-server.mjs'), { cpu: proxyAt });
    cleanups.push(() => port.stop());
    await port.next('hello');
    port.send({
      type: 'start',
      issuer: sim.issuer,
      jwksUrl: sim.jwksUrl,
      audience: AUDIENCE,
      organization: ORGANIZATION,
      upstreamUrl,
      decisionCacheTtl: ttl,
      pools: { [AGENT_POOL]: { attestation: ['aws_iam'], aws: AGENT_AWS, host_bound: hostBound } },
      attest: [record(hostBound ? hostKey.jkt : undefined)],
    });
    const { url } = await port.next('ready');
    const res = await fetch(`${url}/oauth/token`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        ...(hostBound ? { dpop: await createProof(hostKey, { method: 'POST', url: `${AUDIENCE}/oauth/token` }) } : {}),
      },
      body: new URLSearchParams({
        grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
        subject_token: await sim.mintToken(job, { audience: AUDIENCE, lifetime: 3600, claims: ['cluster_name', 'queue_key'] }),
        subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
      }),
    });
    const body = await res.json();
    if (res.status !== 200 || body.token_type !== (hostBound ? 'DPoP' : 'Bearer')) throw new Error(`token exchange for pool ${AGENT_POOL} failed: ${res.status} ${JSON.stringify(body)}`);
    log(`Port (pid ${port.pid}, pool ${AGENT_POOL}${hostBound ? ', host-bound' : ''}, decision_cache_ttl ${ttl}) at ${url}; ${body.token_type} token of ${body.access_token.length} bytes`);
    return { port, url, token: body.access_token };
  };
  const expectAnswer = async (url, headers, status) => {
    const res = await fetch(url, { headers });
    const text = await res.text();
    if (res.status !== status) throw new Error(`sanity check of ${url} failed: ${res.status} (expected ${status}) ${text.slice(0, 300)}`);
  };

  // The control: a token of the same pool (attested, not bound) as Bearer, decision cache on.
  {
    const { port, url, token } = await startAgentPort(5, false);
    await expectAnswer(`${url}${path}`, { authorization: `Bearer ${token}` }, 200);
    await measure(
      { name: 'Port relay, attested-pool token (`aws_iam`, not host-bound) as Bearer, decision cache on (5 s), same path', key: 'port-pool-bearer', where },
      { url: `${url}${path}`, pid: port.pid, headers: [`Authorization: Bearer ${token}`] },
    );
    await port.stop();
  }

  /** `n` fresh proofs for GET <path> with the token's ath, in a file for the Lua script. */
  const proofFile = async (token, n, name) => {
    const proofs = new Array(n);
    const t0 = performance.now();
    const c0 = cpuMs();
    let i = 0;
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        while (i < n) {
          const k = i++;
          proofs[k] = await createProof(hostKey, { method: 'GET', url: `${AUDIENCE}${path}`, accessToken: token });
        }
      }),
    );
    out.proofs.cpuMs += cpuMs() - c0;
    out.proofs.wallMs += performance.now() - t0;
    out.proofs.made += n;
    const file = join(work, `${name}.proofs`);
    writeFileSync(file, `${token}\n${path}\n${proofs.join('\n')}\n`);
    return { file, n, madeAt: t0 };
  };

  const dpopRow = async (ttl, row, cap) => {
    const { port, url, token } = await startAgentPort(ttl, true);
    const target = `${url}${path}`;
    // Bound: the proof is required, and the token as Bearer is refused.
    await expectAnswer(target, { authorization: `DPoP ${token}`, dpop: await createProof(hostKey, { method: 'GET', url: `${AUDIENCE}${path}`, accessToken: token }) }, 200);
    await expectAnswer(target, { authorization: `Bearer ${token}` }, 401);
    let warmRate = cap;
    if (warmupS > 0) {
      const warm = await proofFile(token, Math.ceil(cap * warmupS * 1.2) + 500, `${row.key}-warm`);
      const w = await wrk({ url: target, conns: concurrency, seconds: warmupS, script: dpopScript, scriptArgs: [warm.file] });
      if (w.non2xx || w.socketErrors) throw new Error(`${row.key}: errors during warm-up (${w.non2xx} non-2xx, ${w.socketErrors} socket); ${w.requests} requests for ${warm.n} proofs`);
      warmRate = w.rps;
    }
    // The warm-up runs at about half the timed rate (JIT): room for 3× its rate, at most 1.15× the Bearer row's.
    const timed = await proofFile(token, Math.ceil(Math.min(cap * 1.15, Math.max(warmRate, 500) * 3) * durationS) + 1000, `${row.key}-timed`);
    const r = await measure({ ...row, where }, { url: target, pid: port.pid, warm: 0, script: dpopScript, scriptArgs: [timed.file], headers: [], hooks: profiled(port, row.profileLabel, `${row.key}.cpuprofile`) });
    out.proofs.maxAgeS = Math.max(out.proofs.maxAgeS, (performance.now() - timed.madeAt) / 1000);
    port.send({ type: 'replay-rows' });
    const rows = await port.next('replay-rows');
    out.rows[row.key] = { ...rows, proofs: timed.n, exhausted: r.requests > timed.n };
    return { port, r };
  };

  const by = Object.fromEntries(results.map((x) => [x.key, x]));
  {
    const { port } = await dpopRow(
      5,
      { name: 'Port relay, host-bound token with a DPoP proof on every request, decision cache on (5 s), same path', key: 'port-dpop', profileLabel: 'host-bound with DPoP, decision cache on' },
      by['port-cache'].rps,
    );
    // What one proof's jti write costs, alone on the same (now idle) Port: fresh keys, as many in flight as wrk's connections.
    // One in flight: every consume is its own commit, as when requests' proofs reach the store in different event-loop turns.
    port.send({ type: 'replay-bench', concurrency, durationMs: Math.min(3, durationS) * 1000 });
    out.replay = await port.next('replay-bench');
    port.send({ type: 'replay-bench', concurrency: 1, durationMs: Math.min(3, durationS) * 1000 });
    out.replaySerial = await port.next('replay-bench');
    // And what checking a proof costs without the store (Port's DpopVerifier, an in-memory replay set).
    port.send({ type: 'dpop-bench', concurrency, count: 5000, url: `${AUDIENCE}${path}` });
    out.verify = await port.next('dpop-bench', 120_000);
    await port.stop();
  }
  {
    const { port } = await dpopRow(
      0,
      { name: 'Port relay, host-bound token with a DPoP proof on every request, `decision_cache_ttl: 0`', key: 'port-dpop-nocache', profileLabel: 'host-bound with DPoP, `decision_cache_ttl: 0`' },
      by.port.rps,
    );
    await port.stop();
  }
  return out;
}

/** Notes under the relay table for the host-bound rows. */
function hostBoundNotes(d, by, { loadCpu, proxyCpu }) {
  const us = (ms, n) => `${Math.round((ms / n) * 1000)} µs`;
  const kib = (r) => (r?.io ? `${(r.io.writeBytes / r.requests / 1024).toFixed(2)} KiB` : 'n/a');
  const p = d.proofs;
  const rb = d.replay;
  const rs = d.replaySerial;
  const alone = (x, inflight, what) =>
    `${inflight} in flight${what}: ${Math.round((x.ops / x.elapsedMs) * 1000).toLocaleString('en-US')} consumes/s, ${us(x.cpuMs, x.ops)} of CPU each, p50 ${x.p50.toFixed(2)} ms, p99 ${x.p99.toFixed(2)} ms${x.writeBytes !== undefined ? `, ${(x.writeBytes / x.ops / 1024).toFixed(2)} KiB written each` : ''}`;
  const cached = d.rows['port-dpop'];
  const out = [
    `- Host-bound rows: pool \`${AGENT_POOL}\` with \`attestation: [aws_iam]\` and \`host_bound: true\`; the agent's attestation (with its host key's thumbprint) is written into Port's store at start, as \`POST /v1/agents/attest\` records it, and the token comes from a real exchange with a DPoP proof (\`token_type: DPoP\`, \`cnf.jkt\`). Each request carries \`Authorization: DPoP <token>\` and a fresh ES256 proof with \`ath\` (\`createProof\` of src/dpop/host-key.ts), checked on every request whether the decision cache hits or not. ` +
      `The proofs are made before each wrk run on CPU ${loadCpu} (signing during the run would take CPU ${loadCpu} from wrk): ${p.made.toLocaleString('en-US')} proofs at ${Math.round(p.made / (p.wallMs / 1000)).toLocaleString('en-US')}/s, ${us(p.cpuMs, p.made)} of client CPU each; a wrk Lua script sends one per request (the oldest was ${p.maxAgeS.toFixed(0)} s old at the end of its run; \`attestation.dpop_max_age\` 60 s). ` +
      `The control row is a token of the same pool without the binding, sent as Bearer with wrk's fixed header (no Lua).`,
  ];
  const exhausted = Object.entries(d.rows).filter(([, v]) => v.exhausted).map(([k]) => k);
  if (exhausted.length) out.push(`- **${exhausted.join(', ')} ran out of pre-made proofs**: the requests past them were replays, refused (non-2xx); read those rows as lower bounds.`);
  out.push(
    `- What the proof's \`jti\` write costs: Port consumes each proof in its store (\`store.replay.consume\`: one \`INSERT … ON CONFLICT\` into \`replay_cache\`, kept until \`iat\` + 61 s) before it forwards, on the write batcher — the writes queued in one event-loop turn share one transaction and one fsync (SQLite WAL, \`its log synced before a write is acknowledged\`). ` +
      `Port wrote ${kib(by['port-dpop'])} per request to disk in the DPoP cache-on row and ${kib(by['port-dpop-nocache'])} with \`decision_cache_ttl: 0\`, against ${kib(by['port-cache'])} and ${kib(by['port-pool-bearer'])} for the Bearer cache-on rows (/proc/<pid>/io \`write_bytes\`)` +
      (cached ? `; \`replay_cache\` held ${cached.rows.toLocaleString('en-US')} rows after the cache-on run (database ${(cached.dbBytes / MiB).toFixed(1)} MiB + WAL ${(cached.walBytes / MiB).toFixed(1)} MiB; \`purgeExpired\` deletes them once expired)` : '') +
      '.' +
      (rb
        ? ` Measured alone on the same Port (CPU ${proxyCpu}, otherwise idle), fresh keys: ${alone(rb, concurrency, ' (their writes share commits)')}` + (rs ? `; ${alone(rs, 1, ' (a commit and fsync per consume)')}` : '') + '.'
        : ''),
  );
  const v = d.verify;
  if (v) {
    out.push(
      `- What checking the proof costs without the store: Port's \`DpopVerifier.verify\` alone in the same Port process (${concurrency} in flight, an in-memory replay set, ${v.ops.toLocaleString('en-US')} proofs made there first): ${Math.round((v.ops / v.elapsedMs) * 1000).toLocaleString('en-US')} proofs/s, ${us(v.cpuMs, v.ops)} of CPU each` +
        (v.threads ? ` (main thread ${us(v.threads.main, v.ops)}, other threads — libuv's pool, where WebCrypto's ECDSA verify and digests run — ${us(v.threads.other, v.ops)}; 10 ms ticks)` : '') +
        `, p50 ${v.p50.toFixed(2)} ms, p99 ${v.p99.toFixed(2)} ms.`,
    );
  }
  return out;
}
