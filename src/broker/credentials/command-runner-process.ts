/**
 * The command runner: a small Node process, Port's child, that spawns secret commands and
 * command rotation hooks so Port doesn't. Node's spawn blocks the spawning thread until the
 * child has exec'd, and fork's cost grows with the parent's resident memory (page tables):
 * from Port (~200 MiB) each spawn stopped every request for 2.6–6.6 ms (BENCHMARKS.md,
 * bench/credentials). The runner is ~45–55 MiB and does nothing else.
 *
 * Protocol (Node's IPC channel, JSON; nothing on argv, in files or in the runner's own
 * environment): Port sends RunRequest, the runner says RunStarted and then answers RunAnswer,
 * both with the request's id.
 */

/** Port → runner: run `command` with `/bin/sh -c`, with exactly `env`, `stdin` (or nothing) on its standard input. */
export interface RunRequest {
  id: number;
  command: string;
  env: Record<string, string>;
  stdin?: string;
  timeoutMs: number;
  /** Most bytes of stdout accepted; more kills the command (`truncated`). */
  maxOutput: number;
}

/**
 * Runner → Port, once the command's shell runs: its pid, which is also its process group's
 * id, so Port can kill the group itself if the runner dies first.
 */
export interface RunStarted {
  id: number;
  group: number;
}

/** Runner → Port. `stdout` only when the command exited 0 within its time and output limit. */
export interface RunAnswer {
  id: number;
  exitCode: number | null;
  signal: string | null;
  stdout?: string;
  timedOut: boolean;
  truncated: boolean;
  spawnFailed: boolean;
}

/** The name the runner shows in `ps`. */
export const RUNNER_TITLE = 'port-command-runner';

/**
 * The runner's whole program. Port starts it as `node -e "(<this function's source>)()"`:
 * Node 20 can't run this TypeScript file, and under vitest there is no compiled .js beside
 * it, while a function's source is plain JS in both. So it must use nothing from outside
 * its own body but Node's globals (`require`, `process`).
 */
export function commandRunnerMain(): void {
  const { spawn } = require('node:child_process') as typeof import('node:child_process');
  process.title = 'port-command-runner'; // RUNNER_TITLE, spelled out: see above

  /** Kills each running command's process group; by request id. */
  const running = new Map<number, () => void>();

  process.on('message', (req: RunRequest) => {
    let timer: NodeJS.Timeout | undefined;
    const answer = (a: Omit<RunAnswer, 'id'>) => {
      if (!running.delete(req.id)) return;
      clearTimeout(timer);
      if (process.connected) process.send!({ id: req.id, ...a });
    };
    const failed = { exitCode: null, signal: null, timedOut: false, truncated: false, spawnFailed: false };
    let child: import('node:child_process').ChildProcess;
    try {
      // detached: its own process group (setsid), so a timeout kills everything it started.
      child = spawn('/bin/sh', ['-c', req.command], { stdio: [req.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'ignore'], detached: true, env: req.env });
    } catch {
      // Thrown for arguments spawn refuses (a NUL byte in the command or env).
      running.set(req.id, () => undefined);
      return answer({ ...failed, spawnFailed: true });
    }
    const kill = () => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
      child.stdout!.destroy();
    };
    running.set(req.id, kill);
    if (child.pid !== undefined && process.connected) process.send!({ id: req.id, group: child.pid });
    // Answered at once on timeout: a process that left the group could hold the pipe open forever.
    timer = setTimeout(() => {
      kill();
      answer({ ...failed, timedOut: true });
    }, req.timeoutMs);
    const chunks: Buffer[] = [];
    let size = 0;
    child.stdout!.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > req.maxOutput) {
        kill();
        answer({ ...failed, truncated: true });
        return;
      }
      chunks.push(chunk);
    });
    if (child.stdin) {
      child.stdin.on('error', () => undefined); // the command may not read its stdin
      child.stdin.end(req.stdin);
    }
    child.on('error', () => {
      kill();
      answer({ ...failed, spawnFailed: true });
    });
    child.on('close', (code, signal) => {
      answer({ ...failed, exitCode: code, signal, ...(code === 0 ? { stdout: Buffer.concat(chunks).toString('utf8') } : {}) });
    });
  });

  // Port closed the channel (close(), or Port died): no command outlives it.
  process.on('disconnect', () => {
    for (const kill of running.values()) kill();
    process.exit(0);
  });
}
