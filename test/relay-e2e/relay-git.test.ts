/**
 * git over smart HTTP through Port's relay: a real `git` client, Port, and a git server
 * running `git http-backend` that demands its own Basic credentials (which Port injects).
 * The job presents its Port token as the Basic-auth password in the remote URL.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { TEST_POLICIES } from '../helpers/port-harness.js';
import { headersMention } from '../helpers/relay-clients.js';
import { startRelayHarness, type RelayHarness } from '../helpers/relay-harness.js';
import { runGit, startGitServer, withCredentials, type GitServer } from '../helpers/relay/git-server.js';
import { describeRun, makeTempDir, removeDir } from '../helpers/relay/util.js';

/**
 * Smart HTTP has four request shapes:
 *   clone/fetch: GET  /<repo>.git/info/refs?service=git-upload-pack,  POST /<repo>.git/git-upload-pack
 *   push:        GET  /<repo>.git/info/refs?service=git-receive-pack, POST /<repo>.git/git-receive-pack
 * The policy sees `context.path` without the query string, so the two ref-advertisement
 * GETs are the same request to it: a policy cannot tell "discover refs to fetch" from
 * "discover refs to push". That is acceptable because the advertisement is read-only (it
 * lists the refs a reader sees anyway); the write is the POST to git-receive-pack, and
 * that is what the push rule gates. So readers may GET info/refs, and a reader's push gets
 * as far as the discovery and is refused at the receive-pack POST.
 */
const GIT_POLICIES: Record<string, string> = {
  ...TEST_POLICIES,
  'git.cedar': `
@id("git-read")
@reason("app and release jobs may clone and fetch")
permit (principal is Port::Job, action == Port::Action::"proxy", resource == Port::Upstream::"git")
when {
  ["app", "release"].contains(principal.pipeline_slug) &&
  ((context.method == "GET" && context.path like "/*.git/info/refs") ||
   (context.method == "POST" && context.path like "/*.git/git-upload-pack"))
};

@id("git-push-release-main")
@reason("only release builds of main may push")
permit (principal is Port::Job, action == Port::Action::"proxy", resource == Port::Upstream::"git")
when {
  principal.pipeline_slug == "release" && principal.branch == "main" &&
  context.method == "POST" && context.path like "/*.git/git-receive-pack"
};
`,
};

const GIT_PASSWORD_ENV = 'PORT_TEST_GIT_PASSWORD';

let git: GitServer;
let h: RelayHarness;
let work: string;
let home: string;
let appToken: string;
let releaseToken: string;

beforeAll(async () => {
  git = await startGitServer({ username: 'git-bot', password: 'upstream-git-secret/with:odd@chars' });
  await git.createRepo('app', { 'README.md': '# app\n', 'src/index.js': 'console.log("app")\n' });
  process.env[GIT_PASSWORD_ENV] = git.password;
  h = await startRelayHarness({
    policies: GIT_POLICIES,
    upstreams: () => ({
      git: {
        url: git.url,
        timeout: 30,
        connect_timeout: 5,
        max_body: '64MiB',
        inject: { basic: { username: git.username, password: `env:${GIT_PASSWORD_ENV}` } },
      },
    }),
  });
  work = await makeTempDir('git-e2e');
  home = await makeTempDir('git-e2e-home');
  appToken = await h.token({ pipelineSlug: 'app', branch: 'main' });
  releaseToken = await h.token({ pipelineSlug: 'release', branch: 'main' });
});

afterAll(async () => {
  await h?.close();
  await git?.close();
  if (work) await removeDir(work);
  if (home) await removeDir(home);
  delete process.env[GIT_PASSWORD_ENV];
});

beforeEach(() => git.reset());

/** The repo's URL through Port, with the Port token as the Basic-auth password. */
const remote = (token: string, repo = 'app') => withCredentials(h.relayUrl(`/git/${repo}.git`), 'buildkite', token);
let n = 0;
const fresh = (name: string) => join(work, `${name}-${++n}`);

async function commitFile(dir: string, file: string, content: string | Buffer, message: string) {
  await writeFile(join(dir, file), content);
  for (const args of [['add', '-A'], ['commit', '-q', '-m', message]]) {
    const r = await runGit(['-C', dir, ...args], { home });
    expect(r.code, describeRun(`git ${args.join(' ')}`, r)).toBe(0);
  }
}

async function serverLog(): Promise<string[]> {
  const r = await git.gitInRepo('app', ['log', '--format=%s', 'main']);
  expect(r.code, describeRun('git log', r)).toBe(0);
  return r.stdout.trim().split('\n');
}

/** The git server saw only its own credential (injected by Port), never anything of the Port token. */
function expectOnlyInjectedCredentials(...tokens: string[]) {
  expect(git.requests.length).toBeGreaterThan(0);
  for (const r of git.requests) {
    expect(r.authorization, `${r.method} ${r.path}`).toBe(git.authorization);
    for (const t of tokens) expect(headersMention(r.rawHeaders, t), `${r.method} ${r.path} carries the Port token`).toBe(false);
  }
}

describe('git smart HTTP through the relay', () => {
  it('clones for an app job with the Port token as the Basic password; the server sees only its own credential', async () => {
    const dir = fresh('clone');
    const clone = await runGit(['clone', remote(appToken), dir], { home });
    expect(clone.code, describeRun('git clone', clone)).toBe(0);
    expect(await readFile(join(dir, 'README.md'), 'utf8')).toBe('# app\n');
    expect(await readFile(join(dir, 'src/index.js'), 'utf8')).toBe('console.log("app")\n');

    // git's anonymous first request got Port's 401 (offering Basic) and never reached the server.
    expect(git.requests.map((r) => [r.method, r.path, r.query, r.status])).toEqual(
      expect.arrayContaining([
        ['GET', '/app.git/info/refs', 'service=git-upload-pack', 200],
        ['POST', '/app.git/git-upload-pack', '', 200],
      ]),
    );
    expectOnlyInjectedCredentials(appToken);
    expect(git.requests.every((r) => !r.path.startsWith('/relay'))).toBe(true);
  });

  it('pushes for a release job of main (small pack, then a >1 MiB chunked pack)', async () => {
    const dir = fresh('release');
    const clone = await runGit(['clone', remote(releaseToken), dir], { home });
    expect(clone.code, describeRun('git clone', clone)).toBe(0);

    git.reset();
    await commitFile(dir, 'CHANGELOG.md', 'released through Port\n', 'release notes');
    const push = await runGit(['-C', dir, 'push', 'origin', 'main'], { home });
    expect(push.code, describeRun('git push', push)).toBe(0);
    expect(git.requests.map((r) => [r.method, r.path, r.query, r.status])).toEqual([
      ['GET', '/app.git/info/refs', 'service=git-receive-pack', 200],
      ['POST', '/app.git/git-receive-pack', '', 200],
    ]);
    expectOnlyInjectedCredentials(releaseToken);
    expect((await serverLog())[0]).toBe('release notes');

    // Larger than http.postBuffer: git probes, then streams the pack with Transfer-Encoding: chunked.
    git.reset();
    await commitFile(dir, 'blob.bin', randomBytes(3 * 1024 * 1024), 'big release');
    const big = await runGit(['-C', dir, 'push', 'origin', 'main'], { home, timeoutMs: 60_000 });
    expect(big.code, describeRun('git push (chunked)', big)).toBe(0);
    const packPost = git.requests.find((r) => r.method === 'POST' && r.path === '/app.git/git-receive-pack' && r.headers['transfer-encoding'] === 'chunked');
    expect(packPost?.status).toBe(200);
    expectOnlyInjectedCredentials(releaseToken);
    expect((await serverLog()).slice(0, 2)).toEqual(['big release', 'release notes']);
  }, 90_000);

  it('refuses a push by an app job: git fails, the server gets the ref discovery but no receive-pack POST', async () => {
    const dir = fresh('app-push');
    const clone = await runGit(['clone', remote(appToken), dir], { home });
    expect(clone.code, describeRun('git clone', clone)).toBe(0);
    const before = await serverLog();

    git.reset();
    await commitFile(dir, 'HACK.md', 'an app job should not push\n', 'unauthorised push');
    const push = await runGit(['-C', dir, 'push', 'origin', 'main'], { home });
    expect(push.code, describeRun('git push', push)).not.toBe(0);
    expect(push.stderr).toMatch(/403/);
    // The receive-pack discovery is a GET of info/refs, which the read rule allows (see the policy's comment).
    expect(git.requests.map((r) => [r.method, r.path, r.query])).toEqual([['GET', '/app.git/info/refs', 'service=git-receive-pack']]);
    expect(git.requests.some((r) => r.method === 'POST')).toBe(false);
    expectOnlyInjectedCredentials(appToken);
    expect(await serverLog()).toEqual(before);

    const last = await h.port.store.decisions.last();
    expect(last!.record).toMatchObject({
      action: 'proxy',
      decision: 'deny',
      context: { upstream: 'git', method: 'POST', path: '/app.git/git-receive-pack' },
    });
  });

  it('refuses a push by a release job of another branch, and a clone by a job of another pipeline', async () => {
    const branchToken = await h.token({ pipelineSlug: 'release', branch: 'feature/x' });
    const dir = fresh('branch-push');
    const clone = await runGit(['clone', remote(branchToken), dir], { home });
    expect(clone.code, describeRun('git clone', clone)).toBe(0);
    const before = await serverLog();
    git.reset();
    await commitFile(dir, 'BRANCH.md', 'from a feature branch build\n', 'feature push');
    const push = await runGit(['-C', dir, 'push', 'origin', 'HEAD:main'], { home });
    expect(push.code, describeRun('git push', push)).not.toBe(0);
    expect(git.requests.some((r) => r.method === 'POST')).toBe(false);
    expect(await serverLog()).toEqual(before);

    git.reset();
    const otherToken = await h.token({ pipelineSlug: 'web', branch: 'main' });
    const other = fresh('other-clone');
    const denied = await runGit(['clone', remote(otherToken), other], { home });
    expect(denied.code).toBe(128);
    expect(denied.stderr).toMatch(/403/);
    expect(existsSync(join(other, 'README.md'))).toBe(false);
    expect(git.requests).toHaveLength(0);
  });

  it('refuses a clone with a revoked token (401); the server sees nothing', async () => {
    const token = await h.token({ pipelineSlug: 'app', branch: 'main' });
    const ok = await runGit(['clone', remote(token), fresh('before-revoke')], { home });
    expect(ok.code, describeRun('git clone', ok)).toBe(0);
    expect((await h.post('/oauth/revoke', { token })).status).toBe(200);

    git.reset();
    const dir = fresh('revoked');
    const clone = await runGit(['clone', remote(token), dir], { home });
    expect(clone.code).toBe(128);
    expect(clone.stderr).toMatch(/Authentication failed|401/);
    expect(existsSync(join(dir, 'README.md'))).toBe(false);
    expect(git.requests).toHaveLength(0);
  });
});
