/**
 * Instructions per token exchange, against the raw crypto's, counted by valgrind's callgrind:
 * a measure of the CPU work an exchange costs that the host's noise barely moves (on a shared
 * VM the wall-clock benches, bench/exchange.mjs, move by tens of percent between runs).
 *
 * What it runs, one request at a time:
 * - Port (bench/exchange-server.mjs: dist/, its SQLite file in a temp dir, the exchange
 *   policies) under callgrind, trusting a Buildkite simulator in this process. --warmup
 *   exchanges, then the counters are zeroed (`callgrind_control -z`), then --exchanges
 *   exchanges are counted (`callgrind_control -d`), thread by thread.
 * - The baseline (bench/baseline.mjs: RS256 verify + ES256 sign with jose, in-process) under
 *   callgrind the same way.
 *
 * Counted: user-space instructions, none of the kernel's (syscalls, the disk, the network),
 * so it is a complement to the wall-clock ratio, not the same ratio. Compare builds by
 * Port's main thread: everything Port does per exchange runs there (its signatures too),
 * while the other threads' count is mostly V8's optimizing compiler, which is still at work
 * after thousands of exchanges and moves from run to run. The baseline's crypto runs on
 * libuv's pool (WebCrypto), so the ratio to it is by all threads. One at a time, every
 * exchange is a group commit of its own. Needs valgrind (Debian: valgrind).
 *
 *   npm run bench:instructions                       # builds first; ~5 minutes
 *   node bench/instructions.mjs --exchanges 500 --warmup 2000
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { BuildkiteSimulator } from '../dist/sim/index.js';
import { fmt, startChild } from './lib.mjs';
import { AUDIENCE, ORGANIZATION } from './policies.mjs';

const { values: opts } = parseArgs({
  options: {
    exchanges: { type: 'string', default: '500' },
    warmup: { type: 'string', default: '2000' },
    help: { type: 'boolean', default: false },
  },
});
if (opts.help) {
  console.log('node bench/instructions.mjs [--exchanges N (500)] [--warmup N (2000)]');
  process.exit(0);
}
const counted = Number(opts.exchanges);
const warmup = Number(opts.warmup);
if (!(counted > 0) || !(warmup >= 0)) throw new Error('--exchanges must be > 0 and --warmup ≥ 0');
if (spawnSync('valgrind', ['--version']).status !== 0) {
  console.error('valgrind is not installed (Debian: apt-get install valgrind); this bench counts instructions with it.');
  process.exit(1);
}

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const log = (m) => console.error(`· ${m}`);
const out = mkdtempSync(join(os.tmpdir(), 'port-bench-callgrind-'));

/** Under callgrind everything is ~50× slower: a start takes a minute or two. */
const SLOW_MS = 30 * 60_000;

/** `node script` under callgrind (startChild's IPC helpers), and `count(work)`. */
function underCallgrind(script, name) {
  const child = startChild(script, {
    // JIT code (V8, its wasm) rewrites itself: --smc-check. No cache or branch simulation: instructions only.
    // One dump per thread: the main thread's count apart from V8's helpers (TurboFan, GC) and libuv's pool.
    wrapper: ['valgrind', '--tool=callgrind', `--callgrind-out-file=${join(out, `${name}.%p`)}`, '--separate-threads=yes', '--smc-check=all-non-file', '--cache-sim=no', '--branch-sim=no'],
  });
  /** Counts what `work` runs: zero the counters, run it, dump; instructions of the main thread and of all threads. */
  const count = async (work) => {
    execFileSync('callgrind_control', ['-z', String(child.pid)], { stdio: 'ignore' });
    await work();
    execFileSync('callgrind_control', ['-d', String(child.pid)], { stdio: 'ignore' });
    // The dump callgrind_control asked for is `<name>.<pid>.1-<thread>`, thread 01 the main one.
    const dumps = readdirSync(out).filter((f) => f.startsWith(`${name}.${child.pid}.1-`));
    if (dumps.length === 0) throw new Error(`no callgrind dump for ${name}`);
    let main = 0;
    let all = 0;
    for (const dump of dumps) {
      const totals = /^totals:\s+(\d+)/m.exec(readFileSync(join(out, dump), 'utf8'));
      if (!totals) throw new Error(`no totals in ${dump}`);
      all += Number(totals[1]);
      if (dump.endsWith('.1-01')) main = Number(totals[1]);
    }
    return { main, all };
  };
  return { ...child, next: (type) => child.next(type, SLOW_MS), count, stop: () => child.stop(SLOW_MS) };
}

const sim = await BuildkiteSimulator.start({ organization: ORGANIZATION, host: '127.0.0.1' });
try {
  // Tokens for 16 jobs in turn, as bench/exchange.mjs mints them; each is single use.
  const jobs = Array.from({ length: 16 }, () => sim.createJob({ pipelineSlug: 'deploy', branch: 'main' }));
  log(`minting ${warmup + counted} Buildkite tokens`);
  const bodies = [];
  for (let i = 0; i < warmup + counted; i++) {
    const token = await sim.mintToken(jobs[i % jobs.length], { audience: AUDIENCE, lifetime: 3600 });
    bodies.push(new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: token, subject_token_type: 'urn:ietf:params:oauth:token-type:jwt', scope: 'deploy-token' }).toString());
  }

  log('Port under callgrind (its start takes a minute or two)');
  const port = underCallgrind(here('./exchange-server.mjs'), 'port');
  await port.next('hello');
  port.send({ type: 'start', issuer: sim.issuer, jwksUrl: sim.jwksUrl, audience: AUDIENCE, organization: ORGANIZATION });
  const { url } = await port.next('ready');
  const pool = new Pool(url, { connections: 1 });
  let failed = 0;
  const run = async (list) => {
    for (const body of list) {
      const res = await pool.request({ path: '/oauth/token', method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body });
      const text = await res.body.text();
      if (res.statusCode !== 200 && failed++ === 0) console.error(`an exchange answered ${res.statusCode}: ${text.slice(0, 300)}`);
    }
  };
  log(`${warmup} exchanges to warm up, then ${counted} counted`);
  await run(bodies.slice(0, warmup));
  const portInstructions = await port.count(() => run(bodies.slice(warmup)));
  await pool.close();
  await port.stop();
  if (failed > 0) throw new Error(`${failed} exchanges failed; the count is not of exchanges`);

  log('the jose baseline under callgrind');
  const base = underCallgrind(here('./baseline.mjs'), 'baseline');
  await base.next('hello');
  const tokens = bodies.slice(0, 64).map((b) => new URLSearchParams(b).get('subject_token'));
  base.send({ type: 'prepare', jwk: sim.jwks().keys[0], tokens, issuer: sim.issuer, audience: AUDIENCE, portIssuer: AUDIENCE });
  await base.next('prepared');
  base.send({ type: 'run', count: warmup });
  await base.next('ran');
  const baseInstructions = await base.count(async () => {
    base.send({ type: 'run', count: counted });
    await base.next('ran');
  });
  await base.stop();

  const m = (n) => `${(n / counted / 1e6).toFixed(2)} M`;
  const ratio = (a, b) => `${(a / b).toFixed(2)}×`;
  console.log(
    [
      `**An exchange executes ${ratio(portInstructions.all, baseInstructions.all)} the instructions of the raw crypto** (all threads; main thread ${ratio(portInstructions.main, baseInstructions.main)}; callgrind, one at a time, ${fmt.int(counted)} counted after ${fmt.int(warmup)} to warm up).`,
      '',
      '| Counted, per operation | Main thread | Other threads (V8: TurboFan, GC; libuv pool) | All threads |',
      '| --- | --- | --- | --- |',
      `| Token exchange over HTTP (\`POST /oauth/token\`, \`scope=deploy-token\`), Port's process | ${m(portInstructions.main)} | ${m(portInstructions.all - portInstructions.main)} | ${m(portInstructions.all)} |`,
      `| Baseline: RS256 verify + ES256 sign (jose, in-process) | ${m(baseInstructions.main)} | ${m(baseInstructions.all - baseInstructions.main)} | ${m(baseInstructions.all)} |`,
      '',
      "User-space instructions (not the kernel's: syscalls, disk, network); Port's SQLite store in a temp dir. Other threads' share",
      'is mostly V8 still optimizing (TurboFan): a longer --warmup lowers it.',
      `Node ${process.version}, ${spawnSync('valgrind', ['--version'], { encoding: 'utf8' }).stdout.trim()}.`,
      `Command: \`node bench/instructions.mjs --exchanges ${counted} --warmup ${warmup}\``,
    ].join('\n'),
  );
} finally {
  await sim.close();
  rmSync(out, { recursive: true, force: true });
}
