import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '..', '..');
export const PORT_BIN = resolve(ROOT, 'bin', 'port.js');

export interface Spawned {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
  /** Resolves when stdout or stderr matches. */
  waitFor(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  stop(): Promise<void>;
}

/**
 * `port serve` in tests runs one process (`--workers 1`, as before `server.workers`), unless
 * the test names its own count or asks for the config's (`workersFromConfig`): the default,
 * one per CPU, would fork every server the suite starts. test/server/workers*.test.ts drive
 * the workers.
 */
function oneWorkerUnlessNamed(args: string[]): string[] {
  if (args[0] !== 'serve' || args.some((a) => a === '--workers' || a.startsWith('--workers='))) return args;
  return ['serve', '--workers', '1', ...args.slice(1)];
}

/** Runs the real `port` bin (compiled dist/, built by `npm test`) as a user would. */
export function spawnPort(args: string[], opts: { cwd?: string; env?: Record<string, string>; input?: string; workersFromConfig?: boolean } = {}): Spawned {
  const child = spawn(process.execPath, [PORT_BIN, ...(opts.workersFromConfig ? args : oneWorkerUnlessNamed(args))], {
    cwd: opts.cwd ?? ROOT,
    env: { ...process.env, ...opts.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  child.stdin!.end(opts.input ?? '');
  const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    waitFor(re, timeoutMs = 20_000) {
      return new Promise((res, rej) => {
        const started = Date.now();
        const tick = () => {
          const m = out.match(re) ?? err.match(re);
          if (m) return res(m);
          if (child.exitCode !== null) return rej(new Error(`port exited ${child.exitCode} before ${re}: ${err || out}`));
          if (Date.now() - started > timeoutMs) return rej(new Error(`timed out waiting for ${re}: ${err || out}`));
          setTimeout(tick, 50);
        };
        tick();
      });
    },
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
    },
  };
}

/** Runs `port` to completion. */
export async function runPort(args: string[], opts: { cwd?: string; env?: Record<string, string>; input?: string; workersFromConfig?: boolean } = {}) {
  const p = spawnPort(args, opts);
  const code = await p.exited;
  return { code, stdout: p.stdout(), stderr: p.stderr() };
}
