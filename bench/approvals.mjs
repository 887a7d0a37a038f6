/**
 * bench/approvals — how long an auto-approved block step waits for Port: the time
 * from a signed `build.finished` webhook for a blocked build to Port's
 * `PUT /v2/organizations/{org}/jobs/{id}/unblock` arriving at the Buildkite simulator, with
 * p50/p90/p99/max over 1,000 deliveries one at a time and 1,000 at a small concurrency, next
 * to a floor measured in the same run: the same HTTP round trips through a trivial Node server.
 *
 *   npm run bench:approvals [-- FLAGS]      (or, after `npm run build`: node bench/approvals.mjs FLAGS)
 *
 *   --deliveries N     timed deliveries per row (default 1000)
 *   --concurrency N    deliveries in flight in the concurrent rows (default 8)
 *   --warmup N         untimed deliveries before each target's rows (default 200)
 *   --trace N          extra sequential deliveries to Port with per-step timestamps taken
 *                      inside Port (where the time goes); 0 skips (default 300)
 *   --gap MS           idle time after each sequential delivery, so each one finds Port idle
 *                      (its post-unblock log write done); 0 sends back to back (default 5)
 *   --timeout S        longest wait for one delivery's unblock call (default 10)
 *   --store-dir DIR    where Port's temp dir (config, policies, SQLite) goes; /dev/shm takes fsync out
 *   --no-pin, --server-cpu N (1), --client-cpu N (0)   CPU placement
 *
 * Every delivery is a new build (pipeline `deploy`, branch `main`, tag `v1.<n>.0`, a command
 * step then a block step) created by a member of `deployers`, so policy `release-tags-open`
 * unblocks it. The signed body is what `sim.blockAndNotify` sends (`sim.buildFinishedPayload`,
 * `signatureHeader` over `timestamp.body`, the same headers); the bench builds and signs it just
 * before the timer starts. (1) is POST sent → 202 response head received; (2) is POST sent →
 * the simulator records Port's unblock call: `sim.unblockCalls[].at` is a Date (ms), so the
 * bench wraps `push` on that array (the one the simulator's PUT handler appends to, after
 * reading the body and before answering) and stamps `performance.now()` there. Driver and
 * simulator share this process, so both ends of (2) are on one clock.
 *
 * Layout (2+ CPUs): this process (driver + simulator) on CPU 0; Port, then the baseline
 * server, each in a child pinned to CPU 1 with `taskset`, one after the other. Loopback only;
 * temp dirs and children are removed on exit.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { BuildkiteSimulator, signatureHeader } from '../dist/sim/index.js';
import { closedLoop, fmt, reexecPinned, startChild, summarize, tasksetWorks, abortable } from './lib.mjs';
import { AUDIENCE, ORGANIZATION } from './policies.mjs';

const here = (f) => fileURLToPath(new URL(f, import.meta.url));

const { values: opts } = parseArgs({
  options: {
    deliveries: { type: 'string', default: '1000' },
    concurrency: { type: 'string', default: '8' },
    warmup: { type: 'string', default: '200' },
    trace: { type: 'string', default: '300' },
    gap: { type: 'string', default: '5' },
    timeout: { type: 'string', default: '10' },
    'server-cpu': { type: 'string', default: '1' },
    'client-cpu': { type: 'string', default: '0' },
    'no-pin': { type: 'boolean', default: false },
    'store-dir': { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opts.help) {
  console.log(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('*/')[0]);
  process.exit(0);
}
const deliveries = count('deliveries', 1);
const concurrency = count('concurrency', 1);
const warmup = count('warmup', 0);
const traceCount = count('trace', 0);
const gapMs = number('gap', 0);
const timeoutMs = number('timeout', 0.001) * 1000;
const serverCpu = Number(opts['server-cpu']);
const clientCpu = Number(opts['client-cpu']);
const storeDir = opts['store-dir'] ?? os.tmpdir();
const argsText = process.argv.slice(2).join(' ');

function count(name, min) {
  const n = Number(opts[name]);
  if (!Number.isSafeInteger(n) || n < min) fail(`--${name} must be an integer ≥ ${min}`);
  return n;
}
function number(name, min) {
  const n = Number(opts[name]);
  if (!Number.isFinite(n) || n < min) fail(`--${name} must be a number ≥ ${min}`);
  return n;
}
function fail(msg) {
  console.error(`bench/approvals: ${msg}`);
  process.exit(2);
}

const canPin = !opts['no-pin'] && os.cpus().length >= 2 && tasksetWorks(serverCpu) && tasksetWorks(clientCpu);
if (!(canPin && reexecPinned(fileURLToPath(import.meta.url), clientCpu))) await main();

// ---- main -------------------------------------------------------------------------------

async function main() {
  const pinned = canPin;
  const cpu = pinned ? serverCpu : undefined;
  const notes = [];
  if (!pinned) {
    notes.push(
      opts['no-pin']
        ? 'Not pinned (--no-pin): Port, the baseline server, the driver and the simulator share all CPUs.'
        : 'Not pinned: taskset is unavailable or fewer than 2 CPUs; Port, the driver and the simulator share all CPUs.',
    );
  }
  const log = (msg) => process.stderr.write(`· ${msg}\n`);
  const loadAtStart = os.loadavg()[0];
  const began = performance.now();

  const { cleanups, cleanup, abort, aborted } = abortable('bench/approvals');
  // Bounded: the default run takes ~1 min; a stuck delivery costs at most --timeout.
  const total = 2 * warmup + 6 * deliveries + traceCount;
  const budgetMs = 90_000 + total * (25 + gapMs) + 20 * timeoutMs;
  const deadline = setTimeout(() => abort(`did not finish within ${Math.round(budgetMs / 1000)} s; giving up`), budgetMs);

  try {
    // 1. The simulator (here, on the client CPU), a deployer, and the hook on its unblock record.
    const SECRET = `bench-webhook-secret-${process.pid}`;
    const sim = await BuildkiteSimulator.start({ organization: ORGANIZATION, host: '127.0.0.1' });
    cleanups.push(() => sim.close());
    const deployer = sim.createUser({ name: 'Rel Ease', email: 'rel@acme.test' });
    const steps = [
      { type: 'command', key: 'build', label: 'Build' },
      { type: 'block', key: 'deploy', label: 'Deploy to production?' },
    ];
    let tagSeq = 0;
    const blockedBuild = () => sim.createBuild({ pipelineSlug: 'deploy', branch: 'main', tag: `v1.${++tagSeq}.0`, creator: deployer, steps });

    const unblocks = sim.unblockCalls;
    if (unblocks !== sim.unblockCalls || !Array.isArray(unblocks)) throw new Error('sim.unblockCalls is not one live array; the bench cannot stamp unblock calls');
    const waiting = new Map();
    let unexpected = 0;
    let stamped = 0;
    const push = unblocks.push;
    unblocks.push = function (...calls) {
      const t = performance.now();
      for (const call of calls) {
        const w = waiting.get(call.jobId);
        if (w) {
          waiting.delete(call.jobId);
          w({ t, status: call.status, message: call.message });
        } else unexpected++;
        stamped++;
      }
      return push.apply(this, calls);
    };
    cleanups.push(() => void (unblocks.push = push));
    /** Resolves with {t, status} when the simulator records an unblock of `jobId`, or undefined after --timeout. */
    const expectUnblock = (jobId) => {
      let timer;
      const promise = new Promise((resolve) => {
        waiting.set(jobId, (call) => (clearTimeout(timer), resolve(call)));
        timer = setTimeout(() => (waiting.delete(jobId), resolve(undefined)), timeoutMs);
      });
      return { promise, cancel: () => (clearTimeout(timer), waiting.delete(jobId)) };
    };

    // 2. One run of deliveries against a target; returns the two latencies per delivery.
    const usage = async (child) => (child.send({ type: 'usage' }), (await child.next('usage')).cpuMs);
    const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
    const run = async (target, n, inFlight, { gap = 0 } = {}) => {
      const items = Array.from({ length: n }, () => target.prepare(blockedBuild()));
      const ack = [];
      const unblock = [];
      const errors = {};
      let firstError;
      const error = (kind, detail) => {
        errors[kind] = (errors[kind] ?? 0) + 1;
        firstError ??= `${kind}: ${detail}`;
        return 'error';
      };
      let next = 0;
      const cpu0 = await usage(target.child);
      const loop = await closedLoop({
        concurrency: inFlight,
        durationMs: budgetMs,
        op: async () => {
          if (next >= items.length) return false;
          const item = items[next++];
          const headers = item.headers();
          const seen = expectUnblock(item.jobId);
          const t0 = performance.now();
          let res;
          try {
            res = await target.pool.request({ path: item.path, method: 'POST', headers, body: item.body });
          } catch (err) {
            seen.cancel();
            return error(err?.code ?? 'network', err?.message ?? String(err));
          }
          const t1 = performance.now();
          const text = await res.body.text();
          if (res.statusCode !== 202) {
            seen.cancel();
            return error(`POST ${res.statusCode}`, text.slice(0, 300));
          }
          const call = await seen.promise;
          if (call === undefined) return error('no unblock call', `none within ${timeoutMs / 1000} s for job ${item.jobId}`);
          if (call.status !== 200) return error(`unblock ${call.status}`, call.message);
          ack.push(t1 - t0);
          unblock.push(call.t - t0);
          if (gap > 0) await sleep(gap);
          return true;
        },
      });
      const cpuMs = (await usage(target.child)) - cpu0;
      const failed = Object.values(errors).reduce((a, b) => a + b, 0);
      if (next < n) notes.push(`${target.name}, ${inFlight} in flight: stopped by the time bound after ${next} of ${n} deliveries.`);
      return { n: next, inFlight, ack, unblock, errors, failed, firstError, elapsedMs: loop.elapsedMs, cpuMs };
    };

    const rows = [];
    const measure = async (target, label) => {
      const seq = await run(target, deliveries, 1, { gap: gapMs });
      log(`${label}: 1 in flight — p50 ${fmt.ms(stats(seq.unblock).p50)} to the unblock call, ${seq.failed} errors`);
      const conc = await run(target, deliveries, concurrency);
      log(`${label}: ${concurrency} in flight — p50 ${fmt.ms(stats(conc.unblock).p50)} to the unblock call, ${conc.failed} errors`);
      rows.push({ label, runs: [seq, conc] });
      return { seq, conc };
    };
    const checkFirst = async (target) => {
      const first = await run(target, 1, 1);
      if (first.failed) throw new Error(`first delivery to ${target.name} failed: ${first.firstError}`);
    };

    // 3. Port, pinned, configured like the approvals e2e test.
    const port = startChild(here('./approvals-server.mjs'), { cpu });
    port.child.on('error', () => undefined); // an IPC write after an abort stopped it (EPIPE)
    cleanups.push(() => port.stop());
    await port.next('hello');
    port.send({
      type: 'start',
      simUrl: sim.url,
      issuer: sim.issuer,
      jwksUrl: sim.jwksUrl,
      audience: AUDIENCE,
      organization: ORGANIZATION,
      apiToken: sim.apiToken,
      webhookSecret: SECRET,
      users: [{ email: deployer.email, groups: ['deployers'] }],
      storeDir,
    });
    const ready = await port.next('ready');
    log(`Port (pid ${port.pid}) at ${ready.url}${pinned ? ` on CPU ${serverCpu}` : ''} with ${ready.policies} policies; simulator at ${sim.url}`);
    const portPool = new Pool(ready.url, { connections: concurrency });
    cleanups.push(() => portPool.destroy());
    const portTarget = {
      name: 'Port',
      child: port,
      pool: portPool,
      prepare(build) {
        const jobId = build.jobs.find((j) => j.type === 'manual').id;
        const body = JSON.stringify(sim.buildFinishedPayload(build));
        return {
          jobId,
          path: '/webhooks/buildkite',
          body,
          // Signed at send time, exactly as the simulator's deliverWebhook does.
          headers: () => ({
            'content-type': 'application/json',
            'user-agent': 'Buildkite-Request',
            'x-buildkite-event': 'build.finished',
            'x-buildkite-signature': signatureHeader(SECRET, Math.floor(Date.now() / 1000), body),
          }),
        };
      },
    };
    await checkFirst(portTarget);
    if (stamped !== 1) throw new Error('the unblock hook did not see the first unblock call');
    if (warmup) await run(portTarget, warmup, concurrency);
    log(`Port warmed up (${warmup} deliveries); measuring ${deliveries} deliveries one at a time (gap ${gapMs} ms), then ${deliveries} at ${concurrency} in flight`);
    const portRuns = await measure(portTarget, 'Port');

    // 4. Where the time goes: a traced sequential run, timestamps inside Port.
    let trace;
    if (traceCount > 0) {
      port.send({ type: 'trace-start' });
      await port.next('trace-started');
      const traced = await run(portTarget, traceCount, 1, { gap: gapMs });
      port.send({ type: 'trace-stop' });
      const spans = (await port.next('trace')).deliveries;
      trace = breakdown(spans, traced);
      log(`traced ${spans.length} deliveries inside Port`);
    }
    port.send({ type: 'log-summary' });
    const decisionLog = (await port.next('log-summary')).counts;
    await portPool.close();
    await port.stop();

    // 5. The floor: an empty POST to a trivial Node server on the same CPU, which answers 202
    //    and sends the simulator the same PUT (and, in the second variant, Port's GET first).
    const base = startChild(here('./approvals-baseline.mjs'), { cpu });
    base.child.on('error', () => undefined);
    cleanups.push(() => base.stop());
    await base.next('hello');
    base.send({ type: 'start', simUrl: sim.url, organization: ORGANIZATION, apiToken: sim.apiToken });
    const { url: baseUrl } = await base.next('ready');
    const basePool = new Pool(baseUrl, { connections: concurrency });
    cleanups.push(() => basePool.destroy());
    const baseTarget = (withGet) => ({
      name: withGet ? 'Baseline POST + GET + PUT' : 'Baseline POST + PUT',
      child: base,
      pool: basePool,
      prepare(build) {
        const jobId = build.jobs.find((j) => j.type === 'manual').id;
        return { jobId, path: `/hook/${encodeURIComponent(jobId)}${withGet ? `?get=${build.pipelineSlug}/${build.number}` : ''}`, body: '', headers: () => ({}) };
      },
    });
    const bare = baseTarget(false);
    const bareGet = baseTarget(true);
    await checkFirst(bare);
    await checkFirst(bareGet);
    if (warmup) {
      await run(bare, warmup, concurrency);
      await run(bareGet, warmup, concurrency);
    }
    const bareRuns = await measure(bare, 'Baseline: POST + PUT');
    const bareGetRuns = await measure(bareGet, 'Baseline: POST + GET + PUT');
    await basePool.close();
    await base.stop();
    const elapsedS = (performance.now() - began) / 1000;

    // 6. The tables.
    const where = (s) => (pinned ? s : 'unpinned');
    const names = {
      Port: `Port: signed \`build.finished\` → policy → \`PUT …/unblock\``,
      'Baseline: POST + PUT': 'Baseline: empty POST → 202, then `PUT …/unblock` (bare `node:http` + undici)',
      'Baseline: POST + GET + PUT': 'Baseline: empty POST → 202, then `GET` the build and `PUT …/unblock`',
    };
    const lines = [
      '| Path | Where | In flight | Deliveries | Errors | (1) POST → 202: p50 | p90 | p99 | max | (2) POST → unblock call at the simulator: p50 | p90 | p99 | max | CPU / delivery |',
      '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ];
    for (const { label, runs } of rows) {
      for (const r of runs) {
        const a = stats(r.ack);
        const u = stats(r.unblock);
        const errs = r.failed === 0 ? '0' : `${r.failed} ${JSON.stringify(r.errors)}`;
        lines.push(
          `| ${names[label]} | ${where(`CPU ${serverCpu}`)} | ${r.inFlight} | ${fmt.int(r.n)} | ${errs} | ${fmt.ms(a.p50)} | ${fmt.ms(a.p90)} | ${fmt.ms(a.p99)} | ${fmt.ms(a.max)} | ${fmt.ms(u.p50)} | ${fmt.ms(u.p90)} | ${fmt.ms(u.p99)} | ${fmt.ms(u.max)} | ${fmt.us((r.cpuMs / r.n) * 1000)} |`,
        );
      }
    }
    const added = (p, b) => {
      const d = (k) => `${fmtSigned(stats(p.ack)[k] - stats(b.ack)[k])} / ${fmtSigned(stats(p.unblock)[k] - stats(b.unblock)[k])}`;
      return `${d('p50')} at p50, ${d('p99')} at p99`;
    };
    const ps = stats(portRuns.seq.unblock);
    const pc = stats(portRuns.conc.unblock);
    const out = [
      '',
      `**Webhook → unblock call, auto-approved step: p50 ${fmt.ms(ps.p50)}, p99 ${fmt.ms(ps.p99)}** over ${fmt.int(portRuns.seq.n)} deliveries one at a time (${portRuns.seq.failed} errors); at ${concurrency} in flight p50 ${fmt.ms(pc.p50)}, p99 ${fmt.ms(pc.p99)} (${portRuns.conc.failed} errors).`,
      '',
      ...lines,
      '',
      `- What Port adds over the baseline with the same three round trips (POST + GET + PUT), (1) / (2): one at a time ${added(portRuns.seq, bareGetRuns.seq)}; ${concurrency} in flight ${added(portRuns.conc, bareGetRuns.conc)}. Over POST + PUT alone, one at a time: ${added(portRuns.seq, bareRuns.seq)}.`,
      `- Throughput at ${concurrency} in flight: Port ${fmt.int((portRuns.conc.n / portRuns.conc.elapsedMs) * 1000)} deliveries/s; baseline POST + GET + PUT ${fmt.int((bareGetRuns.conc.n / bareGetRuns.conc.elapsedMs) * 1000)}/s. CPU / delivery is the pinned process's user+system time (all threads) over the row, divided by its deliveries.`,
      `- (1) is POST sent → 202 response head received; (2) is POST sent → the simulator's PUT handler records the unblock (stamped with \`performance.now()\` by wrapping \`push\` on \`sim.unblockCalls\`; ${fmt.int(stamped)} calls stamped; the simulator's own \`at\` is a Date, 1 ms resolution). Each delivery is a new blocked build (tag \`v1.<n>.0\` on \`main\`, created by a \`deployers\` member) signed with HMAC-SHA256 just before the timer starts; the next starts when both (1) and (2) are seen${gapMs > 0 ? `, plus ${gapMs} ms idle in the one-at-a-time rows so each delivery finds Port idle` : ''}. Warm-up: ${warmup} deliveries to each target first.`,
      `- Port's decision log after the run: ${Object.entries(decisionLog)
        .map(([k, v]) => `${fmt.int(v)} × ${k}`)
        .join('; ')}.${unexpected ? ` ${unexpected} unblock calls arrived for no waiting delivery (after a timeout).` : ''}`,
      ...notes.map((n) => `- ${n}`),
      `- 1-min load average just before the run: ${loadAtStart.toFixed(2)}; the run took ${elapsedS.toFixed(0)} s.`,
      '',
      `Machine: ${os.cpus().length} CPUs (nproc), ${cpuModel()}, ${Math.round(os.totalmem() / 2 ** 30)} GiB RAM, Linux ${os.release()}, Node ${process.version}; Port's SQLite store in ${storeDir} on ${fsType(storeDir)} (WAL, its log synced before a write is acknowledged); Port on CPU ${serverCpu}, the driver and the simulator on CPU ${clientCpu}${pinned ? '' : ' (not pinned)'}.`,
      `Command: \`npm run bench:approvals${argsText ? ` -- ${argsText}` : ''}\``,
    ];
    if (trace) out.push('', ...trace);
    console.log(out.join('\n'));
    for (const { label, runs } of rows) for (const r of runs) if (r.firstError) console.log(`\nFirst error (${label}, ${r.inFlight} in flight): ${r.firstError}`);
  } catch (err) {
    if (!aborted()) console.error(`bench/approvals failed: ${err?.stack ?? err}`);
    process.exitCode = 1;
  } finally {
    clearTimeout(deadline);
    await cleanup();
  }
}

// ---- statistics ---------------------------------------------------------------------------

/** p50/p90/p99/max/mean in ms (nearest rank, as lib.mjs's summarize). */
function stats(ms) {
  const s = summarize(ms, 1);
  const sorted = Float64Array.from(ms).sort();
  const p90 = sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.ceil(0.9 * sorted.length) - 1)];
  const mean = sorted.length === 0 ? NaN : sorted.reduce((a, b) => a + b, 0) / sorted.length;
  return { n: s.ops, p50: s.p50, p90, p99: s.p99, max: s.max, mean };
}

function fmtSigned(ms) {
  return Number.isFinite(ms) ? `${ms >= 0 ? '+' : '−'}${fmt.ms(Math.abs(ms))}` : 'n/a';
}

/**
 * Per-step times inside Port, from the traced deliveries' events (see approvals-server.mjs),
 * matched one to one with the driver's measurements of the same deliveries.
 */
function breakdown(spans, driver) {
  const steps = [
    ['Receive the body; header checks; HMAC-SHA256 over `timestamp.body` (constant-time compare)', (e) => e.consume0 - e.start],
    ['Replay cache: signature and body hash, 2 × `consumeOnce` in one durable commit (fsync)', (e) => e.consume1 - e.consume0],
    ['`JSON.parse`, payload schema (zod), 202 written', (e) => e.answer - e.consume1],
    ['Handler dispatched (setImmediate) → `GET` of the build sent', (e) => e.getSent - e.answer],
    ['REST `GET …/builds/{n}`: round trip to response head (simulator on CPU 0)', (e) => e.getAnswered - e.getSent],
    ['Build body read + schema; store reads (request by job, creator\'s groups); Cedar entities', (e) => e.decide0 - e.getAnswered],
    ['↳ of which the two store reads', (e) => e.reads],
    ['Cedar `unblock` decision (`PolicyEngine.decide`)', (e) => e.decide1 - e.decide0],
    ['Decision record → decision log, durable commit (fsync)', (e) => e.append1 - e.decide1],
    ['Decision logged → `PUT …/unblock` sent', (e) => e.putSent - e.append1],
    ['**Inside Port: webhook request start → `PUT` sent**', (e) => e.putSent - e.start],
    ['Outside Port: POST from the driver to Port, and PUT from Port to the simulator\'s handler (both hops, both event loops)', (e) => e.outside],
    ['After the unblock call (not in (2)): PUT round trip, then the `unblocked` record\'s durable commit', (e) => e.append2 - e.putSent],
  ];
  const events = [];
  for (let i = 0; i < spans.length; i++) {
    const d = spans[i];
    const find = (name, k = 0) => d.events.filter((ev) => ev[0] === name)[k];
    const consume = d.events.filter((ev) => ev[0] === 'consumeOnce');
    const appends = d.events.filter((ev) => ev[0] === 'appendDecisions');
    const reads = d.events.filter((ev) => ev[0] === 'getUser' || ev[0] === 'getApprovalRequestByJob');
    const e = {
      start: d.start,
      consume0: Math.min(...consume.map((c) => c[1])),
      consume1: Math.max(...consume.map((c) => c[2])),
      answer: find('answer 202')?.[1],
      getSent: find('GET sent')?.[1],
      getAnswered: find('GET answered')?.[1],
      decide0: find('decide')?.[1],
      decide1: find('decide')?.[2],
      reads: reads.length === 2 ? reads.reduce((a, r) => a + (r[2] - r[1]), 0) : NaN,
      append1: appends[0]?.[2],
      putSent: find('PUT sent')?.[1],
      append2: appends[1]?.[2],
    };
    // The driver's (2) for the same delivery, when the runs line up one to one.
    e.outside = spans.length === driver.unblock.length ? driver.unblock[i] - (e.putSent - e.start) : NaN;
    events.push(e);
  }
  const ok = events.filter((e) => Number.isFinite(e.putSent - e.start));
  const table = [
    `Where the time goes, inside Port: ${fmt.int(ok.length)} more deliveries one at a time, timestamped in the Port process (\`diagnostics_channel\`: \`http.server.request.start\` / \`response.finish\`, undici's \`request:create\` / \`request:headers\`; wrappers on this run's \`store\` and \`policy.decide\`). The driver's (2) for these: p50 ${fmt.ms(stats(driver.unblock).p50)}, p99 ${fmt.ms(stats(driver.unblock).p99)}.`,
    '',
    '| Step | p50 | p90 | p99 | mean |',
    '| --- | --- | --- | --- | --- |',
  ];
  for (const [name, f] of steps) {
    const v = ok.map(f).filter(Number.isFinite);
    if (v.length === 0) continue;
    const s = stats(v);
    table.push(`| ${name} | ${fmt.ms(s.p50)} | ${fmt.ms(s.p90)} | ${fmt.ms(s.p99)} | ${fmt.ms(s.mean)} |`);
  }
  if (ok.length < spans.length) table.push('', `(${spans.length - ok.length} traced deliveries lacked an event and are left out.)`);
  return table;
}

// ---- machine --------------------------------------------------------------------------------

function safeRead(file) {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

function cpuModel() {
  return (/^model name\s*:\s*(.*)$/m.exec(safeRead('/proc/cpuinfo')) ?? [])[1] ?? os.cpus()[0]?.model ?? 'unknown';
}

function fsType(dir) {
  const mounts = safeRead('/proc/mounts')
    .split('\n')
    .map((l) => l.split(' '))
    .filter((p) => p.length > 2 && dir.startsWith(p[1]))
    .sort((a, b) => b[1].length - a[1].length);
  return mounts[0] ? `${mounts[0][2]} (${mounts[0][0]})` : 'unknown fs';
}
