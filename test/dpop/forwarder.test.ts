/**
 * `port agent proxy` (src/dpop/forwarder.ts) as something else on the host would try to
 * misuse it: it turns any request that reaches its loopback port into one made with the
 * job's bound token and a proof, so what it forwards must stay within the relay.
 */
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startForwarder, type RunningForwarder } from '../../src/dpop/forwarder.js';
import type { HostKey } from '../../src/dpop/host-key.js';
import type { Harness } from '../helpers/port-harness.js';
import { startRecordingUpstream, type RecordingUpstream } from '../helpers/relay/recording-upstream.js';
import { makeTempDir, removeDir } from '../helpers/relay/util.js';
import { startCredsHarness } from '../credentials/support.js';
import { boundToken, newHostKey, rawRequest } from './support.js';

let dir: string;
let key: HostKey;

beforeAll(async () => {
  dir = await makeTempDir('dpop-forwarder');
  key = await newHostKey();
});
afterAll(async () => {
  if (dir) await removeDir(dir);
});

/** A request with its target sent byte for byte (a URL string would have its dot segments resolved first). */
function asIs(base: string, path: string, method: string): Promise<{ status: number; body: string }> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: u.hostname, port: u.port, path, method, headers: { host: u.host } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * Port behind a reverse proxy that serves it under `/port` and, as nginx does for
 * `proxy_pass http://port/;`, passes on the normalised path (dot segments resolved).
 */
describe('a forwarder in front of Port behind a path-normalising reverse proxy', () => {
  let h: Harness;
  let front: Server;
  let fwd: RunningForwarder;
  let token: string;

  beforeAll(async () => {
    let portUrl = '';
    front = createServer((req, res) => {
      const u = new URL(req.url ?? '/', 'http://front');
      if (!u.pathname.startsWith('/port/')) {
        res.writeHead(404).end();
        return;
      }
      const headers = { ...req.headers };
      delete headers.host;
      delete headers.connection;
      const hasBody = req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0';
      void request(`${portUrl}${u.pathname.slice('/port'.length)}${u.search}`, { method: req.method as 'GET', headers, body: hasBody ? req : null })
        .then(async (up) => {
          res.writeHead(up.statusCode, up.headers as Record<string, string>);
          res.end(Buffer.from(await up.body.arrayBuffer()));
        })
        .catch(() => res.writeHead(502).end());
    });
    await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve));
    const publicUrl = `http://127.0.0.1:${(front.address() as AddressInfo).port}/port`;
    h = await startCredsHarness({ server: { listen: '127.0.0.1:0', public_url: publicUrl, log_level: 'silent' } });
    portUrl = h.url;
    token = await boundToken(h, h.sim.createJob({ pipelineSlug: 'deploy', branch: 'main' }), key.jkt, ['deploy-token']);
    writeFileSync(join(dir, 'token'), `${token}\n`);
    fwd = await startForwarder({ host: '127.0.0.1', port: 0, portUrl: publicUrl, tokenFile: join(dir, 'token'), key });
  });
  afterAll(async () => {
    await fwd?.close();
    await h?.close();
    await new Promise<void>((resolve) => (front ? front.close(() => resolve()) : resolve()));
  });

  it('does not carry a path that climbs out of /relay/ to Port (where it would release a credential)', async () => {
    const before = (await h.port.store.decisions.last())?.seq ?? 0;
    for (const path of ['/relay/../v1/credentials/deploy-token', '/relay/%2e%2e/v1/credentials/deploy-token', '/relay/files/%2E%2E/../v1/credentials/deploy-token', '/relay\\..\\v1/credentials/deploy-token']) {
      const r = await asIs(fwd.url, path, 'POST');
      expect(r.status, path).toBe(404);
      expect(r.body).not.toContain('access_token');
    }
    // Nothing reached Port: no release, no refusal recorded.
    expect((await h.port.store.decisions.last())?.seq ?? 0).toBe(before);
  });
});

describe('a forwarder and web browsers on the host', () => {
  let port: RecordingUpstream;
  let fwd: RunningForwarder;

  beforeAll(async () => {
    port = await startRecordingUpstream();
    writeFileSync(join(dir, 'token-b'), 'header.payload.signature\n');
    fwd = await startForwarder({ host: '127.0.0.1', port: 0, portUrl: port.url, tokenFile: join(dir, 'token-b'), key });
  });
  afterAll(async () => {
    await fwd?.close();
    await port?.close();
  });

  it("refuses a web page's cross-site request (Origin, Sec-Fetch-*): the Host is right, but the page is not the job", async () => {
    const host = new URL(fwd.url).host;
    const cases = [
      { origin: 'https://evil.example', 'content-type': 'text/plain' },
      { 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'no-cors' },
      { origin: 'null' },
    ];
    for (const headers of cases) {
      const r = await rawRequest(`${fwd.url}/relay/files/uploads/x`, 'POST', { host, ...headers }, 'payload');
      expect(r.status, JSON.stringify(headers)).toBe(403);
    }
    expect(port.requests).toHaveLength(0);
    // git, npm and curl send neither: still forwarded.
    const ok = await rawRequest(`${fwd.url}/relay/files/uploads/x`, 'POST', { host, 'content-type': 'text/plain' }, 'payload');
    expect(ok.status).toBe(200);
    expect(port.requests).toHaveLength(1);
    expect(port.requests[0]!.headers.authorization).toBe('DPoP header.payload.signature');
  });
});
