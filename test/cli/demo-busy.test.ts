/**
 * A second `port demo` on a busy folder refuses with a clear message,
 * and a demo whose port is taken exits 2 suggesting `--port 0` — never a stack trace or
 * errors logged forever.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { runPort, spawnPort } from '../helpers/spawn-port.js';

const dir = mkdtempSync(join(tmpdir(), 'port-demo-busy-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function listen(): Promise<{ server: Server; port: number }> {
  return new Promise((res) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => res({ server, port: (server.address() as { port: number }).port }));
  });
}

it('a second port demo in the same folder refuses with exit 2 and names the running one', async () => {
  const first = spawnPort(['demo', '--dir', join(dir, 'shared'), '--port', '0', '--sim-port', '0']);
  try {
    await first.waitFor(/Press Ctrl-C to stop/);
    const second = await runPort(['demo', '--dir', join(dir, 'shared'), '--port', '0', '--sim-port', '0']);
    expect(second.code).toBe(2);
    expect(second.stderr).toContain(`another port demo (pid ${first.child.pid}) is already running in ${join(dir, 'shared')}`);
    expect(second.stderr).not.toMatch(/\n\s+at /);
    // The first one is unharmed.
    expect(first.child.exitCode).toBeNull();
  } finally {
    await first.stop();
  }
  // Once it stopped, the folder is free again.
  const third = spawnPort(['demo', '--dir', join(dir, 'shared'), '--port', '0', '--sim-port', '0']);
  try {
    await third.waitFor(/Press Ctrl-C to stop/);
  } finally {
    await third.stop();
  }
}, 60_000);

it('a stale lock left by a killed demo does not block the next one', async () => {
  const folder = join(dir, 'stale');
  const first = spawnPort(['demo', '--dir', folder, '--port', '0', '--sim-port', '0']);
  await first.waitFor(/Press Ctrl-C to stop/);
  first.child.kill('SIGKILL');
  await first.exited;
  const next = spawnPort(['demo', '--dir', folder, '--port', '0', '--sim-port', '0']);
  try {
    await next.waitFor(/Press Ctrl-C to stop/);
  } finally {
    await next.stop();
  }
}, 60_000);

it.each([
  ['--port', 'port', '--port 0'],
  ['--sim-port', "the Buildkite simulator's port", '--sim-port 0'],
  ['--idp-port', "the demo identity provider's port", '--idp-port 0'],
  ['--service-port', "the demo artifacts API's port", '--service-port 0'],
])('a taken %s: exit 2 with one line naming %s and the fix', async (flag, what, fix) => {
  const { server, port } = await listen();
  try {
    const other = ['--port', '--sim-port', '--idp-port', '--service-port'].filter((f) => f !== flag).flatMap((f) => [f, '0']);
    const r = await runPort(['demo', '--dir', join(dir, `taken${flag}`), flag, String(port), ...other]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe(`port demo: ${what} ${port} is already in use; stop what holds it, or run with ${fix} to take any free port`);
  } finally {
    server.close();
  }
}, 30_000);

it('demos racing to take over one stale lock: exactly one gets it', async () => {
  const racing = join(dir, 'racing');
  mkdirSync(racing);
  // A pid no process has (beyond the kernel's pid_max default of 4194304).
  writeFileSync(join(racing, 'demo.pid'), '4194399\n');
  // The compiled module (dist/, built by `npm test`), as `port demo` runs it.
  const lockModule = new URL('../../dist/cli/demo-lock.js', import.meta.url).pathname;
  const script = `
    const { lockDemoDir } = await import(${JSON.stringify(lockModule)});
    await new Promise((r) => setTimeout(r, Number(process.env.START_AT) - Date.now()));
    try { lockDemoDir(process.env.DIR); console.log('locked'); await new Promise((r) => setTimeout(r, 1500)); }
    catch (e) { console.log(e.code ?? e.message); }`;
  const startAt = Date.now() + 1500;
  const runs = await Promise.all(
    Array.from({ length: 6 }, () =>
      new Promise<string>((resolve, reject) => {
        execFile(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, DIR: racing, START_AT: String(startAt) } }, (err, stdout) =>
          err ? reject(err) : resolve(stdout.trim()),
        );
      }),
    ),
  );
  expect(runs.filter((r) => r === 'locked')).toHaveLength(1);
  expect(runs.filter((r) => r !== 'locked')).toEqual(Array(5).fill('demo_busy'));
});
