/**
 * bench/exchange — token exchanges per second and p50/p99 latency on one core at a
 * fixed concurrency, against a baseline measured in the same run (the raw jose cost of
 * verifying one RS256 Buildkite token and signing one ES256 Port token), plus in-process
 * Cedar decisions per second with 100 policies. Aim: an exchange costs no more than 3×
 * the raw crypto it must do.
 *
 *   npm run bench:exchange [-- FLAGS]      (or, after `npm run build`: node bench/exchange.mjs FLAGS)
 *
 *   --concurrency N     requests / operations in flight (default 16)
 *   --duration S        measured seconds for the exchange and the baseline (default 10)
 *   --warmup S          warm-up seconds before each (default 3)
 *   --decisions N       timed Cedar decisions per policy set (default 5000)
 *   --policies N        size of the generated Cedar policy set (default 100)
 *   --parts-duration S  seconds for the verify-only / sign-only rows; 0 skips them (default 3)
 *   --profile           V8 CPU profile of Port during the timed run, kept in a temp dir and summarized
 *   --store-dir DIR     where Port's temp dir (config, policies, SQLite) goes; /dev/shm takes fsync out
 *   --no-pin, --server-cpu N (1), --client-cpu N (0)   CPU placement
 *
 * Layout (2+ CPUs): this process (load generator + Buildkite simulator) on CPU 0; Port,
 * the jose baseline and the Cedar run each in a child pinned to CPU 1 with `taskset`,
 * one after another. Without taskset (or with one CPU) nothing is pinned and the table
 * says so. Only loopback addresses are used; temp dirs and children are removed on exit.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { BuildkiteSimulator } from '../dist/sim/index.js';
import { summarizeProfile } from './cpuprofile-summary.mjs';
import { closedLoop, fmt, startChild, summarize, tasksetWorks, abortable, optionReader } from './lib.mjs';
import { AUDIENCE, ORGANIZATION } from './policies.mjs';

const here = (f) => fileURLToPath(new URL(f, import.meta.url));

const { values: opts } = parseArgs({
  options: {
    concurrency: { type: 'string', default: '16' },
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '3' },
    decisions: { type: 'string', default: '5000' },
    policies: { type: 'string', default: '100' },
    'parts-duration': { type: 'string', default: '3' },
    'server-cpu': { type: 'string', default: '1' },
    'client-cpu': { type: 'string', default: '0' },
    'no-pin': { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    'store-dir': { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opts.help) {
  console.log(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('*/')[0]);
  process.exit(0);
}
const { posInt, posNum, fail } = optionReader('exchange', opts);
const concurrency = posInt('concurrency');
const durationMs = posNum('duration') * 1000;
const warmupMs = posNum('warmup') * 1000;
const decisions = posInt('decisions');
const policyCount = posInt('policies');
const partsMs = Number(opts['parts-duration']) * 1000;
const serverCpu = Number(opts['server-cpu']);
const clientCpu = Number(opts['client-cpu']);
const argsText = process.argv.slice(2).join(' ');
/** Where Port's config, policies and SQLite file go (a temp dir inside); e.g. /dev/shm to take fsync out. */
const storeDir = opts['store-dir'] ?? os.tmpdir();

// ---- pinning: re-exec this process on the client CPU -----------------------------------
const canPin = !opts['no-pin'] && os.cpus().length >= 2 && tasksetWorks(serverCpu) && tasksetWorks(clientCpu);
if (canPin && process.env.PORT_BENCH_PINNED !== '1') {
  const child = spawn('taskset', ['-c', String(clientCpu), process.execPath, ...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: 'inherit',
    env: { ...process.env, PORT_BENCH_PINNED: '1' },
  });
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
} else {
  await main();
}

// ---- main -------------------------------------------------------------------------------

async function main() {
  const pinned = canPin;
  const cpu = pinned ? serverCpu : undefined;
  const notes = [];
  if (!pinned) {
    notes.push(
      opts['no-pin']
        ? 'Not pinned (--no-pin): Port, the load generator and the baselines share all CPUs.'
        : 'Not pinned: taskset is unavailable or fewer than 2 CPUs; Port, the load generator and the baselines share all CPUs, so the numbers are not "one core".',
    );
  }
  const { cleanups, cleanup, abort, aborted } = abortable('bench/exchange');
  // Everything is bounded: the default run takes ~50 s.
  const budgetMs = 60_000 + 3 * (durationMs + warmupMs) + 2 * partsMs + decisions * 3;
  const deadline = setTimeout(() => abort(`did not finish within ${Math.round(budgetMs / 1000)} s; giving up`), budgetMs);

  try {
    const log = (msg) => process.stderr.write(`· ${msg}\n`);

    // 1. The Buildkite simulator (here, on the client CPU) and Port (child, server CPU).
    const sim = await BuildkiteSimulator.start({ organization: ORGANIZATION, host: '127.0.0.1' });
    cleanups.push(() => sim.close());
    const job = sim.createJob({ pipelineSlug: 'deploy', branch: 'main' });
    const profileDir = opts.profile ? mkdtempSync(join(os.tmpdir(), 'port-bench-profile-')) : undefined;
    const server = startChild(here('./exchange-server.mjs'), { cpu });
    cleanups.push(() => server.stop());
    await server.next('hello');
    server.send({ type: 'start', issuer: sim.issuer, jwksUrl: sim.jwksUrl, audience: AUDIENCE, organization: ORGANIZATION, storeDir });
    const { url } = await server.next('ready');
    log(`Port (pid ${server.pid}) at ${url}${pinned ? ` on CPU ${serverCpu}` : ''}; simulator at ${sim.url}`);

    // 2. Single-use Buildkite tokens, minted before the timed run.
    const bodies = [];
    let mintMs = 0;
    let minted = 0;
    const mint = async (n) => {
      const t0 = performance.now();
      let left = n;
      await Promise.all(
        Array.from({ length: 16 }, async () => {
          while (left-- > 0) {
            const token = await sim.mintToken(job, { audience: AUDIENCE, lifetime: 3600 });
            bodies.push(
              new URLSearchParams({
                grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
                subject_token: token,
                subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
                scope: 'deploy-token',
              }).toString(),
            );
          }
        }),
      );
      mintMs += performance.now() - t0;
      minted += n;
    };

    // 3. Load: N connections, N requests in flight, each a full RFC 8693 exchange.
    const pool = new Pool(url, { connections: concurrency, pipelining: 1 });
    cleanups.push(() => pool.destroy());
    let next = 0;
    let errors = {};
    let firstError;
    const exchange = async () => {
      if (next >= bodies.length) return false;
      const body = bodies[next++];
      try {
        const res = await pool.request({ path: '/oauth/token', method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body });
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

    await mint(concurrency * 4);
    // One exchange first: a broken setup fails loudly instead of as a table of errors.
    {
      const body = bodies[next++];
      const res = await pool.request({ path: '/oauth/token', method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body });
      const json = await res.body.json();
      if (res.statusCode !== 200 || typeof json.access_token !== 'string') throw new Error(`first exchange failed: ${res.statusCode} ${JSON.stringify(json)}`);
    }
    await mint(Math.ceil((warmupMs / 1000) * 1500));
    log(`minted ${bodies.length} tokens in ${(mintMs / 1000).toFixed(1)} s; warming up ${warmupMs / 1000} s`);
    const warm = await closedLoop({ concurrency, durationMs: warmupMs, op: exchange });
    const warmRate = (warm.latencies.length / warm.elapsedMs) * 1000;
    if (Object.keys(errors).length) throw new Error(`errors during warm-up: ${JSON.stringify(errors)}; first: ${firstError}`);
    // Warm-up runs slower than steady state (JIT): mint 3× what it suggests.
    const needed = Math.min(400_000, Math.ceil(Math.max(warmRate, 200) * (durationMs / 1000) * 3) + concurrency * 4);
    bodies.splice(0, next);
    next = 0;
    const before = performance.now();
    await mint(Math.max(0, needed - bodies.length));
    log(`warm-up ran at ${fmt.int(warmRate)}/s; minted ${bodies.length} tokens in ${((performance.now() - before) / 1000).toFixed(1)} s; measuring ${durationMs / 1000} s at ${concurrency} in flight`);

    errors = {};
    firstError = undefined;
    if (profileDir) {
      server.send({ type: 'profile-start' });
      await server.next('profile-started');
      notes.push('Profiled run (--profile): the V8 sampling profiler was on in the Port process, so the exchange row is a little slow.');
    }
    server.send({ type: 'usage' });
    const u0 = await server.next('usage');
    const timed = await closedLoop({ concurrency, durationMs, op: exchange });
    server.send({ type: 'usage' });
    const u1 = await server.next('usage');
    let profile;
    if (profileDir) {
      server.send({ type: 'profile-stop', file: join(profileDir, 'port-exchange.cpuprofile') });
      profile = (await server.next('profile-stopped')).file;
    }
    const serverCpuMs = u1.cpuMs - u0.cpuMs;
    const exch = summarize(timed.latencies, timed.elapsedMs, {
      cpuMs: serverCpuMs,
      errors: Object.values(errors).reduce((a, b) => a + b, 0),
      errorDetail: errors,
      firstError,
      voluntarySwitches: u1.rusage.voluntaryContextSwitches - u0.rusage.voluntaryContextSwitches,
      halves: timed.halves,
      threads: u0.threads && u1.threads ? { main: u1.threads.main - u0.threads.main, other: u1.threads.other - u0.threads.other } : undefined,
    });
    if (timed.exhausted) notes.push(`The exchange run ran out of pre-minted tokens after ${(timed.elapsedMs / 1000).toFixed(1)} s; rates use the time actually run.`);
    await pool.close();
    await server.stop();

    // 4. Baseline: the same crypto in-process with jose, same CPU, same concurrency, same duration.
    log(`baseline: RS256 verify + ES256 sign, ${concurrency} in flight, ${durationMs / 1000} s`);
    const sample = [];
    for (let i = 0; i < 64; i++) sample.push(await sim.mintToken(job, { audience: AUDIENCE, lifetime: 3600 }));
    const baseline = startChild(here('./baseline.mjs'), { cpu });
    cleanups.push(() => baseline.stop());
    await baseline.next('hello');
    baseline.send({
      type: 'start',
      jwk: sim.jwks().keys[0],
      tokens: sample,
      issuer: sim.issuer,
      audience: AUDIENCE,
      portIssuer: AUDIENCE,
      concurrency,
      durationMs,
      warmupMs,
      partsMs,
    });
    const base = await baseline.next('result', budgetMs);
    await baseline.stop();

    // 5. Cedar in-process.
    log(`cedar: ${decisions} decisions with ${policyCount} policies, and with the exchange server's 4`);
    const cedarChild = startChild(here('./cedar.mjs'), { cpu });
    cleanups.push(() => cedarChild.stop());
    await cedarChild.next('hello');
    cedarChild.send({ type: 'start', decisions, warmup: Math.min(1000, Math.ceil(decisions / 10)), policies: policyCount });
    const cedar = await cedarChild.next('result', budgetMs);
    await cedarChild.stop();

    // 6. The table.
    const where = (s) => (pinned ? s : 'unpinned');
    const perOp = (r) => fmt.us((r.cpuMs / r.ops) * 1000);
    const threadsPerOp = (r, which) => fmt.us((r.threads[which] / r.ops) * 1000);
    const row = (name, loc, inflight, r, unit, errs = '0') =>
      `| ${name} | ${loc} | ${inflight} | ${fmt.int(r.ops)} | ${fmt.int(r.perSecond)} ${unit} | ${fmt.ms(r.p50)} | ${fmt.ms(r.p99)} | ${perOp(r)} | ${errs} |`;
    const ratio = base.combined.perSecond / exch.perSecond;
    const cpuRatio = exch.cpuMs / exch.ops / (base.combined.cpuMs / base.combined.ops);
    const lines = [
      '| Benchmark | Where | In flight | Ops | Rate | p50 | p99 | CPU/op | Errors |',
      '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
      row(
        'Token exchange over HTTP (`POST /oauth/token`, `scope=deploy-token`)',
        where(`Port on CPU ${serverCpu}, load from CPU ${clientCpu}`),
        concurrency,
        exch,
        'exchanges/s',
        exch.errors === 0 ? '0' : `${exch.errors} ${JSON.stringify(exch.errorDetail)}`,
      ),
      row('Baseline: RS256 verify + ES256 sign (jose, in-process)', where(`CPU ${serverCpu}`), concurrency, base.combined, 'ops/s'),
    ];
    if (base.verify) lines.push(row('↳ RS256 verify only (`jwtVerify`, cached key)', where(`CPU ${serverCpu}`), concurrency, base.verify, 'ops/s'));
    if (base.sign) lines.push(row('↳ ES256 sign only (`SignJWT`)', where(`CPU ${serverCpu}`), concurrency, base.sign, 'ops/s'));
    lines.push(
      row(`Cedar \`PolicyEngine.decide()\`, ${cedar.large.policies} policies`, where(`CPU ${serverCpu}`), '1 (sync)', cedar.large, 'decisions/s', String(cedar.large.errors)),
      row(`Cedar \`PolicyEngine.decide()\`, ${cedar.small.policies} policies (the exchange server's set)`, where(`CPU ${serverCpu}`), '1 (sync)', cedar.small, 'decisions/s', String(cedar.small.errors)),
    );
    const verdict = ratio <= 3 ? 'met' : 'missed';
    const cpuModel = (/^model name\s*:\s*(.*)$/m.exec(safeRead('/proc/cpuinfo')) ?? [])[1] ?? os.cpus()[0]?.model ?? 'unknown';
    const out = [
      '',
      `**An exchange costs ${ratio.toFixed(2)}× the raw crypto** (baseline ${fmt.int(base.combined.perSecond)} ops/s ÷ ${fmt.int(exch.perSecond)} exchanges/s); aim ≤ 3× — **${verdict}**.`,
      '',
      ...lines,
      '',
      `- Port process during the exchange run: ${((serverCpuMs / exch.elapsedMs) * 100).toFixed(0)}% of one CPU busy (all threads), ${fmt.us((serverCpuMs / exch.ops) * 1000)} CPU per exchange vs ${perOp(base.combined)} per baseline op (CPU ratio ${cpuRatio.toFixed(2)}×); ${fmt.int(exch.voluntarySwitches)} voluntary context switches (${(exch.voluntarySwitches / exch.ops).toFixed(2)} per exchange).`,
      ...(exch.threads && base.combined.threads
        ? [
            `- CPU per op by thread (from /proc, 10 ms ticks): exchange — main thread ${threadsPerOp(exch, 'main')}, other threads (libuv pool: WebCrypto; V8 helpers) ${threadsPerOp(exch, 'other')}; baseline — main ${threadsPerOp(base.combined, 'main')}, other ${threadsPerOp(base.combined, 'other')}.`,
          ]
        : []),
      ...(exch.halves ? [`- Exchange rate in the first / second half of the measured run: ${fmt.int(exch.halves[0])} / ${fmt.int(exch.halves[1])} per s.`] : []),
      `- Cedar decisions (${cedar.large.policies} policies): ${cedar.large.allow} allow / ${cedar.large.deny} deny over ${fmt.int(cedar.large.ops)} exchange and assume requests for varied jobs; ${cedar.large.entities} entities each.`,
      `- Exchange tokens: RS256 Buildkite tokens (lifetime 3600 s, single use) minted before the timed run by the simulator at ${fmt.int(minted / (mintMs / 1000))}/s; warm-up ${warmupMs / 1000} s, measured ${(exch.elapsedMs / 1000).toFixed(1)} s.`,
      ...notes.map((n) => `- ${n}`),
      '',
      `Machine: ${os.cpus().length} CPUs (nproc), ${cpuModel}, ${Math.round(os.totalmem() / 2 ** 30)} GiB RAM, Linux ${os.release()}, Node ${process.version}; Port's SQLite store in ${storeDir} on ${fsType(storeDir)} (WAL, synchronous=FULL).`,
      `Command: \`npm run bench:exchange${argsText ? ` -- ${argsText}` : ''}\``,
    ];
    console.log(out.join('\n'));
    if (exch.firstError) console.log(`\nFirst exchange error: ${exch.firstError}`);

    if (profile) {
      console.log(`\nCPU profile of the Port process during the timed exchange run: ${profile}\n`);
      console.log(summarizeProfile(profile, { top: 20, ops: exch.ops, processCpuMs: serverCpuMs }).text);
    }
  } catch (err) {
    if (!aborted()) console.error(`bench/exchange failed: ${err?.stack ?? err}`);
    process.exitCode = 1;
  } finally {
    clearTimeout(deadline);
    await cleanup();
  }
}

function safeRead(file) {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

function fsType(dir) {
  try {
    const mounts = safeRead('/proc/mounts')
      .split('\n')
      .map((l) => l.split(' '))
      .filter((p) => p.length > 2 && dir.startsWith(p[1]))
      .sort((a, b) => b[1].length - a[1].length);
    return mounts[0] ? `${mounts[0][2]} (${mounts[0][0]})` : 'unknown fs';
  } catch {
    return 'unknown fs';
  }
}

