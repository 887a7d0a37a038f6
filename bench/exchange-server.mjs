/**
 * Child of bench/exchange.mjs: runs Port (compiled, from ../dist) on 127.0.0.1:0 with a
 * temp config — SQLite file in a temp dir, EXCHANGE_POLICIES (bench/policies.mjs) — trusting the
 * Buildkite simulator the parent runs. The parent pins this process to one core.
 *
 * With `pools` (and optionally `attestation`, `apiUrl` + `apiToken`, `attest`), the agent
 * rows: Port gets those `pools:` / `attestation:` settings, a `buildkite.api_token` the
 * simulator accepts, and each `attest` record written into its store once started — what
 * `POST /v1/agents/attest` would have recorded (that call is not what the bench measures).
 *
 * IPC: ← start {issuer, jwksUrl, audience, organization, storeDir?,
 *               pools?, attestation?, apiUrl?, apiToken?, attest?: [{agentId, pool, methods, jkt?, …}]}
 *                                                          → ready {url, policies}
 *      ← usage                                             → usage {cpuMs, threads, rusage, io, eventLoop, gc}
 *      ← profile-start                                     → profile-started   (V8 sampling profiler on)
 *      ← profile-stop {file}                               → profile-stopped {file}  (.cpuprofile written)
 *      ← close  (closes Port, removes the temp dir, exits)
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { stringify } from 'yaml';
import { configFromObject } from '../dist/config/config.js';
import { startPort } from '../dist/server/port-server.js';
import { childMain, cpuMs, gcPauses, procIo, threadCpuMs } from './lib.mjs';
import { EXCHANGE_CREDENTIALS, EXCHANGE_POLICIES } from './policies.mjs';

let port;
let dir;
let session;
/** Port's garbage-collection pauses (main thread), read with each `usage`. */
const gc = gcPauses();

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
  async start({ issuer, jwksUrl, audience, organization, storeDir, pools, attestation, apiUrl, apiToken, attest = [] }) {
    dir = mkdtempSync(join(storeDir ?? tmpdir(), 'port-bench-'));
    const policiesDir = join(dir, 'policies');
    mkdirSync(policiesDir);
    for (const [name, text] of Object.entries(EXCHANGE_POLICIES)) writeFileSync(join(policiesDir, name), text);
    const buildkite = { organization, issuer, jwks_url: jwksUrl, audience };
    if (apiToken !== undefined) {
      // A secret reference, as in production; the simulator's token is the one it accepts.
      process.env.PORT_BENCH_BUILDKITE_API_TOKEN = apiToken;
      Object.assign(buildkite, { api_url: apiUrl, api_token: 'env:PORT_BENCH_BUILDKITE_API_TOKEN' });
    }
    const raw = {
      server: { listen: '127.0.0.1:0', public_url: audience, log_level: 'silent' },
      store: { sqlite: './port.db' },
      buildkite,
      policies: './policies',
      credentials: EXCHANGE_CREDENTIALS,
      ...(pools !== undefined ? { pools } : {}),
      ...(attestation !== undefined ? { attestation } : {}),
    };
    const file = join(dir, 'port.yaml');
    writeFileSync(file, stringify(raw));
    port = await startPort(configFromObject(raw, file), { logger: false, createStore: true });
    const now = Date.now();
    for (const record of attest) await port.store.attestations.put({ jobId: 'bench-attesting-job', attestedAt: now, expiresAt: now + 86_400_000, ...record });
    process.send({ type: 'ready', url: port.url, policies: port.policy.policies.length });
  },
  async 'profile-start'() {
    session = new Session();
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: 500 });
    await session.post('Profiler.start');
    process.send({ type: 'profile-started' });
  },
  async 'profile-stop'({ file }) {
    const { profile } = await session.post('Profiler.stop');
    session.disconnect();
    session = undefined;
    writeFileSync(file, JSON.stringify(profile));
    process.send({ type: 'profile-stopped', file });
  },
  async usage() {
    const pauses = await gc.reading();
    // `eventLoop`: the loop's busy and idle time since start (a sync fsync counts as busy).
    const { active, idle } = performance.eventLoopUtilization();
    process.send({ type: 'usage', cpuMs: cpuMs(), threads: threadCpuMs(), rusage: process.resourceUsage(), io: procIo(process.pid), eventLoop: { active, idle }, gc: pauses });
  },
  async close() {
    await close();
    // Let --cpu-prof write its profile on a normal exit.
    if (process.connected) process.disconnect();
    process.exitCode ??= 0;
    setTimeout(() => process.exit(), 50).unref();
  },
});
