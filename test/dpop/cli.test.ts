/**
 * The host-bound flow as a job runs it, through the real `port` bin: `port token exchange
 * --dpop-key` binds the token to the host key, `port creds --dpop-key` releases with a
 * proof, and `port agent proxy` carries git and curl to the relay with a fresh proof per
 * request. Port's public_url is its real address here, since every proof names it.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadOrCreateHostKey } from '../../src/dpop/host-key.js';
import { writeBuildkiteAgentShim } from '../../src/sim/index.js';
import { decodePart } from '../helpers/forge.js';
import { RELAY_POLICIES, type RelayHarness } from '../helpers/relay-harness.js';
import { runGit, startGitServer, type GitServer } from '../helpers/relay/git-server.js';
import { describeRun, freePort, makeTempDir, removeDir, run } from '../helpers/relay/util.js';
import { runPort, spawnPort, type Spawned } from '../helpers/spawn-port.js';
import { startDpopRelay } from './support.js';

const GIT_POLICY = `
@id("deploy-git")
@reason("deploy jobs may clone and push the app repository")
permit (principal is Port::Job, action == Port::Action::"proxy", resource == Port::Upstream::"git")
when { principal.pipeline_slug == "deploy" };
`;
const CREDS_POLICY = `
@id("deploy-token-cli")
permit (principal, action == Port::Action::"assume", resource == Port::Credential::"deploy-token")
when { principal.pipeline_slug == "deploy" };
`;

let h: RelayHarness;
let git: GitServer;
let dir: string;
let url: string;
let keyFile: string;
let proxy: Spawned | undefined;

beforeAll(async () => {
  git = await startGitServer({ username: 'git-bot', password: 'git-upstream-secret' });
  await git.createRepo('app', { 'README.md': '# app\n' });
  process.env.PORT_TEST_DPOP_GIT_PASSWORD = git.password;
  const p = await freePort();
  url = `http://127.0.0.1:${p}`;
  h = await startDpopRelay(
    { listen: `127.0.0.1:${p}`, public_url: url },
    { git: { url: git.url, timeout: 30, connect_timeout: 5, max_body: '64MiB', inject: { basic: { username: git.username, password: 'env:PORT_TEST_DPOP_GIT_PASSWORD' } } } },
    { ...RELAY_POLICIES, 'git.cedar': GIT_POLICY, 'creds.cedar': CREDS_POLICY },
  );
  dir = await makeTempDir('dpop-cli');
  keyFile = join(dir, 'state', 'port', 'dpop.jwk');
});
afterAll(async () => {
  await proxy?.stop();
  await h?.close();
  await git?.close();
  if (dir) await removeDir(dir);
  delete process.env.PORT_TEST_DPOP_GIT_PASSWORD;
});

/** A job step's environment: nothing from the test runner's Port or Buildkite variables. */
const jobEnv = (extra: Record<string, string> = {}) => ({ PORT_TOKEN: '', PORT_URL: '', PORT_DPOP_KEY: '', BUILDKITE_JOB_ID: '', BUILDKITE_BUILD_CHECKOUT_PATH: '', BUILDKITE_BUILD_PATH: '', ...extra });

async function exchange(args: string[], env: Record<string, string> = {}) {
  const subject = await h.sim.mintToken(h.sim.createJob({ pipelineSlug: 'deploy', branch: 'main' }), { audience: h.audience });
  return runPort(['token', 'exchange', '--url', url, '--stdin', ...args], { env: jobEnv(env), input: subject });
}

describe('port token exchange --dpop-key', () => {
  it('creates the host key (0600) and prints a token bound to it', async () => {
    const r = await exchange(['--dpop-key', keyFile, '--scope', 'deploy-token', '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const body = JSON.parse(r.stdout);
    expect(body.token_type).toBe('DPoP');
    const key = await loadOrCreateHostKey(keyFile);
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    expect(decodePart(body.access_token, 1).cnf).toEqual({ jkt: key.jkt });
    writeFileSync(join(dir, 'token'), `${body.access_token}\n`, { mode: 0o600 });
  });

  it('takes the key from $PORT_DPOP_KEY, and refuses one inside the build checkout', async () => {
    const r = await exchange([], { PORT_DPOP_KEY: keyFile });
    expect(r.code, r.stderr).toBe(0);
    const key = await loadOrCreateHostKey(keyFile);
    expect(decodePart(r.stdout.trim(), 1).cnf).toEqual({ jkt: key.jkt });

    const checkout = join(dir, 'checkout');
    const bad = await exchange(['--dpop-key', join(checkout, '.port', 'key.jwk')], { BUILDKITE_BUILD_CHECKOUT_PATH: checkout });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/inside BUILDKITE_BUILD_CHECKOUT_PATH/);
  });
});

describe('port creds --dpop-key', () => {
  it('releases a credential for a bound token with a proof; without the key Port refuses it', async () => {
    const token = readFileSync(join(dir, 'token'), 'utf8').trim();
    const ok = await runPort(['creds', 'deploy-token', '--url', url, '--dpop-key', keyFile], { env: jobEnv({ PORT_TOKEN: token }) });
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ name: 'deploy-token' });

    const bearer = await runPort(['creds', 'deploy-token', '--url', url], { env: jobEnv({ PORT_TOKEN: token }) });
    expect(bearer.code).toBe(1);
    expect(bearer.stdout).toBe('');
    expect(bearer.stderr).toMatch(/401 invalid_token.*bound to a host key/);
  });

  it("inside a job, exchanges the agent's Buildkite token for a bound token first, then releases with a proof", async () => {
    const shims = join(dir, 'shims');
    writeBuildkiteAgentShim(shims);
    const job = h.sim.createJob({ pipelineSlug: 'deploy', branch: 'main' });
    const env = jobEnv({ ...h.sim.jobEnv(job), PATH: `${shims}${delimiter}${process.env.PATH}`, PORT_URL: url, PORT_AUDIENCE: h.audience, PORT_DPOP_KEY: keyFile });
    const r = await runPort(['creds', 'deploy-token'], { env });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ name: 'deploy-token' });
  });
});

describe('port agent proxy', () => {
  it('refuses to listen anywhere but loopback', async () => {
    const r = await runPort(['agent', 'proxy', '--listen', '0.0.0.0:0', '--port-url', url, '--token-file', join(dir, 'token'), '--dpop-key', keyFile], { env: jobEnv() });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/loopback/);
  });

  it('forwards git clone and push, and curl GET and POST, to the relay with a fresh proof each', async () => {
    proxy = spawnPort(['agent', 'proxy', '--listen', '127.0.0.1:0', '--port-url', url, '--token-file', join(dir, 'token'), '--dpop-key', keyFile], { env: jobEnv() });
    const [, local] = (await proxy.waitFor(/forwarding (http:\/\/127\.0\.0\.1:\d+)\/relay\//)) as unknown as [string, string];
    const token = readFileSync(join(dir, 'token'), 'utf8').trim();

    // git: a clone (GET info/refs + POST upload-pack) and a push (POST receive-pack with the pack as body).
    const home = await makeTempDir('dpop-git-home');
    const work = join(dir, 'app');
    const clone = await runGit(['clone', `${local}/relay/git/app.git`, work], { home });
    expect(clone.code, describeRun('git clone', clone)).toBe(0);
    expect(await readFile(join(work, 'README.md'), 'utf8')).toBe('# app\n');
    writeFileSync(join(work, 'deploy.txt'), 'deployed through a host-bound token\n');
    // Over git's 1 MiB http.postBuffer, so the push's pack goes as a chunked, streamed body.
    writeFileSync(join(work, 'bundle.bin'), randomBytes(3 * 1024 * 1024));
    for (const args of [['add', '-A'], ['commit', '-q', '-m', 'deploy note'], ['push', '-q', 'origin', 'main']]) {
      const r = await runGit(['-C', work, ...args], { home });
      expect(r.code, describeRun(`git ${args.join(' ')}`, r)).toBe(0);
    }
    const log = await git.gitInRepo('app', ['log', '--format=%s', 'main']);
    expect(log.stdout.trim().split('\n')[0]).toBe('deploy note');
    expect(git.requests.some((r) => r.method === 'POST' && r.path.endsWith('/git-receive-pack'))).toBe(true);
    await removeDir(home);
    // The git server saw only its own credential: neither the token nor a proof.
    for (const req of git.requests) {
      expect(req.authorization).toBe(git.authorization);
      expect(req.rawHeaders.join('\n')).not.toMatch(/dpop/i);
      expect(req.rawHeaders.join('\n')).not.toContain(token);
    }

    // curl: a GET with a query and a POST with a body, to the recording upstream.
    const get = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', `${local}/relay/files/docs/readme.txt?rev=2`]);
    expect(get.stdout, describeRun('curl GET', get)).toBe('200');
    expect(h.upstream.requests.at(-1)!.url).toBe('/base/docs/readme.txt?rev=2');
    const post = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '--data-binary', 'uploaded via the agent proxy', '-H', 'content-type: text/plain', `${local}/relay/files/uploads/a.txt`]);
    expect(post.stdout, describeRun('curl POST', post)).toBe('200');
    const seen = h.upstream.requests.at(-1)!;
    expect(seen.method).toBe('POST');
    expect(seen.body?.toString()).toBe('uploaded via the agent proxy');
    expect(seen.headers.dpop).toBeUndefined();

    // Only /relay/ is forwarded, and only to a loopback Host.
    expect((await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', `${local}/oauth/token`])).stdout).toBe('404');
    expect((await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '-H', 'host: evil.example', `${local}/relay/files/x`])).stdout).toBe('421');
    // The proxy's proofs did not let a copy of the token through without one.
    const copied = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '-H', `authorization: Bearer ${token}`, `${url}/relay/files/x`]);
    expect(copied.stdout).toBe('401');
    expect(proxy.stderr()).not.toContain(token);
  });
});
