/**
 * Child of bench/credentials.mjs: runs Port (compiled, from ../dist) on 127.0.0.1:0 with
 * the credentials and policies the parent sends — SQLite file in a temp dir, log silent
 * unless the parent passes a level —
 * trusting the Buildkite simulator the parent runs. The parent pins this process to one
 * core; the commands a `command:` secret spawns inherit that pinning.
 *
 * IPC: ← start {publicUrl, issuer, jwksUrl, audience, organization, credentials, policies, storeDir?}
 *                                                → ready {url}
 *      ← usage                                   → usage {cpuMs, childrenMs, threads, rusage, rss}
 *      ← profile-start / profile-stop {file}     (V8 sampling profiler, see lib.mjs)
 *      ← close  (closes Port, removes the temp dir, exits)
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { configFromObject } from '../dist/config/config.js';
import { startPort } from '../dist/server/port-server.js';
import { childrenCpuMs } from './credentials-setup.mjs';
import { childMain, cpuMs, profilerHandlers, threadCpuMs } from './lib.mjs';

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
  async start({ publicUrl, issuer, jwksUrl, audience, organization, credentials, policies, storeDir, logLevel }) {
    dir = mkdtempSync(join(storeDir ?? tmpdir(), 'port-bench-creds-'));
    const policiesDir = join(dir, 'policies');
    mkdirSync(policiesDir);
    for (const [name, text] of Object.entries(policies)) writeFileSync(join(policiesDir, name), text);
    const raw = {
      server: { listen: '127.0.0.1:0', public_url: publicUrl, log_level: logLevel ?? 'silent' },
      store: { sqlite: './port.db' },
      buildkite: { organization, issuer, jwks_url: jwksUrl, audience },
      policies: './policies',
      credentials,
    };
    const file = join(dir, 'port.yaml');
    writeFileSync(file, stringify(raw));
    port = await startPort(configFromObject(raw, file), { logger: logLevel !== undefined, createStore: true });
    process.send({ type: 'ready', url: port.url });
  },
  ...profilerHandlers(),
  usage() {
    process.send({ type: 'usage', cpuMs: cpuMs(), childrenMs: childrenCpuMs(), threads: threadCpuMs(), rusage: process.resourceUsage(), rss: process.memoryUsage.rss() });
  },
  async close() {
    await close();
    if (process.connected) process.disconnect();
    process.exitCode ??= 0;
    setTimeout(() => process.exit(), 50).unref();
  },
});
