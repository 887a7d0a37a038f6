/**
 * `server.workers`: `port serve` as a user runs it (bin/port.js, a port.yaml, HTTP), with
 * two workers on one listener and the embedded SQLite store. Which process answered is read
 * from the log: every response carries `X-Request-Id`, and each worker's request log line
 * names its request id and pid (pino's `pid`). Each request opens a new connection, which
 * the primary hands to the workers in turn.
 */
import { request } from 'node:http';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { MAX_START_FAILURES } from '../../src/cluster/workers.js';
import { BuildkiteSimulator } from '../../src/sim/index.js';
import { RELAY_POLICIES } from '../helpers/relay-harness.js';
import { makeTempDir, removeDir } from '../helpers/relay/util.js';
import { runPort, spawnPort, type Spawned } from '../helpers/spawn-port.js';

const AUDIENCE = 'https://port.acme.test';
const EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';

let dir: string;
let sim: BuildkiteSimulator;
const started: Spawned[] = [];

beforeAll(async () => {
  dir = await makeTempDir('workers');
  mkdirSync(join(dir, 'policies'));
  for (const [name, text] of Object.entries(RELAY_POLICIES)) writeFileSync(join(dir, 'policies', name), text);
  sim = await BuildkiteSimulator.start({ organization: 'acme' });
});

afterAll(async () => {
  for (const p of started) await p.stop();
  await sim?.close();
  if (dir) await removeDir(dir);
});

/** A port.yaml in the test's folder with `workers` (and anything else) under server:. */
function writeConfig(name: string, server: Record<string, unknown>, extra: Record<string, unknown> = {}): string {
  const file = join(dir, name);
  writeFileSync(
    file,
    stringify({
      server: { listen: '127.0.0.1:0', public_url: AUDIENCE, log_level: 'info', ...server },
      store: { sqlite: `./${name}.db` },
      buildkite: { organization: 'acme', issuer: sim.issuer, jwks_url: sim.jwksUrl, audience: AUDIENCE },
      policies: './policies',
      credentials: { 'deploy-token': { type: 'port_token', audience: 'https://deploy.acme.test' } },
      ...extra,
    }),
  );
  return file;
}

function serve(file: string): Spawned {
  const p = spawnPort(['serve', '--create-store', '-c', file], { cwd: dir, workersFromConfig: true });
  started.push(p);
  return p;
}

/** The JSON lines a process (and its workers) wrote. */
function logLines(p: Spawned): Record<string, any>[] {
  return p
    .stdout()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, any>);
}

/** Pids of the workers the primary reported ready, in order. */
function readyWorkers(p: Spawned): number[] {
  return logLines(p)
    .filter((l) => l.role === 'primary' && l.msg === 'worker ready')
    .map((l) => l.worker.pid as number);
}

async function until<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

interface Answer {
  status: number;
  body: any;
  /** The process that answered, from its request log line. */
  pid: number;
}

/** One request on a connection of its own, and which process answered it. */
async function call(p: Spawned, url: string, method: string, path: string, opts: { form?: Record<string, string>; bearer?: string } = {}): Promise<Answer> {
  const body = opts.form ? new URLSearchParams(opts.form).toString() : undefined;
  const { status, text, requestId } = await new Promise<{ status: number; text: string; requestId: string }>((resolve, reject) => {
    const req = request(
      `${url}${path}`,
      {
        method,
        agent: false,
        headers: {
          connection: 'close',
          ...(body !== undefined ? { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) } : {}),
          ...(opts.bearer ? { authorization: `Bearer ${opts.bearer}` } : {}),
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode!, text, requestId: String(res.headers['x-request-id']) }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
  const pid = await until(`the log line of request ${requestId}`, () => logLines(p).find((l) => l.reqId === requestId && typeof l.pid === 'number')?.pid as number | undefined);
  return { status, body: text ? JSON.parse(text) : undefined, pid };
}

/** Calls until one is answered by a process `accept` takes (at most 40 calls): the connections go to the workers in turn. */
async function callUntil(what: string, accept: (a: Answer) => boolean, make: () => Promise<Answer>): Promise<{ match: Answer; all: Answer[] }> {
  const all: Answer[] = [];
  for (let i = 0; i < 40; i++) {
    const a = await make();
    all.push(a);
    if (accept(a)) return { match: a, all };
  }
  throw new Error(`no answer ${what} in 40 calls (pids ${[...new Set(all.map((a) => a.pid))].join(', ')})`);
}

async function exchange(p: Spawned, url: string, subjectToken: string): Promise<Answer> {
  return call(p, url, 'POST', '/oauth/token', {
    form: { grant_type: EXCHANGE, subject_token: subjectToken, subject_token_type: 'urn:ietf:params:oauth:token-type:jwt', scope: 'deploy-token' },
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('port serve with server.workers: 2', () => {
  let port: Spawned;
  let url: string;
  let workers: number[];

  beforeAll(async () => {
    port = serve(writeConfig('two.yaml', { workers: 2 }));
    [, url] = (await port.waitFor(/"url":"(http:\/\/127\.0\.0\.1:\d+)"/)) as unknown as [string, string];
    workers = await until('two workers ready', () => (readyWorkers(port).length === 2 ? readyWorkers(port) : undefined));
  });

  it('runs two worker processes besides the primary, and both answer on the one listener', async () => {
    expect(new Set(workers).size).toBe(2);
    expect(workers).not.toContain(port.child.pid);
    const seen = new Set<number>();
    await callUntil('from the second worker', (a) => (seen.add(a.pid), seen.size === 2), () => call(port, url, 'GET', '/healthz'));
    expect([...seen].sort()).toEqual([...workers].sort());
    // One of them leads the background work; both name the store they share.
    const roles = new Set<string>();
    await callUntil('from both roles', (a) => (roles.add(a.body.checks.role), roles.size === 2), () => call(port, url, 'GET', '/readyz'));
    expect([...roles].sort()).toEqual(['ok (follower, sqlite)', 'ok (leader, sqlite)']);
  });

  it("runs each worker with V8's collector on the worker's own thread (--single-threaded-gc), not the primary", () => {
    const argv = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    for (const pid of workers) expect(argv(pid)).toContain('--single-threaded-gc');
    expect(argv(port.child.pid!)).not.toContain('--single-threaded-gc');
  });

  it("a Buildkite token exchanged through one worker is refused as a replay by the other", async () => {
    const subject = await sim.mintToken(sim.createJob({ pipelineSlug: 'deploy', branch: 'main' }), { audience: AUDIENCE });
    const first = await exchange(port, url, subject);
    expect(first.status).toBe(200);
    const { all } = await callUntil('from the other worker', (a) => a.pid !== first.pid, () => exchange(port, url, subject));
    for (const replay of all) {
      expect(replay.status).toBe(400);
      expect(replay.body.error_description).toMatch(/already exchanged/);
    }
  });

  it('a Port token revoked through one worker is refused by the other', async () => {
    const job = sim.createJob({ pipelineSlug: 'deploy', branch: 'main' });
    // Two Port tokens of one job: the second introspects the first (RFC 7662 §2.1, a token of the same job).
    const [revoked, caller] = await Promise.all([0, 1].map(async () => (await exchange(port, url, await sim.mintToken(job, { audience: AUDIENCE }))).body.access_token as string));
    const introspect = () => call(port, url, 'POST', '/oauth/introspect', { form: { token: revoked! }, bearer: caller! });
    // Active on both workers first: both verify tokens the other signed (one signing key, in the store).
    const active = new Set<number>();
    await callUntil('active on both', (a) => (expect(a.body.active).toBe(true), active.add(a.pid), active.size === 2), introspect);

    const revoke = await call(port, url, 'POST', '/oauth/revoke', { form: { token: revoked! } });
    expect(revoke.status).toBe(200);
    // The other worker hears it from the store's change feed (within milliseconds; no timing asserted here).
    const { match } = await callUntil('inactive on the other worker', (a) => a.pid !== revoke.pid && a.body.active === false, introspect);
    expect(match.pid).not.toBe(revoke.pid);
    // And from then on neither worker answers active.
    const after = await Promise.all([0, 1, 2, 3].map(() => introspect()));
    expect(after.map((a) => a.body.active)).toEqual([false, false, false, false]);
  });

  it('SIGHUP to the primary reaches every worker (policies and secrets are reloaded in each)', async () => {
    const before = logLines(port).filter((l) => l.msg === 'relay secrets reloaded').length;
    port.child.kill('SIGHUP');
    const reloaded = await until('both workers reloaded', () => {
      const pids = logLines(port)
        .filter((l) => l.msg === 'relay secrets reloaded')
        .slice(before)
        .map((l) => l.pid as number);
      return pids.length >= 2 ? pids : undefined;
    });
    expect(reloaded.sort()).toEqual([...workers].sort());
    expect(port.child.exitCode).toBeNull();
  });

  it('a worker that dies is replaced, and the replacement serves', async () => {
    const [victim, survivor] = workers as [number, number];
    process.kill(victim, 'SIGKILL');
    const replacement = await until('a replacement ready', () => readyWorkers(port).find((pid) => !workers.includes(pid)));
    const exit = logLines(port).find((l) => l.role === 'primary' && l.msg === 'worker exited unexpectedly; starting another');
    expect(exit).toMatchObject({ worker: { pid: victim }, signal: 'SIGKILL' });
    expect(alive(victim)).toBe(false);
    expect(readFileSync(`/proc/${replacement}/cmdline`, 'utf8').split('\0')).toContain('--single-threaded-gc');
    const seen = new Set<number>();
    await callUntil('from the replacement', (a) => (seen.add(a.pid), seen.has(replacement)), () => call(port, url, 'GET', '/healthz'));
    expect([...seen].every((pid) => pid === survivor || pid === replacement)).toBe(true);
    workers = [survivor, replacement];
  });

  it('SIGTERM stops every worker (each drains, even when it hears the signal twice) and then the primary, exit 0', async () => {
    // As a service manager that signals the whole group does: the primary and each worker at once.
    port.child.kill('SIGTERM');
    for (const pid of workers) process.kill(pid, 'SIGTERM');
    expect(await port.exited).toBe(0);
    for (const pid of workers) expect(alive(pid)).toBe(false);
    const stopped = logLines(port).filter((l) => l.role === 'primary' && l.msg === 'worker stopped');
    expect(stopped.map((l) => l.worker.pid as number).sort()).toEqual([...workers].sort());
    // Each exited by itself after draining (exit 0), none by the signal's default action.
    for (const l of stopped) expect(l).toMatchObject({ code: 0, signal: null });
    expect(port.stderr()).toBe('');
  });
});

describe('port serve with server.workers: 1', () => {
  it('does not fork: the process started answers, and there is no primary', async () => {
    const port = serve(writeConfig('one.yaml', { workers: 1 }));
    const [, url] = (await port.waitFor(/"url":"(http:\/\/127\.0\.0\.1:\d+)"/)) as unknown as [string, string];
    for (let i = 0; i < 4; i++) expect((await call(port, url, 'GET', '/healthz')).pid).toBe(port.child.pid);
    expect(logLines(port).filter((l) => l.role === 'primary')).toEqual([]);
    expect(new Set(logLines(port).map((l) => l.pid))).toEqual(new Set([port.child.pid]));
    port.child.kill('SIGTERM');
    expect(await port.exited).toBe(0);
  });
});

describe('port serve whose replacement workers cannot start', () => {
  it('a replacement never creates a store that went missing; when replacements keep failing, port serve stops with their exit code', async () => {
    const port = serve(writeConfig('gone.yaml', { workers: 2 }));
    const workers = await until('two workers ready', () => (readyWorkers(port).length === 2 ? readyWorkers(port) : undefined));
    // The store deleted under the running workers (--create-store was given at the first start).
    for (const suffix of ['', '-wal', '-shm']) rmSync(join(dir, `gone.yaml.db${suffix}`), { force: true });
    process.kill(workers[0]!, 'SIGKILL');
    expect(await port.exited).toBe(2);
    const primary = logLines(port).filter((l) => l.role === 'primary');
    expect(primary.filter((l) => l.msg === 'worker exited before it was ready; starting another')).toHaveLength(MAX_START_FAILURES - 1);
    expect(primary.find((l) => l.level === 60)?.msg).toMatch(/workers keep exiting before they are ready \(5 in a row\); Port stops/);
    expect(port.stderr()).toMatch(/port: cannot start: .*(store|--create-store)/);
    expect(alive(workers[1]!)).toBe(false);
    expect(existsSync(join(dir, 'gone.yaml.db'))).toBe(false);
  });
});

describe('port serve with workers that cannot start', () => {
  it('a policy that does not compile: the first worker says why once, and port serve exits 2 without starting the others', async () => {
    mkdirSync(join(dir, 'bad-policies'));
    writeFileSync(join(dir, 'bad-policies', 'broken.cedar'), 'permit (principal, action, resource) when { this is not cedar };');
    const file = writeConfig('bad.yaml', { workers: 2 }, { policies: './bad-policies' });
    const r = await runPort(['serve', '--create-store', '-c', file], { cwd: dir, workersFromConfig: true });
    expect(r.code).toBe(2);
    expect(r.stderr.match(/port: cannot start:/g)).toHaveLength(1);
    const started = r.stdout.split('\n').filter((l) => l.includes('"msg":"worker started"'));
    expect(started).toHaveLength(1);
  });

  it('server.workers out of range is a configuration error (exit 2) before anything forks', async () => {
    const file = writeConfig('range.yaml', { workers: 0 });
    const r = await runPort(['serve', '--create-store', '-c', file], { cwd: dir, workersFromConfig: true });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/server\.workers/);
    expect(r.stderr).toMatch(/"auto" or a whole number from 1 to 256/);
    expect(r.stdout).not.toMatch(/worker started/);
  });
});
