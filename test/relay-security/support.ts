/**
 * Shared pieces of the relay security suite: building exact
 * request bytes, sending them to Port, keep-alive connections, hand-made upstreams that
 * misbehave at the TCP level, and the one assertion every refusal must pass (JSON
 * `{error, error_description}`, no stack, no token, no secret).
 */
import { createServer, Socket, type AddressInfo, type Server } from 'node:net';
import { expect } from 'vitest';
import type { RelayHarness } from '../helpers/relay-harness.js';
import { UPSTREAM_SECRET } from '../helpers/relay-harness.js';
import { parseResponses, rawRequest, type RawRequestOptions, type RawResponse, type RawResult } from '../helpers/relay/raw-http.js';
import { sleep, waitUntil } from '../helpers/relay/util.js';

export { sleep, waitUntil };

/** `host:port` of Port's listener, for Host headers. */
export function portHost(h: RelayHarness): string {
  return new URL(h.url).host;
}

export interface BuildOptions {
  method?: string;
  /** Header lines, in order, written verbatim as `name: value` (or a whole line when value is undefined). */
  headers?: Array<[string, string] | string>;
  body?: string | Buffer;
  /** Host header value; `null` for none. Default: Port's host. */
  host?: string | null;
  /** Bearer token; `null` for no Authorization header. */
  token?: string | null;
  /** Add `Content-Length` for `body` (default true when a body is given and no framing header is listed). */
  contentLength?: boolean;
  version?: string;
}

/** Exact request bytes: request line, Host, Authorization, the listed headers, blank line, body. */
export function buildRequest(h: RelayHarness, target: string, o: BuildOptions = {}): Buffer {
  const lines: string[] = [`${o.method ?? 'GET'} ${target} ${o.version ?? 'HTTP/1.1'}`];
  if (o.host !== null) lines.push(`Host: ${o.host ?? portHost(h)}`);
  if (o.token) lines.push(`Authorization: Bearer ${o.token}`);
  const listed = o.headers ?? [];
  for (const l of listed) lines.push(typeof l === 'string' ? l : `${l[0]}: ${l[1]}`);
  const body = o.body === undefined ? Buffer.alloc(0) : Buffer.isBuffer(o.body) ? o.body : Buffer.from(o.body, 'latin1');
  const framed = listed.some((l) => /^(content-length|transfer-encoding)\s*:/i.test(typeof l === 'string' ? l : `${l[0]}:`));
  if (o.body !== undefined && !framed && o.contentLength !== false) lines.push(`Content-Length: ${body.length}`);
  return Buffer.concat([Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1'), body]);
}

/** Sends exact bytes to Port over a fresh TCP connection. */
export function send(h: RelayHarness, bytes: string | Buffer, opts: RawRequestOptions = {}): Promise<RawResult> {
  const u = new URL(h.url);
  return rawRequest(u.hostname, Number(u.port), bytes, { timeoutMs: 5_000, ...opts });
}

/** One request, one response: fails loudly when the exchange did not produce exactly one. */
export async function sendOne(h: RelayHarness, bytes: string | Buffer, opts: RawRequestOptions = {}): Promise<RawResponse & { result: RawResult }> {
  const r = await send(h, bytes, { expectResponses: 1, ...opts });
  expect(r.responses.length, `responses to ${JSON.stringify(bytes.toString().slice(0, 200))}: raw=${JSON.stringify(r.raw.toString('latin1').slice(0, 400))}`).toBeGreaterThanOrEqual(1);
  return Object.assign(r.responses[0]!, { result: r });
}

/** Everything a refusal may not contain: stack frames, tokens, the upstream's secret. */
export function expectSafeBody(text: string, secrets: string[] = []): void {
  expect(text).not.toMatch(/\n\s+at\s|\.ts:\d+|\.js:\d+|node:internal|node_modules/);
  expect(text).not.toContain(UPSTREAM_SECRET);
  for (const s of secrets) if (s) expect(text).not.toContain(s.length > 24 ? s.slice(-24) : s);
}

/**
 * The refusal contract: the exact status; `content-type: application/json`; a body that is
 * exactly `{error, error_description}` (string values, `error` a lower_snake code); nothing
 * that leaks. Returns the parsed body.
 */
export function expectJsonError(res: RawResponse, status: number, code?: string | RegExp, secrets: string[] = []): { error: string; error_description: string } {
  expect(res.status, `status (body: ${res.body.slice(0, 300)})`).toBe(status);
  expect(res.headers['content-type'] ?? '').toMatch(/^application\/json\b/);
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(res.body) as Record<string, unknown>;
  } catch {
    throw new Error(`error body is not JSON: ${JSON.stringify(res.body.slice(0, 300))}`);
  }
  expect(Object.keys(body).sort(), `error body keys: ${res.body}`).toEqual(['error', 'error_description']);
  expect(typeof body.error).toBe('string');
  expect(body.error).toMatch(/^[a-z][a-z0-9_]*$/);
  expect(typeof body.error_description).toBe('string');
  expect((body.error_description as string).length).toBeGreaterThan(0);
  if (code instanceof RegExp) expect(body.error).toMatch(code);
  else if (code !== undefined) expect(body.error).toBe(code);
  expectSafeBody(res.body, secrets);
  expectSafeBody(JSON.stringify(res.rawHeaders), secrets);
  return body as { error: string; error_description: string };
}

/** A parser-level refusal (llhttp): the status, and the connection closed after it. */
export function expectParserRefusal(r: RawResult, status: number): RawResponse {
  expect(r.responses.length, `raw=${JSON.stringify(r.raw.toString('latin1').slice(0, 300))}`).toBe(1);
  const res = r.responses[0]!;
  expect(res.status).toBe(status);
  expect(r.closedByServer).toBe(true);
  return res;
}

/**
 * A persistent client connection to Port for keep-alive tests: write bytes, then read the
 * next `n` responses (parsed with the same parser as rawRequest).
 */
export class KeepAliveConnection {
  private buf = Buffer.alloc(0);
  private consumed = 0;
  closed = false;
  private waiters: Array<() => void> = [];

  private constructor(private readonly socket: Socket) {
    socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => undefined);
  }

  static open(h: RelayHarness): Promise<KeepAliveConnection> {
    const u = new URL(h.url);
    return new Promise((resolve, reject) => {
      const s = new Socket();
      s.once('error', reject);
      s.connect(Number(u.port), u.hostname, () => {
        s.setNoDelay(true);
        resolve(new KeepAliveConnection(s));
      });
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  write(bytes: string | Buffer): void {
    this.socket.write(bytes);
  }

  /** Waits for `n` complete responses after those already read. */
  async read(n: number, timeoutMs = 5_000): Promise<RawResponse[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const p = parseResponses(this.buf.subarray(this.consumed), { eof: this.closed });
      const complete = p.responses.filter((r) => r.complete);
      if (complete.length >= n) {
        const taken = complete.slice(0, n);
        // Advance past exactly the responses taken (buffers here are small).
        this.consumed += offsetAfter(this.buf.subarray(this.consumed), n);
        return taken;
      }
      if (this.closed || Date.now() > deadline) return complete;
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.max(1, deadline - Date.now()));
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Byte offset just after the `n`-th complete response in `buf`. */
function offsetAfter(buf: Buffer, n: number): number {
  for (let end = 1; end <= buf.length; end++) {
    const p = parseResponses(buf.subarray(0, end), { eof: false });
    if (p.responses.filter((r) => r.complete).length >= n && p.trailing.length === 0) return end;
  }
  return buf.length;
}

// ---------------------------------------------------------------------------------------
// Upstreams that misbehave below HTTP.

export interface RawUpstream {
  url: string;
  port: number;
  /** Bytes received, per connection. */
  received: Buffer[];
  connections(): number;
  close(): Promise<void>;
}

/**
 * A TCP upstream that, once a request head has arrived on a connection, runs `onRequest`
 * with the socket (write a partial answer, destroy, …). Records every byte received.
 */
export async function startRawUpstream(onRequest: (socket: Socket, head: string) => void): Promise<RawUpstream> {
  const received: Buffer[] = [];
  const sockets = new Set<Socket>();
  let count = 0;
  const server: Server = createServer((socket) => {
    const idx = count++;
    received[idx] = Buffer.alloc(0);
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let answered = false;
    socket.on('data', (d: Buffer) => {
      received[idx] = Buffer.concat([received[idx]!, d]);
      const text = received[idx]!.toString('latin1');
      if (!answered && text.includes('\r\n\r\n')) {
        answered = true;
        onRequest(socket, text.slice(0, text.indexOf('\r\n\r\n')));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    received,
    connections: () => count,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A TCP port on 127.0.0.1 with nothing listening (connection refused). */
export async function deadPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Header names (lower-case) of a recorded request, in order. */
export function headerNames(rawHeaders: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) out.push(rawHeaders[i]!.toLowerCase());
  return out;
}

/** The newest decision-log record (denials are logged one by one, with the normalised path). */
export async function lastDecision(h: RelayHarness): Promise<{ decision?: string; context?: Record<string, unknown>; policies?: Array<{ id: string }> } | undefined> {
  const e = await h.port.store.decisions.last();
  return e?.record as { decision?: string; context?: Record<string, unknown> } | undefined;
}
