/**
 * bench/credentials — what `POST /v1/credentials/{name}` costs for each credential type,
 * on one core, at 1 and 16 requests in flight: requests/s, p50/p99 latency and Port's
 * CPU per request. Two baselines in the same run:
 *   (a) the bare operation without Port, in a process pinned to the same core: reading
 *       the file, spawning the same command, signing the same JWT with jose, the same STS
 *       call made directly with @aws-sdk/client-sts against the same simulator;
 *   (b) `POST /oauth/token` (RFC 8693 exchange, one scope) on the same Port.
 *
 *   npm run bench:credentials [-- FLAGS]    (or, after `npm run build`: node bench/credentials.mjs FLAGS)
 *
 *   --duration S        measured seconds per row (default 4)
 *   --warmup S          warm-up seconds per target, at the highest concurrency (default 2)
 *   --concurrency LIST  in-flight levels, comma-separated (default 1,16)
 *   --only LIST         run only these targets (exchange, secret-file, secret-command, secret-command-cached,
 *                       svc-token, aws-web, aws-web-held, aws-keys, aws-web-uncached); baselines follow
 *   --profile TARGET    V8 CPU profile of Port during TARGET's highest-concurrency row, summarized
 *   --port-tokens N     reusable Port tokens (one job each) the non-AWS requests rotate through (default 64)
 *   --port-log LEVEL    Port's log (to stdout) at this level, e.g. error, when a setup fails; off by default
 *   --store-dir DIR     where Port's temp dir (config, policies, SQLite) goes; /dev/shm takes fsync out
 *   --no-pin, --server-cpu N (1), --client-cpu N (0)   CPU placement
 *
 * Layout (2+ CPUs): this process — load generator, Buildkite simulator, STS simulator and
 * the JWKS cache standing in for IAM's — on CPU 0; Port in a child on CPU 1; then the
 * baseline child on CPU 1 after Port has stopped. A `command:` secret's processes inherit
 * the child's pinning. Only loopback addresses are used; temp dirs and children are removed.
 *
 * AWS: Port holds a job's session and hands it out again while it is good
 * (src/broker/credentials/aws-session-cache.ts), so the `aws-web`, `aws-keys` and
 * `aws-web-uncached` rows send each request with the Port token of a new job (exchanged
 * between rows, untimed) and every request calls STS; `aws-web-held` asks again for jobs
 * whose session Port already holds. `sts_concurrency` is set to the highest in-flight
 * level so those rows measure the path, not the 503 "busy" answer (default 8).
 * Web identity: IAM caches an OIDC provider's JWKS when its Cache-Control allows (Port
 * sends max-age=300), so by default the simulator reaches Port's discovery document and
 * JWKS through a copy served here, fetched once from Port. Row `aws-web-uncached` points the
 * simulator at Port itself, so Port also serves those two GETs on every call.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { decodeJwt, exportJWK, generateKeyPair } from 'jose';
import { Pool } from 'undici';
import { BuildkiteSimulator } from '../dist/sim/index.js';
import { StsSimulator } from '../dist/sim/aws-sts/index.js';
import { renderSessionPolicy } from '../dist/broker/credentials/aws-session-policy.js';
import { summarizeProfile } from './cpuprofile-summary.mjs';
import {
  AWS_KEY_ENV,
  BASELINE_ISSUER,
  cpuTimes,
  FRESH_SCOPE,
  jobClaims,
  ORGANIZATION,
  PORT_AWS_USER,
  POLICIES,
  portCredentials,
  PUBLIC_URL,
  REUSED_SCOPE,
  secretCommand,
  SESSION_POLICY_TEMPLATE,
  SESSION_TAGS,
  stsIam,
} from './credentials-setup.mjs';
import { abortable, closedLoop, cpuMs, fmt, reexecPinned, startChild, summarize, tasksetWorks } from './lib.mjs';

const here = (f) => fileURLToPath(new URL(f, import.meta.url));

/**
 * Port targets in table order; `baseline` names the bare operation each is compared with;
 * `fresh`: each request uses the Port token of a new job (so Port calls STS every time).
 */
const TARGETS = [
  { key: 'exchange', label: 'Token exchange `POST /oauth/token` (`scope=svc-token`)' },
  { key: 'secret-file', cred: 'secret-file', label: '`secret` from `file:`', baseline: 'file' },
  { key: 'secret-command', cred: 'secret-command', label: '`secret` from `command:` (`cat FILE`)', baseline: 'command' },
  { key: 'secret-command-cached', cred: 'secret-command-cached', label: '`secret` from `command:` with `cache_for: 60s`' },
  { key: 'svc-token', cred: 'svc-token', label: '`port_token` (ES256 JWT)', baseline: 'sign' },
  { key: 'aws-web', cred: 'aws-web', fresh: true, label: '`aws_role` `web_identity`, new job each (STS sim; JWKS cached as IAM does)', baseline: 'sts-web' },
  { key: 'aws-web-held', cred: 'aws-web', label: '`aws_role` `web_identity`, job\'s session already held (no STS call)' },
  { key: 'aws-keys', cred: 'aws-keys', fresh: true, label: '`aws_role` `assume_role`, new job each (STS sim, SigV4)', baseline: 'sts-keys' },
  { key: 'aws-web-uncached', cred: 'aws-web-direct', fresh: true, uncached: true, label: '`aws_role` `web_identity`, new job each, sim fetching Port\'s discovery + JWKS per call' },
];
/** The AWS SDK's notice that releases after January 2027 need Node 22: noise in a bench table. */
const QUIET_SDK = { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };
const signed = (format, n) => `${n >= 0 ? '+' : '−'}${format(Math.abs(n))}`;
const BASELINES = {
  file: '`readFileSync` of the same file',
  command: 'spawn `/bin/sh -c "cat FILE"`, read stdout',
  sign: 'jose `SignJWT` ES256, same claims',
  'sts-web': 'jose ES256 web identity token + `AssumeRoleWithWebIdentity` (client-sts → sim)',
  'sts-keys': '`AssumeRole` with keys (client-sts, SigV4 → sim)',
};

const { values: opts } = parseArgs({
  options: {
    duration: { type: 'string', default: '4' },
    warmup: { type: 'string', default: '2' },
    concurrency: { type: 'string', default: '1,16' },
    only: { type: 'string' },
    profile: { type: 'string' },
    'port-tokens': { type: 'string', default: '64' },
    'store-dir': { type: 'string' },
    'port-log': { type: 'string' },
    'server-cpu': { type: 'string', default: '1' },
    'client-cpu': { type: 'string', default: '0' },
    'no-pin': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opts.help) {
  console.log(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('*/')[0]);
  process.exit(0);
}
const durationMs = posNum('duration') * 1000;
const warmupMs = posNum('warmup') * 1000;
const levels = opts.concurrency.split(',').map((s) => Number(s.trim()));
if (levels.length === 0 || levels.some((n) => !Number.isSafeInteger(n) || n < 1)) fail('--concurrency must be a comma-separated list of positive integers');
const maxLevel = Math.max(...levels);
const portTokenCount = Number(opts['port-tokens']);
if (!Number.isSafeInteger(portTokenCount) || portTokenCount < 1) fail('--port-tokens must be a positive integer');
const only = opts.only?.split(',').map((s) => s.trim());
for (const k of only ?? []) if (!TARGETS.some((t) => t.key === k)) fail(`--only: unknown target ${k}; one of ${TARGETS.map((t) => t.key).join(', ')}`);
if (opts.profile !== undefined && !TARGETS.some((t) => t.key === opts.profile)) fail(`--profile: unknown target ${opts.profile}`);
const targets = TARGETS.filter((t) => !only || only.includes(t.key));
const serverCpu = Number(opts['server-cpu']);
const clientCpu = Number(opts['client-cpu']);
const storeDir = opts['store-dir'] ?? os.tmpdir();
const argsText = process.argv.slice(2).join(' ');

function posNum(name) {
  const n = Number(opts[name]);
  if (!Number.isFinite(n) || n <= 0) fail(`--${name} must be a positive number of seconds`);
  return n;
}
function fail(msg) {
  console.error(`bench/credentials: ${msg}`);
  process.exit(2);
}

const canPin = !opts['no-pin'] && os.cpus().length >= 2 && tasksetWorks(serverCpu) && tasksetWorks(clientCpu);
if (!(canPin && reexecPinned(fileURLToPath(import.meta.url), clientCpu))) await main();

async function main() {
  const pinned = canPin;
  const cpu = pinned ? serverCpu : undefined;
  const notes = [];
  if (!pinned) notes.push('Not pinned: taskset is unavailable, fewer than 2 CPUs, or --no-pin; Port, the load generator and the baselines share all CPUs.');
  const { cleanups, cleanup, abort, aborted } = abortable('bench/credentials');
  const rowsPerTarget = levels.length;
  const budgetMs = 60_000 + (targets.length * 2 + 1) * (warmupMs + rowsPerTarget * durationMs) * 1.5;
  const deadline = setTimeout(() => abort(`did not finish within ${Math.round(budgetMs / 1000)} s; giving up`), budgetMs);
  const log = (msg) => process.stderr.write(`· ${msg}\n`);
  const loadBefore = os.loadavg()[0];
  const started = performance.now();

  try {
    // 1. Files both Port and the baseline read; the simulators; the JWKS cache.
    const dir = mkdtempSync(join(os.tmpdir(), 'port-bench-creds-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const secretValue = `bench-secret-${randomBytes(24).toString('base64url')}`;
    const secretFile = join(dir, 'secret.txt');
    writeFileSync(secretFile, `${secretValue}\n`, { mode: 0o600 });
    const policyFile = join(dir, 'session-policy.json');
    writeFileSync(policyFile, SESSION_POLICY_TEMPLATE);

    const sim = await BuildkiteSimulator.start({ organization: ORGANIZATION, host: '127.0.0.1' });
    cleanups.push(() => sim.close());
    const sts = await StsSimulator.start(stsIam());
    cleanups.push(() => sts.close());
    const mirror = await startMirror();
    cleanups.push(() => mirror.close());

    // 2. Port, on the server CPU.
    const server = startChild(here('./credentials-server.mjs'), { cpu, env: { ...AWS_KEY_ENV, ...QUIET_SDK } });
    cleanups.push(() => server.stop());
    await server.next('hello');
    server.send({
      type: 'start',
      publicUrl: PUBLIC_URL,
      issuer: sim.issuer,
      jwksUrl: sim.jwksUrl,
      audience: PUBLIC_URL,
      organization: ORGANIZATION,
      credentials: portCredentials({ secretFile, policyFile, stsUrl: sts.url, roleArn: (n) => sts.roleArn(n), stsConcurrency: Math.min(256, Math.max(8, maxLevel)) }),
      policies: POLICIES,
      storeDir,
      ...(opts['port-log'] ? { logLevel: opts['port-log'] } : {}),
    });
    const { url } = await server.next('ready');
    log(`Port (pid ${server.pid}) at ${url}${pinned ? ` on CPU ${serverCpu}` : ''}; Buildkite sim ${sim.url}; STS sim ${sts.url}`);

    // IAM's cached copy of Port's discovery document and JWKS (fetched once, as IAM would).
    const discovery = await (await fetch(`${url}/.well-known/openid-configuration`)).json();
    const jwks = await (await fetch(`${url}/.well-known/jwks.json`)).json();
    mirror.set('/port/.well-known/openid-configuration', discovery);
    mirror.set('/port/.well-known/jwks.json', jwks);
    const useMirror = () => sts.setOriginOverride(PUBLIC_URL, `${mirror.url}/port`);
    useMirror();

    const pool = new Pool(url, { connections: maxLevel, pipelining: 1 });
    cleanups.push(() => pool.destroy());

    // 3. Port tokens. Reusable: one per job, requests rotate through them. Fresh: one per
    //    request of the AWS rows, exchanged between rows (untimed) as they are needed.
    const exchangeBody = (token, scope) =>
      new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: token, subject_token_type: 'urn:ietf:params:oauth:token-type:jwt', scope }).toString();
    const portTokensFor = async (n, scope, into) => {
      let left = n;
      await Promise.all(
        Array.from({ length: Math.min(16, n) }, async () => {
          while (left-- > 0) {
            const j = sim.createJob({ pipelineSlug: 'deploy', branch: 'main' });
            const body = exchangeBody(await sim.mintToken(j, { audience: PUBLIC_URL, lifetime: 3600 }), scope.join(' '));
            const res = await pool.request({ path: '/oauth/token', method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body });
            const json = await res.body.json();
            if (res.statusCode !== 200) throw new Error(`exchange for a Port token failed: ${res.statusCode} ${JSON.stringify(json)}`);
            into.push(json.access_token);
          }
        }),
      );
    };
    const portTokens = [];
    await portTokensFor(portTokenCount, REUSED_SCOPE, portTokens);
    const freshTokens = [];
    let freshExchangeMs = 0;
    const ensureFresh = async (n) => {
      if (freshTokens.length >= n) return;
      const t0 = performance.now();
      await portTokensFor(n - freshTokens.length, FRESH_SCOPE, freshTokens);
      freshExchangeMs += performance.now() - t0;
    };
    const claims = jobClaims(decodeJwt(portTokens[0]));

    // 4. Operations the load generator runs.
    let errors = {};
    let firstError;
    const countError = (key, detail) => {
      errors[key] = (errors[key] ?? 0) + 1;
      firstError ??= detail;
    };
    const post = async (path, headers, body) => {
      try {
        const res = await pool.request({ path, method: 'POST', headers, ...(body !== undefined ? { body } : {}) });
        const text = await res.body.text();
        if (res.statusCode === 200) return true;
        countError(res.statusCode, `${res.statusCode} ${text.slice(0, 300)}`);
      } catch (err) {
        countError(err.code ?? 'network', String(err?.message ?? err));
      }
      return 'error';
    };
    let nextToken = 0;
    const reusedOp = (name) => () => post(`/v1/credentials/${name}`, { authorization: `Bearer ${portTokens[nextToken++ % portTokens.length]}` });
    /** Each request with a job's Port token no request of this target used before; false when they run out. */
    const freshOp = (name) => {
      const cursor = { next: 0 };
      const op = async () => {
        if (cursor.next >= freshTokens.length) return false;
        return post(`/v1/credentials/${name}`, { authorization: `Bearer ${freshTokens[cursor.next++]}` });
      };
      return { op, cursor };
    };
    // Buildkite tokens are single-use: exchange bodies are minted before the timed rows.
    const bodies = [];
    let nextBody = 0;
    let mintedBodies = 0;
    let mintMs = 0;
    const job = sim.createJob({ pipelineSlug: 'deploy', branch: 'main' });
    const mint = async (n) => {
      let left = n;
      await Promise.all(
        Array.from({ length: 16 }, async () => {
          while (left-- > 0) bodies.push(exchangeBody(await sim.mintToken(job, { audience: PUBLIC_URL, lifetime: 3600 }), 'svc-token'));
        }),
      );
    };
    const exchangeOp = async () => {
      if (nextBody >= bodies.length) return false;
      return post('/oauth/token', { 'content-type': 'application/x-www-form-urlencoded' }, bodies[nextBody++]);
    };

    // One request of each credential first, its body checked: a broken setup fails loudly.
    const sanity = [];
    await portTokensFor(1, FRESH_SCOPE, sanity);
    for (const t of targets.filter((t) => t.cred)) {
      const bearer = t.fresh ? sanity[0] : portTokens[0];
      if (t.uncached) sts.setOriginOverride(PUBLIC_URL, url);
      const res = await pool.request({ path: `/v1/credentials/${t.cred}`, method: 'POST', headers: { authorization: `Bearer ${bearer}` } });
      if (t.uncached) useMirror();
      const body = await res.body.json();
      const ok =
        res.statusCode === 200 &&
        (t.cred.startsWith('secret-') ? body.value === secretValue : t.cred === 'svc-token' ? decodeJwt(body.access_token).aud === 'https://svc.acme.test' : /^ASIA/.test(body.AccessKeyId ?? ''));
      if (!ok) throw new Error(`first ${t.cred} request failed: ${res.statusCode} ${JSON.stringify(body).slice(0, 300)}`);
    }

    const usage = async () => {
      server.send({ type: 'usage' });
      return server.next('usage');
    };
    const results = [];
    let profile;

    /**
     * Warm-up at the highest level, then one timed row per level. `prepare(ms, rate)` runs
     * untimed before each (rate: the warm-up's, per second; undefined before it).
     */
    const measureTarget = async (t, op, prepare = async () => undefined) => {
      errors = {};
      firstError = undefined;
      await prepare(warmupMs, undefined);
      const warm = await closedLoop({ concurrency: maxLevel, durationMs: warmupMs, op });
      const warmRate = (warm.latencies.length / warm.elapsedMs) * 1000;
      if (Object.keys(errors).length) throw new Error(`${t.key}: errors during warm-up: ${JSON.stringify(errors)}; first: ${firstError}`);
      for (const level of levels) {
        await prepare(durationMs, warmRate);
        errors = {};
        firstError = undefined;
        const profiling = opts.profile === t.key && level === maxLevel;
        if (profiling) {
          server.send({ type: 'profile-start' });
          await server.next('profile-started');
        }
        const stsCalls0 = sts.calls.length;
        const mirrorHits0 = mirror.hits;
        const u0 = await usage();
        const d0 = cpuMs();
        const s0 = cpuTimes(serverCpu);
        const run = await closedLoop({ concurrency: level, durationMs, op });
        const s1 = cpuTimes(serverCpu);
        const d1 = cpuMs();
        const u1 = await usage();
        if (profiling) {
          const file = join(mkdtempSync(join(os.tmpdir(), 'port-bench-profile-')), `port-${t.key}.cpuprofile`);
          server.send({ type: 'profile-stop', file });
          profile = { file: (await server.next('profile-stopped')).file, target: t.key, level };
          notes.push(`Profiled row (--profile ${t.key}, ${level} in flight): the V8 sampling profiler was on in Port, so that row is a little slow.`);
        }
        const r = summarize(run.latencies, run.elapsedMs, {
          cpuMs: u1.cpuMs - u0.cpuMs,
          childrenMs: u1.childrenMs - u0.childrenMs,
          driverMs: d1 - d0,
          errors: Object.values(errors).reduce((a, b) => a + b, 0),
          errorDetail: errors,
          firstError,
          exhausted: run.exhausted,
          halves: run.halves,
          stsCalls: sts.calls.length - stsCalls0,
          mirrorHits: mirror.hits - mirrorHits0,
          rss: u1.rss,
          serverCpuBusyMs: s0 && s1 ? s1.busy - s0.busy : NaN,
        });
        results.push({ kind: 'port', key: t.key, label: t.label, level, r });
        if (profile && profile.target === t.key && profile.level === level) profile.r = r;
        log(`${t.key} @${level}: ${fmt.int(r.perSecond)}/s p50 ${fmt.ms(r.p50)} p99 ${fmt.ms(r.p99)} CPU/req ${fmt.us((r.cpuMs / r.ops) * 1000)}; STS calls ${r.stsCalls}, JWKS-cache hits ${r.mirrorHits}; RSS ${mib(r.rss)}${r.errors ? ` errors ${JSON.stringify(errors)}` : ''}`);
      }
    };

    // 5. Port rows.
    for (const t of targets) {
      if (t.key === 'exchange') {
        // Single-use Buildkite tokens for the next phase at twice the fastest rate seen so far, minted untimed.
        let fastest = 0;
        const prepare = async (ms, warmRate) => {
          const last = results.at(-1);
          if (last?.key === t.key) fastest = Math.max(fastest, last.r.perSecond);
          fastest = Math.max(fastest, warmRate ?? 0);
          bodies.splice(0, nextBody);
          nextBody = 0;
          const m0 = performance.now();
          const before = bodies.length;
          await mint(Math.max(0, Math.ceil(((fastest || 1500) * ms * 2) / 1000) + maxLevel - bodies.length));
          mintedBodies += bodies.length - before;
          mintMs += performance.now() - m0;
        };
        await measureTarget(t, exchangeOp, prepare);
        log(`minted ${fmt.int(mintedBodies)} single-use Buildkite tokens in ${(mintMs / 1000).toFixed(1)} s (untimed)`);
        continue;
      }
      if (t.fresh) {
        const { op, cursor } = freshOp(t.cred);
        // Enough new jobs for the next phase at twice the fastest rate seen so far (warm-up runs
        // slower than steady state: JIT), 1,000/s before any is known.
        let fastest = 0;
        const prepare = (ms, warmRate) => {
          const last = results.at(-1);
          if (last?.key === t.key) fastest = Math.max(fastest, last.r.perSecond);
          fastest = Math.max(fastest, warmRate ?? 0);
          return ensureFresh(cursor.next + Math.ceil(((fastest || 1000) * ms * 2) / 1000) + maxLevel);
        };
        if (t.uncached) sts.setOriginOverride(PUBLIC_URL, url);
        try {
          await measureTarget(t, op, prepare);
        } finally {
          if (t.uncached) useMirror();
        }
        continue;
      }
      await measureTarget(t, reusedOp(t.cred));
    }
    await pool.close();
    await server.stop();

    // 6. Baselines, pinned where Port was.
    const wanted = [...new Set(targets.map((t) => t.baseline).filter(Boolean))];
    if (wanted.length > 0) {
      const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
      const kid = 'baseline-es256';
      mirror.set('/baseline/.well-known/openid-configuration', { issuer: BASELINE_ISSUER, jwks_uri: `${BASELINE_ISSUER}/.well-known/jwks.json` });
      mirror.set('/baseline/.well-known/jwks.json', { keys: [{ ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' }] });
      sts.setOriginOverride(BASELINE_ISSUER, `${mirror.url}/baseline`);
      const baseline = startChild(here('./credentials-baseline.mjs'), { cpu, env: QUIET_SDK });
      cleanups.push(() => baseline.stop());
      await baseline.next('hello');
      const tags = Object.entries(SESSION_TAGS).map(([Key, claim]) => ({ Key, Value: String(claims[claim]) }));
      baseline.send({
        type: 'start',
        secretFile,
        command: secretCommand(secretFile),
        claims,
        stsUrl: sts.url,
        roles: { web: sts.roleArn('baseline-web'), keys: sts.roleArn('deploy-keys') },
        user: PORT_AWS_USER,
        policy: renderSessionPolicy(policyFile, claims, 'baseline'),
        privateJwk: await exportJWK(privateKey),
        kid,
        tags,
        transitiveTagKeys: ['pipeline'],
      });
      await baseline.next('ready');
      const runBaseline = async (target, level, ms) => {
        baseline.send({ type: 'run', target, concurrency: level, durationMs: ms });
        return baseline.next('result', ms + 60_000);
      };
      for (const b of wanted) {
        const warm = await runBaseline(b, maxLevel, warmupMs);
        if (warm.errors) throw new Error(`baseline ${b}: errors during warm-up; first: ${warm.firstError}`);
        for (const level of levels) {
          const d0 = cpuMs();
          const s0 = cpuTimes(serverCpu);
          const stsCalls0 = sts.calls.length;
          const r = await runBaseline(b, level, durationMs);
          const s1 = cpuTimes(serverCpu);
          r.driverMs = cpuMs() - d0;
          r.serverCpuBusyMs = s0 && s1 ? s1.busy - s0.busy : NaN;
          r.stsCalls = sts.calls.length - stsCalls0;
          results.push({ kind: 'baseline', key: b, label: BASELINES[b], level, r });
          log(`baseline ${b} @${level}: ${fmt.int(r.perSecond)}/s p50 ${fmt.ms(r.p50)} p99 ${fmt.ms(r.p99)} CPU/op ${fmt.us((r.cpuMs / r.ops) * 1000)}`);
        }
      }
      await baseline.stop();
    }
    const stsFailed = sts.calls.filter((c) => c.outcome !== 'ok').length;

    // 7. Tables.
    const perReq = (ms, r) => fmt.us((ms / r.ops) * 1000);
    const busy = (ms, r) => `${Math.round((ms / r.elapsedMs) * 100)}%`;
    // Whatever else ran on the server CPU meanwhile (other processes on a shared machine), as a share of the row's wall time.
    const others = (r) => (pinned && Number.isFinite(r.serverCpuBusyMs) ? busy(Math.max(0, r.serverCpuBusyMs - r.cpuMs - (r.childrenMs || 0)), r) : 'n/a');
    const row = (name, level, r) =>
      `| ${name} | ${level} | ${fmt.int(r.ops)} | ${fmt.int(r.perSecond)}/s | ${fmt.ms(r.p50)} | ${fmt.ms(r.p99)} | ${perReq(r.cpuMs, r)} | ${r.childrenMs > 0 ? perReq(r.childrenMs, r) : '–'} | ${busy(r.cpuMs + (r.childrenMs || 0), r)} | ${others(r)} | ${busy(r.driverMs, r)} | ${r.errors ? `${r.errors} ${JSON.stringify(r.errorDetail ?? {})}` : '0'}${r.exhausted ? ' (ran out of tokens)' : ''} |`;
    const find = (kind, key, level) => results.find((x) => x.kind === kind && x.key === key && x.level === level)?.r;
    const lines = [
      `| ${pinned ? `Port on CPU ${serverCpu}` : 'Port (unpinned)'} — \`POST /v1/credentials/{name}\` | In flight | Requests | Rate | p50 | p99 | CPU/req (process) | CPU/req (spawned) | CPU ${serverCpu}: this | CPU ${serverCpu}: others | CPU ${clientCpu}: driver | Errors |`,
      '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
      ...results.filter((x) => x.kind === 'port').map((x) => row(x.label, x.level, x.r)),
      ...results.filter((x) => x.kind === 'baseline').map((x) => row(`Baseline: ${x.label}`, x.level, x.r)),
    ];
    const adds = [];
    const ex = (level) => find('port', 'exchange', level);
    for (const t of targets.filter((t) => t.key !== 'exchange')) {
      const parts = levels.map((level) => {
        const p = find('port', t.key, level);
        if (!p) return undefined;
        const b = t.baseline ? find('baseline', t.baseline, level) : undefined;
        const e = ex(level);
        const pCpu = (p.cpuMs + p.childrenMs) / p.ops;
        const vsBare = b ? `p50 ${signed(fmt.ms, p.p50 - b.p50)}, CPU/req ${signed(fmt.us, (pCpu - (b.cpuMs + (b.childrenMs || 0)) / b.ops) * 1000)} over the bare operation` : undefined;
        const vsExchange = e ? `${(p.perSecond / e.perSecond).toFixed(2)}× the exchange's rate, ${(pCpu / (e.cpuMs / e.ops)).toFixed(2)}× its CPU/req` : undefined;
        const text = [vsBare, vsExchange].filter(Boolean).join('; ');
        return text ? `${level} in flight: ${text}` : undefined;
      });
      if (parts.some(Boolean)) adds.push(`- ${t.label}: ${parts.filter(Boolean).join('; ')}.`);
    }
    const uncached = find('port', 'aws-web-uncached', maxLevel);
    const cached = find('port', 'aws-web', maxLevel);
    const portCmd = find('port', 'secret-command', maxLevel);
    const baseCmd = find('baseline', 'command', maxLevel);
    if (portCmd && baseCmd) {
      adds.push(
        `- Resident memory of the spawning process at the end of the \`command:\` rows: Port ${mib(portCmd.rss)}, baseline ${mib(baseCmd.rss)}. Node's spawn is fork + exec (libuv ${process.versions.uv}); fork copies the parent's page tables, so each spawn costs more the larger the parent.`,
      );
    }
    const cpuModel = (/^model name\s*:\s*(.*)$/m.exec(safeRead('/proc/cpuinfo')) ?? [])[1] ?? os.cpus()[0]?.model ?? 'unknown';
    const out = [
      '',
      ...lines,
      '',
      'What Port adds (Port row − baseline row at the same level; CPU includes spawned processes):',
      ...adds,
      ...(uncached && cached
        ? [
            `- Web identity with the simulator fetching Port's discovery document and JWKS on every call (2 more GETs at Port per request): Port CPU/req ${signed(fmt.us, (uncached.cpuMs / uncached.ops - cached.cpuMs / cached.ops) * 1000)} at ${maxLevel} in flight (${fmt.int(uncached.perSecond)}/s vs ${fmt.int(cached.perSecond)}/s with the cache).`,
          ]
        : []),
      '',
      `- CPU/req (process): the pinned process's user+system time, all threads, over the row ÷ requests. CPU/req (spawned): child processes, reaped (cutime+cstime) and running (utime+stime+cutime+cstime: Port's command runner and the commands it reaped), 10 ms ticks. CPU ${serverCpu}: this — both together ÷ wall time; CPU ${serverCpu}: others — the rest of that CPU's busy time in /proc/stat (other processes on the machine) ÷ wall time; CPU ${clientCpu}: driver — this process (load generator, Buildkite and STS simulators, JWKS cache) ÷ wall time.`,
      `- Requests of the non-AWS rows and of the held-session row rotate through ${portTokenCount} Port tokens (one job each); the other AWS rows use a new job's Port token per request (${fmt.int(freshTokens.length)} exchanged between rows in ${(freshExchangeMs / 1000).toFixed(1)} s, untimed). Each request is a full release: bearer check, revocation check, \`assume\` decision, provider, durable decision record and issued-credential row. Exchange rows use single-use RS256 Buildkite tokens minted before the row. \`sts_concurrency\` is ${Math.min(256, Math.max(8, maxLevel))}.`,
      `- Warm-up: ${warmupMs / 1000} s per target at ${maxLevel} in flight; each row measured ${durationMs / 1000} s. STS simulator: ${fmt.int(sts.calls.length)} calls, ${stsFailed} refused.`,
      ...notes.map((n) => `- ${n}`),
      `- 1-min load average before the run: ${loadBefore.toFixed(2)}; the run took ${Math.round((performance.now() - started) / 1000)} s.`,
      '',
      `Machine: ${os.cpus().length} CPUs (nproc), ${cpuModel}, ${Math.round(os.totalmem() / 2 ** 30)} GiB RAM, Linux ${os.release()}, Node ${process.version}; Port's SQLite store in ${storeDir} on ${fsType(storeDir)} (WAL, its log synced before a write is acknowledged).`,
      `Command: \`npm run bench:credentials${argsText ? ` -- ${argsText}` : ''}\``,
    ];
    console.log(out.join('\n'));
    for (const x of results) if (x.r.firstError) console.log(`First error, ${x.kind} ${x.key} @${x.level}: ${x.r.firstError}`);
    if (profile) {
      console.log(`\nCPU profile of Port during ${profile.target} at ${profile.level} in flight: ${profile.file}\n`);
      console.log(summarizeProfile(profile.file, { top: 20, ops: profile.r?.ops, processCpuMs: profile.r?.cpuMs }).text);
    }
  } catch (err) {
    if (!aborted()) console.error(`bench/credentials failed: ${err?.stack ?? err}`);
    process.exitCode = 1;
  } finally {
    clearTimeout(deadline);
    await cleanup();
  }
}

/** Serves fixed JSON documents by path: IAM's cached copy of an OIDC provider's discovery document and JWKS. */
async function startMirror() {
  const docs = new Map();
  const state = { hits: 0 };
  const server = createServer((req, res) => {
    state.hits++;
    const body = docs.get(req.url);
    res.writeHead(body ? 200 : 404, { 'content-type': 'application/json' });
    res.end(body ?? '{}');
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    set: (path, json) => docs.set(path, JSON.stringify(json)),
    get hits() {
      return state.hits;
    },
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

function mib(bytes) {
  return Number.isFinite(bytes) ? `${Math.round(bytes / 2 ** 20)} MiB` : 'n/a';
}

function safeRead(file) {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

function fsType(dir) {
  const mounts = safeRead('/proc/mounts')
    .split('\n')
    .map((l) => l.split(' '))
    .filter((p) => p.length > 2 && dir.startsWith(p[1]))
    .sort((a, b) => b[1].length - a[1].length);
  return mounts[0] ? `${mounts[0][2]} (${mounts[0][0]})` : 'unknown fs';
}
