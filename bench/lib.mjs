/**
 * Shared helpers for the benchmarks in bench/: closed- and open-loop drivers, latency
 * statistics, CPU accounting and the child-process plumbing (IPC over `taskset`).
 */
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { performance, PerformanceObserver } from 'node:perf_hooks';
import { Readable } from 'node:stream';

/** Latency samples in milliseconds → summary. */
export function summarize(latenciesMs, elapsedMs, extra = {}) {
  const sorted = Float64Array.from(latenciesMs).sort();
  const pct = (p) => (sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]);
  return {
    ops: sorted.length,
    elapsedMs,
    perSecond: (sorted.length / elapsedMs) * 1000,
    p50: pct(50),
    p99: pct(99),
    p999: pct(99.9),
    max: sorted.length ? sorted[sorted.length - 1] : NaN,
    ...extra,
  };
}

/**
 * Runs `op()` with `concurrency` operations in flight (closed loop: each worker
 * starts its next op when the last one finishes) for `durationMs`, or until
 * `op` returns false (out of work); an op returning 'error' is not timed.
 * Returns the latencies (ms) and the elapsed time.
 */
export async function closedLoop({ concurrency, durationMs, op }) {
  const latencies = [];
  const start = performance.now();
  const end = start + durationMs;
  const mid = start + durationMs / 2;
  let firstHalf = 0;
  let exhausted = false;
  const worker = async () => {
    while (!exhausted && performance.now() < end) {
      const t0 = performance.now();
      const more = await op();
      if (more === false) {
        exhausted = true;
        break;
      }
      if (more === 'error') continue; // counted by the caller, not timed
      const t1 = performance.now();
      latencies.push(t1 - t0);
      if (t1 < mid) firstHalf++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsedMs = performance.now() - start;
  // Completions per second in each half of the run: a drift shows a warm-up that was too short.
  const halves = exhausted ? undefined : [firstHalf / (durationMs / 2000), (latencies.length - firstHalf) / ((elapsedMs - durationMs / 2) / 1000)];
  return { latencies, elapsedMs, exhausted, halves };
}

/**
 * Runs `op()` open loop: the i-th request is due at start + i × (1000 / `ratePerSecond`)
 * ms, whether or not earlier ones have answered, for requests due within `durationMs`, or
 * until `op` returns false (out of work); an op returning 'error' is not timed. Each
 * latency runs from the request's *scheduled* time, not from when it was sent, so a slow
 * answer or a lagging generator can't hide the wait of the requests it held back (no
 * coordinated omission: https://github.com/giltene/wrk2#readme).
 * Timers fire with ~1 ms granularity and the gap between requests may be shorter: each
 * wake issues every request already due, then sleeps until the next is due (a timer for
 * the whole milliseconds, then event-loop turns for the rest, so the load generator's CPU
 * spins at rates of ~1,000/s and more). Waits for every request in flight at the end.
 *
 * With `leadInMs`, the loop runs that long first at the same rate, sent but not timed, and
 * the timed window follows without a gap (as wrk2's calibration period does): what a load
 * generator and a server do in the first tens of ms after an idle spell (bench/exchange's
 * generator fell 15–16 ms behind there, and Port took ~100 ms to drain the burst) is not
 * the steady load the window measures. `onTimedStart()` is called as the first timed
 * request is due, so usage readings can bracket the window alone.
 *
 * Returns, for the timed window: the latencies (ms) and when each was due (`scheduled`, ms
 * from the window's start); the elapsed time, up to the last answer; `issued` requests (the
 * ops that did not return false); the most in flight at once; and `lateStartsMs`, how far
 * behind its schedule the generator itself sent its most delayed request, which shows a
 * load generator that could not keep up.
 */
export async function openLoop({ ratePerSecond, durationMs, op, leadInMs = 0, onTimedStart }) {
  if (!(ratePerSecond > 0 && Number.isFinite(ratePerSecond))) throw new RangeError(`openLoop: ratePerSecond must be a positive number, got ${ratePerSecond}`);
  const intervalMs = 1000 / ratePerSecond;
  const leadIn = Math.ceil(leadInMs / intervalMs);
  const total = leadIn + Math.ceil(durationMs / intervalMs);
  const latencies = [];
  /** When each timed op was due, in ms from the timed window's start (parallel to `latencies`). */
  const scheduled = [];
  let exhausted = false;
  let failure;
  let issued = 0;
  let inFlight = 0;
  let maxInFlight = 0;
  let lateStartsMs = 0;
  let drained;
  const settled = () => {
    if (--inFlight === 0) drained?.();
  };
  const start = performance.now();
  const timedStart = start + leadIn * intervalMs;
  let i = 0;
  while (i < total && !exhausted && failure === undefined) {
    for (let sent = performance.now(); i < total && !exhausted && start + i * intervalMs <= sent; sent = performance.now()) {
      if (i === leadIn) onTimedStart?.();
      const timed = i >= leadIn;
      const due = start + i++ * intervalMs;
      inFlight++;
      if (timed) {
        if (sent - due > lateStartsMs) lateStartsMs = sent - due;
        issued++;
        if (inFlight > maxInFlight) maxInFlight = inFlight;
      }
      let answer;
      try {
        answer = Promise.resolve(op());
      } catch (err) {
        answer = Promise.reject(err);
      }
      answer
        .then(
          (more) => {
            if (more === false) {
              exhausted = true;
              if (timed) issued--;
            } else if (more !== 'error' && timed) {
              // ('error' is counted by the caller, not timed.)
              latencies.push(performance.now() - due);
              scheduled.push(due - timedStart);
            }
          },
          (err) => {
            failure ??= err;
          },
        )
        .finally(settled);
    }
    if (i >= total) break;
    const waitMs = start + i * intervalMs - performance.now();
    await new Promise((resolve) => (waitMs >= 2 ? setTimeout(resolve, waitMs - 1) : setImmediate(resolve)));
  }
  if (inFlight > 0) await new Promise((resolve) => (drained = resolve));
  const elapsedMs = performance.now() - timedStart;
  if (failure !== undefined) throw failure;
  return { latencies, scheduled, elapsedMs, exhausted, issued, maxInFlight, lateStartsMs };
}

/**
 * Where an open loop's slow ops were: those taking `overMs` or more, grouped in stretches
 * (an op due within `gapMs` of the last slow one joins its stretch), longest first. A tail
 * made of a few long stretches is a stall (the host's, a pause); one spread thin is per-op cost.
 * `scheduled[i]` is when op i was due (ms from the start), `latencies[i]` how long it took.
 */
export function tailEpisodes(scheduled, latencies, overMs, gapMs) {
  const slow = scheduled.map((at, i) => [at, latencies[i]]).filter(([, ms]) => ms >= overMs);
  slow.sort((a, b) => a[0] - b[0]);
  const episodes = [];
  let last;
  let lastDue = -Infinity;
  for (const [at, ms] of slow) {
    if (at - lastDue > gapMs) episodes.push((last = { atMs: at, spanMs: 0, count: 0, peakMs: 0 }));
    lastDue = at;
    // From the first slow op's due time to the last answer among them.
    last.spanMs = Math.max(last.spanMs, at + ms - last.atMs);
    last.count++;
    if (ms > last.peakMs) last.peakMs = ms;
  }
  episodes.sort((a, b) => b.spanMs - a.spanMs);
  return { over: slow.length, episodes };
}

/**
 * This process's garbage-collection pauses (main thread), counted from now: `reading()`
 * gives how many and their total so far, and the longest since the previous reading (ms).
 * GC entries reach an observer a turn or more after the pause, so a reading first waits a
 * turn and takes what is pending.
 */
export function gcPauses() {
  const totals = { count: 0, ms: 0, maxMs: 0 };
  const count = (entries) => {
    for (const e of entries) {
      totals.count++;
      totals.ms += e.duration;
      if (e.duration > totals.maxMs) totals.maxMs = e.duration;
    }
  };
  const observer = new PerformanceObserver((list) => count(list.getEntries()));
  observer.observe({ entryTypes: ['gc'] });
  return {
    async reading() {
      await new Promise((resolve) => setImmediate(resolve));
      count(observer.takeRecords());
      const r = { ...totals };
      totals.maxMs = 0;
      return r;
    },
  };
}

/** CPU time of this process (all threads: main, libuv pool, V8 helpers), in ms. */
export function cpuMs() {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/**
 * CPU time (ms) of this process's main thread and of all its other threads (libuv's
 * pool, where WebCrypto runs; V8's GC and compiler helpers), from /proc on Linux.
 * Resolution is one clock tick (10 ms). Undefined where /proc is missing.
 */
export function threadCpuMs() {
  try {
    const tick = 10; // USER_HZ is 100 on Linux
    let main = 0;
    let other = 0;
    for (const tid of readdirSync('/proc/self/task')) {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ms = (Number(f[11]) + Number(f[12])) * tick;
      if (Number(tid) === process.pid) main += ms;
      else other += ms;
    }
    return { main, other };
  } catch {
    return undefined;
  }
}

/** True when `taskset -c CPU` works here (Linux with util-linux and that CPU allowed). */
export function tasksetWorks(cpu) {
  try {
    return spawnSync('taskset', ['-c', String(cpu), 'true'], { stdio: 'ignore' }).status === 0;
  } catch {
    return false;
  }
}

/**
 * Spawns `node script` (pinned with `taskset -c cpu` when `cpu` is a number, under
 * `wrapper` — a command and its arguments, e.g. valgrind's — when given) with an IPC
 * channel. NODE_CHANNEL_FD survives the wrappers' exec, so `process.send` works.
 * Returns helpers to await a message of a type and to stop the child.
 */
export function startChild(script, { cpu, nodeArgs = [], env = {}, wrapper = [] } = {}) {
  const pin = typeof cpu === 'number' ? ['taskset', '-c', String(cpu)] : [];
  const [cmd, ...argv] = [...pin, ...wrapper, process.execPath, ...nodeArgs, script];
  const child = spawn(cmd, argv, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], env: { ...process.env, ...env } });
  const waiters = [];
  const inbox = [];
  let exited = false;
  let exitInfo;
  child.on('message', (msg) => {
    const i = waiters.findIndex((w) => w.type === msg.type || msg.type === 'error');
    if (i >= 0) waiters.splice(i, 1)[0].resolve(msg);
    else inbox.push(msg);
  });
  child.on('exit', (code, signal) => {
    exited = true;
    exitInfo = { code, signal };
    for (const w of waiters.splice(0)) w.reject(new Error(`${script} exited (code ${code}, signal ${signal}) before sending "${w.type}"`));
  });
  const next = (type, timeoutMs = 60_000) =>
    new Promise((resolve, reject) => {
      const j = inbox.findIndex((m) => m.type === type || m.type === 'error');
      const settle = (msg) => (msg.type === 'error' ? reject(new Error(`${script}: ${msg.message}`)) : resolve(msg));
      if (j >= 0) return settle(inbox.splice(j, 1)[0]);
      if (exited) return reject(new Error(`${script} already exited (code ${exitInfo.code}, signal ${exitInfo.signal})`));
      const timer = setTimeout(() => reject(new Error(`${script}: no "${type}" within ${timeoutMs} ms`)), timeoutMs);
      waiters.push({
        type,
        resolve: (m) => (clearTimeout(timer), settle(m)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
    });
  return {
    child,
    pid: child.pid,
    send: (msg) => {
      if (!exited && child.connected) child.send(msg);
    },
    next,
    /** Asks the child to stop; kills it (by pid) if it does not exit in time. */
    async stop(graceMs = 5_000) {
      if (exited) return exitInfo;
      const done = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
      if (child.connected) child.send({ type: 'close' });
      const timer = setTimeout(() => {
        if (!exited) child.kill('SIGKILL');
      }, graceMs);
      const info = await done;
      clearTimeout(timer);
      return info;
    },
    kill() {
      if (!exited) child.kill('SIGKILL');
    },
    get exited() {
      return exited;
    },
  };
}

/** Child side: run `main(params)` on the first `start` message; report errors to the parent. */
export function childMain(handlers) {
  const fail = (err) => {
    if (process.connected) process.send({ type: 'error', message: err?.stack ?? String(err) });
    process.exitCode = 1;
  };
  process.on('message', (msg) => {
    const handler = handlers[msg.type];
    if (handler) Promise.resolve(handler(msg)).catch(fail);
  });
  // The parent died or closed the channel: clean up and go.
  process.on('disconnect', () => Promise.resolve(handlers.close?.({ type: 'close' })).finally(() => process.exit()));
  process.send({ type: 'hello', pid: process.pid });
}

export const fmt = {
  int: (n) => Math.round(n).toLocaleString('en-US'),
  ms: (n) => (Number.isFinite(n) ? (n >= 10 ? n.toFixed(1) : n >= 1 ? n.toFixed(2) : n.toFixed(3)) + ' ms' : 'n/a'),
  us: (n) => (Number.isFinite(n) ? `${Math.round(n)} µs` : 'n/a'),
};

// ---- helpers for benchmarks that watch another process from outside (bench/relay) --------

/** Resident set size (VmRSS) of a process, in bytes, from /proc/<pid>/status. */
export function rssBytes(pid) {
  const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}

/** CPU time (user + system, all threads) a process has used so far, in ms (10 ms ticks), from /proc/<pid>/stat. */
export function procCpuMs(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) * 10;
}

/**
 * A process's I/O counters so far, from /proc/<pid>/io (Linux): `writeBytes` that reached
 * the block layer (SQLite's WAL and checkpoints), `syscw` write syscalls. Undefined where
 * /proc/<pid>/io can't be read.
 */
export function procIo(pid) {
  try {
    const text = readFileSync(`/proc/${pid}/io`, 'utf8');
    const field = (name) => Number(new RegExp(`^${name}:\\s+(\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
    return { writeBytes: field('write_bytes'), syscw: field('syscw') };
  } catch {
    return undefined;
  }
}

/**
 * Samples a process's RSS every `intervalMs` (default 50) from `start()` to `stop()`;
 * `start()` first takes a baseline (median of 5 samples over ~250 ms).
 * `stop()` returns { baseline, peak, growth, samples } in bytes.
 */
export function rssSampler(pid, intervalMs = 50) {
  let baseline = 0;
  let peak = 0;
  let samples = 0;
  let timer;
  const sample = () => {
    const rss = rssBytes(pid);
    samples++;
    if (rss > peak) peak = rss;
    return rss;
  };
  return {
    async start() {
      const quiet = [];
      for (let i = 0; i < 5; i++) {
        quiet.push(rssBytes(pid));
        await new Promise((r) => setTimeout(r, intervalMs));
      }
      baseline = quiet.sort((a, b) => a - b)[2];
      peak = baseline;
      timer = setInterval(sample, intervalMs);
    },
    sample,
    stop() {
      clearInterval(timer);
      sample();
      return { baseline, peak, growth: peak - baseline, samples };
    },
  };
}

const FILL = Buffer.alloc(65536, 'port-bench-'); // one shared block: no allocation per chunk

/** A Readable of exactly `bytes` bytes made on demand (honours back-pressure, holds nothing). */
export function byteStream(bytes) {
  let left = bytes;
  return new Readable({
    read() {
      if (left <= 0) return void this.push(null);
      const n = Math.min(left, FILL.length);
      left -= n;
      this.push(n === FILL.length ? FILL : FILL.subarray(0, n));
    },
  });
}

/**
 * childMain handlers that turn V8's sampling profiler on and off in a child (over the
 * inspector), so a parent can profile exactly its timed window:
 *   ← profile-start → profile-started;  ← profile-stop {file} → profile-stopped {file}
 */
export function profilerHandlers() {
  let session;
  return {
    async 'profile-start'() {
      const { Session } = await import('node:inspector/promises');
      session = new Session();
      session.connect();
      await session.post('Profiler.enable');
      await session.post('Profiler.setSamplingInterval', { interval: 500 });
      await session.post('Profiler.start');
      process.send({ type: 'profile-started' });
    },
    async 'profile-stop'({ file }) {
      const { writeFileSync } = await import('node:fs');
      const { profile } = await session.post('Profiler.stop');
      session.disconnect();
      session = undefined;
      writeFileSync(file, JSON.stringify(profile));
      process.send({ type: 'profile-stopped', file });
    },
  };
}

/**
 * Re-runs the current script under `taskset -c cpu` (once: PORT_BENCH_PINNED=1 marks the
 * pinned run) and mirrors its exit code; signals are passed on. Returns true in the
 * process that re-executed (which should then do nothing else), false in the pinned run.
 */
export function reexecPinned(scriptPath, cpu) {
  if (process.env.PORT_BENCH_PINNED === '1') return false;
  const child = spawn('taskset', ['-c', String(cpu), process.execPath, ...process.execArgv, scriptPath, ...process.argv.slice(2)], {
    stdio: 'inherit',
    env: { ...process.env, PORT_BENCH_PINNED: '1' },
  });
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
  return true;
}

/**
 * Cleanup and abort for a bench's main: `cleanups` run once, newest first; `abort(why)`
 * prints why, cleans up and exits 1; SIGINT/SIGTERM abort; `aborted()` says whether it did.
 */
export function abortable(name) {
  const cleanups = [];
  let cleaning;
  const cleanup = () =>
    (cleaning ??= (async () => {
      for (const c of cleanups.reverse()) await Promise.resolve().then(c).catch(() => undefined);
    })());
  let aborted = false;
  const abort = (why) => {
    if (aborted) return;
    aborted = true;
    console.error(`${name}: ${why}`);
    void cleanup().finally(() => process.exit(1));
  };
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => abort(`interrupted (${sig})`));
  return { cleanups, cleanup, abort, aborted: () => aborted };
}

/**
 * Readers for a bench's parsed command-line options: `posInt(name)` and `posNum(name)`
 * (seconds), and `fail(msg)`, which prints `bench/<bench>: msg` and exits 2.
 */
export function optionReader(bench, opts) {
  const fail = (msg) => {
    console.error(`bench/${bench}: ${msg}`);
    process.exit(2);
  };
  const posInt = (name) => {
    const n = Number(opts[name]);
    if (!Number.isSafeInteger(n) || n < 1) fail(`--${name} must be a positive integer`);
    return n;
  };
  const posNum = (name) => {
    const n = Number(opts[name]);
    if (!Number.isFinite(n) || n <= 0) fail(`--${name} must be a positive number of seconds`);
    return n;
  };
  return { posInt, posNum, fail };
}
