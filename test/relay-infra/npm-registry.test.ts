import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rawHeaderValues, startRecordingUpstream } from '../helpers/relay/recording-upstream.js';
import { createNpmSandbox, describeRun, startNpmRegistry, writeTinyPackage, type NpmRegistry, type NpmSandbox } from '../helpers/relay/npm-registry.js';

describe('npm registry (verdaccio, no uplinks)', () => {
  let reg: NpmRegistry;
  let sb: NpmSandbox;
  beforeAll(async () => {
    reg = await startNpmRegistry();
    sb = await createNpmSandbox();
  });
  afterAll(async () => {
    await sb?.close();
    await reg?.close();
  });

  it('takes the token as Bearer and the user as Basic; refuses anonymous and wrong credentials', async () => {
    const whoami = async (authorization?: string) => {
      const res = await fetch(`${reg.url}-/whoami`, { headers: authorization ? { authorization } : {} });
      return { status: res.status, body: (await res.json()) as { username?: string } };
    };
    expect(await whoami(reg.bearer)).toEqual({ status: 200, body: { username: reg.username } });
    expect(await whoami(reg.basic)).toEqual({ status: 200, body: { username: reg.username } });
    const anon = await fetch(`${reg.url}anything`);
    expect(anon.status).toBe(401);
    expect(anon.headers.get('www-authenticate')).toMatch(/Basic/);
    const wrong = await fetch(`${reg.url}anything`, { headers: { authorization: 'Bearer not-a-token' } });
    expect(wrong.status).toBe(401);
  });

  it('npm publish (token) then npm install (_auth) of a tiny package; anonymous install refused', async () => {
    const pkg = await sb.mkdir('pkg');
    await writeTinyPackage(pkg, 'port-relay-hello', '1.0.0', 'hello through the registry');
    await sb.setNpmrc({ registry: reg.url, authToken: reg.token });
    const pub = await sb.npm(['publish'], { cwd: pkg });
    expect(pub.code, describeRun('npm publish', pub)).toBe(0);

    const app = await sb.mkdir('app');
    await sb.setNpmrc({ registry: reg.url, basicAuth: { username: reg.username, password: reg.password } });
    const inst = await sb.npm(['install', 'port-relay-hello@1.0.0'], { cwd: app });
    expect(inst.code, describeRun('npm install', inst)).toBe(0);
    const installed = await readFile(join(app, 'node_modules', 'port-relay-hello', 'index.js'), 'utf8');
    expect(installed).toContain('hello through the registry');

    const anonApp = await sb.mkdir('anon-app');
    await sb.setNpmrc({ registry: reg.url });
    const anon = await sb.npm(['install', 'port-relay-hello@1.0.0'], { cwd: anonApp });
    expect(anon.code).not.toBe(0);
    expect(anon.stderr).toMatch(/E401/);
    expect(existsSync(join(anonApp, 'node_modules', 'port-relay-hello'))).toBe(false);
  });

  it('with publicUrl, tarball URLs point at the public (relay) URL', async () => {
    const relayish = 'http://127.0.0.1:9/relay/npm/';
    const other = await startNpmRegistry({ publicUrl: relayish });
    const sb2 = await createNpmSandbox();
    try {
      const pkg = await sb2.mkdir('pkg');
      await writeTinyPackage(pkg, '@port-test/scoped', '0.1.0');
      await sb2.setNpmrc({ registry: other.url, authToken: other.token });
      const pub = await sb2.npm(['publish'], { cwd: pkg });
      expect(pub.code, describeRun('npm publish', pub)).toBe(0);
      // npm asks for scoped packuments with the slash escaped.
      const res = await fetch(`${other.url}@port-test%2fscoped`, { headers: { authorization: other.bearer } });
      expect(res.status).toBe(200);
      const doc = (await res.json()) as { versions: Record<string, { dist: { tarball: string } }> };
      expect(doc.versions['0.1.0']!.dist.tarball).toBe(`${relayish}@port-test/scoped/-/scoped-0.1.0.tgz`);
    } finally {
      await sb2.close();
      await other.close();
    }
  });

  it('shows what npm puts on the wire for a registry under a path prefix (what Port will see)', async () => {
    const up = await startRecordingUpstream({ routes: { '/': { kind: 'status', status: 404, body: { error: 'not found' } } } });
    const sb3 = await createNpmSandbox();
    try {
      const registry = `${up.url}/relay/npm/`;
      await sb3.setNpmrc({ registry, authToken: 'port-token-123' });
      await sb3.npm(['view', '@port-test/scoped', 'version']);
      await sb3.setNpmrc({ registry, basicAuth: { username: 'x', password: 'port-token-456' } });
      await sb3.npm(['view', 'plain-pkg', 'version']);
      const seen = up.requests.map((r) => [r.method, r.url, rawHeaderValues(r.rawHeaders, 'authorization')]);
      expect(seen).toEqual([
        ['GET', '/relay/npm/@port-test%2fscoped', ['Bearer port-token-123']],
        ['GET', '/relay/npm/plain-pkg', [`Basic ${Buffer.from('x:port-token-456').toString('base64')}`]],
      ]);
    } finally {
      await sb3.close();
      await up.close();
    }
  });
});
