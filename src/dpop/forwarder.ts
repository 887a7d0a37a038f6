import { promises as fs } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';
import { createProof, type HostKey } from './host-key.js';
import { comparableUri } from './htu.js';

/** Where `port agent proxy` listens: a loopback address only, since whoever reaches it uses the job's token. */
export const LOOPBACK_HOSTS = new Set(['127.0.0.1', '::1', 'localhost']);

/** The relay's path prefix on Port; nothing else is forwarded. */
const RELAY_PREFIX = '/relay/';

/** Longest token file read (a Port token is about 1 KiB). */
const MAX_TOKEN_BYTES = 16 * 1024;

/**
 * Hop-by-hop fields (RFC 9110 §7.6.1) and what this forwarder sets itself: the caller's
 * `Authorization` and `DPoP` never pass (the token and its proof are the forwarder's), nor
 * `Host` (Port's) or `Expect` (undici refuses it; Node answered 100 Continue already).
 */
const DROP_REQUEST = new Set(['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'host', 'authorization', 'dpop', 'expect']);
const DROP_RESPONSE = new Set(['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

export interface ForwarderOptions {
  /** Loopback address and port to listen on (port 0: any free one). */
  host: string;
  port: number;
  /** Port's URL, as `server.public_url` says: proofs name it (RFC 9449 §4.3 check 9). */
  portUrl: string;
  /** File holding the Port token (bound to `key`); read for every request, so a renewed token is used at once. */
  tokenFile: string;
  key: HostKey;
  /** Each refusal or failure, in one line without token or proof. */
  onError?: (message: string) => void;
}

export interface RunningForwarder {
  /** `http://127.0.0.1:PORT` */
  url: string;
  close(): Promise<void>;
}

/**
 * A local forwarder for tools that only know Bearer or Basic (git, npm, curl): every request
 * to `http://127.0.0.1:PORT/relay/…` goes to Port's relay with `Authorization: DPoP <token>`
 * and a fresh proof for that request (RFC 9449 §7.1), bodies streamed both ways. The proof
 * names Port's URL and the path as sent, without query; the path is forwarded byte for byte,
 * so the relay sees what the proof names. Only loopback: anything that reaches it acts as the
 * job, as anything on the host that can read the token and key files could anyway. The
 * `Host` must be a loopback name, so a web page can't reach it by DNS rebinding.
 */
export async function startForwarder(o: ForwarderOptions): Promise<RunningForwarder> {
  if (!LOOPBACK_HOSTS.has(o.host)) throw new Error(`--listen must be a loopback address (127.0.0.1, ::1 or localhost), not ${o.host}`);
  const port = new URL(o.portUrl);
  if (port.protocol !== 'https:' && port.protocol !== 'http:') throw new Error('--port-url must be an http or https URL');
  const base = port.pathname.replace(/\/+$/, '');
  const origin = port.origin;
  const upstream = new Pool(origin, { connections: 16 });
  // What a forwarded path must still be under once dot segments are resolved (below).
  const relayRoot = comparableUri(`${origin}${base}${RELAY_PREFIX}`, false);
  let listeningPort = 0;

  const server: Server = createServer((req, res) => {
    void forward(req, res).catch((err: unknown) => {
      o.onError?.(`request failed: ${(err as Error).message}`);
      fail(res, 502, 'port_unreachable', 'Port could not be reached or closed the connection.');
    });
  });

  async function forward(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const target = req.url ?? '';
    if (!loopbackHost(req.headers.host, listeningPort)) return fail(res, 421, 'misdirected_request', 'This forwarder answers only requests addressed to its loopback address.');
    if (!target.startsWith(RELAY_PREFIX)) return fail(res, 404, 'not_found', 'This forwarder only forwards /relay/… to Port.');
    // `/relay/../v1/credentials/x` names /v1/credentials/x to Port's htu check (RFC 3986
    // §6.2.2.3, as it compares) and to any reverse proxy that normalises paths before passing
    // them on (nginx does for `proxy_pass` with a URI): signed here, it would release a credential.
    const resolved = comparableUri(`${origin}${base}${target}`, false);
    if (resolved === undefined || relayRoot === undefined || !resolved.startsWith(relayRoot)) {
      return fail(res, 404, 'not_found', 'This forwarder only forwards /relay/… to Port; the path leaves it once its dot segments are resolved.');
    }
    // A web page in a browser on this host (a CI job's end-to-end tests) can send requests here
    // with the right Host: a cross-site POST with a CORS-safelisted content type needs no
    // preflight (WHATWG Fetch, "CORS-safelisted request-header"). Browsers mark such requests
    // with Origin (RFC 6454 §7) or Sec-Fetch-* (W3C Fetch Metadata); git, npm and curl send neither.
    if (req.headers.origin !== undefined || req.headers['sec-fetch-site'] !== undefined || req.headers['sec-fetch-mode'] !== undefined) {
      return fail(res, 403, 'browser_request', 'This forwarder does not forward requests from web browsers (Origin or Sec-Fetch-* header).');
    }
    let token: string;
    try {
      token = await readToken(o.tokenFile);
    } catch (err) {
      o.onError?.((err as Error).message);
      return fail(res, 503, 'token_unavailable', 'The forwarder cannot read its token file.');
    }
    const method = req.method ?? 'GET';
    const path = `${base}${target}`;
    const headers = forwardedHeaders(req.rawHeaders);
    headers['authorization'] = `DPoP ${token}`;
    headers['dpop'] = await createProof(o.key, { method, url: `${origin}${path}`, accessToken: token });
    const hasBody = req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] ?? '0') !== '0';
    const aborter = new AbortController();
    res.once('close', () => {
      if (!res.writableFinished) aborter.abort();
    });
    const answer = await upstream.request({ path, method: method as 'GET', headers, body: hasBody ? req : null, signal: aborter.signal });
    const down: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(answer.headers)) {
      if (value !== undefined && !DROP_RESPONSE.has(name.toLowerCase())) down[name] = value;
    }
    res.writeHead(answer.statusCode, down);
    await new Promise<void>((resolve) => {
      answer.body.once('error', () => {
        res.destroy();
        resolve();
      });
      res.once('close', () => {
        if (!answer.body.destroyed) answer.body.destroy();
        resolve();
      });
      answer.body.pipe(res);
    });
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => resolve());
  });
  listeningPort = (server.address() as AddressInfo).port;
  const hostPart = o.host === '::1' ? '[::1]' : o.host;
  return {
    url: `http://${hostPart}:${listeningPort}`,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await upstream.close();
    },
  };
}

/** The caller's fields minus hop-by-hop ones, those `Connection` names, and the ones this forwarder sets. */
function forwardedHeaders(raw: readonly string[]): Record<string, string | string[]> {
  const listed = new Set<string>();
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() === 'connection') for (const n of raw[i + 1]!.split(',')) listed.add(n.trim().toLowerCase());
  }
  const out: Record<string, string | string[]> = {};
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (DROP_REQUEST.has(name) || listed.has(name)) continue;
    const prev = out[name];
    const value = raw[i + 1]!;
    out[name] = prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [prev, value];
  }
  return out;
}

function loopbackHost(host: string | undefined, port: number): boolean {
  if (host === undefined) return false;
  const m = /^(\[::1\]|127\.0\.0\.1|localhost)(?::(\d+))?$/i.exec(host);
  return m !== null && (m[2] === undefined ? port === 80 : Number(m[2]) === port);
}

async function readToken(file: string): Promise<string> {
  const handle = await fs.open(file, 'r');
  try {
    const buf = Buffer.alloc(MAX_TOKEN_BYTES + 1);
    const { bytesRead } = await handle.read(buf, 0, buf.length, 0);
    if (bytesRead > MAX_TOKEN_BYTES) throw new Error(`the token file ${file} is larger than a token`);
    const token = buf.subarray(0, bytesRead).toString('utf8').trim();
    if (!/^[A-Za-z0-9._~+/-]+=*$/.test(token)) throw new Error(`the token file ${file} does not hold a token`);
    return token;
  } finally {
    await handle.close();
  }
}

function fail(res: ServerResponse, status: number, code: string, message: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify({ error: code, error_description: message });
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(body);
}
