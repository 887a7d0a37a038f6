/**
 * Allowed relay requests are durably recorded. Their aggregated entry is
 * buffered for the window, but the running counts are saved every second, so a kill -9
 * loses at most a second of them: the next Port on the store logs what the dead one counted.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { stringify } from 'yaml';
import type { DecisionEntry } from '../../src/store/records/decisions.js';
import { configFromObject } from '../../src/config/config.js';
import { startPort, type RunningPort } from '../../src/server/port-server.js';
import { BuildkiteSimulator } from '../../src/sim/index.js';
import { RELAY_POLICIES } from '../helpers/relay-harness.js';
import { startRecordingUpstream, type RecordingUpstream } from '../helpers/relay/recording-upstream.js';
import { freePort, makeTempDir, removeDir, sleep } from '../helpers/relay/util.js';
import { spawnPort, type Spawned } from '../helpers/spawn-port.js';

const AUDIENCE = 'https://port.acme.test';
let dir: string;
let sim: BuildkiteSimulator;
let upstream: RecordingUpstream;
let child: Spawned | undefined;
let again: RunningPort | undefined;
let raw: Record<string, unknown>;

beforeAll(async () => {
  dir = await makeTempDir('allow-durability');
  mkdirSync(join(dir, 'policies'));
  for (const [name, text] of Object.entries(RELAY_POLICIES)) writeFileSync(join(dir, 'policies', name), text);
  sim = await BuildkiteSimulator.start({ organization: 'acme' });
  upstream = await startRecordingUpstream();
  raw = {
    server: { listen: `127.0.0.1:${await freePort()}`, public_url: AUDIENCE, log_level: 'info' },
    store: { sqlite: './port.db' },
    buildkite: { organization: 'acme', issuer: sim.issuer, jwks_url: sim.jwksUrl, audience: AUDIENCE },
    policies: './policies',
    // A long window: without the per-second saves, a kill -9 would lose every count in it.
    relay: { allow_log_window: 3600 },
    upstreams: { files: { url: `${upstream.url}/base` } },
  };
  writeFileSync(join(dir, 'port.yaml'), stringify(raw));
});

afterAll(async () => {
  await child?.stop();
  await again?.close();
  await upstream?.close();
  await sim?.close();
  if (dir) await removeDir(dir);
});

function allowCounts(entries: DecisionEntry[]): { requests: number; recovered: number } {
  const allows = entries.filter((e) => e.record.action === 'proxy' && e.record.decision === 'allow');
  return {
    requests: allows.reduce((n, e) => n + Number(e.record.context.requests), 0),
    recovered: allows.filter((e) => e.record.context.recovered === true).length,
  };
}

it('kill -9 during relay traffic loses no allowed request counted more than a second before it', async () => {
  child = spawnPort(['serve', '--create-store', '-c', join(dir, 'port.yaml')], { cwd: dir });
  const [, url] = await child.waitFor(/"url":"(http:\/\/127\.0\.0\.1:\d+)"/);
  const res = await fetch(`${url}/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      subject_token: await sim.mintToken(sim.createJob({ pipelineSlug: 'deploy', branch: 'main' }), { audience: AUDIENCE }),
      subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
    }),
  });
  const token = ((await res.json()) as { access_token: string }).access_token;
  const N = 40;
  for (let i = 0; i < N; i++) {
    const r = await fetch(`${url}/relay/files/f${i}.txt`, { headers: { authorization: `Bearer ${token}` } });
    expect(r.status).toBe(200);
    await r.arrayBuffer();
  }
  // More than one save interval after the last answered request, then no chance to flush.
  await sleep(1500);
  child.child.kill('SIGKILL');
  await child.exited;
  child = undefined;

  // The next Port on the same store logs what the dead one had counted.
  again = await startPort(configFromObject(raw, join(dir, 'port.yaml')), { logger: false });
  const deadline = Date.now() + 20_000;
  let counts = allowCounts(await again.store.decisions.read(0, 10_000));
  while (counts.requests < N && Date.now() < deadline) {
    await sleep(200);
    counts = allowCounts(await again.store.decisions.read(0, 10_000));
  }
  expect(counts.requests).toBe(N);
  expect(counts.recovered).toBeGreaterThan(0);
}, 60_000);
