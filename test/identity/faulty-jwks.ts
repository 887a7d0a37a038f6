/**
 * A real HTTP server standing in for Buildkite's JWKS endpoint that can misbehave the ways
 * a remote server can: `hang` accepts the request and never answers; `drip` answers 200 and then
 * sends one byte of body every `dripMs` forever (each byte resets an idle timeout, so only a
 * total deadline ends it); `error` answers 503. In `ok` mode it serves `document()`.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export type JwksMode = 'ok' | 'hang' | 'drip' | 'error';

export interface FaultyJwks {
  url: string;
  mode: JwksMode;
  /** Requests received (any mode). */
  readonly requests: number;
  /** Requests still held open by a hang or a drip (the client has not given up on them). */
  pending(): number;
  /** Held requests the client closed so far (a deadline or a stop ended them). */
  readonly abandonedCount: number;
  /** Resolves once `n` held requests in total were closed by the client (a deadline ended them). */
  abandoned(n: number): Promise<void>;
  close(): Promise<void>;
}

export async function startFaultyJwks(document: () => unknown, opts: { dripMs?: number } = {}): Promise<FaultyJwks> {
  const dripMs = opts.dripMs ?? 300;
  const sockets = new Set<Socket>();
  const held = new Set<ServerResponse>();
  const timers = new Set<NodeJS.Timeout>();
  let requests = 0;
  let abandonedCount = 0;
  let waiters: Array<{ n: number; resolve: () => void }> = [];

  const hold = (req: IncomingMessage, res: ServerResponse, drip: boolean) => {
    held.add(res);
    let timer: NodeJS.Timeout | undefined;
    if (drip) {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '1000000' });
      res.write('{');
      timer = setInterval(() => res.write(' '), dripMs);
      timers.add(timer);
    }
    req.socket.once('close', () => {
      if (timer) {
        clearInterval(timer);
        timers.delete(timer);
      }
      if (!held.delete(res)) return;
      abandonedCount++;
      const ready = waiters.filter((w) => abandonedCount >= w.n);
      waiters = waiters.filter((w) => abandonedCount < w.n);
      for (const w of ready) w.resolve();
    });
  };

  const state: { mode: JwksMode } = { mode: 'ok' };
  const server = createServer((req, res) => {
    requests++;
    switch (state.mode) {
      case 'ok': {
        const body = JSON.stringify(document());
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
        return;
      }
      case 'error':
        res.writeHead(503, { 'content-type': 'application/json' });
        res.end('{"message":"Service Unavailable"}');
        return;
      case 'hang':
        return hold(req, res, false);
      case 'drip':
        return hold(req, res, true);
    }
  });
  // Node's own request timeout would end a hang on the server side; these hang until the client gives up.
  server.requestTimeout = 0;
  server.headersTimeout = 0;
  server.keepAliveTimeout = 1000;
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;

  return {
    url: `http://127.0.0.1:${port}/.well-known/jwks`,
    get mode() {
      return state.mode;
    },
    set mode(m: JwksMode) {
      state.mode = m;
    },
    get requests() {
      return requests;
    },
    pending: () => held.size,
    get abandonedCount() {
      return abandonedCount;
    },
    abandoned: (n) => (abandonedCount >= n ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ n, resolve }))),
    close: () =>
      new Promise<void>((resolve) => {
        for (const t of timers) clearInterval(t);
        held.clear();
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      }),
  };
}
