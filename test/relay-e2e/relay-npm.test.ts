/**
 * npm through Port's relay: a real `npm` client, Port, and a private registry (verdaccio,
 * no uplinks) that only serves authenticated users. The job's `.npmrc` holds its Port
 * token for the relay URL; Port swaps it for verdaccio's own token (`inject: bearer`).
 *
 * Start-up order. Port reads injected secrets at start, so verdaccio's login token must
 * exist before Port starts; and verdaccio must know Port's relay URL when it starts
 * (VERDACCIO_PUBLIC_URL), or the tarball URLs in its packuments point at verdaccio itself
 * and npm fetches them around Port, without credentials. So Port's port is chosen first,
 * verdaccio starts with `publicUrl` = Port's relay route and logs in, and then Port starts
 * on the chosen port with verdaccio's token in its environment.
 *
 * Between Port and verdaccio sits a transparent recording tap: verdaccio logs no request
 * headers, and the tap shows exactly what reached it (the injected token, never Port's).
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startHarness, TEST_POLICIES, type Harness } from '../helpers/port-harness.js';
import { headersMention, jobToken, startRecordingTap, type RecordingTap } from '../helpers/relay-clients.js';
import { createNpmSandbox, describeRun, startNpmRegistry, writeTinyPackage, type NpmRegistry, type NpmSandbox } from '../helpers/relay/npm-registry.js';
import { freePort } from '../helpers/relay/util.js';

const NPM_POLICIES: Record<string, string> = {
  ...TEST_POLICIES,
  'npm.cedar': `
@id("npm-read")
@reason("acme jobs may install packages")
permit (principal is Port::Job, action == Port::Action::"proxy", resource == Port::Upstream::"npm")
when { principal in Port::Organization::"acme" && (context.method == "GET" || context.method == "HEAD") };

@id("npm-publish-on-tags")
@reason("packages are published from tag builds")
permit (principal is Port::Job, action == Port::Action::"proxy", resource == Port::Upstream::"npm")
when { principal.tag != "" && context.method == "PUT" && !(context.path like "/-/*") };
`,
};

const NPM_TOKEN_ENV = 'PORT_TEST_NPM_TOKEN';
const PKG = 'port-relay-e2e-pkg';

let reg: NpmRegistry | undefined;
let tap: RecordingTap | undefined;
let h: Harness;
let relayRegistry: string;
const sandboxes: NpmSandbox[] = [];

/** Port on a port chosen up front, verdaccio pointing its tarball URLs at Port's relay route. */
async function startStack(): Promise<void> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const portPort = await freePort();
    relayRegistry = `http://127.0.0.1:${portPort}/relay/npm/`;
    reg = await startNpmRegistry({ publicUrl: relayRegistry });
    tap = await startRecordingTap(reg.url);
    process.env[NPM_TOKEN_ENV] = reg.token;
    try {
      h = await startHarness({
        policies: NPM_POLICIES,
        config: {
          server: { listen: `127.0.0.1:${portPort}`, public_url: 'https://port.acme.test', log_level: 'silent' },
          relay: { decision_cache_ttl: 5, allow_log_window: 3600 },
          upstreams: {
            // Scoped names travel as `@scope%2Fname`: this route keeps %2F encoded.
            npm: { url: tap.url, timeout: 30, connect_timeout: 5, max_body: '10MiB', encoded_slashes: 'keep', inject: { bearer: `env:${NPM_TOKEN_ENV}` } },
          },
        },
      });
    } catch (err) {
      lastError = err;
      await tap.close();
      await reg.close();
      tap = reg = undefined;
      // Only a lost race for the chosen port is worth another try.
      if (!/EADDRINUSE/.test(String((err as Error)?.message ?? err))) break;
      continue;
    }
    expect(h.url).toBe(`http://127.0.0.1:${portPort}`);
    return;
  }
  throw lastError;
}

async function sandboxFor(token: string | undefined, registry = relayRegistry): Promise<NpmSandbox> {
  const sb = await createNpmSandbox();
  sandboxes.push(sb);
  await sb.setNpmrc({ registry, ...(token !== undefined ? { authToken: token } : {}) });
  return sb;
}

/** The versions verdaccio holds for PKG, asked of verdaccio directly with its own credential. */
async function versionsInRegistry(): Promise<string[]> {
  const res = await fetch(`${reg!.url}${PKG}`, { headers: { authorization: reg!.bearer } });
  if (res.status === 404) return [];
  expect(res.status).toBe(200);
  return Object.keys(((await res.json()) as { versions: Record<string, unknown> }).versions).sort();
}

/** Everything that reached verdaccio carried verdaccio's token and nothing of the given Port tokens. */
function expectOnlyInjectedCredentials(...portTokens: string[]) {
  expect(tap!.requests.length).toBeGreaterThan(0);
  for (const r of tap!.requests) {
    expect(r.headers.authorization, `${r.method} ${r.url}`).toBe(reg!.bearer);
    for (const t of portTokens) expect(headersMention(r.rawHeaders, t), `${r.method} ${r.url} carries the Port token`).toBe(false);
  }
}

beforeAll(async () => {
  await startStack();
}, 90_000);

afterAll(async () => {
  for (const sb of sandboxes) await sb.close();
  await h?.close();
  await tap?.close();
  await reg?.close();
  delete process.env[NPM_TOKEN_ENV];
});

beforeEach(() => tap?.reset());

describe('npm through the relay', () => {
  let tagToken: string;

  it('publishes from a tag build (allowed); verdaccio sees its own token, never the Port token', async () => {
    tagToken = await jobToken(h, { pipelineSlug: 'lib', branch: 'main', tag: 'v1.0.0' });
    const sb = await sandboxFor(tagToken);
    const pkg = await sb.mkdir('pkg');
    await writeTinyPackage(pkg, PKG, '1.0.0', 'published through Port');
    const pub = await sb.npm(['publish'], { cwd: pkg });
    expect(pub.code, describeRun('npm publish', pub)).toBe(0);

    expect(await versionsInRegistry()).toEqual(['1.0.0']);
    const put = tap!.requests.find((r) => r.method === 'PUT');
    expect(put).toMatchObject({ url: `/${PKG}`, status: 201 });
    expect(put!.bodyBytes).toBeGreaterThan(0);
    expectOnlyInjectedCredentials(tagToken);
  }, 60_000);

  it('installs into another dir from a branch build (allowed), tarball fetched through Port', async () => {
    expect(await versionsInRegistry()).toEqual(['1.0.0']);
    const branchToken = await jobToken(h, { pipelineSlug: 'app', branch: 'feature/x' });
    const sb = await sandboxFor(branchToken);
    const app = await sb.mkdir('app');
    const inst = await sb.npm(['install', `${PKG}@1.0.0`], { cwd: app });
    expect(inst.code, describeRun('npm install', inst)).toBe(0);
    expect(await readFile(join(app, 'node_modules', PKG, 'index.js'), 'utf8')).toContain('published through Port');

    // The packument and the tarball both came through Port (publicUrl points tarballs at the relay).
    const seen = tap!.requests.map((r) => [r.method, r.url, r.status]);
    expect(seen).toEqual(expect.arrayContaining([['GET', `/${PKG}`, 200], ['GET', `/${PKG}/-/${PKG}-1.0.0.tgz`, 200]]));
    expectOnlyInjectedCredentials(branchToken);
    const lock = JSON.parse(await readFile(join(app, 'package-lock.json'), 'utf8')) as { packages: Record<string, { resolved?: string }> };
    expect(lock.packages[`node_modules/${PKG}`]!.resolved).toBe(`${relayRegistry}${PKG}/-/${PKG}-1.0.0.tgz`);
  }, 60_000);

  it('publishes and installs a scoped package (@scope%2Fname) on a route that keeps encoded slashes', async () => {
    const scoped = '@acme/port-relay-scoped';
    const tag = await jobToken(h, { pipelineSlug: 'lib', branch: 'main', tag: 'v2.0.0' });
    const pubBox = await sandboxFor(tag);
    const pkg = await pubBox.mkdir('scoped');
    await writeTinyPackage(pkg, scoped, '2.0.0', 'scoped through Port');
    const pub = await pubBox.npm(['publish'], { cwd: pkg });
    expect(pub.code, describeRun('npm publish (scoped)', pub)).toBe(0);
    const branch = await jobToken(h, { pipelineSlug: 'app', branch: 'feature/y' });
    const installBox = await sandboxFor(branch);
    const app = await installBox.mkdir('scoped-app');
    const inst = await installBox.npm(['install', `${scoped}@2.0.0`], { cwd: app });
    expect(inst.code, describeRun('npm install (scoped)', inst)).toBe(0);
    expect(await readFile(join(app, 'node_modules', '@acme', 'port-relay-scoped', 'index.js'), 'utf8')).toContain('scoped through Port');
    // The policy saw, and verdaccio received, the same encoded name.
    expect(tap!.requests.some((r) => r.method === 'GET' && r.url.startsWith('/@acme%2F'))).toBe(true);
    expectOnlyInjectedCredentials(tag, branch);
  }, 60_000);

  it('the same install straight to verdaccio without Port (no credentials) is refused', async () => {
    const sb = await sandboxFor(undefined, reg!.url);
    const app = await sb.mkdir('direct');
    const inst = await sb.npm(['install', `${PKG}@1.0.0`], { cwd: app });
    expect(inst.code).not.toBe(0);
    expect(inst.stderr).toMatch(/E401/);
    expect(existsSync(join(app, 'node_modules', PKG))).toBe(false);
    // And the Port token itself is worthless to verdaccio.
    const withPortToken = await fetch(`${reg!.url}${PKG}`, { headers: { authorization: `Bearer ${tagToken ?? (await jobToken(h))}` } });
    expect(withPortToken.status).toBe(401);
  }, 60_000);

  it('refuses a publish by a branch build: npm fails with 403, verdaccio gets nothing and has no new version', async () => {
    const branchToken = await jobToken(h, { pipelineSlug: 'lib', branch: 'main' });
    const sb = await sandboxFor(branchToken);
    const pkg = await sb.mkdir('pkg');
    await writeTinyPackage(pkg, PKG, '1.0.1', 'should never be published');
    const pub = await sb.npm(['publish'], { cwd: pkg });
    expect(pub.code, describeRun('npm publish', pub)).not.toBe(0);
    expect(pub.stderr).toMatch(/E403/);
    // npm prints the error code from Port's JSON body.
    expect(pub.stderr).toMatch(new RegExp(`403 Forbidden - PUT ${relayRegistry}${PKG} - access_denied`));
    expect(tap!.requests.some((r) => r.method === 'PUT')).toBe(false);
    expect(await versionsInRegistry()).toEqual(['1.0.0']);

    const last = await h.port.store.decisions.last();
    expect(last!.record).toMatchObject({ action: 'proxy', decision: 'deny', context: { upstream: 'npm', method: 'PUT', path: `/${PKG}` } });
  }, 60_000);
});
