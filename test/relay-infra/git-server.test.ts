import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runGit, startGitServer, withCredentials, type GitServer } from '../helpers/relay/git-server.js';
import { rawHeaderValues, startRecordingUpstream } from '../helpers/relay/recording-upstream.js';
import { describeRun, makeTempDir, removeDir } from '../helpers/relay/util.js';

describe('git smart-HTTP server', () => {
  let git: GitServer;
  let work: string;
  let home: string;
  beforeAll(async () => {
    git = await startGitServer({ username: 'bot', password: 's3cret/with:odd@chars' });
    await git.createRepo('app', { 'README.md': '# app\n', 'src/index.js': 'console.log(1)\n' });
    work = await makeTempDir('git-client');
    home = await makeTempDir('git-client-home');
  });
  afterAll(async () => {
    await git.close();
    await removeDir(work);
    await removeDir(home);
    expect(existsSync(git.root)).toBe(false);
  });

  it('clones and pushes with credentials in the URL (after a 401 challenge)', async () => {
    git.reset();
    const remote = withCredentials(`${git.url}/app.git`, git.username, git.password);
    const dir = join(work, 'url-clone');
    const clone = await runGit(['clone', remote, dir], { home });
    expect(clone.code, describeRun('git clone', clone)).toBe(0);
    expect(await readFile(join(dir, 'src/index.js'), 'utf8')).toBe('console.log(1)\n');

    // git asks anonymously first, gets 401 + Basic, then sends the credentials.
    expect(git.requests[0]).toMatchObject({ method: 'GET', path: '/app.git/info/refs', query: 'service=git-upload-pack', hadAuthorization: false, status: 401 });
    expect(git.requests.slice(1).every((r) => r.authorized)).toBe(true);
    expect(git.requests.some((r) => r.method === 'POST' && r.path === '/app.git/git-upload-pack')).toBe(true);

    git.reset();
    await writeFile(join(dir, 'CHANGELOG.md'), 'pushed through the test\n');
    expect((await runGit(['-C', dir, 'add', '-A'], { home })).code).toBe(0);
    expect((await runGit(['-C', dir, 'commit', '-q', '-m', 'second'], { home })).code).toBe(0);
    const push = await runGit(['-C', dir, 'push', 'origin', 'main'], { home });
    expect(push.code, describeRun('git push', push)).toBe(0);
    expect(git.requests.some((r) => r.method === 'POST' && r.path === '/app.git/git-receive-pack' && r.status === 200)).toBe(true);
    const log = await git.gitInRepo('app', ['log', '--format=%s', 'main']);
    expect(log.stdout.trim().split('\n')).toEqual(['second', 'initial commit']);
  });

  it('clones and pushes a >1 MiB (chunked) pack with http.extraHeader, no challenge needed', async () => {
    git.reset();
    const extra = ['-c', `http.extraHeader=Authorization: ${git.authorization}`];
    const dir = join(work, 'header-clone');
    const clone = await runGit([...extra, 'clone', `${git.url}/app.git`, dir], { home });
    expect(clone.code, describeRun('git clone', clone)).toBe(0);
    expect(git.requests.every((r) => r.hadAuthorization && r.authorized)).toBe(true);

    git.reset();
    await writeFile(join(dir, 'blob.bin'), randomBytes(3 * 1024 * 1024)); // incompressible
    expect((await runGit(['-C', dir, 'add', '-A'], { home })).code).toBe(0);
    expect((await runGit(['-C', dir, 'commit', '-q', '-m', 'big'], { home })).code).toBe(0);
    const push = await runGit([...extra, '-C', dir, 'push', 'origin', 'main'], { home });
    expect(push.code, describeRun('git push', push)).toBe(0);
    const packPost = git.requests.find((r) => r.method === 'POST' && r.path === '/app.git/git-receive-pack' && r.headers['transfer-encoding'] === 'chunked');
    expect(packPost?.status).toBe(200);
    const log = await git.gitInRepo('app', ['log', '-1', '--format=%s', 'main']);
    expect(log.stdout.trim()).toBe('big');
  });

  it('refuses wrong credentials and no credentials', async () => {
    git.reset();
    const wrong = await runGit(['clone', withCredentials(`${git.url}/app.git`, git.username, 'nope'), join(work, 'wrong')], { home });
    expect(wrong.code).toBe(128);
    expect(wrong.stderr).toMatch(/Authentication failed/);
    const none = await runGit(['clone', `${git.url}/app.git`, join(work, 'none')], { home });
    expect(none.code).toBe(128);
    expect(none.stderr).toMatch(/could not read Username|Authentication failed/);
    expect(git.requests.length).toBeGreaterThan(0);
    expect(git.requests.every((r) => !r.authorized && r.status === 401)).toBe(true);
    expect(git.requests.some((r) => r.hadAuthorization)).toBe(true);
  });

  it('shows what git puts on the wire behind a path prefix: the password only after a Basic challenge', async () => {
    const seen: Record<string, Array<[string, string[]]>> = {};
    for (const challenge of ['Bearer realm="port"', 'Bearer realm="port", Basic realm="port"']) {
      const up = await startRecordingUpstream({
        routes: { '/': { kind: 'status', status: 401, body: { error: 'unauthorized' }, headers: { 'www-authenticate': challenge } } },
      });
      try {
        const r = await runGit(['clone', withCredentials(`${up.url}/relay/git/app.git`, 'x', 'port-token'), join(work, `wire-${Date.now()}`)], { home });
        expect(r.code).toBe(128);
        seen[challenge] = up.requests.map((q) => [q.url, rawHeaderValues(q.rawHeaders, 'authorization')]);
      } finally {
        await up.close();
      }
    }
    const url = '/relay/git/app.git/info/refs?service=git-upload-pack';
    // A Bearer-only challenge: git gives up without ever sending the token.
    expect(seen['Bearer realm="port"']).toEqual([[url, []]]);
    // Offering Basic: git retries once with the URL's credentials.
    expect(seen['Bearer realm="port", Basic realm="port"']).toEqual([
      [url, []],
      [url, [`Basic ${Buffer.from('x:port-token').toString('base64')}`]],
    ]);
  });
});
