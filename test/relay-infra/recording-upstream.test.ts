import { createHash } from 'node:crypto';
import { request, type IncomingMessage } from 'node:http';
import { Socket } from 'node:net';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rawHeaderValues, startRecordingUpstream, type RecordingUpstream } from '../helpers/relay/recording-upstream.js';
import { patternSha256, patternStream } from '../helpers/relay/util.js';

function send(
  up: RecordingUpstream,
  opts: { method?: string; path: string; headers?: Record<string, string | string[]>; body?: Buffer | NodeJS.ReadableStream; timeoutMs?: number },
): Promise<{ status: number; headers: IncomingMessage['headers']; bytes: number; sha256: string; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: up.port, method: opts.method ?? 'GET', path: opts.path, headers: opts.headers, timeout: opts.timeoutMs ?? 10_000 });
    req.on('timeout', () => req.destroy(new Error('client timeout')));
    req.on('error', reject);
    req.on('response', (res) => {
      const h = createHash('sha256');
      let bytes = 0;
      let head: Buffer[] = [];
      res.on('data', (c: Buffer) => {
        bytes += c.length;
        h.update(c);
        if (bytes <= 65536) head.push(c);
        else head = [];
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, bytes, sha256: h.digest('hex'), text: Buffer.concat(head).toString() }));
      res.on('error', reject);
    });
    if (opts.body && !(opts.body instanceof Buffer)) void pipeline(opts.body, req).catch(reject);
    else req.end(opts.body);
  });
}

describe('recording upstream', () => {
  let up: RecordingUpstream;
  beforeAll(async () => {
    up = await startRecordingUpstream({
      routes: {
        '/teapot': { kind: 'status', status: 418, body: { error: 'teapot' } },
        '/slow': { kind: 'slowHeaders', ms: 300 },
        '/never': { kind: 'neverRespond' },
        '/dl/fixed': { kind: 'download', bytes: 8 * 1024 * 1024 + 7 },
        '/dl/chunked': { kind: 'download', bytes: 3 * 1024 * 1024, chunked: true },
        '/sink': { kind: 'sink' },
        '/ws': { kind: 'upgrade' },
      },
    });
  });
  afterAll(async () => {
    await up.close();
  });

  it('records the request as received and echoes it', async () => {
    up.reset();
    const r = await send(up, { path: '/a/%2e%2E/b?x=1&y', headers: { 'X-Dup': ['one', 'two'], 'x-CaSe': 'v' } });
    expect(r.status).toBe(200);
    const echo = JSON.parse(r.text) as { url: string; rawHeaders: string[] };
    expect(echo.url).toBe('/a/%2e%2E/b?x=1&y');
    const [rec] = up.requests;
    expect(rec).toMatchObject({ method: 'GET', url: '/a/%2e%2E/b?x=1&y', bodyBytes: 0, bodyComplete: true, aborted: false, upgrade: false });
    expect(rawHeaderValues(rec!.rawHeaders, 'x-dup')).toEqual(['one', 'two']);
    expect(rec!.rawHeaders).toContain('x-CaSe');
    expect(rec!.bodySha256).toBe(createHash('sha256').digest('hex'));
  });

  it('hashes and keeps a small body', async () => {
    up.reset();
    const body = Buffer.from('hello upstream');
    await send(up, { method: 'POST', path: '/p', body, headers: { 'content-type': 'text/plain' } });
    const rec = up.requests[0]!;
    expect(rec.bodyBytes).toBe(body.length);
    expect(rec.bodySha256).toBe(createHash('sha256').update(body).digest('hex'));
    expect(rec.body?.toString()).toBe('hello upstream');
  });

  it('answers a configured status', async () => {
    const r = await send(up, { path: '/teapot/x' });
    expect(r.status).toBe(418);
    expect(JSON.parse(r.text)).toEqual({ error: 'teapot' });
  });

  it('delays headers on a slow route', async () => {
    const t0 = Date.now();
    const r = await send(up, { path: '/slow' });
    expect(r.status).toBe(200);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(280);
  });

  it('never answers on a never route, but records the request', async () => {
    up.reset();
    await expect(send(up, { path: '/never', timeoutMs: 300 })).rejects.toThrow(/client timeout/);
    expect(up.requests).toHaveLength(1);
    expect(up.requests[0]!.url).toBe('/never');
  });

  it('streams a download generated on the fly (content-length and chunked)', async () => {
    const fixed = await send(up, { path: '/dl/fixed' });
    expect(fixed.headers['content-length']).toBe(String(8 * 1024 * 1024 + 7));
    expect(fixed.bytes).toBe(8 * 1024 * 1024 + 7);
    expect(fixed.sha256).toBe(patternSha256(8 * 1024 * 1024 + 7));
    const chunked = await send(up, { path: '/dl/chunked' });
    expect(chunked.headers['transfer-encoding']).toBe('chunked');
    expect(chunked.sha256).toBe(patternSha256(3 * 1024 * 1024));
  });

  it('sinks a streamed upload without keeping it', async () => {
    up.reset();
    const n = 16 * 1024 * 1024 + 3;
    const r = await send(up, { method: 'PUT', path: '/sink/blob', body: patternStream(n, 16384), headers: { 'content-type': 'application/octet-stream' } });
    expect(JSON.parse(r.text)).toEqual({ bytes: n, sha256: patternSha256(n) });
    const rec = up.requests[0]!;
    expect(rec.headers['transfer-encoding']).toBe('chunked');
    expect(rec.bodyBytes).toBe(n);
    expect(rec.body).toBeUndefined();
  });

  it('answers an upgrade with 101 and echoes bytes', async () => {
    up.reset();
    const sock = new Socket();
    const got: Buffer[] = [];
    await new Promise<void>((r) => sock.connect(up.port, '127.0.0.1', () => r()));
    sock.on('data', (d: Buffer) => got.push(d));
    sock.write('GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
    await new Promise((r) => setTimeout(r, 100));
    sock.write('ping-bytes');
    await new Promise((r) => setTimeout(r, 100));
    sock.destroy();
    const text = Buffer.concat(got).toString();
    expect(text).toMatch(/^HTTP\/1\.1 101 Switching Protocols\r\n/);
    expect(text).toMatch(/Upgrade: websocket/);
    expect(text.endsWith('ping-bytes')).toBe(true);
    expect(up.requests[0]).toMatchObject({ url: '/ws', upgrade: true });
  });

  it('closes cleanly with requests still pending', async () => {
    const other = await startRecordingUpstream({ routes: { '/': { kind: 'neverRespond' } } });
    const pending = send(other, { path: '/hang' }).catch((e: Error) => e);
    await other.waitForRequests(1);
    await other.close();
    expect(await pending).toBeInstanceOf(Error);
    await expect(send(other, { path: '/' })).rejects.toThrow(/ECONNREFUSED/);
  });
});
