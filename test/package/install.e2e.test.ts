/**
 * The install path a user takes: `npm pack` this repository, install the tarball into an
 * empty prefix, and run the installed `port` from there — `--version`, `serve` with the
 * minimal example configuration that ships in the package, and `demo`. Everything runs
 * outside this repository (a temp directory), so nothing resolves from its node_modules:
 * an installed Port has only its `dependencies`.
 *
 * better-sqlite3 installs a prebuilt binary with prebuild-install, which downloads it from
 * GitHub — out of reach here — and otherwise compiles from source (about 1.5 CPU-minutes on the
 * CI machine, three wall-clock minutes under the suite's load). The test serves the binary this
 * checkout's `npm ci` built through prebuild-install's documented mirror setting
 * (`npm_config_better_sqlite3_binary_host`, https://github.com/prebuild/prebuild-install#custom-binaries),
 * as a company mirror of prebuilt binaries would; if the versions differ, prebuild-install gets
 * a 404 and npm compiles, as it would for a user. The tarball
 * has no lockfile, so npm resolves the dependencies' version ranges as it would for a user,
 * from the registry, taking tarballs from the cache `npm ci` filled where it can
 * (`--prefer-offline`). The pack itself uses `--ignore-scripts`: dist/ is built by
 * the npm `test` script first, and rebuilding it here could let another test's process read
 * a half-written file; package-contents.test.ts checks that `prepare` builds on a real pack.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createServer as createHttpServer, type Server } from 'node:http';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { name: string; version: string };

const work = mkdtempSync(join(tmpdir(), 'port-install-'));
const prefix = join(work, 'prefix');
const installed = join(prefix, 'node_modules', pkg.name);
const binDir = join(prefix, 'node_modules', '.bin');

/**
 * The environment of a user's fresh shell: this process's, without what `npm test` adds for
 * its own scripts (npm_config_*, npm_package_*, INIT_CWD) — a nested npm would read those as
 * its settings — and with the installed prefix's bin first on PATH.
 */
function userEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k) && k !== 'INIT_CWD' && k !== 'NODE_PATH') env[k] = v;
  env.PATH = [binDir, process.env.PATH ?? ''].join(delimiter);
  return { ...env, ...extra };
}

interface Run {
  child: ChildProcess;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  waitFor(re: RegExp, timeoutMs: number): Promise<RegExpMatchArray>;
}

function start(command: string, args: string[], cwd: string, extraEnv: Record<string, string> = {}): Run {
  const child = spawn(command, args, { cwd, env: userEnv(extraEnv), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res, rej) => {
    child.once('error', rej);
    child.once('exit', (code, signal) => res({ code, signal }));
  });
  return {
    child,
    output: () => out,
    exited,
    waitFor(re, timeoutMs) {
      return new Promise((res, rej) => {
        const deadline = Date.now() + timeoutMs;
        const tick = () => {
          const m = out.match(re);
          if (m) return res(m);
          if (child.exitCode !== null || child.signalCode !== null) return rej(new Error(`${command} ${args.join(' ')} exited (${child.exitCode ?? child.signalCode}) before printing ${re}:\n${out}`));
          if (Date.now() > deadline) return rej(new Error(`${command} ${args.join(' ')} did not print ${re} within ${timeoutMs} ms:\n${out}`));
          setTimeout(tick, 100);
        };
        tick();
      });
    },
  };
}

/** Runs a command to completion; fails with its output if it exits non-zero. */
async function run(command: string, args: string[], cwd: string, extraEnv: Record<string, string> = {}): Promise<string> {
  const r = start(command, args, cwd, extraEnv);
  const { code, signal } = await r.exited;
  if (code !== 0) throw new Error(`${command} ${args.join(' ')} exited ${code ?? signal}:\n${r.output()}`);
  return r.output();
}

async function stop(r: Run): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGTERM');
  return r.exited;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  const { port } = server.address() as { port: number };
  await new Promise<void>((res) => server.close(() => res()));
  return port;
}

/** GETs `url` until it answers 200 (the server may still be starting), or fails after `timeoutMs`. */
async function until200(url: string, timeoutMs: number, r: Run): Promise<Response> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(5_000) });
      if (res.status === 200) return res;
    } catch {
      // not listening yet
    }
    if (r.child.exitCode !== null) throw new Error(`port exited ${r.child.exitCode} before ${url} answered:\n${r.output()}`);
    if (Date.now() > deadline) throw new Error(`${url} did not answer 200 within ${timeoutMs} ms:\n${r.output()}`);
    await new Promise((res) => setTimeout(res, 200));
  }
}

/**
 * Serves this checkout's better-sqlite3 binary at the path prebuild-install asks a mirror for:
 * `{host}/v{version}/better-sqlite3-v{version}-node-v{abi}-{platform}-{arch}.tar.gz`, holding
 * `build/Release/better_sqlite3.node`. Other paths (another version) get 404.
 */
async function startPrebuiltMirror(dir: string): Promise<{ url: string; server: Server }> {
  const sqlite = join(ROOT, 'node_modules', 'better-sqlite3');
  const { version } = JSON.parse(readFileSync(join(sqlite, 'package.json'), 'utf8')) as { version: string };
  const name = `better-sqlite3-v${version}-node-v${process.versions.modules}-${process.platform}-${process.arch}.tar.gz`;
  const archive = join(dir, name);
  execFileSync('tar', ['-czf', archive, '-C', sqlite, 'build/Release/better_sqlite3.node']);
  const server = createHttpServer((req, res) => {
    if (req.url !== `/v${version}/${name}`) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'application/gzip' }).end(readFileSync(archive));
  });
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, server };
}

let tarball = '';
const running: Run[] = [];

beforeAll(async () => {
  if (!existsSync(join(ROOT, 'dist', 'cli', 'main.js'))) throw new Error('dist/ is not built; run `npm run build` first (the npm test script does).');
  const t0 = Date.now();
  const packed = JSON.parse(await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], ROOT)) as { filename: string }[];
  tarball = join(work, packed[0]!.filename);
  const t1 = Date.now();
  const mirror = await startPrebuiltMirror(work);
  try {
    await run('npm', ['install', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', tarball], work, { npm_config_better_sqlite3_binary_host: mirror.url });
  } finally {
    mirror.server.close();
  }
  const t2 = Date.now();
  // Reported, not asserted (no wall-clock assertions): how long a user waits.
  console.log(`npm pack: ${((t1 - t0) / 1000).toFixed(1)} s; npm install of the tarball: ${((t2 - t1) / 1000).toFixed(1)} s`);
}, 20 * 60_000);

afterAll(async () => {
  await Promise.all(running.map(stop));
  rmSync(work, { recursive: true, force: true });
});

describe('the packed tarball', () => {
  it('holds the compiled code, bin, examples, README and LICENSE, and nothing dev-only', async () => {
    const entries = (await run('tar', ['-tzf', tarball], work)).split('\n').filter(Boolean).map((e) => e.replace(/^package\//, ''));
    for (const f of ['package.json', 'README.md', 'LICENSE', 'bin/port.js', 'dist/cli/main.js', 'examples/exchange-minimal/port.yaml']) expect(entries).toContain(f);
    expect(entries.filter((e) => /^(test|src|bench|\.ci|plugin|scripts|node_modules)\//.test(e) || /\.ts$|\.map$/.test(e))).toEqual([]);
  });

  it('installs only the runtime dependencies, and links the `port` bin', () => {
    expect(existsSync(join(binDir, 'port'))).toBe(true);
    for (const dev of ['vitest', 'typescript', 'playwright-core', 'verdaccio']) expect(existsSync(join(prefix, 'node_modules', dev)), `${dev} was installed`).toBe(false);
    expect(existsSync(join(prefix, 'node_modules', 'oidc-provider'))).toBe(true);
  });
});

describe('the installed `port`', () => {
  it('--version prints the package version', async () => {
    const out = await run('port', ['--version'], work);
    expect(out.trim()).toBe(pkg.version);
  }, 60_000);

  it('serves the minimal example configuration, publishes its discovery document and keys, and stops cleanly on SIGTERM', async () => {
    // The example as the package ships it, copied so its store (./port.db) is created beside it;
    // only the listen address changes, to a free port.
    const dir = join(work, 'exchange-minimal');
    cpSync(join(installed, 'examples', 'exchange-minimal'), dir, { recursive: true });
    const config = join(dir, 'port.yaml');
    const original = readFileSync(config, 'utf8');
    const port = await freePort();
    const edited = original.replace(/^(\s*listen:\s*)127\.0\.0\.1:8080\s*$/m, `$1127.0.0.1:${port}`);
    expect(edited, 'examples/exchange-minimal/port.yaml no longer has `listen: 127.0.0.1:8080`; update this test').not.toBe(original);
    writeFileSync(config, edited);

    const serve = start('port', ['serve', '-c', config, '--create-store'], work);
    running.push(serve);
    const base = `http://127.0.0.1:${port}`;
    await until200(`${base}/healthz`, 90_000, serve);

    const discovery = (await (await fetch(`${base}/.well-known/openid-configuration`)).json()) as { issuer: string; jwks_uri: string };
    expect(discovery.issuer).toBe('https://port.example.com');
    expect(discovery.jwks_uri).toMatch(/^https:\/\/port\.example\.com\//);
    const jwks = (await (await fetch(`${base}${new URL(discovery.jwks_uri).pathname}`)).json()) as { keys: Record<string, unknown>[] };
    expect(jwks.keys.length).toBeGreaterThan(0);
    for (const key of jwks.keys) expect(key).not.toHaveProperty('d');
    expect(existsSync(join(dir, 'port.db'))).toBe(true);

    expect(await stop(serve)).toEqual({ code: 0, signal: null });
  }, 150_000);

  it('runs the demo: Port answers at the address it prints, its steps say `port` (the installed bin on PATH) and work, and it stops cleanly on SIGTERM', async () => {
    const demo = start('port', ['demo', '--port', '0', '--sim-port', '0', '--idp-port', '0', '--service-port', '0', '--dir', join(work, 'demo')], work);
    running.push(demo);
    const [, url] = await demo.waitFor(/Port is running at (http:\/\/127\.0\.0\.1:\d+)/, 120_000);
    const res = await until200(`${url}/healthz`, 30_000, demo);
    expect(res.status).toBe(200);
    await demo.waitFor(/Press Ctrl-C to stop/, 60_000);
    // The first step, pasted as printed: the installed `port` on PATH, not a path into node_modules.
    const step = demo.output().split('\n').find((l) => l.includes('token exchange --scope deploy-token --json'))?.trim();
    expect(step).toMatch(/&& port token exchange --scope deploy-token --json\)$/);
    const granted = JSON.parse(await run('bash', ['-c', step!], work)) as { scope: string };
    expect(granted.scope).toBe('deploy-token');

    expect(await stop(demo)).toEqual({ code: 0, signal: null });
  }, 240_000);
});
