/**
 * A recording upstream for relay tests: an HTTP server that notes every request it gets —
 * as received, raw header list included — and answers by route.
 *
 * Bodies are never buffered: each is hashed and counted as it streams in, and kept only
 * when it is at most `captureBodyLimit` bytes. A request is recorded the moment its headers
 * arrive (so a request that never gets an answer is still visible); `bodyComplete` turns
 * true when its body has been read to the end.
 *
 * Routes are chosen by the longest matching path prefix (of the path as received, without
 * the query); anything unmatched gets the `echo` behaviour.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { pipeline } from 'node:stream/promises';
import { closeServer, patternStream, trackSockets, waitUntil } from './util.js';

export interface RecordedRequest {
  /** Order of arrival, from 0. */
  seq: number;
  /** Which TCP connection it came on (0, 1, …): shows pipelined or smuggled requests. */
  connection: number;
  method: string;
  /** The request target exactly as received (path and query, undecoded). */
  url: string;
  httpVersion: string;
  /** `req.rawHeaders`: names in their received case, duplicates kept, in order. */
  rawHeaders: string[];
  /** Node's folded view of the same headers (lower-case names). */
  headers: IncomingHttpHeaders;
  /** True when it came as an upgrade request (`Upgrade` + `Connection: upgrade`). */
  upgrade: boolean;
  bodyBytes: number;
  /** sha256 hex of the body received so far (final once `bodyComplete`). */
  bodySha256: string;
  /** The body itself when it was at most `captureBodyLimit` bytes. */
  body?: Buffer;
  bodyComplete: boolean;
  /** The client went away before the body ended or before the answer was sent. */
  aborted: boolean;
  receivedAt: number;
}

export type UpstreamBehavior =
  /** 200 JSON: what the upstream saw (method, url, rawHeaders, bodyBytes, bodySha256). */
  | { kind: 'echo'; status?: number; headers?: Record<string, string> }
  /** A fixed answer. `body` as string or JSON-serialisable object. */
  | { kind: 'status'; status: number; body?: string | object; headers?: Record<string, string> }
  /** Reads the body, waits `ms`, then answers with the echo. */
  | { kind: 'slowHeaders'; ms: number }
  /** Reads the body and never answers (the socket stays open until the client or close() ends it). */
  | { kind: 'neverRespond' }
  /** Streams `bytes` pattern bytes (see util.patternStream / patternSha256), generated on the fly. */
  | { kind: 'download'; bytes: number; chunked?: boolean; contentType?: string }
  /** Hashes and counts the upload without buffering; answers 200 JSON `{bytes, sha256}`. */
  | { kind: 'sink' }
  /** Answers an upgrade request with 101 and echoes every byte back on the socket. */
  | { kind: 'upgrade'; protocol?: string };

export interface RecordingUpstreamOptions {
  routes?: Record<string, UpstreamBehavior>;
  /** Bodies up to this size are kept in `RecordedRequest.body`. Default 64 KiB. */
  captureBodyLimit?: number;
  /**
   * Node's header size limit for this server. Default 1 MiB, so the upstream itself is not
   * what refuses a large header in a test of the relay's own limit.
   */
  maxHeaderSize?: number;
  /**
   * Let llhttp accept malformed requests (both CL and TE, bare LF…). With the strict parser
   * (default) such bytes reaching the upstream end up in `clientErrors`, not `requests`.
   */
  insecureHTTPParser?: boolean;
}

/** A connection on which Node's parser refused what arrived (it never became a request). */
export interface ClientError {
  connection: number;
  code: string;
  message: string;
  /** The bytes the parser choked on (latin1, first 4 KiB), when Node gives them. */
  rawPacket?: string;
}

export interface RecordingUpstream {
  /** `http://127.0.0.1:PORT` (no trailing slash). */
  url: string;
  /** `127.0.0.1:PORT`. */
  host: string;
  port: number;
  requests: RecordedRequest[];
  /** Parse errors (ECONNRESET of a client going away is not recorded). */
  clientErrors: ClientError[];
  /** Adds or replaces the behaviour for a path prefix. */
  route(prefix: string, behavior: UpstreamBehavior): void;
  /** Forgets recorded requests and client errors (routes stay). */
  reset(): void;
  /** Resolves once at least `n` requests have arrived (headers received). */
  waitForRequests(n: number, timeoutMs?: number): Promise<RecordedRequest[]>;
  /** Number of TCP connections accepted so far. */
  connections(): number;
  close(): Promise<void>;
}

export async function startRecordingUpstream(opts: RecordingUpstreamOptions = {}): Promise<RecordingUpstream> {
  const captureLimit = opts.captureBodyLimit ?? 64 * 1024;
  const routes = new Map<string, UpstreamBehavior>(Object.entries(opts.routes ?? {}));
  const requests: RecordedRequest[] = [];
  const clientErrors: ClientError[] = [];
  const timers = new Set<NodeJS.Timeout>();
  const connIds = new WeakMap<Socket, number>();
  let connCount = 0;
  let seq = 0;

  const server = createServer({
    keepAlive: true,
    maxHeaderSize: opts.maxHeaderSize ?? 1024 * 1024,
    insecureHTTPParser: opts.insecureHTTPParser ?? false,
  });
  const sockets = trackSockets(server);
  server.on('connection', (s: Socket) => connIds.set(s, connCount++));

  function behaviorFor(url: string): UpstreamBehavior {
    const path = url.split('?')[0] ?? url;
    let best: [string, UpstreamBehavior] | undefined;
    for (const [prefix, b] of routes) {
      if (path.startsWith(prefix) && (!best || prefix.length > best[0].length)) best = [prefix, b];
    }
    return best ? best[1] : { kind: 'echo' };
  }

  function record(req: IncomingMessage, upgrade: boolean): RecordedRequest {
    const rec: RecordedRequest = {
      seq: seq++,
      connection: connIds.get(req.socket) ?? -1,
      method: req.method ?? '',
      url: req.url ?? '',
      httpVersion: req.httpVersion,
      rawHeaders: [...req.rawHeaders],
      headers: { ...req.headers },
      upgrade,
      bodyBytes: 0,
      bodySha256: createHash('sha256').digest('hex'),
      bodyComplete: false,
      aborted: false,
      receivedAt: Date.now(),
    };
    requests.push(rec);
    return rec;
  }

  /** Consumes the body chunk by chunk: counts, hashes, keeps it only while small. */
  function consumeBody(req: IncomingMessage, rec: RecordedRequest): Promise<void> {
    const hash = createHash('sha256');
    let kept: Buffer[] | undefined = [];
    return new Promise((resolve) => {
      req.on('data', (chunk: Buffer) => {
        rec.bodyBytes += chunk.length;
        hash.update(chunk);
        if (kept && rec.bodyBytes <= captureLimit) kept.push(chunk);
        else kept = undefined;
      });
      req.once('end', () => {
        rec.bodySha256 = hash.digest('hex');
        if (kept) rec.body = Buffer.concat(kept);
        rec.bodyComplete = true;
        resolve();
      });
      req.once('error', () => {
        rec.aborted = true;
        resolve();
      });
      req.once('close', () => {
        if (!rec.bodyComplete) rec.aborted = true;
        resolve();
      });
    });
  }

  function echoBody(rec: RecordedRequest) {
    return {
      method: rec.method,
      url: rec.url,
      httpVersion: rec.httpVersion,
      rawHeaders: rec.rawHeaders,
      bodyBytes: rec.bodyBytes,
      bodySha256: rec.bodySha256,
    };
  }

  function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
    if (res.headersSent || res.destroyed) return;
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
    res.end(text);
  }

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const rec = record(req, false);
    res.once('close', () => {
      if (!res.writableFinished) rec.aborted = true;
    });
    const b = behaviorFor(rec.url);
    const bodyDone = consumeBody(req, rec);
    void (async () => {
      switch (b.kind) {
        case 'echo':
        case 'sink':
          await bodyDone;
          if (b.kind === 'sink') return sendJson(res, 200, { bytes: rec.bodyBytes, sha256: rec.bodySha256 });
          return sendJson(res, b.status ?? 200, echoBody(rec), b.headers);
        case 'status': {
          await bodyDone;
          if (res.destroyed) return;
          const text = b.body === undefined ? '' : typeof b.body === 'string' ? b.body : JSON.stringify(b.body);
          const type = typeof b.body === 'object' ? 'application/json' : 'text/plain';
          res.writeHead(b.status, { 'content-type': type, 'content-length': Buffer.byteLength(text), ...b.headers });
          return void res.end(text);
        }
        case 'slowHeaders': {
          await bodyDone;
          const t = setTimeout(() => {
            timers.delete(t);
            sendJson(res, 200, echoBody(rec));
          }, b.ms);
          timers.add(t);
          return;
        }
        case 'neverRespond':
          return;
        case 'download': {
          await bodyDone;
          if (res.destroyed) return;
          const headers: Record<string, string | number> = { 'content-type': b.contentType ?? 'application/octet-stream' };
          if (!b.chunked) headers['content-length'] = b.bytes;
          res.writeHead(200, headers);
          // pipeline honours back-pressure: the server holds one chunk at a time.
          await pipeline(patternStream(b.bytes), res).catch(() => {
            rec.aborted = true;
          });
          return;
        }
        case 'upgrade':
          // A plain (non-upgrade) request on an upgrade route.
          await bodyDone;
          return sendJson(res, 426, { error: 'upgrade required' });
      }
    })();
  });

  server.on('clientError', (err: NodeJS.ErrnoException & { rawPacket?: Buffer }, socket: Socket) => {
    if (err.code !== 'ECONNRESET') {
      clientErrors.push({
        connection: connIds.get(socket) ?? -1,
        code: err.code ?? 'UNKNOWN',
        message: err.message,
        ...(err.rawPacket ? { rawPacket: err.rawPacket.subarray(0, 4096).toString('latin1') } : {}),
      });
    }
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    else socket.destroy();
  });

  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    const rec = record(req, true);
    // The body of an upgrade request is not framed by Node; what came after the headers
    // is in `head` and is counted as body.
    rec.bodyBytes = head.length;
    rec.bodySha256 = createHash('sha256').update(head).digest('hex');
    if (head.length <= captureLimit) rec.body = head;
    rec.bodyComplete = true;
    socket.on('error', () => {});
    const b = behaviorFor(rec.url);
    if (b.kind === 'upgrade') {
      const proto = b.protocol ?? req.headers.upgrade ?? 'echo';
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: ${proto}\r\nConnection: Upgrade\r\n\r\n`);
      if (head.length) socket.write(head);
      socket.pipe(socket);
      return;
    }
    // Not an upgrade route: answer like any request, then close.
    const text = JSON.stringify(echoBody(rec));
    socket.end(
      `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`,
    );
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;

  return {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    port,
    requests,
    clientErrors,
    route(prefix, behavior) {
      routes.set(prefix, behavior);
    },
    reset() {
      requests.length = 0;
      clientErrors.length = 0;
    },
    waitForRequests(n, timeoutMs = 5_000) {
      return waitUntil(() => requests.length >= n && requests, timeoutMs, `${n} upstream request(s)`);
    },
    connections: () => connCount,
    async close() {
      for (const t of timers) clearTimeout(t);
      timers.clear();
      await closeServer(server, sockets);
    },
  };
}

/** The header values for `name` (case-insensitive) in a raw header list. */
export function rawHeaderValues(rawHeaders: string[], name: string): string[] {
  const out: string[] = [];
  const want = name.toLowerCase();
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() === want) out.push(rawHeaders[i + 1]!);
  }
  return out;
}
