import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { BuildkiteSimulator } from '../../src/sim/index.js';
import { RELAY_POLICIES } from '../helpers/relay-harness.js';
import { startRecordingUpstream, type RecordingUpstream } from '../helpers/relay/recording-upstream.js';
import { runPort, spawnPort } from '../helpers/spawn-port.js';

let sim: BuildkiteSimulator;
let upstream: RecordingUpstream;
let dir: string;
beforeAll(async () => {
  sim = await BuildkiteSimulator.start({ organization: 'acme' });
  upstream = await startRecordingUpstream();
  dir = mkdtempSync(join(tmpdir(), 'port-relay-reload-'));
});
afterAll(async () => {
  await sim?.close();
  await upstream?.close();
  rmSync(dir, { recursive: true, force: true });
});

it('port serve re-reads an upstream secret file on SIGHUP; a bad reference at start names the key', async () => {
  mkdirSync(join(dir, 'policies'));
  for (const [f, text] of Object.entries(RELAY_POLICIES)) writeFileSync(join(dir, 'policies', f), text);
  const secretFile = join(dir, 'files-token');
  writeFileSync(secretFile, 'first-secret\n', { mode: 0o600 });
  const config = (inject: unknown) =>
    stringify({
      server: { listen: '127.0.0.1:0', public_url: 'https://port.acme.test', log_level: 'info' },
      buildkite: { organization: 'acme', issuer: sim.issuer, jwks_url: sim.jwksUrl, audience: 'https://port.acme.test' },
      credentials: { 'deploy-token': { type: 'port_token', audience: 'https://deploy.acme.test' } },
      upstreams: { files: { url: upstream.url, inject } },
    });
  writeFileSync(join(dir, 'bad.yaml'), config({ bearer: 'file:./missing-token' }));
  const bad = await runPort(['serve', '-c', join(dir, 'bad.yaml')]);
  expect(bad.code).toBe(2);
  expect(bad.stderr).toMatch(/upstreams\.files\.inject\.bearer: cannot read .*missing-token/);

  writeFileSync(join(dir, 'port.yaml'), config({ bearer: 'file:./files-token' }));
  const p = spawnPort(['serve', '--create-store', '-c', join(dir, 'port.yaml')]);
  try {
    const [, url] = await p.waitFor(/"url":"(http:\/\/127\.0\.0\.1:\d+)"/);
    const bk = await sim.mintToken(sim.createJob({ pipelineSlug: 'deploy', branch: 'main' }), { audience: 'https://port.acme.test' });
    const token = (await runPort(['token', 'exchange', '--url', url!], { input: bk })).stdout.trim();
    const get = () => fetch(`${url}/relay/files/x`, { headers: { authorization: `Bearer ${token}` } });
    expect((await get()).status).toBe(200);
    expect(upstream.requests.at(-1)!.headers.authorization).toBe('Bearer first-secret');
    writeFileSync(secretFile, 'rotated-secret\n');
    p.child.kill('SIGHUP');
    await p.waitFor(/policies reloaded|relay secrets reloaded/);
    expect((await get()).status).toBe(200);
    expect(upstream.requests.at(-1)!.headers.authorization).toBe('Bearer rotated-secret');
    expect(p.stdout() + p.stderr()).not.toMatch(/first-secret|rotated-secret/);
  } finally {
    await p.stop();
  }
});
