/**
 * The demo's internal service behind Port's relay: a tiny "artifacts API" that wants an
 * `X-Api-Key` header and says whether the request carried the right one. It never echoes
 * the key (nor any header value): the answer only says whether the key matched, and
 * whether a caller's `Authorization` reached it (Port never forwards the caller's own).
 */
import { timingSafeEqual } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export const ARTIFACTS_KEY_HEADER = 'x-api-key';

export interface ArtifactsApi {
  url: string;
  close(): Promise<void>;
}

/** Listens on 127.0.0.1:`port` (0 = any free port). */
export async function startArtifactsApi(opts: { port: number; apiKey: string }): Promise<ArtifactsApi> {
  const key = Buffer.from(opts.apiKey);
  const server: Server = createServer((req, res) => {
    const given = req.headers[ARTIFACTS_KEY_HEADER];
    const g = typeof given === 'string' ? Buffer.from(given) : undefined;
    const authenticated = g !== undefined && g.length === key.length && timingSafeEqual(g, key);
    const path = new URL(req.url ?? '/', 'http://artifacts.invalid').pathname;
    const body = authenticated
      ? {
          service: 'acme artifacts API (demo)',
          authenticated: true,
          method: req.method,
          path,
          message: 'the request carried the artifacts API key; Port added it, the job never held it',
          caller_authorization_received: req.headers.authorization !== undefined,
        }
      : { service: 'acme artifacts API (demo)', authenticated: false, message: 'no valid X-Api-Key header' };
    const text = `${JSON.stringify(body)}\n`;
    res.writeHead(authenticated ? 200 : 401, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
