/**
 * Pieces shared by the real-client relay tests (git, npm):
 *  - `startRecordingTap`: a transparent HTTP pass-through put between Port and a real
 *    upstream (verdaccio) that records every request exactly as it arrives — raw header
 *    list included — so a test can prove what the upstream was sent (the injected
 *    credential, never the Port token) when the upstream itself logs no headers.
 *  - `jobToken`: a Port token for a simulated Buildkite job, for harnesses built directly
 *    on `startHarness`.
 */
import { createServer, request as httpRequest, Agent, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pipeline } from 'node:stream/promises';
import type { Harness } from './port-harness.js';
import { closeServer, trackSockets } from './relay/util.js';

export interface TappedRequest {
  method: string;
  /** Request target as received (path and query, undecoded). */
  url: string;
  /** `req.rawHeaders` as received from Port: names in their case, duplicates kept. */
  rawHeaders: string[];
  headers: IncomingMessage['headers'];
  bodyBytes: number;
  /** The upstream's status, once it answered. */
  status?: number;
}

export interface RecordingTap {
  /** `http://127.0.0.1:PORT` (no trailing slash) — configure this as the upstream's url. */
  url: string;
  host: string;
  requests: TappedRequest[];
  reset(): void;
  close(): Promise<void>;
}

/** Hop-by-hop fields the tap itself must not forward (RFC 9110 §7.6.1). */
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade']);

/**
 * Forwards every request to `target` (e.g. verdaccio's `http://127.0.0.1:4873/`) unchanged
 * but for `Host` and hop-by-hop fields, streaming bodies both ways, and records it.
 */
export async function startRecordingTap(target: string): Promise<RecordingTap> {
  const to = new URL(target);
  const agent = new Agent({ keepAlive: true });
  const requests: TappedRequest[] = [];
  const server = createServer((req, res) => {
    const rec: TappedRequest = { method: req.method ?? '', url: req.url ?? '/', rawHeaders: [...req.rawHeaders], headers: { ...req.headers }, bodyBytes: 0 };
    requests.push(rec);
    req.on('data', (c: Buffer) => (rec.bodyBytes += c.length));
    const headers: OutgoingHttpHeaders = {};
    for (const [k, v] of Object.entries(req.headers)) if (v !== undefined && !HOP.has(k)) headers[k] = v;
    headers.host = to.host;
    const out = httpRequest({ host: to.hostname, port: to.port, method: req.method, path: req.url, headers, agent }, (up) => {
      rec.status = up.statusCode;
      const back: string[] = [];
      for (let i = 0; i + 1 < up.rawHeaders.length; i += 2) {
        if (!HOP.has(up.rawHeaders[i]!.toLowerCase())) back.push(up.rawHeaders[i]!, up.rawHeaders[i + 1]!);
      }
      res.writeHead(up.statusCode ?? 502, back);
      pipeline(up, res).catch(() => res.destroy());
    });
    out.on('error', (err) => {
      if (res.headersSent) return void res.destroy();
      res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`tap: ${err.message}\n`);
    });
    pipeline(req, out).catch(() => out.destroy());
  });
  const sockets = trackSockets(server);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    requests,
    reset: () => void (requests.length = 0),
    async close() {
      await closeServer(server, sockets);
      agent.destroy();
    },
  };
}

/** A Port token for a new simulated job of `h` (defaults: acme/deploy on main). */
export async function jobToken(h: Harness, init: Record<string, unknown> = {}): Promise<string> {
  const job = h.sim.createJob({ pipelineSlug: 'deploy', branch: 'main', ...init });
  const res = await h.exchange(await h.sim.mintToken(job, { audience: h.audience }));
  if (res.status !== 200) throw new Error(`exchange failed: ${JSON.stringify(res.body)}`);
  return res.body.access_token as string;
}

/** Every place a Port token could show up in a recorded header list: as itself or inside Basic. */
export function headersMention(rawHeaders: string[], token: string): boolean {
  const text = rawHeaders.join('\n');
  if (text.includes(token)) return true;
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const m = /^Basic\s+([A-Za-z0-9+/=]+)/i.exec(rawHeaders[i + 1]!);
    if (m && Buffer.from(m[1]!, 'base64').toString('utf8').includes(token)) return true;
  }
  return false;
}
