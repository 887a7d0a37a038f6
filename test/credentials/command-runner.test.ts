import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { RUNNER_TITLE } from '../../src/broker/credentials/command-runner-process.js';
import { BuildkiteSimulator } from '../../src/sim/index.js';
import type { Harness } from '../helpers/port-harness.js';
import { spawnPort, type Spawned } from '../helpers/spawn-port.js';
import { ADMIN_TOKEN, CRED_POLICIES, deployJob, eventually, portToken, release, startCredsHarness } from './support.js';

/**
 * Port runs `command:` secrets and hook commands from one long-lived child process, the
 * command runner (`port-command-runner` in ps), so its own event loop never waits for a
 * fork. Checked from outside, through /proc, as an operator would with ps: one runner,
 * holding none of Port's secrets; a runner that dies takes its commands with it and is
 * replaced; a timeout kills the command's whole process group; and neither a closed nor a
 * killed Port leaves a process behind.
 */
let dir: string;
const SECRET = 'only-in-ports-env-3f9a71';

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'port-command-runner-'));
  process.env.PORT_TEST_RUNNER_SECRET = SECRET;
});
afterAll(() => {
  delete process.env.PORT_TEST_RUNNER_SECRET;
  rmSync(dir, { recursive: true, force: true });
});

/** A process's state letter from /proc (R, S, Z…), or undefined once it is gone. */
function procState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
  } catch {
    return undefined;
  }
}
/** Running: present and not a zombie waiting for its parent to reap it. */
const running = (pid: number) => {
  const s = procState(pid);
  return s !== undefined && s !== 'Z';
};

/** The command runners among `parent`'s children. */
function runnersOf(parent: number): number[] {
  const pids: number[] = [];
  for (const tid of readdirSync(`/proc/${parent}/task`)) {
    for (const pid of readFileSync(`/proc/${parent}/task/${tid}/children`, 'utf8').split(' ').filter(Boolean).map(Number)) {
      try {
        if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith(RUNNER_TITLE)) pids.push(pid);
      } catch {
        // Exited meanwhile.
      }
    }
  }
  return pids;
}

/** The one runner of `parent` (fails unless there is exactly one). */
function runnerOf(parent: number): number {
  const pids = runnersOf(parent);
  expect(pids).toHaveLength(1);
  return pids[0]!;
}

/** The variables a process was started with, from /proc/<pid>/environ. */
function environOf(pid: number): Map<string, string> {
  const entries = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(Boolean);
  return new Map(entries.map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
}

/** A pid a command wrote to `file` in the test's dir, once it has. */
const pidIn = (file: string) => eventually(async () => (existsSync(join(dir, file)) && readFileSync(join(dir, file), 'utf8').endsWith('\n') ? Number(readFileSync(join(dir, file), 'utf8')) : undefined));

/** A command that records its shell's pid and its background sleeper's, then waits on the sleeper. */
const holding = (name: string) => `command:echo $$ > ${dir}/${name}.pid; sleep 300 & echo $! > ${dir}/${name}-child.pid; wait`;

function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}

describe('one runner per Port process', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startCredsHarness({
      credentials: {
        quick: { type: 'secret', value: 'command:printf quick-value' },
        listed: { type: 'secret', value: 'command:printf %s "$PORT_TEST_RUNNER_SECRET"', command_env: ['PORT_TEST_RUNNER_SECRET'] },
        held: { type: 'secret', value: holding('held'), command_timeout: '1m' },
        slow: { type: 'secret', value: holding('slow'), command_timeout: '1s' },
        escaped: { type: 'secret', value: `command:setsid sleep 300 & echo $! > ${dir}/escaped-child.pid; wait`, command_timeout: '1s' },
      },
    });
  });
  afterAll(async () => {
    await h?.close();
  });

  it("runs every command from one runner whose environment holds none of Port's", async () => {
    const bearer = await portToken(h, deployJob(h), 'quick listed');
    expect((await release(h, 'quick', bearer)).body).toMatchObject({ value: 'quick-value' });
    const runner = runnerOf(process.pid);
    // The command gets the variable its credential lists, per request…
    expect((await release(h, 'listed', bearer)).body).toMatchObject({ value: SECRET });
    await Promise.all(Array.from({ length: 5 }, async () => expect((await release(h, 'quick', bearer)).status).toBe(200)));
    expect(runnersOf(process.pid)).toEqual([runner]);

    // …while the runner itself started with nothing of Port's environment but Node's IPC channel.
    const env = environOf(runner);
    expect([...env.keys()].sort()).toEqual(['NODE_CHANNEL_FD', 'NODE_CHANNEL_SERIALIZATION_MODE']);
    const raw = readFileSync(`/proc/${runner}/environ`, 'utf8') + readFileSync(`/proc/${runner}/cmdline`, 'utf8');
    expect(process.env.PORT_TEST_ADMIN_TOKEN).toBe(ADMIN_TOKEN);
    for (const secret of [SECRET, ADMIN_TOKEN]) expect(raw).not.toContain(secret);
  });

  it('on timeout kills the command and the process it left running in its group', async () => {
    const bearer = await portToken(h, deployJob(h), 'slow');
    const res = await release(h, 'slow', bearer);
    expect(res.status).toBe(503);
    expect(res.body.error_description).toBe('The secret "slow" is not available: its command did not finish within 1 s.');
    const [shell, sleeper] = [await pidIn('slow.pid'), await pidIn('slow-child.pid')];
    await eventually(async () => (!running(shell) && !running(sleeper) ? true : undefined), 5_000);
  });

  it('answers at the timeout even when a process that left the group holds the output pipe open', async () => {
    const bearer = await portToken(h, deployJob(h), 'escaped');
    const res = await release(h, 'escaped', bearer);
    const escaped = await pidIn('escaped-child.pid');
    try {
      expect(res.status).toBe(503);
      expect(res.body.error_description).toBe('The secret "escaped" is not available: its command did not finish within 1 s.');
      // Out of reach of the group kill (setsid made it a session of its own), it still runs.
      expect(running(escaped)).toBe(true);
    } finally {
      killGroup(escaped);
    }
  });

  it("when the runner dies, fails its requests, kills their commands, and the next request starts a new one", async () => {
    const bearer = await portToken(h, deployJob(h), 'held quick');
    expect((await release(h, 'quick', bearer)).status).toBe(200);
    const first = runnerOf(process.pid);
    const pending = release(h, 'held', bearer);
    const [shell, sleeper] = [await pidIn('held.pid'), await pidIn('held-child.pid')];
    try {
      process.kill(first, 'SIGKILL');
      const res = await pending;
      expect(res.status).toBe(503);
      expect(res.body).toEqual({
        error: 'credential_unavailable',
        error_description: 'The secret "held" is not available: its command was cut short: Port\'s command runner stopped.',
      });
      await eventually(async () => (!running(shell) && !running(sleeper) ? true : undefined), 5_000);

      expect((await release(h, 'quick', bearer)).body).toMatchObject({ value: 'quick-value' });
      const second = runnerOf(process.pid);
      expect(second).not.toBe(first);
      expect(running(first)).toBe(false);
    } finally {
      killGroup(shell);
    }
  });
});

describe("Port's close()", () => {
  it('stops the runner once the last Port in the process closes: no process is left', async () => {
    const creds = { credentials: { quick: { type: 'secret', value: 'command:printf quick-value' } } };
    const [a, b] = [await startCredsHarness(creds), await startCredsHarness(creds)];
    const open = new Set([a, b]);
    const close = async (h: Harness) => {
      open.delete(h);
      await h.close();
    };
    try {
      expect((await release(a, 'quick', await portToken(a, deployJob(a), 'quick'))).status).toBe(200);
      const runner = runnerOf(process.pid);
      await close(a);
      // The other Port still uses it.
      expect(running(runner)).toBe(true);
      expect((await release(b, 'quick', await portToken(b, deployJob(b), 'quick'))).body).toMatchObject({ value: 'quick-value' });
      await close(b);
      // Gone by the time close() resolves: exited and reaped, no polling.
      expect(procState(runner)).toBeUndefined();
      expect(runnersOf(process.pid)).toEqual([]);
    } finally {
      for (const h of open) await h.close();
    }
  });
});

describe('port serve', () => {
  const AUDIENCE = 'https://port.acme.test';
  let sim: BuildkiteSimulator;
  let serveDir: string;

  beforeAll(async () => {
    sim = await BuildkiteSimulator.start({ organization: 'acme' });
    serveDir = join(dir, 'serve');
    mkdirSync(join(serveDir, 'policies'), { recursive: true });
    for (const [f, text] of Object.entries(CRED_POLICIES)) writeFileSync(join(serveDir, 'policies', f), text);
    writeFileSync(
      join(serveDir, 'port.yaml'),
      stringify({
        server: { listen: '127.0.0.1:0', public_url: AUDIENCE, log_level: 'info' },
        store: { sqlite: './port.db' },
        buildkite: { organization: 'acme', issuer: sim.issuer, jwks_url: sim.jwksUrl, audience: AUDIENCE },
        policies: './policies',
        credentials: {
          quick: { type: 'secret', value: 'command:printf quick-value' },
          served: { type: 'secret', value: holding('served'), command_timeout: '1m' },
        },
      }),
    );
  });
  afterAll(async () => {
    await sim?.close();
  });

  async function serve(): Promise<{ port: Spawned; url: string; bearer: string }> {
    const port = spawnPort(['serve', '--create-store', '-c', join(serveDir, 'port.yaml')]);
    const [, url] = (await port.waitFor(/"url":"(http:\/\/127\.0\.0\.1:\d+)"/)) as unknown as [string, string];
    const bk = await sim.mintToken(sim.createJob({ pipelineSlug: 'deploy', branch: 'main' }), { audience: AUDIENCE });
    const res = await fetch(`${url}/oauth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: bk, subject_token_type: 'urn:ietf:params:oauth:token-type:jwt', scope: 'quick served' }),
    });
    return { port, url, bearer: ((await res.json()) as { access_token: string }).access_token };
  }
  const releaseFrom = (url: string, name: string, bearer: string) => fetch(`${url}/v1/credentials/${name}`, { method: 'POST', headers: { authorization: `Bearer ${bearer}` } });

  it('stopped with SIGTERM: the runner is gone when Port has exited', async () => {
    const { port, url, bearer } = await serve();
    try {
      expect(await (await releaseFrom(url, 'quick', bearer)).json()).toMatchObject({ value: 'quick-value' });
      const runner = runnerOf(port.child.pid!);
      await port.stop();
      expect(await port.exited).toBe(0);
      await eventually(async () => (!running(runner) ? true : undefined), 5_000);
    } finally {
      await port.stop();
    }
  });

  it('killed with SIGKILL mid-command: the runner kills the command and its child, then exits', async () => {
    const { port, url, bearer } = await serve();
    let shell: number | undefined;
    try {
      const pending = releaseFrom(url, 'served', bearer).catch(() => undefined);
      shell = await pidIn('served.pid');
      const sleeper = await pidIn('served-child.pid');
      const runner = runnerOf(port.child.pid!);
      port.child.kill('SIGKILL');
      await pending;
      await eventually(async () => (!running(runner) && !running(shell!) && !running(sleeper) ? true : undefined), 5_000);
    } finally {
      await port.stop();
      if (shell !== undefined) killGroup(shell);
    }
  });
});
