/**
 * A smart-HTTP git server for relay tests: a Node HTTP server that demands HTTP Basic auth
 * (the credential Port will inject) and hands every authorised request to
 * `git http-backend` as a CGI, streaming the request body into its stdin and its answer
 * back out. Supports clone/fetch (git-upload-pack) and push (git-receive-pack).
 *
 * How git sends credentials (matters because Port sits in between):
 *  - With `http://user:pass@host/…` (or a credential helper) git first sends each new
 *    request WITHOUT `Authorization`; only after a 401 that offers `WWW-Authenticate: Basic`
 *    does it retry with `Authorization: Basic base64(user:pass)`, and then keeps sending it
 *    on that connection's later requests. So Port's 401 for an anonymous relay request must
 *    offer Basic, or git never sends the Port token.
 *  - With `-c http.extraHeader="Authorization: Basic …"` (what Buildkite-style checkouts
 *    often do) the header goes on every request from the first one.
 *  - A push whose pack exceeds `http.postBuffer` (1 MiB) is sent with
 *    `Transfer-Encoding: chunked`, preceded by a small probe POST; smaller packs carry
 *    `Content-Length`. The body of a fetch POST may be `Content-Encoding: gzip`.
 */
import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { closeServer, describeRun, makeTempDir, removeDir, run, trackSockets, type RunResult } from './util.js';

export const GIT_HTTP_BACKEND = '/usr/lib/git-core/git-http-backend';

export interface GitRequest {
  method: string;
  /** Path as received (undecoded), without the query. */
  path: string;
  query: string;
  /** An `Authorization` header arrived. */
  hadAuthorization: boolean;
  /** It was Basic with the configured username and password. */
  authorized: boolean;
  /** The raw `Authorization` value, so tests can check which credential reached the server. */
  authorization?: string;
  headers: IncomingMessage['headers'];
  rawHeaders: string[];
  /** The status the server answered with. */
  status?: number;
}

export interface GitServerOptions {
  username?: string;
  password?: string;
}

export interface GitServer {
  /** `http://127.0.0.1:PORT` — repos are at `${url}/<name>.git`. */
  url: string;
  host: string;
  port: number;
  username: string;
  password: string;
  /** `Basic base64(username:password)` — the value Port injects. */
  authorization: string;
  /** Directory holding the bare repos (`<name>.git`). */
  root: string;
  requests: GitRequest[];
  /** Creates `<root>/<name>.git` (bare, branch `main`, push enabled) with one commit of `files`. */
  createRepo(name: string, files: Record<string, string>): Promise<string>;
  /** Runs git against a bare repo on the server side (e.g. `log`, `cat-file`). */
  gitInRepo(name: string, args: string[]): Promise<RunResult>;
  reset(): void;
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------
// Running git in isolation

/**
 * Environment for a git process that ignores the user's and the system's configuration:
 * temp HOME, no system config, no terminal prompts, fixed identity.
 */
export function isolatedGitEnv(home: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const k of ['PATH', 'LANG', 'TMPDIR']) if (process.env[k]) env[k] = process.env[k];
  return {
    ...env,
    HOME: home,
    XDG_CONFIG_HOME: join(home, '.config'),
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_TERMINAL_PROMPT: '0',
    GIT_ASKPASS: '/bin/false',
    SSH_ASKPASS: '/bin/false',
    GIT_AUTHOR_NAME: 'Port Test',
    GIT_AUTHOR_EMAIL: 'test@port.invalid',
    GIT_COMMITTER_NAME: 'Port Test',
    GIT_COMMITTER_EMAIL: 'test@port.invalid',
    ...extra,
  };
}

/**
 * Runs `git -c credential.helper= <args>` with an isolated environment. Pass `home` to
 * reuse one; otherwise a temp HOME is made and removed for this call.
 */
export async function runGit(
  args: string[],
  opts: { cwd?: string; home?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<RunResult> {
  const home = opts.home ?? (await makeTempDir('git-home'));
  try {
    return await run('git', ['-c', 'credential.helper=', '-c', 'init.defaultBranch=main', ...args], {
      cwd: opts.cwd,
      env: isolatedGitEnv(home, opts.env),
      timeoutMs: opts.timeoutMs ?? 30_000,
    });
  } finally {
    if (!opts.home) await removeDir(home);
  }
}

async function mustGit(args: string[], opts: Parameters<typeof runGit>[1]): Promise<RunResult> {
  const r = await runGit(args, opts);
  if (r.code !== 0) throw new Error(describeRun(`git ${args.join(' ')}`, r));
  return r;
}

// ---------------------------------------------------------------------------------------

export async function startGitServer(opts: GitServerOptions = {}): Promise<GitServer> {
  const username = opts.username ?? 'git-bot';
  const password = opts.password ?? 'upstream-git-secret';
  const authorization = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
  const dir = await makeTempDir('git');
  const root = join(dir, 'repos');
  const home = join(dir, 'home');
  await mkdir(root, { recursive: true });
  await mkdir(home, { recursive: true });
  const requests: GitRequest[] = [];
  const children = new Set<import('node:child_process').ChildProcess>();

  function checkAuth(header: string | undefined): boolean {
    if (!header) return false;
    const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
    if (!m) return false;
    const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
    const i = decoded.indexOf(':');
    return i >= 0 && decoded.slice(0, i) === username && decoded.slice(i + 1) === password;
  }

  function handle(req: IncomingMessage, res: ServerResponse) {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const rec: GitRequest = {
      method: req.method ?? '',
      path: q >= 0 ? url.slice(0, q) : url,
      query: q >= 0 ? url.slice(q + 1) : '',
      hadAuthorization: req.headers.authorization !== undefined,
      authorized: checkAuth(req.headers.authorization),
      ...(req.headers.authorization !== undefined ? { authorization: req.headers.authorization } : {}),
      headers: { ...req.headers },
      rawHeaders: [...req.rawHeaders],
    };
    requests.push(rec);
    const reply = (status: number, text: string, headers: Record<string, string> = {}) => {
      rec.status = status;
      req.resume();
      if (res.headersSent) return void res.destroy();
      res.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(text), ...headers });
      res.end(text);
    };
    if (!rec.authorized) {
      return reply(401, 'authentication required\n', { 'www-authenticate': 'Basic realm="git"' });
    }
    let pathInfo: string;
    try {
      pathInfo = decodeURIComponent(rec.path);
    } catch {
      return reply(400, 'bad path\n');
    }

    const env: NodeJS.ProcessEnv = {
      ...isolatedGitEnv(home),
      GIT_PROJECT_ROOT: root,
      GIT_HTTP_EXPORT_ALL: '1',
      GATEWAY_INTERFACE: 'CGI/1.1',
      SERVER_PROTOCOL: `HTTP/${req.httpVersion}`,
      REQUEST_METHOD: rec.method,
      PATH_INFO: pathInfo,
      QUERY_STRING: rec.query,
      REMOTE_USER: username,
      REMOTE_ADDR: req.socket.remoteAddress ?? '127.0.0.1',
    };
    const h = req.headers;
    if (h['content-type']) env.CONTENT_TYPE = h['content-type'];
    // Without CONTENT_LENGTH (a chunked request) http-backend reads stdin to EOF.
    if (h['content-length']) env.CONTENT_LENGTH = h['content-length'];
    if (h['content-encoding']) env.HTTP_CONTENT_ENCODING = h['content-encoding'];
    if (h['git-protocol']) env.HTTP_GIT_PROTOCOL = String(h['git-protocol']);
    if (h.accept) env.HTTP_ACCEPT = h.accept;

    const child = spawn(GIT_HTTP_BACKEND, [], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    children.add(child);
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.stdin.on('error', () => {}); // the backend may exit before reading everything
    req.pipe(child.stdin);
    req.on('aborted', () => child.kill('SIGKILL'));
    res.on('close', () => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    child.once('error', (err) => reply(500, `cannot run git http-backend: ${err.message}\n`));
    child.once('close', (code) => {
      children.delete(child);
      if (!res.headersSent) reply(500, `git http-backend exited ${code} before its headers:\n${stderr}`);
    });

    // Parse the CGI header block ("Status: 200 OK", "Content-Type: …", blank line), then stream.
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const m = /\r?\n\r?\n/.exec(head.toString('latin1'));
      if (!m) return;
      child.stdout.pause();
      child.stdout.off('data', onData);
      const headerText = head.subarray(0, m.index).toString('latin1');
      const rest = head.subarray(m.index + m[0].length);
      let status = 200;
      const headers: Record<string, string> = {};
      for (const line of headerText.split(/\r?\n/)) {
        const i = line.indexOf(':');
        if (i <= 0) continue;
        const name = line.slice(0, i).trim();
        const value = line.slice(i + 1).trim();
        if (name.toLowerCase() === 'status') status = parseInt(value, 10) || 500;
        else headers[name] = value;
      }
      rec.status = status;
      res.writeHead(status, headers);
      if (rest.length) res.write(rest);
      child.stdout.pipe(res);
    };
    child.stdout.on('data', onData);
  }

  const server = createServer(handle);
  const sockets = trackSockets(server);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;

  return {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    port,
    username,
    password,
    authorization,
    root,
    requests,
    async createRepo(name, files) {
      const bare = join(root, `${name}.git`);
      await mustGit(['init', '--quiet', '--bare', '-b', 'main', bare], { home });
      await mustGit(['-C', bare, 'config', 'http.receivepack', 'true'], { home });
      const work = await makeTempDir('git-seed');
      try {
        for (const [path, content] of Object.entries(files)) {
          await mkdir(dirname(join(work, path)), { recursive: true });
          await writeFile(join(work, path), content);
        }
        const g = ['--git-dir', bare, '--work-tree', work];
        await mustGit([...g, 'add', '-A'], { home });
        await mustGit([...g, 'commit', '--quiet', '-m', 'initial commit'], { home });
      } finally {
        await removeDir(work);
      }
      return bare;
    },
    gitInRepo(name, args) {
      return runGit(['--git-dir', join(root, `${name}.git`), ...args], { home });
    },
    reset() {
      requests.length = 0;
    },
    async close() {
      await Promise.all(
        [...children].map((c) => new Promise<void>((r) => (c.exitCode !== null || c.signalCode !== null ? r() : (c.once('close', () => r()), c.kill('SIGKILL'))))),
      );
      await closeServer(server, sockets);
      await removeDir(dir);
    },
  };
}

/** `http://user:pass@host/…` with both parts percent-encoded. */
export function withCredentials(url: string, username: string, password: string): string {
  const u = new URL(url);
  u.username = encodeURIComponent(username);
  u.password = encodeURIComponent(password);
  return u.toString();
}
