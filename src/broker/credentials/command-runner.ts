import { spawn, type ChildProcess } from 'node:child_process';
import { commandRunnerMain, type RunAnswer, type RunRequest, type RunStarted } from './command-runner-process.js';

/** What became of one request to the runner; `runner_stopped` when it died or was stopped first. */
export type RunOutcome = { kind: 'answered'; answer: RunAnswer } | { kind: 'runner_stopped' };

/** How long past a command's own timeout Port waits for the runner's answer before it gives the runner up. */
const ANSWER_GRACE_MS = 5_000;
/** How long stop() waits for the runner to kill its commands and exit before SIGKILL. */
const STOP_WAIT_MS = 2_000;

interface Pending {
  resolve: (outcome: RunOutcome) => void;
  deadline: NodeJS.Timeout;
  /** The command's process group, once the runner said it started. */
  group?: number;
}

/**
 * Port's side of the command runner (command-runner-process.ts): started on the first
 * command, requests multiplexed by id. If the runner dies, Port kills its running
 * commands' process groups, their requests end `runner_stopped`, and the next request
 * starts a new runner. While nothing is in flight the runner doesn't keep Port's process
 * alive; when Port's process ends, the runner sees its channel close and kills its commands.
 */
export class CommandRunner {
  private child: ChildProcess | undefined;
  private readonly exits = new WeakMap<ChildProcess, Promise<void>>();
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;

  /** Runs one command; never rejects. */
  run(request: Omit<RunRequest, 'id'>): Promise<RunOutcome> {
    const child = this.child ?? this.start();
    const id = this.nextId++;
    return new Promise((resolve) => {
      const deadline = setTimeout(() => {
        // The runner enforces the timeout itself; not answering by now means it is stuck.
        this.forget(child, true);
        void this.retire(child);
      }, request.timeoutMs + ANSWER_GRACE_MS);
      this.pending.set(id, { resolve, deadline });
      if (this.pending.size === 1) this.keepAlive(child, true);
      child.send({ id, ...request } satisfies RunRequest, (err) => {
        if (err) this.settle(id, { kind: 'runner_stopped' });
      });
    });
  }

  /** Stops the runner: it kills its running commands' process groups and exits; their requests end `runner_stopped`. */
  async stop(): Promise<void> {
    if (this.child !== undefined) await this.retire(this.child);
  }

  private start(): ChildProcess {
    // An empty environment: the runner holds none of Port's secrets (tokens, keys), and each
    // command gets exactly the environment its request names (run-command.ts). None of
    // Port's Node flags either (heap flags were tried: ~42–55 MiB resident either way).
    // detached: a session of its own. In Port's session, with the scheduler's autogroups
    // (Linux's default), up to ~1 % of bench/credentials' commands took 0.3–3 s to finish at
    // 16 in flight; in its own, p99 stayed under 80 ms (BENCHMARKS.md). A terminal's Ctrl-C
    // doesn't reach it either: Port decides when it stops (close(), or its exit closing the channel).
    const child = spawn(process.execPath, ['-e', `(${commandRunnerMain.toString()})()`], {
      stdio: ['ignore', 'ignore', 'ignore', 'ipc'],
      env: {},
      serialization: 'json',
      detached: true,
    });
    this.child = child;
    this.exits.set(
      child,
      new Promise((resolve) => {
        child.once('exit', () => resolve());
        // 'error' without 'exit': it never started.
        child.on('error', () => child.pid === undefined && resolve());
      }),
    );
    child.on('message', (message: unknown) => {
      if (isRunAnswer(message)) this.settle(message.id, { kind: 'answered', answer: message });
      else if (isRunStarted(message)) {
        const p = this.pending.get(message.id);
        if (p !== undefined) p.group = message.group;
      }
    });
    // Died without being asked: it can't have killed its commands (its stop() path does).
    child.once('exit', () => this.forget(child, true));
    child.on('error', () => void this.retire(child));
    this.keepAlive(child, false);
    return child;
  }

  /**
   * Ends every request of `child` as `runner_stopped` (first killing their commands' process
   * groups when `killCommands`); the next request starts a new runner.
   */
  private forget(child: ChildProcess, killCommands = false): void {
    if (this.child !== child) return;
    this.child = undefined;
    for (const [id, p] of [...this.pending]) {
      if (killCommands && p.group !== undefined) killGroup(p.group);
      this.settle(id, { kind: 'runner_stopped' });
    }
  }

  private exitOf(child: ChildProcess): Promise<void> {
    return this.exits.get(child) ?? Promise.resolve();
  }

  private settle(id: number, outcome: RunOutcome): void {
    const p = this.pending.get(id);
    if (p === undefined) return;
    this.pending.delete(id);
    clearTimeout(p.deadline);
    if (this.pending.size === 0 && this.child !== undefined) this.keepAlive(this.child, false);
    p.resolve(outcome);
  }

  /**
   * Closing the channel makes the runner kill its commands' process groups and exit. A
   * runner that doesn't within STOP_WAIT_MS is stuck and gets SIGKILL; its commands, in
   * their own groups, are then left to end on their own (a SIGPIPE at their next write).
   */
  private retire(child: ChildProcess): Promise<void> {
    this.forget(child);
    if (child.connected) child.disconnect();
    const force = setTimeout(() => child.kill('SIGKILL'), STOP_WAIT_MS);
    return this.exitOf(child).finally(() => clearTimeout(force));
  }

  /** An idle runner must not keep Port's process from exiting. */
  private keepAlive(child: ChildProcess, on: boolean): void {
    if (on) {
      child.ref();
      child.channel?.ref();
    } else {
      child.unref();
      child.channel?.unref();
    }
  }
}

function killGroup(group: number): void {
  try {
    process.kill(-group, 'SIGKILL');
  } catch {
    // Already gone.
  }
}

function isRunStarted(m: unknown): m is RunStarted {
  if (typeof m !== 'object' || m === null) return false;
  const a = m as Record<string, unknown>;
  return typeof a.id === 'number' && Number.isInteger(a.group) && (a.group as number) > 1 && Object.keys(a).length === 2;
}

function isRunAnswer(m: unknown): m is RunAnswer {
  if (typeof m !== 'object' || m === null) return false;
  const a = m as Record<string, unknown>;
  return (
    typeof a.id === 'number' &&
    (a.exitCode === null || typeof a.exitCode === 'number') &&
    (a.signal === null || typeof a.signal === 'string') &&
    (a.stdout === undefined || typeof a.stdout === 'string') &&
    typeof a.timedOut === 'boolean' &&
    typeof a.truncated === 'boolean' &&
    typeof a.spawnFailed === 'boolean'
  );
}

/** The one runner of this process: Port's commands all go through it. */
export const commandRunner = new CommandRunner();

let users = 0;

/**
 * A running Port's hold on the process's command runner (startPort takes one, close()
 * gives it back): once no Port holds it, the runner is stopped, so a closed Port leaves
 * no process behind. Several Ports in one process (tests) share it.
 */
export function holdCommandRunner(): { release(): Promise<void> } {
  users++;
  let released = false;
  return {
    async release() {
      if (released) return;
      released = true;
      if (--users === 0) await commandRunner.stop();
    },
  };
}
