/**
 * Runs a plugin's hooks and a step's command the way the Buildkite agent's job runner
 * does (https://buildkite.com/docs/agent/v3/hooks#job-lifecycle-hooks): each hook is
 * *sourced* by a wrapper script in its own shell
 * (`buildkite/agent` hook/scriptwrapper.go: dump env, `. hook`, keep `$?`, dump env, exit
 * with it); the variables the hook added, changed or removed are carried into the job's
 * later phases; the plugin's option variables are set for its hooks only. A failed hook
 * before the command stops the job (the command does not run); `pre-exit` always runs.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface PhaseResult {
  phase: string;
  code: number;
  stdout: string;
  stderr: string;
}

export interface JobRun {
  environment: PhaseResult;
  /** Undefined when the environment hook failed (the command never ran). */
  command?: PhaseResult;
  preExit: PhaseResult;
  /** The job's environment as the command saw it (after the environment hook). */
  commandEnv: Record<string, string>;
  /** Every byte any phase wrote, for "nothing secret in the log" checks. */
  log: string;
}

function run(args: string[], env: Record<string, string>, cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(args[0]!, args.slice(1), { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr }));
  });
}

function parseEnvDump(path: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const entry of readFileSync(path, 'utf8').split('\0')) {
    if (entry === '') continue;
    const eq = entry.indexOf('=');
    env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return env;
}

/** Variables bash sets for itself; not part of a hook's changes. */
const SHELL_NOISE = new Set(['_', 'SHLVL', 'PWD', 'OLDPWD', 'BUILDKITE_HOOK_EXIT_STATUS', 'BUILDKITE_HOOK_WORKING_DIR']);

export class AgentJob {
  /** The job's environment, carried between phases. */
  env: Record<string, string>;
  private readonly work: string;

  constructor(
    jobEnv: Record<string, string>,
    private readonly pluginDir: string,
    private readonly pluginEnv: Record<string, string>,
    /** Options for the wrapper's shell, e.g. `['-euo', 'pipefail']` to check a hook survives strict callers. */
    private readonly shellFlags: string[] = [],
  ) {
    this.work = mkdtempSync(join(jobEnv.TMPDIR ?? tmpdir(), 'agent-job-'));
    this.env = { ...jobEnv };
  }

  /** Sources `hooks/<phase>` through the agent's wrapper and applies its env changes on success. */
  async hook(phase: string): Promise<PhaseResult> {
    const before = join(this.work, `${phase}.before`);
    const after = join(this.work, `${phase}.after`);
    const wrapper = join(this.work, `${phase}.wrapper`);
    writeFileSync(
      wrapper,
      [
        `env -0 > ${JSON.stringify(before)}`,
        `. ${JSON.stringify(join(this.pluginDir, 'hooks', phase))}`,
        'export BUILDKITE_HOOK_EXIT_STATUS=$?',
        'export BUILDKITE_HOOK_WORKING_DIR="${PWD}"',
        `env -0 > ${JSON.stringify(after)}`,
        'exit $BUILDKITE_HOOK_EXIT_STATUS',
        '',
      ].join('\n'),
    );
    rmSync(after, { force: true });
    const r = await run(['bash', ...this.shellFlags, wrapper], { ...this.env, ...this.pluginEnv }, this.work);
    if (r.code === 0) {
      const b = parseEnvDump(before);
      const a = parseEnvDump(after);
      for (const [k, v] of Object.entries(a)) if (!SHELL_NOISE.has(k) && b[k] !== v) this.env[k] = v;
      for (const k of Object.keys(b)) if (!SHELL_NOISE.has(k) && !(k in a)) delete this.env[k];
    }
    return { phase, ...r };
  }

  /** Runs the step's command with the job's environment (no plugin option variables). */
  async command(script: string): Promise<PhaseResult> {
    const r = await run(['bash', '-e', '-c', script], this.env, this.work);
    return { phase: 'command', ...r };
  }

  /** environment → command (if the hook passed) → pre-exit, as the agent runs a job. */
  async runJob(script: string): Promise<JobRun> {
    const environment = await this.hook('environment');
    const commandEnv = { ...this.env };
    const command = environment.code === 0 ? await this.command(script) : undefined;
    const preExit = await this.hook('pre-exit');
    const log = [environment, command, preExit].map((p) => (p ? p.stdout + p.stderr : '')).join('');
    return { environment, ...(command ? { command } : {}), preExit, commandEnv, log };
  }

  close(): void {
    rmSync(this.work, { recursive: true, force: true });
  }
}
