/**
 * Child of bench/relay.mjs: runs Port (compiled, from ../dist) on 127.0.0.1:0 with the
 * relay configured — one upstream `bench` (the bench upstream, `max_body: 2GiB`, a bearer
 * credential injected from the environment), RELAY_POLICIES (bench/policies.mjs), the given
 * `relay.decision_cache_ttl` — trusting the Buildkite simulator the parent runs. The
 * parent pins this process to one core and watches it from outside (/proc).
 *
 * With `pools` and `attest` (the host-bound rows): Port gets those `pools:`, and each
 * `attest` record is written into its store once started — what `POST /v1/agents/attest`
 * would have recorded (that call is not what the bench measures).
 *
 * IPC: ← start {issuer, jwksUrl, audience, organization, upstreamUrl, decisionCacheTtl, pools?, attest?} → ready {url}
 *      ← profile-start / profile-stop {file}  (V8 sampling profiler, see lib.mjs)
 *      ← replay-bench {concurrency, durationMs} → replay-bench {ops, elapsedMs, p50, p99, cpuMs, writeBytes}
 *           (`store.replay.consume` alone, fresh keys, as a DPoP proof's jti is consumed)
 *      ← replay-rows → replay-rows {rows, dbBytes, walBytes}  (replay_cache rows now; the SQLite files' sizes)
 *      ← dpop-bench {concurrency, count, url} → dpop-bench {ops, elapsedMs, cpuMs, threads, p50, p99}
 *           (DpopVerifier.verify alone on `count` proofs made here first, with an in-memory replay set)
 *      ← close  (closes Port, removes the temp dir, exits)
 */
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { configFromObject } from '../dist/config/config.js';
import { createProof, loadOrCreateHostKey } from '../dist/dpop/host-key.js';
import { DpopVerifier } from '../dist/dpop/proof-verifier.js';
import { startPort } from '../dist/server/port-server.js';
import Database from 'better-sqlite3';
import { childMain, closedLoop, cpuMs, procIo, profilerHandlers, summarize, threadCpuMs } from './lib.mjs';
import { RELAY_POLICIES } from './policies.mjs';

let port;
let dir;

async function close() {
  const p = port;
  port = undefined;
  try {
    await p?.close();
  } finally {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  }
}

childMain({
  async start({ issuer, jwksUrl, audience, organization, upstreamUrl, decisionCacheTtl, pools, attest = [] }) {
    dir = mkdtempSync(join(tmpdir(), 'port-bench-relay-'));
    const policiesDir = join(dir, 'policies');
    mkdirSync(policiesDir);
    for (const [name, text] of Object.entries(RELAY_POLICIES)) writeFileSync(join(policiesDir, name), text);
    process.env.PORT_BENCH_UPSTREAM_SECRET = 'bench-upstream-secret';
    const raw = {
      server: { listen: '127.0.0.1:0', public_url: audience, log_level: 'silent' },
      store: { sqlite: './port.db' },
      buildkite: { organization, issuer, jwks_url: jwksUrl, audience },
      policies: './policies',
      relay: { decision_cache_ttl: decisionCacheTtl },
      upstreams: { bench: { url: upstreamUrl, max_body: '2GiB', inject: { bearer: 'env:PORT_BENCH_UPSTREAM_SECRET' } } },
      ...(pools !== undefined ? { pools } : {}),
    };
    const file = join(dir, 'port.yaml');
    writeFileSync(file, stringify(raw));
    port = await startPort(configFromObject(raw, file), { logger: false, createStore: true });
    const now = Date.now();
    for (const record of attest) await port.store.attestations.put({ jobId: 'bench-attesting-job', attestedAt: now, expiresAt: now + 86_400_000, ...record });
    process.send({ type: 'ready', url: port.url });
  },
  ...profilerHandlers(),
  /** What one DPoP jti costs the store, measured alone: a fresh key consumed per op, `concurrency` in flight. */
  async 'replay-bench'({ concurrency, durationMs }) {
    const ttlMs = 61_000; // a proof's key is kept until iat + dpop_max_age (60 s) + 1 s
    const io0 = procIo(process.pid);
    const c0 = cpuMs();
    const run = await closedLoop({ concurrency, durationMs, op: async () => port.store.replay.consume(`dpop:bench:${randomUUID()}`, Date.now() + ttlMs) });
    const cpu = cpuMs() - c0;
    const io1 = procIo(process.pid);
    const r = summarize(run.latencies, run.elapsedMs);
    process.send({ type: 'replay-bench', ops: r.ops, elapsedMs: r.elapsedMs, p50: r.p50, p99: r.p99, cpuMs: cpu, writeBytes: io0 && io1 ? io1.writeBytes - io0.writeBytes : undefined });
  },
  /**
   * What checking a proof costs without the store: Port's DpopVerifier (as the relay builds
   * it, `dpop_max_age` 60 s) over `count` proofs for GET `url` with an access token's ath,
   * its replay set a Map — so the CPU here is parsing, the JWK import, the ES256
   * signature check, the claims and the thumbprint, and nothing of SQLite.
   */
  async 'dpop-bench'({ concurrency, count, url }) {
    const key = await loadOrCreateHostKey(join(dir, 'dpop-bench', 'host-key.json'));
    const token = 'x'.repeat(1300);
    const proofs = [];
    for (let i = 0; i < count; i++) proofs.push(await createProof(key, { method: 'GET', url, accessToken: token }));
    const seen = new Map();
    const verifier = new DpopVerifier({
      maxAge: 60,
      replay: {
        consume: async (k, expiresAt) => (seen.has(k) ? false : (seen.set(k, expiresAt), true)),
        consumeAndLog: async () => {
          throw new Error('not used');
        },
      },
    });
    let next = 0;
    const op = async () => {
      if (next >= proofs.length) return false;
      await verifier.verify(proofs[next++], { method: 'GET', url, accessToken: token, jkt: key.jkt });
      return true;
    };
    // A warm-up on the first tenth (JIT), then the rest timed.
    const warm = Math.floor(count / 10);
    await closedLoop({ concurrency, durationMs: 60_000, op: async () => (next < warm ? op() : false) });
    const t0 = threadCpuMs();
    const c0 = cpuMs();
    const run = await closedLoop({ concurrency, durationMs: 60_000, op });
    const cpu = cpuMs() - c0;
    const t1 = threadCpuMs();
    const r = summarize(run.latencies, run.elapsedMs);
    process.send({ type: 'dpop-bench', ops: r.ops, elapsedMs: r.elapsedMs, p50: r.p50, p99: r.p99, cpuMs: cpu, threads: t0 && t1 ? { main: t1.main - t0.main, other: t1.other - t0.other } : undefined });
  },
  'replay-rows'() {
    const db = new Database(join(dir, 'port.db'), { readonly: true, fileMustExist: true });
    try {
      const rows = db.prepare('SELECT count(*) AS n FROM replay_cache').get().n;
      const size = (f) => (existsSync(f) ? statSync(f).size : 0);
      process.send({ type: 'replay-rows', rows, dbBytes: size(join(dir, 'port.db')), walBytes: size(join(dir, 'port.db-wal')) });
    } finally {
      db.close();
    }
  },
  async close() {
    await close();
    if (process.connected) process.disconnect();
    process.exitCode ??= 0;
    setTimeout(() => process.exit(), 50).unref();
  },
});
