/**
 * A private npm registry for relay tests: verdaccio (devDependency) in a child process,
 * with storage in a temp dir, NO uplinks (never touches the network), every package
 * readable and publishable only by an authenticated user, and one pre-created htpasswd
 * user. Registration is off, so the only way in is that user's credentials.
 *
 * How npm sends credentials (Port sits between npm and verdaccio):
 *  - npm picks credentials by "nerf dart": the registry URL without scheme, with a trailing
 *    slash — `//127.0.0.1:4873/:_authToken=…` or, through Port,
 *    `//127.0.0.1:PORT/relay/npm/:_authToken=<Port token>`. The key must match the
 *    registry URL's host, port AND path prefix, or npm sends nothing.
 *  - `:_authToken=T` → every request carries `Authorization: Bearer T`.
 *  - `:_auth=base64(user:pass)` (or `:username=` + `:_password=base64(pass)`) →
 *    `Authorization: Basic base64(user:pass)`.
 *  - npm sends credentials to the registry's own URLs only. Tarball URLs come from the
 *    packument (`dist.tarball`), and verdaccio builds them from the `Host` header it sees —
 *    behind Port that is verdaccio's own address, so npm would fetch tarballs from verdaccio
 *    directly, without credentials (→ 401). Start the registry with `publicUrl` set to the
 *    relay URL (`http://127.0.0.1:PORT/relay/npm/`; sets VERDACCIO_PUBLIC_URL) so tarball
 *    URLs point back through Port.
 *  - Scoped packages are requested as `/@scope%2fname` (npm escapes the slash), which a
 *    relay that refuses `%2f` in paths will turn away.
 * Verdaccio accepts either form from Port: `Bearer <token>` (the login token below) or
 * `Basic base64(user:pass)` checked against htpasswd.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { describeRun, freePort, makeTempDir, removeDir, run, sleep, type RunResult } from './util.js';

const ROOT = resolve(import.meta.dirname, '..', '..', '..');
export const VERDACCIO_BIN = join(ROOT, 'node_modules', 'verdaccio', 'bin', 'verdaccio');

export interface NpmRegistryOptions {
  username?: string;
  password?: string;
  /** Base URL verdaccio writes into tarball URLs (VERDACCIO_PUBLIC_URL), e.g. Port's relay URL. */
  publicUrl?: string;
  /**
   * Listen on this port instead of a free one picked here — lets a test choose verdaccio's
   * address first, configure and start Port with it, then start verdaccio with `publicUrl`.
   */
  port?: number;
  /** verdaccio `max_body_size` (default '10mb'). */
  maxBodySize?: string;
  startTimeoutMs?: number;
}

export interface NpmRegistry {
  /** `http://127.0.0.1:PORT/` (trailing slash, as npm writes registry URLs). */
  url: string;
  host: string;
  port: number;
  username: string;
  password: string;
  /** Login token (from `PUT /-/user/org.couchdb.user:<name>`), for `_authToken` / Bearer. */
  token: string;
  /** `Bearer <token>` — what Port injects with `inject: { bearer: … }`. */
  bearer: string;
  /** `Basic base64(user:pass)` — what Port injects with `inject: { basic: … }`; also npm's `_auth` value after `Basic `. */
  basic: string;
  /** verdaccio's stdout+stderr so far. */
  logs(): string;
  close(): Promise<void>;
}

function configYaml(dir: string, maxBodySize: string): string {
  // JSON is valid YAML; keeps quoting of paths trivial.
  return JSON.stringify(
    {
      storage: join(dir, 'storage'),
      plugins: join(dir, 'plugins'),
      auth: { htpasswd: { file: join(dir, 'htpasswd'), max_users: -1 } },
      uplinks: {},
      packages: {
        '@*/*': { access: '$authenticated', publish: '$authenticated', unpublish: '$authenticated' },
        '**': { access: '$authenticated', publish: '$authenticated', unpublish: '$authenticated' },
      },
      web: { enable: false },
      max_body_size: maxBodySize,
      log: { type: 'stdout', format: 'pretty', level: 'warn' },
    },
    null,
    2,
  );
}

/**
 * verdaccio-htpasswd (13.x) verifies `$2a/b/y$` bcrypt, `{PLAIN}`, `{SHA}` (base64 SHA-1),
 * apache MD5 and crypt(3). `{SHA}` needs nothing but node:crypto.
 */
export function htpasswdLine(user: string, password: string): string {
  return `${user}:{SHA}${createHash('sha1').update(password, 'utf8').digest('base64')}:autocreated ${new Date().toISOString()}\n`;
}

export async function startNpmRegistry(opts: NpmRegistryOptions = {}): Promise<NpmRegistry> {
  const username = opts.username ?? 'ci-publisher';
  const password = opts.password ?? 'upstream-npm-secret';
  const basic = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
  const dir = await makeTempDir('verdaccio');
  try {
    await mkdir(join(dir, 'storage'), { recursive: true });
    await mkdir(join(dir, 'plugins'), { recursive: true });
    await writeFile(join(dir, 'htpasswd'), htpasswdLine(username, password));
    const configPath = join(dir, 'config.yaml');
    await writeFile(configPath, configYaml(dir, opts.maxBodySize ?? '10mb'));

    let lastError: Error | undefined;
    for (let attempt = 0; attempt < 3; attempt++) {
      const port = opts.port ?? (await freePort());
      try {
        const proc = await launch(configPath, port, opts);
        const url = `http://127.0.0.1:${port}/`;
        const token = await login(url, username, password, basic, proc);
        return {
          url,
          host: `127.0.0.1:${port}`,
          port,
          username,
          password,
          token,
          bearer: `Bearer ${token}`,
          basic,
          logs: proc.logs,
          async close() {
            await proc.stop();
            await removeDir(dir);
          },
        };
      } catch (err) {
        lastError = err as Error;
        if (opts.port !== undefined || !/EADDRINUSE/.test(lastError.message)) break;
      }
    }
    throw lastError ?? new Error('verdaccio did not start');
  } catch (err) {
    await removeDir(dir);
    throw err;
  }
}

interface Launched {
  child: ChildProcess;
  logs(): string;
  stop(): Promise<void>;
}

async function launch(configPath: string, port: number, opts: NpmRegistryOptions): Promise<Launched> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.VERDACCIO_PUBLIC_URL;
  if (opts.publicUrl) env.VERDACCIO_PUBLIC_URL = opts.publicUrl;
  const child = spawn(process.execPath, [VERDACCIO_BIN, '--config', configPath, '--listen', `127.0.0.1:${port}`], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let logs = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (logs += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (logs += d));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  let spawnError: Error | undefined;
  child.once('error', (e) => (spawnError = e));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(t);
  };

  const timeoutMs = opts.startTimeoutMs ?? 20_000;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (spawnError) throw new Error(`could not run verdaccio (${VERDACCIO_BIN}): ${spawnError.message}`);
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`verdaccio exited ${child.exitCode ?? child.signalCode} before answering /-/ping:\n${logs}`);
    }
    try {
      const res = await fetch(`http://127.0.0.1:${port}/-/ping`, { signal: AbortSignal.timeout(1_000) });
      if (res.ok) {
        await res.arrayBuffer();
        break;
      }
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`verdaccio did not answer /-/ping within ${timeoutMs} ms:\n${logs}`);
    }
    await sleep(50);
  }
  return { child, logs: () => logs, stop };
}

/**
 * npm's legacy login: `PUT /-/user/org.couchdb.user:<name>`. With registration disabled
 * verdaccio answers 409 unless the PUT itself carries the user's Basic credentials; then it
 * returns `{ token }`.
 */
async function login(url: string, username: string, password: string, basic: string, proc: Launched): Promise<string> {
  let res: Response;
  try {
    res = await fetch(`${url}-/user/org.couchdb.user:${encodeURIComponent(username)}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json', authorization: basic },
      body: JSON.stringify({ _id: `org.couchdb.user:${username}`, name: username, password, type: 'user', roles: [] }),
      signal: AbortSignal.timeout(10_000),
    });
  } catch (err) {
    await proc.stop();
    throw new Error(`verdaccio login request failed: ${(err as Error).message}\n${proc.logs()}`);
  }
  const body = (await res.json().catch(() => ({}))) as { token?: string };
  if (res.status !== 201 || !body.token) {
    await proc.stop();
    throw new Error(`verdaccio login answered ${res.status} ${JSON.stringify(body)}\n${proc.logs()}`);
  }
  return body.token;
}

// ---------------------------------------------------------------------------------------
// npm client side

/** npm's credential key for a registry URL: `//host:port/path/` (no scheme, trailing slash). */
export function nerfDart(registryUrl: string): string {
  const u = new URL(registryUrl);
  const path = u.pathname.endsWith('/') ? u.pathname : `${u.pathname}/`;
  return `//${u.host}${path}`;
}

export interface NpmrcOptions {
  registry: string;
  /** → `Authorization: Bearer <authToken>` */
  authToken?: string;
  /** user and password → `_auth` → `Authorization: Basic …` */
  basicAuth?: { username: string; password: string };
}

export function npmrcText(o: NpmrcOptions): string {
  const registry = o.registry.endsWith('/') ? o.registry : `${o.registry}/`;
  const lines = [`registry=${registry}`];
  const key = nerfDart(registry);
  if (o.authToken) lines.push(`${key}:_authToken=${o.authToken}`);
  if (o.basicAuth) lines.push(`${key}:_auth=${Buffer.from(`${o.basicAuth.username}:${o.basicAuth.password}`).toString('base64')}`);
  return `${lines.join('\n')}\n`;
}

export interface NpmSandbox {
  /** Temp root; `home/`, `cache/` and `.npmrc` live in it. */
  dir: string;
  npmrcPath: string;
  cacheDir: string;
  /** (Re)writes the sandbox's `.npmrc`. */
  setNpmrc(o: NpmrcOptions): Promise<void>;
  /** Makes a directory in the sandbox (for a package or a consumer project). */
  mkdir(name: string): Promise<string>;
  /**
   * Runs `npm <args> --userconfig <.npmrc> --cache <cache> --no-audit --no-fund
   * --prefer-online`, with every inherited `npm_config_*` variable removed.
   */
  npm(args: string[], opts?: { cwd?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv }): Promise<RunResult>;
  close(): Promise<void>;
}

export async function createNpmSandbox(): Promise<NpmSandbox> {
  const dir = await makeTempDir('npm-client');
  const home = join(dir, 'home');
  const cacheDir = join(dir, 'cache');
  const npmrcPath = join(dir, '.npmrc');
  await mkdir(home, { recursive: true });
  await mkdir(cacheDir, { recursive: true });
  await writeFile(npmrcPath, '');
  return {
    dir,
    npmrcPath,
    cacheDir,
    async setNpmrc(o) {
      await writeFile(npmrcPath, npmrcText(o));
    },
    async mkdir(name) {
      const p = join(dir, name);
      await mkdir(p, { recursive: true });
      return p;
    },
    npm(args, opts = {}) {
      const env: NodeJS.ProcessEnv = {};
      for (const [k, v] of Object.entries(process.env)) {
        // npm run / vitest under npm leaks npm_config_* (registry, userconfig, cache…).
        if (/^npm_/i.test(k)) continue;
        env[k] = v;
      }
      Object.assign(env, {
        HOME: home,
        npm_config_globalconfig: join(dir, 'npmrc-global'),
        npm_config_update_notifier: 'false',
        NO_UPDATE_NOTIFIER: '1',
        ...opts.env,
      });
      return run(
        'npm',
        [...args, '--userconfig', npmrcPath, '--cache', cacheDir, '--no-audit', '--no-fund', '--prefer-online'],
        { cwd: opts.cwd ?? dir, env, timeoutMs: opts.timeoutMs ?? 60_000 },
      );
    },
    async close() {
      await removeDir(dir);
    },
  };
}

/** Writes a minimal package (package.json + index.js exporting `value`) into `dir`. */
export async function writeTinyPackage(dir: string, name: string, version: string, value = `${name}@${version}`): Promise<void> {
  await writeFile(join(dir, 'package.json'), JSON.stringify({ name, version, main: 'index.js', license: 'MIT' }, null, 2));
  await writeFile(join(dir, 'index.js'), `module.exports = { value: ${JSON.stringify(value)} };\n`);
}

export { describeRun };
