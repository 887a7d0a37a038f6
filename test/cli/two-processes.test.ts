/**
 * Two `port serve` processes on one SQLite store neither crash nor log
 * errors forever. Every background job (checkpoints, allow counts, purges, key rotation)
 * reads its state from the store, so the two take turns instead of colliding, and the
 * decision log they write together verifies.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { BuildkiteSimulator } from '../../src/sim/index.js';
import { RELAY_POLICIES } from '../helpers/relay-harness.js';
import { startRecordingUpstream, type RecordingUpstream } from '../helpers/relay/recording-upstream.js';
import { makeTempDir, removeDir, sleep } from '../helpers/relay/util.js';
import { runPort, spawnPort, type Spawned } from '../helpers/spawn-port.js';

const AUDIENCE = 'https://port.acme.test';
let dir: string;
let sim: BuildkiteSimulator;
let upstream: RecordingUpstream;
const ports: Spawned[] = [];

beforeAll(async () => {
  dir = await makeTempDir('two-serves');
  mkdirSync(join(dir, 'policies'));
  for (const [name, text] of Object.entries(RELAY_POLICIES)) writeFileSync(join(dir, 'policies', name), text);
  sim = await BuildkiteSimulator.start({ organization: 'acme' });
  upstream = await startRecordingUpstream();
  writeFileSync(
    join(dir, 'port.yaml'),
    stringify({
      server: { listen: '127.0.0.1:0', public_url: AUDIENCE, log_level: 'info' },
      store: { sqlite: './port.db' },
      buildkite: { organization: 'acme', issuer: sim.issuer, jwks_url: sim.jwksUrl, audience: AUDIENCE },
      policies: './policies',
      // Both processes race for every checkpoint.
      audit: { checkpoint_every: 3, checkpoint_interval: '1s' },
      relay: { allow_log_window: '1s' },
      upstreams: { files: { url: `${upstream.url}/base` } },
      credentials: { 'deploy-token': { type: 'port_token', audience: 'https://deploy.acme.test' } },
    }),
  );
});

afterAll(async () => {
  for (const p of ports) await p.stop();
  await upstream?.close();
  await sim?.close();
  if (dir) await removeDir(dir);
});

/** Pino lines at level error (50) or above. */
function errorLines(p: Spawned): string[] {
  return p
    .stdout()
    .split('\n')
    .filter((l) => /"level":(5\d|60)/.test(l));
}

it('two port serve on one SQLite file: both serve, neither logs errors, the shared log verifies', async () => {
  const first = spawnPort(['serve', '--create-store', '-c', join(dir, 'port.yaml')], { cwd: dir });
  ports.push(first);
  const [, urlA] = await first.waitFor(/"url":"(http:\/\/127\.0\.0\.1:\d+)"/);
  const second = spawnPort(['serve', '-c', join(dir, 'port.yaml')], { cwd: dir });
  ports.push(second);
  const [, urlB] = await second.waitFor(/"url":"(http:\/\/127\.0\.0\.1:\d+)"/);

  const exchange = async (url: string) => {
    const res = await fetch(`${url}/oauth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
        subject_token: await sim.mintToken(sim.createJob({ pipelineSlug: 'deploy', branch: 'main' }), { audience: AUDIENCE }),
        subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
        scope: 'deploy-token',
      }),
    });
    expect(res.status).toBe(200);
    return ((await res.json()) as { access_token: string }).access_token;
  };
  // Interleaved traffic on both for a few checkpoint intervals.
  for (let round = 0; round < 6; round++) {
    await Promise.all(
      [urlA!, urlB!].map(async (url) => {
        const token = await exchange(url);
        const r = await fetch(`${url}/relay/files/r${round}.txt`, { headers: { authorization: `Bearer ${token}` } });
        expect(r.status).toBe(200);
        await r.arrayBuffer();
      }),
    );
    await sleep(400);
  }
  await sleep(2500);
  expect(first.child.exitCode).toBeNull();
  expect(second.child.exitCode).toBeNull();
  expect(errorLines(first)).toEqual([]);
  expect(errorLines(second)).toEqual([]);

  const verify = await runPort(['audit', 'verify', '-c', join(dir, 'port.yaml')], { cwd: dir });
  expect(verify.code, verify.stdout + verify.stderr).toBe(0);
}, 90_000);
