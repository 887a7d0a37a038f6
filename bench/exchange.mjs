/**
 * bench/exchange — token exchanges per second and p50/p99 latency on one core at a
 * fixed concurrency, against a baseline measured in the same run (the raw jose cost of
 * verifying one RS256 Buildkite token and signing one ES256 Port token), plus in-process
 * Cedar decisions per second with 100 policies. Aim: an exchange costs no more than 3×
 * the raw crypto it must do.
 *
 * Port and the baseline take turns (--rounds slices each, alternating, the other idle):
 * on a shared host whose speed drifts over seconds, measuring one and then the other
 * moved the ratio by a third from run to run; in turns a drift lands on both.
 *
 * The fixed-concurrency run keeps Port saturated, so its p99 is mostly queueing. A second
 * run against the same Port (the half-load row) sends exchanges open loop at half the rate
 * the first one measured, each scheduled at a fixed interval however slowly earlier ones
 * answer, and times each from its scheduled send (no coordinated omission): the latency
 * of a half-loaded Port. Aim: p99 at half load < 10 ms.
 *
 *   npm run bench:exchange [-- FLAGS]      (or, after `npm run build`: node bench/exchange.mjs FLAGS)
 *
 *   --concurrency N     requests / operations in flight (default 16)
 *   --duration S        measured seconds for the exchange and the baseline (default 10)
 *   --rounds N          the measured seconds are cut in N slices that alternate Port and the
 *                       baseline (default 5; 1 measures each in one piece, one after the other;
 *                       --profile implies 1)
 *   --warmup S          warm-up seconds before each (default 3)
 *   --decisions N       timed Cedar decisions per policy set (default 5000)
 *   --policies N        size of the generated Cedar policy set (default 100)
 *   --parts-duration S  seconds for the verify-only / sign-only rows; 0 skips them (default 3)
 *   --half-load-duration S  seconds of the open-loop run at half the measured rate; 0 skips it (default: --duration)
 *   --half-load-rate N  exchanges/s of that run instead of half the measured rate: the same load
 *                       for two builds compared run by run (the host moves the measured rate)
 *   --half-load-lead-in S  seconds that open loop runs at its rate before it is timed (default 1; 0
 *                       times it from its first request, as before 2026-12-06)
 *   --profile           V8 CPU profiles of Port during the timed and the half-load runs, kept in a temp dir and summarized
 *   --no-agents         skip the agent-pool rows (attestation, host-bound with DPoP)
 *   --store-dir DIR     where Port's temp dir (config, policies, SQLite) goes; /dev/shm takes fsync out
 *   --no-pin, --server-cpu N (1), --client-cpu N (0)   CPU placement
 *
 * Agent-pool rows (after the plain exchange, each with a fresh Port, same concurrency and
 * durations): jobs of pool default/deploy (one per request in flight, each on its own
 * agent) whose agents attested `aws_iam` (the records written into Port's store at start);
 * the same pool also requiring the live `buildkite` check (cached, then
 * `attestation.buildkite_cache_ttl: 0`); and a host-bound pool, where each exchange
 * carries a fresh ES256 DPoP proof made with the agent's registered host key.
 *
 * Layout (2+ CPUs): this process (load generator + Buildkite simulator) on CPU 0; Port,
 * the jose baseline and the Cedar run each in a child pinned to CPU 1 with `taskset`
 * (Port and the baseline alive together, taking turns; then the Cedar run). Without taskset (or with one CPU) nothing is pinned and the table
 * says so. Only loopback addresses are used; temp dirs and children are removed on exit.
 * Port and the baseline run with the V8 flags of a `server.workers` worker
 * (src/cluster/workers.ts, WORKER_V8_FLAGS): one process per core is how Port runs by default.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { decodeJwt } from 'jose';
import { Pool } from 'undici';
import { WORKER_V8_FLAGS } from '../dist/cluster/workers.js';
import { createProof, loadOrCreateHostKey } from '../dist/dpop/host-key.js';
import { BuildkiteSimulator } from '../dist/sim/index.js';
import { summarizeProfile } from './cpuprofile-summary.mjs';
import { closedLoop, cpuMs, fmt, gcPauses, openLoop, startChild, summarize, tailEpisodes, tasksetWorks, abortable, optionReader } from './lib.mjs';
import { AUDIENCE, ORGANIZATION } from './policies.mjs';

const here = (f) => fileURLToPath(new URL(f, import.meta.url));

const { values: opts } = parseArgs({
  options: {
    concurrency: { type: 'string', default: '16' },
    duration: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '3' },
    decisions: { type: 'string', default: '5000' },
    policies: { type: 'string', default: '100' },
    'parts-duration': { type: 'string', default: '3' },
    'half-load-duration': { type: 'string' },
    'half-load-rate': { type: 'string' },
    'half-load-lead-in': { type: 'string', default: '1' },
    'server-cpu': { type: 'string', default: '1' },
    'client-cpu': { type: 'string', default: '0' },
    'no-pin': { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    'no-agents': { type: 'boolean', default: false },
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
// A profile covers one slice, so a profiled run measures in one piece.
const rounds = opts.profile ? 1 : posInt('rounds');
const warmupMs = posNum('warmup') * 1000;
const decisions = posInt('decisions');
const policyCount = posInt('policies');
const partsMs = Number(opts['parts-duration']) * 1000;
/** The half-load row's aim: p99 under this many ms. */
const HALF_LOAD_AIM_MS = 10;
/** Slow exchanges scheduled at most this far apart belong to one stretch (tailEpisodes). */
const TAIL_GAP_MS = 50;
const halfLoadMs = opts['half-load-duration'] === undefined ? durationMs : Number(opts['half-load-duration']) * 1000;
const halfLoadRate = opts['half-load-rate'] === undefined ? undefined : Number(opts['half-load-rate']);
if (halfLoadRate !== undefined && !(Number.isFinite(halfLoadRate) && halfLoadRate > 0)) fail('--half-load-rate must be a positive number of exchanges per second');
if (!Number.isFinite(halfLoadMs) || halfLoadMs < 0) fail('--half-load-duration must be a number of seconds, 0 or more');
const halfLoadLeadInMs = Number(opts['half-load-lead-in']) * 1000;
if (!Number.isFinite(halfLoadLeadInMs) || halfLoadLeadInMs < 0) fail('--half-load-lead-in must be a number of seconds, 0 or more');
const serverCpu = Number(opts['server-cpu']);
const clientCpu = Number(opts['client-cpu']);
const argsText = process.argv.slice(2).join(' ');
const withAgents = !opts['no-agents'];
/** A second, short warm-up after minting the measured run's tokens. */
const REWARM_MS = 1000;
/** The agent rows measured after the plain exchange (see measureAgentRows). */
const AGENT_ROWS = 4;
/** The pool of the agent rows (CLUSTER_NAME/QUEUE_KEY, as the token's claims name it; the simulator's builds run in cluster `default`). */
const AGENT_QUEUE = 'deploy';
const AGENT_POOL = `default/${AGENT_QUEUE}`;
/** What the agent rows' pool allows of an AWS attestation (Port refuses an `aws_iam` pool open to any account). */
const AGENT_AWS = { accounts: ['123456789012'] };
/** Where Port's config, policies and SQLite file go (a temp dir inside); e.g. /dev/shm to take fsync out. */
const storeDir = opts['store-dir'] ?? os.tmpdir();

// ---- re-exec this process as the load generator: on the client CPU, with its heap sized ---
const canPin = !opts['no-pin'] && os.cpus().length >= 2 && tasksetWorks(serverCpu) && tasksetWorks(clientCpu);
/**
 * V8 flags of the load-generator process (unless given on the command line):
 * - --expose-gc: it collects its own garbage before each timed run (settleHeap);
 * - an old generation that starts at 1 GiB and young semispaces of 32 MiB. With V8's
 *   defaults this process (~55 MB live: the simulator, the minted tokens, the latencies)
 *   ran a major collection every ~2 s of the open loop, each with marking steps of up to
 *   16 ms on the event loop: requests sent late in a burst, counted (rightly, from their
 *   schedule) as Port's latency. Sized so, it collects only when told to, between runs; its
 *   pauses are reported with the half-load row, to show they stay small.
 */
const LOAD_GENERATOR_V8 = ['--expose-gc', '--initial-old-space-size=1024', '--max-semi-space-size=32'];
if (process.env.PORT_BENCH_LOAD_GENERATOR !== '1') {
  const given = new Set(process.execArgv.map((a) => a.split('=')[0]));
  const nodeArgs = [...process.execArgv, ...LOAD_GENERATOR_V8.filter((f) => !given.has(f.split('=')[0]))];
  const argv = [process.execPath, ...nodeArgs, fileURLToPath(import.meta.url), ...process.argv.slice(2)];
  const [cmd, ...args] = canPin ? ['taskset', '-c', String(clientCpu), ...argv] : argv;
  const child = spawn(cmd, args, {
    stdio: 'inherit',
    env: { ...process.env, PORT_BENCH_LOAD_GENERATOR: '1' },
  });
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
} else {
  await main();
}

// ---- main -------------------------------------------------------------------------------

async function main() {
  const pinned = canPin;
  /** The load generator's own GC pauses (this process), read around each measured run. */
  const clientGc = gcPauses();
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
  // Everything is bounded. The half-load run gets twice its length: minting its tokens takes at most as long as sending them.
  const budgetMs =
    60_000 + 3 * (durationMs + warmupMs) + 2 * partsMs + 2 * halfLoadMs + decisions * 3 + (withAgents ? AGENT_ROWS * (30_000 + 3 * (durationMs + warmupMs)) : 0);
  const deadline = setTimeout(() => abort(`did not finish within ${Math.round(budgetMs / 1000)} s; giving up`), budgetMs);

  try {
    const log = (msg) => process.stderr.write(`· ${msg}\n`);

    // 1. The Buildkite simulator (here, on the client CPU). Its REST calls (`/v2/…`, the
    // agent rows' live check) are counted on its HTTP server; `server` is private in
    // TypeScript only, and the count is all this reads.
    const sim = await BuildkiteSimulator.start({ organization: ORGANIZATION, host: '127.0.0.1' });
    cleanups.push(() => sim.close());
    const restCalls = { jobs: 0, agents: 0, builds: 0, other: 0 };
    sim.server?.on?.('request', (req) => {
      const m = /^\/v2\/organizations\/[^/]+\/(?:pipelines\/[^/]+\/)?(jobs|agents|builds)\//.exec(req.url ?? '');
      if (m) restCalls[m[1]]++;
      else if (req.url?.startsWith('/v2/')) restCalls.other++;
    });
    const restSnapshot = () => ({ ...restCalls });
    const job = sim.createJob({ pipelineSlug: 'deploy', branch: 'main' });
    const profileDir = opts.profile ? mkdtempSync(join(os.tmpdir(), 'port-bench-profile-')) : undefined;

    /**
     * One exchange row: Port in a child on the server CPU with `start` settings, then tokens
     * minted for `jobs` in turn (consecutive tokens, so those in flight together, are for
     * different jobs when there are as many jobs as requests in flight), a warm-up, and the
     * timed closed loop at `concurrency` in flight. `proofKeys[i]` (the host key of
     * `jobs[i]`'s agent): each exchange carries a fresh DPoP proof made with it (RFC 9449
     * §5), made here before the timed run. `rateCap`: exchanges/s this row can't exceed (the
     * plain row's), so fewer tokens are minted. `expect(json)`: the first answer's check.
     * `halfLoad`: then, against the same Port, the open loop at half the measured rate for
     * --half-load-duration (its summary is `half`).
     */
    const exchangeRow = async ({ label, start = {}, jobs = [job], claims, proofKeys, rateCap, expect, profileFile, halfLoad = false, alternate }) => {
      const server = startChild(here('./exchange-server.mjs'), { cpu, nodeArgs: [...WORKER_V8_FLAGS] });
      cleanups.push(() => server.stop());
      await server.next('hello');
      server.send({ type: 'start', issuer: sim.issuer, jwksUrl: sim.jwksUrl, audience: AUDIENCE, organization: ORGANIZATION, storeDir, ...start });
      const { url } = await server.next('ready');
      log(`${label}: Port (pid ${server.pid}) at ${url}${pinned ? ` on CPU ${serverCpu}` : ''}; simulator at ${sim.url}`);

      // 2. Single-use Buildkite tokens, minted before the timed run (and with proofKeys, a proof for each).
      const items = [];
      let mintMs = 0;
      let minted = 0;
      const mint = async (n) => {
        const t0 = performance.now();
        const batch = new Array(Math.max(0, n));
        let i = 0;
        await Promise.all(
          Array.from({ length: 16 }, async () => {
            while (i < batch.length) {
              const k = i++;
              const which = (minted + k) % jobs.length;
              const token = await sim.mintToken(jobs[which], { audience: AUDIENCE, lifetime: 3600, ...(claims ? { claims } : {}) });
              batch[k] = {
                key: proofKeys?.[which],
                body: new URLSearchParams({
                  grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
                  subject_token: token,
                  subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
                  scope: 'deploy-token',
                }).toString(),
              };
            }
          }),
        );
        // Not push(...batch): a batch of ~120,000 (a fast Port's warm-up rate) overflows the stack as arguments.
        for (const item of batch) items.push(item);
        mintMs += performance.now() - t0;
        minted += batch.length;
      };
      const proofs = { made: 0, wallMs: 0, cpuMs: 0, oldest: Infinity };
      /** A fresh proof for every item without one, made on this (the client) CPU, timed. */
      const prove = async () => {
        if (!proofKeys) return;
        const todo = items.filter((it) => it.dpop === undefined);
        const t0 = performance.now();
        const c0 = cpuMs();
        let i = 0;
        await Promise.all(
          Array.from({ length: 16 }, async () => {
            while (i < todo.length) {
              const it = todo[i++];
              it.dpop = await createProof(it.key, { method: 'POST', url: `${AUDIENCE}/oauth/token` });
            }
          }),
        );
        proofs.cpuMs += cpuMs() - c0;
        proofs.wallMs += performance.now() - t0;
        proofs.made += todo.length;
        if (todo.length) proofs.oldest = Math.min(proofs.oldest, t0);
      };

      // 3. Load: N connections, N requests in flight, each a full RFC 8693 exchange.
      const pool = new Pool(url, { connections: concurrency, pipelining: 1 });
      cleanups.push(() => pool.destroy());
      let next = 0;
      let errors = {};
      let firstError;
      const request = (it) =>
        pool.request({
          path: '/oauth/token',
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', ...(it.dpop ? { dpop: it.dpop } : {}) },
          body: it.body,
        });
      const exchange = async () => {
        if (next >= items.length) return false;
        const it = items[next++];
        try {
          const res = await request(it);
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
      await prove();
      // One exchange first: a broken setup fails loudly instead of as a table of errors.
      {
        const res = await request(items[next++]);
        const json = await res.body.json();
        if (res.statusCode !== 200 || typeof json.access_token !== 'string') throw new Error(`${label}: first exchange failed: ${res.statusCode} ${JSON.stringify(json)}`);
        expect?.(json);
      }
      await mint(Math.ceil((warmupMs / 1000) * Math.min(rateCap ?? 1500, 1500)));
      await prove();
      log(`${label}: minted ${items.length} tokens in ${(mintMs / 1000).toFixed(1)} s; warming up ${warmupMs / 1000} s`);
      const warm = await closedLoop({ concurrency, durationMs: warmupMs, op: exchange });
      const warmRate = (warm.latencies.length / warm.elapsedMs) * 1000;
      if (Object.keys(errors).length) throw new Error(`${label}: errors during warm-up: ${JSON.stringify(errors)}; first: ${firstError}`);
      // Warm-up runs slower than steady state (JIT): mint 4× what it suggests (or 1.3× the cap),
      // for the measured run and a second warm-up of REWARM_MS.
      const perSecond = rateCap !== undefined ? Math.min(Math.max(warmRate, 200) * 4, rateCap * 1.3) : Math.max(warmRate, 200) * 4;
      const needed = Math.min(400_000, Math.ceil(perSecond * ((durationMs + REWARM_MS) / 1000)) + concurrency * 4);
      items.splice(0, next);
      next = 0;
      const before = performance.now();
      await mint(Math.max(0, needed - items.length));
      await prove();
      log(`${label}: warm-up ran at ${fmt.int(warmRate)}/s; minted ${items.length} tokens in ${((performance.now() - before) / 1000).toFixed(1)} s; measuring ${durationMs / 1000} s at ${concurrency} in flight`);
      // Port sat idle while the tokens were minted: run it again briefly first, or the first
      // measured second pays for that (it ran at 60–85 % of the rest in trials).
      await closedLoop({ concurrency, durationMs: REWARM_MS, op: exchange });
      settleHeap();

      /**
       * Runs `load()` between two readings of Port's usage (and with `file`, under the V8
       * profiler, written there); this process's CPU meanwhile is `clientCpuMs`, its own GC
       * pauses `clientPauses`.
       */
      const measured = async (file, load) => {
        errors = {};
        firstError = undefined;
        if (file) {
          server.send({ type: 'profile-start' });
          await server.next('profile-started');
        }
        // `load` calls begin() as its timed part starts (an open loop's lead-in comes first).
        let readings;
        const begin = () => {
          server.send({ type: 'usage' });
          readings = { u0: server.next('usage'), g0: clientGc.reading(), c0: cpuMs() };
        };
        const result = await load(begin);
        if (readings === undefined) throw new Error('measured: the load never began its timed part');
        const clientCpuMs = cpuMs() - readings.c0;
        const [u0, g0] = await Promise.all([readings.u0, readings.g0]);
        const g1 = await clientGc.reading();
        const clientPauses = { count: g1.count - g0.count, ms: g1.ms - g0.ms, maxMs: g1.maxMs };
        server.send({ type: 'usage' });
        const u1 = await server.next('usage');
        let profile;
        if (file) {
          server.send({ type: 'profile-stop', file });
          profile = (await server.next('profile-stopped')).file;
        }
        return { result, u0, u1, clientCpuMs, clientPauses, profile };
      };
      const rest0 = restSnapshot();
      // With `alternate`, the measured time is cut in `slices` closed loops, each followed by
      // `alternate(i)` (the baseline's slice, while Port idles): both sides see the host as it is
      // at that moment, so a disturbance that lasts seconds lands on both instead of on one.
      const slices = alternate ? rounds : 1;
      const parts = [];
      for (let i = 0; i < slices; i++) {
        parts.push(await measured(i === 0 ? profileFile : undefined, (begin) => (begin(), closedLoop({ concurrency, durationMs: durationMs / slices, op: exchange }))));
        if (alternate) await alternate(i);
      }
      const { result: timed, u0, u1, clientCpuMs, profile } = slices === 1 ? parts[0] : foldSlices(parts);
      const rest = Object.fromEntries(Object.entries(restCalls).map(([k, v]) => [k, v - rest0[k]]));
      const serverCpuMs = u1.cpuMs - u0.cpuMs;
      const r = summarize(timed.latencies, timed.elapsedMs, {
        cpuMs: serverCpuMs,
        errors: Object.values(errors).reduce((a, b) => a + b, 0),
        errorDetail: errors,
        firstError,
        voluntarySwitches: u1.rusage.voluntaryContextSwitches - u0.rusage.voluntaryContextSwitches,
        ...portUsage(u0, u1),
        halves: timed.halves,
        sliceRates: slices > 1 ? parts.map((p) => (p.result.latencies.length / p.result.elapsedMs) * 1000) : undefined,
        threads: u0.threads && u1.threads ? { main: u1.threads.main - u0.threads.main, other: u1.threads.other - u0.threads.other } : undefined,
        io: u0.io && u1.io ? { writeBytes: u1.io.writeBytes - u0.io.writeBytes, syscw: u1.io.syscw - u0.io.syscw } : undefined,
        clientCpuMs,
        restCalls: sim.server ? rest.jobs + rest.agents + rest.builds + rest.other : undefined,
        restDetail: rest,
        exhausted: timed.exhausted,
        proofs: proofKeys ? { ...proofs, maxAgeS: (performance.now() - proofs.oldest) / 1000 } : undefined,
        minted,
        mintMs,
      });

      // 3c. Half load: the open loop at half the rate just measured, against the same (warm) Port.
      let half;
      if (halfLoad && halfLoadMs > 0 && timed.latencies.length > 0) {
        const ratePerSecond = halfLoadRate ?? r.perSecond / 2;
        // Tokens are single use: mint what the run needs, and a margin, while Port is idle.
        items.splice(0, next);
        next = 0;
        const before = performance.now();
        const wanted = Math.ceil(ratePerSecond * ((halfLoadLeadInMs + halfLoadMs) / 1000)) + concurrency * 4;
        // Tokens left over from the timed run beyond what this one needs are dropped: kept, they
        // only grow this process's heap and the pause of its next major GC, counted as Port's latency.
        if (items.length > wanted) items.length = wanted;
        await mint(wanted - items.length);
        await prove();
        settleHeap();
        log(`${label}: ${items.length} tokens ready (minting took ${((performance.now() - before) / 1000).toFixed(1)} s); open loop at ${fmt.int(ratePerSecond)}/s (${halfLoadRate === undefined ? 'half of' : '--half-load-rate; measured'} ${fmt.int(r.perSecond)}/s) for ${halfLoadLeadInMs / 1000} s untimed, then ${halfLoadMs / 1000} s timed`);
        const {
          result: open,
          u0: h0,
          u1: h1,
          clientCpuMs: halfClientCpuMs,
          clientPauses: halfClientPauses,
          profile: halfProfile,
        } = await measured(profileFile?.replace(/\.cpuprofile$/, '-half-load.cpuprofile'), (begin) => openLoop({ ratePerSecond, durationMs: halfLoadMs, op: exchange, leadInMs: halfLoadLeadInMs, onTimedStart: begin }));
        half = summarize(open.latencies, open.elapsedMs, {
          cpuMs: h1.cpuMs - h0.cpuMs,
          errors: Object.values(errors).reduce((a, b) => a + b, 0),
          errorDetail: errors,
          firstError,
          scheduledPerSecond: ratePerSecond,
          issued: open.issued,
          maxInFlight: open.maxInFlight,
          lateStartsMs: open.lateStartsMs,
          exhausted: open.exhausted,
          clientCpuMs: halfClientCpuMs,
          clientPauses: halfClientPauses,
          threads: h0.threads && h1.threads ? { main: h1.threads.main - h0.threads.main, other: h1.threads.other - h0.threads.other } : undefined,
          voluntarySwitches: h1.rusage.voluntaryContextSwitches - h0.rusage.voluntaryContextSwitches,
          ...portUsage(h0, h1),
          tail: tailEpisodes(open.scheduled, open.latencies, HALF_LOAD_AIM_MS, TAIL_GAP_MS),
          profile: halfProfile,
        });
      }
      await pool.close();
      await server.stop();
      return { r, serverCpuMs, profile, half };
    };

    // 4. Baseline: the same crypto in-process with jose, same CPU, same concurrency, its measured
    // time cut in the same slices as the exchange's and run between them (--rounds).
    const sample = [];
    for (let i = 0; i < 64; i++) sample.push(await sim.mintToken(job, { audience: AUDIENCE, lifetime: 3600 }));
    const baseline = startChild(here('./baseline.mjs'), { cpu, nodeArgs: [...WORKER_V8_FLAGS] });
    cleanups.push(() => baseline.stop());
    await baseline.next('hello');
    baseline.send({ type: 'prepare', jwk: sim.jwks().keys[0], tokens: sample, issuer: sim.issuer, audience: AUDIENCE, portIssuer: AUDIENCE });
    await baseline.next('prepared');
    const baselineRun = async (which, ms) => {
      baseline.send({ type: 'measure', which, concurrency, durationMs: ms });
      return (await baseline.next('measured', budgetMs)).result;
    };
    const summary = ({ latencies, elapsedMs, ...usage }) => summarize(latencies, elapsedMs, usage);
    log(`baseline: RS256 verify + ES256 sign, ${concurrency} in flight; warming up ${warmupMs / 1000} s`);
    await baselineRun('combined', warmupMs);
    const baseSlices = [];
    const plain = await exchangeRow({
      label: 'plain exchange',
      profileFile: profileDir ? join(profileDir, 'port-exchange.cpuprofile') : undefined,
      halfLoad: true,
      alternate: async (i) => {
        log(`baseline: slice ${i + 1} of ${rounds}, ${durationMs / rounds / 1000} s`);
        baseSlices.push(await baselineRun('combined', durationMs / rounds));
      },
    });
    const base = {
      combined: summary({
        latencies: baseSlices.flatMap((b) => b.latencies),
        elapsedMs: sum(baseSlices, (b) => b.elapsedMs),
        cpuMs: sum(baseSlices, (b) => b.cpuMs),
        threads: baseSlices.every((b) => b.threads) ? { main: sum(baseSlices, (b) => b.threads.main), other: sum(baseSlices, (b) => b.threads.other) } : undefined,
        sliceRates: baseSlices.map((b) => (b.latencies.length / b.elapsedMs) * 1000),
      }),
    };
    if (partsMs > 0) {
      log(`baseline: verify only, then sign only, ${partsMs / 1000} s each`);
      base.verify = summary(await baselineRun('verify', partsMs));
      base.sign = summary(await baselineRun('sign', partsMs));
    }
    await baseline.stop();
    const exch = plain.r;
    const serverCpuMs = plain.serverCpuMs;
    const profile = plain.profile;
    const { minted, mintMs } = exch;
    const half = plain.half;
    if (profileDir) notes.push('Profiled run (--profile): the V8 sampling profiler was on in the Port process, so the exchange row is a little slow; Port and the baseline were each measured in one piece, one after the other.');
    if (exch.exhausted) notes.push(`The exchange run ran out of pre-minted tokens after ${(exch.elapsedMs / 1000).toFixed(1)} s; rates use the time actually run.`);
    if (half?.exhausted) notes.push(`The half-load run ran out of pre-minted tokens after ${(half.elapsedMs / 1000).toFixed(1)} s; its rate uses the time actually run.`);

    // 3b. The agent rows: the same exchange for a job of an agent pool (`pools:`), same concurrency.
    const agentRows = [];
    if (withAgents) agentRows.push(...(await measureAgentRows({ sim, exchangeRow, plainRate: exch.perSecond, cleanups, profileDir })));

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
    const loopAndGc = (r) =>
      `Port's event loop was busy ${(r.loopBusy * 100).toFixed(0)}% of the time (event-loop utilization: its CPU, its waits in a sync fsync, and time it was preempted); its garbage collector paused it ${fmt.int(r.gc.count)} times, ${fmt.ms(r.gc.ms)} in all (${((r.gc.ms / r.elapsedMs) * 100).toFixed(1)}% of the run), the longest ${fmt.ms(r.gc.maxMs)}.`;
    const tailLine = (t) =>
      t.over === 0
        ? `No exchange took ${HALF_LOAD_AIM_MS} ms or more.`
        : `The ${fmt.int(t.over)} exchanges that took ${HALF_LOAD_AIM_MS} ms or more were scheduled in ${fmt.int(t.episodes.length)} stretches (an exchange due within ${TAIL_GAP_MS} ms of the last slow one joins its stretch); the ${Math.min(3, t.episodes.length)} longest: ${t.episodes
            .slice(0, 3)
            .map((e) => `${fmt.ms(e.spanMs)} at ${(e.atMs / 1000).toFixed(2)} s (${fmt.int(e.count)} slow, the slowest ${fmt.ms(e.peakMs)})`)
            .join('; ')}.`;
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
      ...(half
        ? [
            row(
              `Token exchange at half that load (open loop, ${fmt.int(half.scheduledPerSecond)}/s scheduled)`,
              where(`Port on CPU ${serverCpu}, load from CPU ${clientCpu}`),
              `open (max ${half.maxInFlight})`,
              half,
              'exchanges/s',
              half.errors === 0 ? '0' : `${half.errors} ${JSON.stringify(half.errorDetail)}`,
            ),
          ]
        : []),
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
      `- Port process during the exchange run: ${((serverCpuMs / exch.elapsedMs) * 100).toFixed(0)}% of one CPU busy (all threads), ${fmt.us((serverCpuMs / exch.ops) * 1000)} CPU per exchange vs ${perOp(base.combined)} per baseline op (CPU ratio ${cpuRatio.toFixed(2)}×); ${fmt.int(exch.voluntarySwitches)} voluntary context switches (${(exch.voluntarySwitches / exch.ops).toFixed(2)} per exchange). ${loopAndGc(exch)}`,
      ...(exch.threads && base.combined.threads
        ? [
            `- CPU per op by thread (from /proc, 10 ms ticks): exchange — main thread ${threadsPerOp(exch, 'main')}, other threads (libuv pool: WebCrypto; V8 helpers) ${threadsPerOp(exch, 'other')}; baseline — main ${threadsPerOp(base.combined, 'main')}, other ${threadsPerOp(base.combined, 'other')}.`,
          ]
        : []),
      ...(exch.sliceRates
        ? [
            `- Measured in ${rounds} alternating slices of ${(durationMs / rounds / 1000).toFixed(1)} s (Port, then the baseline, each idle during the other's turn), so that a disturbance of the host lasting seconds lands on both sides instead of one. Ratio slice by slice: ${sliceRatios(base.combined.sliceRates, exch.sliceRates)}. Exchanges/s by slice: ${exch.sliceRates.map(fmt.int).join(', ')}; baseline ops/s: ${base.combined.sliceRates.map(fmt.int).join(', ')}.`,
          ]
        : []),
      ...(exch.halves ? [`- Exchange rate in the first / second half of the measured run: ${fmt.int(exch.halves[0])} / ${fmt.int(exch.halves[1])} per s.`] : []),
      ...(half
        ? [
            `- **p99 at half load: ${fmt.ms(half.p99)}; aim < ${HALF_LOAD_AIM_MS} ms — ${Number.isFinite(half.p99) && half.p99 < HALF_LOAD_AIM_MS ? 'met' : 'missed'}.** Open loop against the same Port after the run above${halfLoadLeadInMs > 0 ? `, timed after a ${(halfLoadLeadInMs / 1000).toFixed(1)} s lead-in at the same rate (sent, not timed)` : ''}: ${fmt.int(half.issued)} exchanges scheduled every ${fmt.ms(1000 / half.scheduledPerSecond)} (${fmt.int(half.scheduledPerSecond)}/s, ${halfLoadRate === undefined ? 'half of' : 'set by --half-load-rate; the run above measured'} ${fmt.int(exch.perSecond)}/s) for ${(halfLoadMs / 1000).toFixed(1)} s, each timed from its scheduled send; p50 ${fmt.ms(half.p50)}, p99.9 ${fmt.ms(half.p999)}, max ${fmt.ms(half.max)}; ${fmt.int(half.perSecond)} answered/s; Port ${((half.cpuMs / half.elapsedMs) * 100).toFixed(0)}% of one CPU busy; at most ${half.maxInFlight} in flight (${concurrency} connections); the load generator sent its most delayed request ${fmt.ms(half.lateStartsMs)} behind schedule (counted in the latencies)${half.lateStartsMs >= HALF_LOAD_AIM_MS ? ': as much as the aim, so this tail is partly the load generator\'s own (a busy client CPU?)' : ''}, and its own garbage collector paused it ${fmt.int(half.clientPauses.count)} times, ${fmt.ms(half.clientPauses.ms)} in all, the longest ${fmt.ms(half.clientPauses.maxMs)}.`,
            `- At half load Port spends ${fmt.us((half.cpuMs / half.ops) * 1000)} CPU per exchange (${perOp(exch)} saturated)${half.threads ? `: main thread ${threadsPerOp(half, 'main')}, other threads ${threadsPerOp(half, 'other')}` : ''}; ${(half.voluntarySwitches / half.ops).toFixed(2)} voluntary context switches per exchange. ${loopAndGc(half)} ${tailLine(half.tail)}`,
          ]
        : []),
      `- Cedar decisions (${cedar.large.policies} policies): ${cedar.large.allow} allow / ${cedar.large.deny} deny over ${fmt.int(cedar.large.ops)} exchange and assume requests for varied jobs; ${cedar.large.entities} entities each.`,
      `- Exchange tokens: RS256 Buildkite tokens (lifetime 3600 s, single use) minted before the timed run by the simulator at ${fmt.int(minted / (mintMs / 1000))}/s; warm-up ${warmupMs / 1000} s, measured ${(exch.elapsedMs / 1000).toFixed(1)} s.`,
      ...notes.map((n) => `- ${n}`),
      '',
      `Machine: ${os.cpus().length} CPUs (nproc), ${cpuModel}, ${Math.round(os.totalmem() / 2 ** 30)} GiB RAM, Linux ${os.release()}, Node ${process.version} (Port and the baseline with ${WORKER_V8_FLAGS.join(' ')}, as each \`server.workers\` worker runs); Port's SQLite store in ${storeDir} on ${fsType(storeDir)} (WAL, its log synced before a write is acknowledged).`,
      `Command: \`npm run bench:exchange${argsText ? ` -- ${argsText}` : ''}\``,
    ];
    console.log(out.join('\n'));
    if (exch.firstError) console.log(`\nFirst exchange error: ${exch.firstError}`);
    if (half?.firstError) console.log(`\nFirst half-load exchange error: ${half.firstError}`);
    if (agentRows.length) console.log(`\n${agentTable(exch, agentRows, { where: where(`Port on CPU ${serverCpu}, load and simulator on CPU ${clientCpu}`), clientCpu }).join('\n')}`);

    if (profile) {
      console.log(`\nCPU profile of the Port process during the timed exchange run: ${profile}\n`);
      console.log(summarizeProfile(profile, { top: 20, ops: exch.ops, processCpuMs: serverCpuMs }).text);
    }
    if (half?.profile) {
      console.log(`\nCPU profile of the Port process during the half-load run: ${half.profile}\n`);
      console.log(summarizeProfile(half.profile, { top: 20, ops: half.ops, processCpuMs: half.cpuMs }).text);
    }
    for (const row of agentRows) {
      if (!row.profile) continue;
      console.log(`\nCPU profile of the Port process during the timed ${row.key} run: ${row.profile}\n`);
      console.log(summarizeProfile(row.profile, { top: 20, ops: row.r.ops, processCpuMs: row.serverCpuMs }).text);
    }
  } catch (err) {
    if (!aborted()) console.error(`bench/exchange failed: ${err?.stack ?? err}`);
    process.exitCode = 1;
  } finally {
    clearTimeout(deadline);
    await cleanup();
  }
}

/**
 * A full GC of this process (the load generator) before a timed run, where `--expose-gc`
 * allows it: minting leaves tens of MB of garbage, and a major GC of it mid-run stalls the
 * generator for up to ~200 ms (--trace-gc), which the open loop counts as Port's latency.
 */
function settleHeap() {
  globalThis.gc?.();
}

/** Baseline rate ÷ exchange rate for each slice, and their median. */
function sliceRatios(baseRates, exchRates) {
  const ratios = baseRates.map((b, i) => b / exchRates[i]);
  const sorted = [...ratios].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  return `${ratios.map((r) => `${r.toFixed(2)}×`).join(', ')} (median ${median.toFixed(2)}×)`;
}

function sum(items, f) {
  return items.reduce((n, x) => n + f(x), 0);
}

/**
 * What Port's own readings say about a measured stretch (between usage readings u0 and u1):
 * how busy its event loop was (a sync fsync counts as busy: the loop serves nothing
 * meanwhile) and its garbage collector's pauses (the longest since u0).
 */
function portUsage(u0, u1) {
  const active = u1.eventLoop.active - u0.eventLoop.active;
  const idle = u1.eventLoop.idle - u0.eventLoop.idle;
  return {
    loopBusy: active + idle > 0 ? active / (active + idle) : NaN,
    gc: { count: u1.gc.count - u0.gc.count, ms: u1.gc.ms - u0.gc.ms, maxMs: u1.gc.maxMs },
  };
}

/**
 * The exchange's slices (each `measured`) as one measurement: latencies pooled, time and
 * Port's usage summed over the slices only (the baseline's turns between them count for
 * neither side).
 */
function foldSlices(parts) {
  const delta = (f) => sum(parts, (p) => f(p.u1) - f(p.u0));
  const threads = parts.every((p) => p.u0.threads && p.u1.threads);
  const io = parts.every((p) => p.u0.io && p.u1.io);
  return {
    result: {
      latencies: parts.flatMap((p) => p.result.latencies),
      elapsedMs: sum(parts, (p) => p.result.elapsedMs),
      exhausted: parts.some((p) => p.result.exhausted),
      halves: undefined,
    },
    u0: {
      cpuMs: 0,
      threads: threads ? { main: 0, other: 0 } : undefined,
      rusage: { voluntaryContextSwitches: 0 },
      io: io ? { writeBytes: 0, syscw: 0 } : undefined,
      eventLoop: { active: 0, idle: 0 },
      gc: { count: 0, ms: 0 },
    },
    u1: {
      cpuMs: delta((u) => u.cpuMs),
      threads: threads ? { main: delta((u) => u.threads.main), other: delta((u) => u.threads.other) } : undefined,
      rusage: { voluntaryContextSwitches: delta((u) => u.rusage.voluntaryContextSwitches) },
      eventLoop: { active: delta((u) => u.eventLoop.active), idle: delta((u) => u.eventLoop.idle) },
      // Each part's u0 reading restarted the longest-pause count, so its u1 holds the part's longest.
      gc: { count: delta((u) => u.gc.count), ms: delta((u) => u.gc.ms), maxMs: Math.max(...parts.map((p) => p.u1.gc.maxMs)) },
      io: io ? { writeBytes: delta((u) => u.io.writeBytes), syscw: delta((u) => u.io.syscw) } : undefined,
    },
    clientCpuMs: sum(parts, (p) => p.clientCpuMs),
    profile: parts[0].profile,
  };
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


// ---- agent-pool rows ------------------------------------------------------------------------

/**
 * The exchange for jobs of an agent pool, four ways, each on a fresh Port. The jobs are
 * one per request in flight, each the one job of its own build (so the build-creator
 * lookup that `buildkite.api_token` turns on finds its build) on its own agent, and tokens
 * take them in turn: requests in flight together are for different jobs, so the live
 * check's in-flight sharing does not merge them. Each agent's `aws_iam` attestation is
 * written into Port's store at start (what `POST /v1/agents/attest` records); the attest
 * call itself is not measured.
 */
async function measureAgentRows({ sim, exchangeRow, plainRate, cleanups, profileDir }) {
  const creator = sim.createUser({ name: 'Bench Deployer', email: 'deployer@acme.example' });
  const jobs = Array.from({ length: concurrency }, (_, i) => {
    const build = sim.createBuild({ pipelineSlug: 'deploy', branch: 'main', creator, steps: [{ type: 'command', key: `ship-${i}`, agentTags: { queue: AGENT_QUEUE } }] });
    return build.jobs[0].oidcJob;
  });
  const claims = ['cluster_name', 'queue_key'];
  const records = (keys) =>
    jobs.map((j, i) => ({
      agentId: j.agentId,
      pool: AGENT_POOL,
      methods: ['aws_iam'],
      account: '123456789012',
      iamRole: 'arn:aws:iam::123456789012:role/bench-deploy-agent',
      instanceId: `i-0bench${String(i).padStart(10, '0')}`,
      ...(keys ? { jkt: keys[i].jkt } : {}),
    }));
  const api = { apiUrl: sim.apiUrl, apiToken: sim.apiToken };
  const attested = (want) => (json) => {
    const got = decodeJwt(json.access_token).agent_attestation?.attestation;
    if (JSON.stringify(got) !== JSON.stringify(want)) throw new Error(`the Port token's agent_attestation is ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`);
  };
  // Each agent host's key, as `port agent attest` keeps it (a private JWK file, 0600 in a 0700 dir).
  const keyDir = mkdtempSync(join(os.tmpdir(), 'port-bench-hostkey-'));
  cleanups.push(() => rmSync(keyDir, { recursive: true, force: true }));
  const hostKeys = [];
  for (let i = 0; i < jobs.length; i++) hostKeys.push(await loadOrCreateHostKey(join(keyDir, `agent-${i}`, 'host-key.json')));
  // Proofs are made before the timed run; the last is used up to ~duration + mint time after it was made.
  const dpopMaxAge = durationMs / 1000 > 40 ? 300 : undefined;

  const specs = [
    {
      key: 'aws_iam',
      name: '`attestation: [aws_iam]` (the agent\'s record read from the store)',
      start: { pools: { [AGENT_POOL]: { attestation: ['aws_iam'], aws: AGENT_AWS } }, attest: records() },
      expect: attested(['aws_iam']),
    },
    {
      key: 'buildkite-cached',
      name: '`attestation: [buildkite, aws_iam]`, live check cached (`buildkite_cache_ttl: 5`, the default)',
      start: { ...api, pools: { [AGENT_POOL]: { attestation: ['buildkite', 'aws_iam'], aws: AGENT_AWS } }, attest: records() },
      expect: attested(['buildkite', 'aws_iam']),
    },
    {
      key: 'buildkite-live',
      name: '`attestation: [buildkite, aws_iam]`, `buildkite_cache_ttl: 0` (Buildkite asked on every exchange)',
      start: { ...api, pools: { [AGENT_POOL]: { attestation: ['buildkite', 'aws_iam'], aws: AGENT_AWS } }, attestation: { buildkite_cache_ttl: 0 }, attest: records() },
      expect: attested(['buildkite', 'aws_iam']),
    },
    {
      key: 'host-bound',
      name: 'host-bound pool (`host_bound: true`, `attestation: [aws_iam]`), a fresh DPoP proof on every exchange',
      start: {
        pools: { [AGENT_POOL]: { attestation: ['aws_iam'], aws: AGENT_AWS, host_bound: true } },
        attest: records(hostKeys),
        ...(dpopMaxAge ? { attestation: { dpop_max_age: dpopMaxAge } } : {}),
      },
      proofKeys: hostKeys,
      expect: (json) => {
        attested(['aws_iam'])(json);
        if (json.token_type !== 'DPoP' || decodeJwt(json.access_token).cnf?.jkt !== hostKeys[0].jkt) {
          throw new Error(`the host-bound exchange answered token_type ${json.token_type} without cnf.jkt of the agent's host key`);
        }
      },
    },
  ];
  const rows = [];
  for (const spec of specs) {
    const profileFile = profileDir ? join(profileDir, `port-exchange-${spec.key}.cpuprofile`) : undefined;
    const { r, serverCpuMs, profile } = await exchangeRow({ label: spec.key, start: spec.start, jobs, claims, proofKeys: spec.proofKeys, rateCap: plainRate, expect: spec.expect, profileFile });
    rows.push({ ...spec, r, serverCpuMs, profile, dpopMaxAge: spec.proofKeys ? (dpopMaxAge ?? 60) : undefined });
  }
  return rows;
}

/** The agent rows' table, next to the plain exchange of the same run, and what each row means. */
function agentTable(plain, rows, { where, clientCpu }) {
  const us = (ms, ops) => fmt.us((ms / ops) * 1000);
  const pct = (a, b) => `${((a / b) * 100).toFixed(0)} %`;
  const kib = (r) => (r.io ? `${(r.io.writeBytes / r.ops / 1024).toFixed(2)} KiB` : 'n/a');
  const rest = (r) => (r.restCalls === undefined ? 'n/a' : `${fmt.int(r.restCalls)} (${(r.restCalls / r.ops).toFixed(r.restCalls / r.ops >= 0.1 ? 2 : 4)})`);
  const errs = (r) => (r.errors === 0 ? '0' : `${r.errors} ${JSON.stringify(r.errorDetail)}`);
  const line = (name, r) =>
    `| ${name} | ${fmt.int(r.ops)} | ${fmt.int(r.perSecond)}/s | ${pct(r.perSecond, plain.perSecond)} | ${fmt.ms(r.p50)} | ${fmt.ms(r.p99)} | ${us(r.cpuMs, r.ops)} | ${((r.cpuMs / r.ops) / (plain.cpuMs / plain.ops)).toFixed(2)}× | ${us(r.clientCpuMs, r.ops)} | ${rest(r)} | ${kib(r)} | ${errs(r)} |`;
  const out = [
    `Agent pools, same run (${where}; ${concurrency} in flight, warm-up ${warmupMs / 1000} s, measured ${durationMs / 1000} s each, a fresh Port per row):`,
    '',
    '| Exchange (`POST /oauth/token`, `scope=deploy-token`) | Ops | Rate | Rate vs plain | p50 | p99 | Port CPU/exchange | Port CPU vs plain | Client CPU/exchange | Buildkite REST calls (per exchange) | Port disk writes/exchange | Errors |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    line('Plain exchange (the row above: no `pools:`)', plain),
    ...rows.map((row) => line(row.name, row.r)),
    '',
  ];
  const by = Object.fromEntries(rows.map((row) => [row.key, row.r]));
  const cached = by['buildkite-cached'];
  const live = by['buildkite-live'];
  const bound = by['host-bound'];
  const calls = (r) => (r.restDetail ? `${fmt.int(r.restDetail.jobs)} job, ${fmt.int(r.restDetail.agents)} agent and ${fmt.int(r.restDetail.builds)} build lookups` : 'REST calls (not counted)');
  const notes = [
    `Pool \`${AGENT_POOL}\` (\`attestation.enforcement: enforce\`): ${concurrency} jobs, one per request in flight, each its build's only job on its own agent; tokens take them in turn and carry \`cluster_name\` and \`queue_key\` (\`--claim cluster_name,queue_key\`). Each agent's \`aws_iam\` attestation is written into Port's store at start, as \`POST /v1/agents/attest\` records it (not measured). Port CPU is the Port process (all threads); client CPU is this process on CPU ${clientCpu}: the load generator plus the Buildkite simulator, REST API included. Disk writes: \`write_bytes\` of Port's /proc/<pid>/io.`,
  ];
  if (cached) {
    notes.push(
      `Live check cached (\`buildkite_cache_ttl: 5\`): the answers about each job and agent are reused for 5 s, and the bench asks about the same ${concurrency} jobs again and again, so nearly every exchange hits the cache — ${calls(cached)} over the timed run. In real use every job is new: a job's first exchange (or \`/v1/credentials\` call) always asks. Setting \`buildkite.api_token\` also turns on the build-creator lookup (one REST call per build, cached for an hour, plus a users read per exchange), in both \`buildkite\` rows.`,
    );
  }
  if (live) {
    notes.push(
      `\`buildkite_cache_ttl: 0\`: each exchange waits for \`GET /v2/organizations/acme/jobs/{id}\`, then \`GET …/agents/{id}\` — ${calls(live)}, ${(live.restCalls / live.ops).toFixed(2)} calls per exchange (asks for the same job still in flight share one call). The simulator answers them in this process on the client CPU (${us(live.clientCpuMs, live.ops)} of client CPU per exchange against ${us(plain.clientCpuMs, plain.ops)} in the plain row), so the Port CPU column is Port's side of the calls (undici, JSON, the checks) and the latency includes the simulator's queue on a busy CPU. Real Buildkite is further away (tens of ms per call) and allows 200 REST calls per minute per organization (https://buildkite.com/docs/apis/rest-api/rate-limits): at two calls per check that is ~100 uncached exchanges a minute.`,
    );
  }
  if (bound?.proofs) {
    const p = bound.proofs;
    notes.push(
      `Host-bound: each exchange carries a \`DPoP\` proof (ES256, \`createProof\` of src/dpop/host-key.ts, jose) made with its agent's host key on the client CPU before the timed run — ${fmt.int(p.made)} proofs at ${fmt.int(p.made / (p.wallMs / 1000))}/s, ${us(p.cpuMs, p.made)} of client CPU each; the oldest was ${p.maxAgeS.toFixed(0)} s old when the run ended (\`attestation.dpop_max_age\` ${rows.find((x) => x.key === 'host-bound').dpopMaxAge} s). Port checks it (JSON and duplicate members, JWK import, ES256 signature, \`htm\`/\`htu\`/\`iat\`, thumbprint) and consumes its \`jti\` in the store (\`store.replay.consume\`): a second durable SQLite write per exchange, group-committed with the other writes of the same event-loop turn, besides the exchange's own replay-and-decision-log write. The answer is \`token_type: DPoP\` with \`cnf.jkt\`.`,
    );
  }
  out.push(...notes.map((n) => `- ${n}`));
  for (const row of rows) if (row.r.firstError) out.push('', `First error (${row.key}): ${row.r.firstError}`);
  for (const row of rows) if (row.r.exhausted) out.push('', `The ${row.key} run ran out of pre-minted tokens after ${(row.r.elapsedMs / 1000).toFixed(1)} s; its rate uses the time actually run.`);
  return out;
}
