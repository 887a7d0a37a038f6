/** A scriptable local HTTP server standing in for api.buildkite.com in client unit tests. */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Recorded {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

export type Handler = (req: Recorded, res: ServerResponse) => void | Promise<void>;

export class FakeBuildkite {
  readonly requests: Recorded[] = [];
  private handlers: Handler[] = [];
  private fallback: Handler = (_req, res) => json(res, 404, { message: 'Not Found' });

  private constructor(private readonly server: Server, readonly url: string) {}

  static async start(): Promise<FakeBuildkite> {
    let fake: FakeBuildkite | undefined;
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const rec: Recorded = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
        fake!.requests.push(rec);
        const handler = fake!.handlers.shift() ?? fake!.fallback;
        void Promise.resolve(handler(rec, res)).catch(() => res.destroy());
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    fake = new FakeBuildkite(server, `http://127.0.0.1:${port}`);
    return fake;
  }

  /** Answers the next requests with these handlers, in order; then the fallback. */
  queue(...handlers: Handler[]): void {
    this.handlers.push(...handlers);
  }

  always(handler: Handler): void {
    this.fallback = handler;
  }

  reset(): void {
    this.requests.length = 0;
    this.handlers = [];
    this.fallback = (_req, res) => json(res, 404, { message: 'Not Found' });
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

export function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

export const reply =
  (status: number, body: unknown, headers: Record<string, string> = {}): Handler =>
  (_req, res) =>
    json(res, status, body, headers);

/** Never answers (until the connection is closed by the client). */
export const hang: Handler = () => undefined;

/** Closes the socket without an answer. */
export const drop: Handler = (_req, res) => {
  res.socket?.destroy();
};
