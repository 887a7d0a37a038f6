/**
 * Small shared pieces for the relay test helpers: free ports, temp dirs, child processes
 * with timeouts, and a deterministic byte pattern that can be streamed without being held
 * in memory (used by the recording upstream's download route and by upload tests).
 */
import { spawn, type SpawnOptions } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';

/** Asks the kernel for a free TCP port on 127.0.0.1 (for servers that cannot listen on 0). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => (port ? resolve(port) : reject(new Error('no port'))));
    });
  });
}

export async function makeTempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `port-relay-${prefix}-`));
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true, maxRetries: 3, retryDelay: 50 });
}

/** Keeps track of a server's sockets so close() can end them all, upgraded ones included. */
export function trackSockets(server: Server | import('node:http').Server): Set<Socket> {
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  return sockets;
}

export function closeServer(server: Server | import('node:http').Server, sockets: Set<Socket>): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    server.close(() => resolve());
    for (const s of sockets) s.destroy();
    if ('closeAllConnections' in server) server.closeAllConnections();
  });
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  durationMs: number;
}

/** Runs a command to completion with a hard timeout (SIGKILL of the child when it passes). */
export function run(
  cmd: string,
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; input?: string | Buffer } = {},
): Promise<RunResult> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const spawnOpts: SpawnOptions = { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] };
    const child = spawn(cmd, args, spawnOpts);
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.stdin!.on('error', () => {});
    child.stdin!.end(opts.input ?? '');
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs ?? 60_000);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`could not run ${cmd}: ${err.message}`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut, durationMs: Date.now() - started });
    });
  });
}

/** Formats a RunResult for an assertion message. */
export function describeRun(what: string, r: RunResult): string {
  return `${what} exited ${r.code ?? r.signal}${r.timedOut ? ' (timed out)' : ''}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
}

// ---------------------------------------------------------------------------------------
// Deterministic pattern: byte at offset i is (i % 65536) % 251. Generated block by block.

const BLOCK = (() => {
  const b = Buffer.allocUnsafe(65536);
  for (let i = 0; i < b.length; i++) b[i] = (i % 65536) % 251;
  return b;
})();

/** A Readable of exactly `bytes` pattern bytes, produced on demand (honours back-pressure). */
export function patternStream(bytes: number, chunkSize = 65536): Readable {
  let sent = 0;
  const size = Math.min(chunkSize, BLOCK.length);
  return new Readable({
    read() {
      if (sent >= bytes) return void this.push(null);
      const off = sent % BLOCK.length;
      const n = Math.min(size, BLOCK.length - off, bytes - sent);
      sent += n;
      // subarray of a shared block: no copy, no allocation per chunk.
      this.push(BLOCK.subarray(off, off + n));
    },
  });
}

/** sha256 (hex) of the first `bytes` pattern bytes, computed without holding them. */
export function patternSha256(bytes: number): string {
  const h = createHash('sha256');
  let left = bytes;
  while (left > 0) {
    const n = Math.min(BLOCK.length, left);
    h.update(BLOCK.subarray(0, n));
    left -= n;
  }
  return h.digest('hex');
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `check` until it returns a truthy value or the timeout passes. */
export async function waitUntil<T>(check: () => T | undefined | false, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}
