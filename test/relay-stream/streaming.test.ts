/**
 * Streaming through the relay with back-pressure: a 1 GiB upload
 * (Content-Length and chunked) and a 1 GiB download each pass through a running Port with
 * Port's memory growing by less than 64 MiB, byte for byte (sha256 end to end); and a slow
 * reader stalls the upstream instead of filling Port's memory.
 *
 * Port runs as its own process (`bin/port.js serve`, from dist/) so that its RSS
 * (`/proc/<pid>/status` VmRSS, sampled every 50 ms) is Port's alone; the Buildkite
 * simulator, the upstreams and the clients live in this process. Nothing is ever
 * buffered on either side: bodies are pattern streams, hashed as they flow.
 * No assertion is made on speed.
 */
import { createHash } from 'node:crypto';
import { readFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BuildkiteSimulator } from '../../src/sim/index.js';
import { TEST_POLICIES } from '../helpers/port-harness.js';
import { startRecordingUpstream, type RecordingUpstream } from '../helpers/relay/recording-upstream.js';
import { closeServer, freePort, makeTempDir, patternSha256, patternStream, removeDir, sleep, trackSockets } from '../helpers/relay/util.js';
import { spawnPort, type Spawned } from '../helpers/spawn-port.js';

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;
const SIZE = GiB;
/** The bound on Port's memory growth during a transfer. */
const MAX_GROWTH = 64 * MiB;
const SLOW_SIZE = 256 * MiB;
const AUDIENCE = 'https://port.acme.test';

const POLICIES = {
  ...TEST_POLICIES,
  'relay.cedar': `
@id("stream-anything")
@reason("acme jobs may move bytes under /stream")
permit (principal is Port::Job, action == Port::Action::"proxy", resource)
when { context.path like "/stream/*" };
`,
};

// ---- Port's memory, from the outside ------------------------------------------------------

function rssBytes(pid: number): number {
  const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}

/** Samples a process's RSS every 50 ms from a baseline taken just before the transfer. */
class RssSampler {
  baseline = 0;
  peak = 0;
  samples = 0;
  private timer: NodeJS.Timeout | undefined;
  constructor(private readonly pid: number) {}

  async start(): Promise<void> {
    // The baseline: the median of a few samples over 250 ms of quiet.
    const quiet: number[] = [];
    for (let i = 0; i < 5; i++) {
      quiet.push(rssBytes(this.pid));
      await sleep(50);
    }
    this.baseline = quiet.sort((a, b) => a - b)[2]!;
    this.peak = this.baseline;
    this.timer = setInterval(() => this.sample(), 50);
  }

  sample(): number {
    const rss = rssBytes(this.pid);
    this.samples++;
    if (rss > this.peak) this.peak = rss;
    return rss;
  }

  stop(): { baseline: number; peak: number; growth: number; samples: number } {
    clearInterval(this.timer);
    this.sample();
    return { baseline: this.baseline, peak: this.peak, growth: this.peak - this.baseline, samples: this.samples };
  }
}

const mib = (n: number) => `${(n / MiB).toFixed(1)} MiB`;

// ---- clients that never buffer ------------------------------------------------------------

interface Received {
  status: number;
  bytes: number;
  sha256: string;
  /** The first 64 KiB, for JSON answers. */
  text: string;
}

function collect(res: IncomingMessage, onChunk?: (bytes: number) => void): Promise<Received> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    let bytes = 0;
    let head: Buffer[] = [];
    res.on('data', (c: Buffer) => {
      bytes += c.length;
      hash.update(c);
      if (bytes <= 65536) head.push(c);
      else head = [];
      onChunk?.(bytes);
    });
    res.once('end', () => resolve({ status: res.statusCode ?? 0, bytes, sha256: hash.digest('hex'), text: Buffer.concat(head).toString() }));
    res.once('error', reject);
    res.once('aborted', () => reject(new Error('response aborted')));
  });
}

function upload(url: string, token: string, bytes: number, framing: 'content-length' | 'chunked'): Promise<Received> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream' };
    if (framing === 'content-length') headers['content-length'] = String(bytes);
    const req = request(url, { method: 'PUT', headers, agent: false });
    if (framing === 'chunked') req.setHeader('transfer-encoding', 'chunked');
    req.once('error', reject);
    req.once('response', (res) => collect(res).then(resolve, reject));
    pipeline(patternStream(bytes), req).catch(reject);
  });
}

function get(url: string, token: string): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'GET', headers: { authorization: `Bearer ${token}` }, agent: false });
    req.once('error', reject);
    req.once('response', resolve);
    req.end();
  });
}

// ---- a download upstream that counts what it has handed to its socket -----------------------

interface CountingUpstream {
  url: string;
  /** Bytes the upstream has produced for the current download (its socket took them). */
  produced: () => number;
  close(): Promise<void>;
}

async function startCountingUpstream(bytes: number): Promise<CountingUpstream> {
  let produced = 0;
  const server: Server = createServer((req, res) => {
    req.resume();
    produced = 0;
    const counter = new Transform({
      transform(chunk: Buffer, _enc, done) {
        produced += chunk.length;
        done(null, chunk);
      },
    });
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': bytes });
    pipeline(patternStream(bytes), counter, res).catch(() => undefined);
  });
  const sockets = trackSockets(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    produced: () => produced,
    close: () => closeServer(server, sockets),
  };
}

// ---- setup: simulator + upstreams here, Port in its own process ------------------------------

let dir: string;
let sim: BuildkiteSimulator;
let upstream: RecordingUpstream;
let slow: CountingUpstream;
let port: Spawned;
let portUrl: string;
let token: string;
let expected: string;

beforeAll(async () => {
  dir = await makeTempDir('stream');
  mkdirSync(join(dir, 'policies'));
  for (const [name, text] of Object.entries(POLICIES)) writeFileSync(join(dir, 'policies', name), text);
  sim = await BuildkiteSimulator.start({ organization: 'acme', host: '127.0.0.1' });
  upstream = await startRecordingUpstream({
    captureBodyLimit: 0,
    routes: {
      '/stream/download': { kind: 'download', bytes: SIZE },
      '/stream/upload': { kind: 'sink' },
      '/stream/warm-download': { kind: 'download', bytes: 8 * MiB },
    },
  });
  slow = await startCountingUpstream(SLOW_SIZE);
  const listen = await freePort();
  const config = {
    server: { listen: `127.0.0.1:${listen}`, public_url: AUDIENCE, log_level: 'info' },
    store: { sqlite: './port.db' },
    buildkite: { organization: 'acme', issuer: sim.issuer, jwks_url: sim.jwksUrl, audience: AUDIENCE },
    policies: './policies',
    relay: { decision_cache_ttl: 5 },
    upstreams: {
      blobs: { url: upstream.url, max_body: '2GiB', timeout: 30 },
      slow: { url: slow.url, timeout: 30 },
    },
  };
  writeFileSync(join(dir, 'port.yaml'), stringify(config));
  port = spawnPort(['serve', '--create-store', '-c', join(dir, 'port.yaml')], { cwd: dir });
  await port.waitFor(/Port is listening/, 30_000);
  portUrl = `http://127.0.0.1:${listen}`;

  const job = sim.createJob({ pipelineSlug: 'deploy', branch: 'main' });
  const res = await fetch(`${portUrl}/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      subject_token: await sim.mintToken(job, { audience: AUDIENCE }),
      subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
    }),
  });
  const body = (await res.json()) as { access_token?: string };
  if (res.status !== 200 || !body.access_token) throw new Error(`exchange failed: ${res.status} ${JSON.stringify(body)}`);
  token = body.access_token;
  expected = patternSha256(SIZE);

  // Warm Port's paths (JIT, undici's pool, the policy) so the baselines are steady-state.
  for (let i = 0; i < 3; i++) {
    const up = await upload(`${portUrl}/relay/blobs/stream/upload/warm`, token, 8 * MiB, i % 2 ? 'chunked' : 'content-length');
    expect(up.status).toBe(200);
    const down = await collect(await get(`${portUrl}/relay/blobs/stream/warm-download`, token));
    expect(down.status).toBe(200);
  }
}, 60_000);

afterAll(async () => {
  await port?.stop();
  await upstream?.close();
  await slow?.close();
  await sim?.close();
  if (dir) await removeDir(dir);
});

describe('relay streaming with back-pressure (Port in its own process)', () => {
  it.each(['content-length', 'chunked'] as const)(
    'passes a 1 GiB upload (%s) byte for byte with Port growing < 64 MiB',
    async (framing) => {
      upstream.reset();
      const rss = new RssSampler(port.child.pid!);
      await rss.start();
      const res = await upload(`${portUrl}/relay/blobs/stream/upload/${framing}.bin`, token, SIZE, framing);
      const mem = rss.stop();
      expect(res.status, res.text).toBe(200);
      expect(JSON.parse(res.text)).toEqual({ bytes: SIZE, sha256: expected });
      const [seen] = upstream.requests;
      expect(seen!.bodyBytes).toBe(SIZE);
      if (framing === 'chunked') expect(seen!.headers['content-length']).toBeUndefined();
      else expect(seen!.headers['content-length']).toBe(String(SIZE));
      console.log(`upload ${framing}: Port RSS ${mib(mem.baseline)} → peak ${mib(mem.peak)} (+${mib(mem.growth)}, ${mem.samples} samples)`);
      expect(mem.samples).toBeGreaterThan(2);
      expect(mem.growth).toBeLessThan(MAX_GROWTH);
    },
    40_000,
  );

  it('passes a 1 GiB download byte for byte with Port growing < 64 MiB', async () => {
    const rss = new RssSampler(port.child.pid!);
    await rss.start();
    const res = await collect(await get(`${portUrl}/relay/blobs/stream/download/big.bin`, token));
    const mem = rss.stop();
    expect(res.status).toBe(200);
    expect(res.bytes).toBe(SIZE);
    expect(res.sha256).toBe(expected);
    console.log(`download: Port RSS ${mib(mem.baseline)} → peak ${mib(mem.peak)} (+${mib(mem.growth)}, ${mem.samples} samples)`);
    expect(mem.samples).toBeGreaterThan(2);
    expect(mem.growth).toBeLessThan(MAX_GROWTH);
  }, 40_000);

  it('stalls the upstream, not Port\'s memory, while the client stops reading', async () => {
    const rss = new RssSampler(port.child.pid!);
    await rss.start();
    const res = await get(`${portUrl}/relay/slow/stream/slow.bin`, token);
    expect(res.statusCode).toBe(200);
    let received = 0;
    let paused: Promise<void> | undefined;
    const stalled: { received: number; produced: number[]; rss: number[] } = { received: 0, produced: [], rss: [] };
    const done = collect(res, (bytes) => {
      received = bytes;
      // After 16 MiB the reader stops for 3 s; meanwhile, watch the upstream and Port.
      if (!paused && bytes >= 16 * MiB) {
        res.pause();
        paused = (async () => {
          for (let i = 0; i < 12; i++) {
            await sleep(250);
            stalled.produced.push(slow.produced());
            stalled.rss.push(rss.sample());
          }
          stalled.received = received;
          res.resume();
        })();
      }
    });
    const result = await done;
    await paused;
    const mem = rss.stop();
    expect(result.bytes).toBe(SLOW_SIZE);
    expect(result.sha256).toBe(patternSha256(SLOW_SIZE));
    const [first, last] = [stalled.produced[4]!, stalled.produced.at(-1)!];
    const inFlight = last - stalled.received;
    console.log(
      `slow reader: client stopped at ${mib(stalled.received)}; upstream had produced ${mib(first)} after 1.25 s and ${mib(last)} after 3 s ` +
        `(${mib(inFlight)} in socket buffers and Port); Port RSS ${mib(mem.baseline)} → peak ${mib(mem.peak)} (+${mib(mem.growth)})`,
    );
    // The upstream was blocked: nothing more left it during the second half of the pause…
    expect(last).toBe(first);
    expect(last).toBeLessThan(SLOW_SIZE);
    // …and what it had sent beyond what the client read is bounded (kernel socket buffers + Port's stream buffers).
    expect(inFlight).toBeLessThan(MAX_GROWTH);
    expect(mem.growth).toBeLessThan(MAX_GROWTH);
  }, 40_000);
});
