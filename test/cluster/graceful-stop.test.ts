/**
 * Operations: stopping a replica (port.close(), what SIGTERM runs) hands the
 * leader lease over at once, stops accepting new connections, and lets a relay stream in
 * flight finish before the process goes away.
 */
import { rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, expect, it } from 'vitest';
import { LEADER_LEASE } from '../../src/cluster/leadership.js';
import { startHarness, type Harness } from '../helpers/port-harness.js';
import { RELAY_POLICIES } from '../helpers/relay-harness.js';

let h: Harness | undefined;
let upstream: Server | undefined;
afterEach(async () => {
  await h?.close().catch(() => undefined);
  await new Promise((r) => upstream?.close(r) ?? r(undefined));
  h = undefined;
  upstream = undefined;
});

const CHUNKS = 8;
const CHUNK_EVERY_MS = 150;

it('a relay stream in flight finishes while Port stops; new connections are refused, and the lease is free at once', async () => {
  // An upstream that drips its body: 8 chunks, 150 ms apart.
  upstream = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    let sent = 0;
    const timer = setInterval(() => {
      res.write(`chunk ${sent}\n`);
      if (++sent === CHUNKS) {
        clearInterval(timer);
        res.end();
      }
    }, CHUNK_EVERY_MS);
  });
  await new Promise<void>((r) => upstream!.listen(0, '127.0.0.1', r));
  const upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  h = await startHarness({ policies: RELAY_POLICIES, config: { upstreams: { files: { url: upstreamUrl, timeout: 30 } } } });
  const job = h.sim.createJob({ pipelineSlug: 'deploy', branch: 'main' });
  const exchanged = await h.exchange(await h.sim.mintToken(job, { audience: h.audience }));
  const token = exchanged.body.access_token as string;
  expect(await h.port.store.leases.holder(LEADER_LEASE, Date.now())).toBeDefined();

  const res = await fetch(`${h.url}/relay/files/big.bin`, { headers: { authorization: `Bearer ${token}` } });
  expect(res.status).toBe(200);
  const reader = res.body!.getReader();
  const first = await reader.read();
  expect(new TextDecoder().decode(first.value)).toMatch(/^chunk 0/);

  // Stop while the stream is mid-way.
  let closed = false;
  const closing = h.port.close().then(() => (closed = true));
  // The lease is handed over first, while the stream still runs.
  await expect.poll(async () => h!.port.store.leases.holder(LEADER_LEASE, Date.now()).catch(() => 'store closed')).toBeUndefined();
  expect(closed).toBe(false);
  // No new connection is accepted meanwhile.
  await expect(fetch(`${h.url}/healthz`)).rejects.toThrow();

  let body = new TextDecoder().decode(first.value);
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    body += new TextDecoder().decode(value);
  }
  expect(body.trim().split('\n')).toEqual(Array.from({ length: CHUNKS }, (_, i) => `chunk ${i}`));
  await closing;
  expect(closed).toBe(true);
  // Port is closed: what is left of the harness is the simulator and its folder.
  await h.sim.close();
  rmSync(h.dir, { recursive: true, force: true });
  h = undefined;
});
