import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseResponses, rawRequest } from '../helpers/relay/raw-http.js';
import { startRecordingUpstream, type RecordingUpstream } from '../helpers/relay/recording-upstream.js';

// Exercised against the recording upstream, i.e. Node's own HTTP parser (llhttp).
describe('raw HTTP client', () => {
  let up: RecordingUpstream;
  const H = '127.0.0.1';
  beforeAll(async () => {
    up = await startRecordingUpstream({
      routes: { '/chunked': { kind: 'download', bytes: 100_000, chunked: true }, '/never': { kind: 'neverRespond' } },
    });
  });
  afterAll(async () => {
    await up.close();
  });

  it('sends one request and sees the server close', async () => {
    up.reset();
    const r = await rawRequest(H, up.port, 'GET /one HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    expect(r.responses).toHaveLength(1);
    expect(r.responses[0]!.status).toBe(200);
    expect(JSON.parse(r.responses[0]!.body)).toMatchObject({ method: 'GET', url: '/one' });
    expect(r.closedByServer).toBe(true);
    expect(r.timedOut).toBe(false);
  });

  it('parses pipelined responses, and the chunked one', async () => {
    up.reset();
    const r = await rawRequest(H, up.port, 'GET /p1 HTTP/1.1\r\nHost: a\r\n\r\nGET /chunked HTTP/1.1\r\nHost: a\r\n\r\nGET /p3 HTTP/1.1\r\nHost: a\r\n\r\n', {
      expectResponses: 3,
    });
    expect(r.responses.map((x) => x.status)).toEqual([200, 200, 200]);
    expect(r.responses[1]!.headers['transfer-encoding']).toBe('chunked');
    expect(r.responses[1]!.bodyBytes.length).toBe(100_000);
    expect(JSON.parse(r.responses[2]!.body).url).toBe('/p3');
    expect(r.closedByServer).toBe(false);
    expect(up.requests.map((q) => q.url)).toEqual(['/p1', '/chunked', '/p3']);
    expect(new Set(up.requests.map((q) => q.connection)).size).toBe(1);
  });

  it('writes CL.TE bytes exactly; Node refuses with 400 and closes', async () => {
    up.reset();
    const smuggle =
      'POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n';
    const r = await rawRequest(H, up.port, smuggle);
    expect(r.responses[0]!.status).toBe(400);
    expect(r.closedByServer).toBe(true);
    expect(up.requests).toHaveLength(0);
    // …but the upstream notes that such bytes reached it.
    expect(up.clientErrors).toHaveLength(1);
    expect(up.clientErrors[0]!.code).toMatch(/^HPE_/);
  });

  it('an upstream with the lenient parser records what a smuggled request would become', async () => {
    const lenient = await startRecordingUpstream({ insecureHTTPParser: true });
    try {
      const smuggle =
        'POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n';
      const r = await rawRequest(H, lenient.port, smuggle, { expectResponses: 2 });
      expect(r.responses.map((x) => x.status)).toEqual([200, 200]);
      expect(lenient.requests.map((q) => q.url)).toEqual(['/a', '/smuggled']);
      expect(lenient.clientErrors).toHaveLength(0);
    } finally {
      await lenient.close();
    }
  });

  it('writes duplicate Content-Length exactly; Node refuses with 400', async () => {
    up.reset();
    const r = await rawRequest(H, up.port, 'POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd');
    expect(r.responses[0]!.status).toBe(400);
    expect(up.requests).toHaveLength(0);
  });

  it('drips a request in with delays (slowloris shape)', async () => {
    up.reset();
    const t0 = Date.now();
    const r = await rawRequest(H, up.port, 'GET /drip HTTP/1.1\r\nHost: a\r\n', {
      writeDelays: [
        { delayMs: 100, data: 'X-A: 1\r\n' },
        { delayMs: 100, data: 'X-B: 2\r\n' },
        { delayMs: 100, data: 'Connection: close\r\n\r\n' },
      ],
    });
    expect(r.chunksWritten).toBe(3);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
    expect(r.responses[0]!.status).toBe(200);
    expect(up.requests[0]!.rawHeaders).toEqual(expect.arrayContaining(['X-A', '1', 'X-B', '2']));
  });

  it('times out when nothing comes back', async () => {
    const r = await rawRequest(H, up.port, 'GET /never HTTP/1.1\r\nHost: a\r\n\r\n', { timeoutMs: 300 });
    expect(r.timedOut).toBe(true);
    expect(r.responses).toHaveLength(0);
    expect(r.closedByServer).toBe(false);
  });

  it('reports a refused connection as an error', async () => {
    const r = await rawRequest(H, 1, 'GET / HTTP/1.1\r\n\r\n', { timeoutMs: 1000 });
    expect(r.error).toMatch(/ECONNREFUSED/);
  });

  describe('parseResponses', () => {
    it('handles bare LF, chunk extensions, trailers, interim 100 and a truncated tail', () => {
      const bytes = Buffer.from(
        'HTTP/1.1 100 Continue\r\n\r\n' +
          'HTTP/1.1 200 OK\nContent-Length: 2\n\nok' +
          'HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nSet-Cookie: a\r\nSet-Cookie: b\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\n' +
          'HTTP/1.1 204 No Content\r\n\r\n' +
          'HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc',
      );
      const p = parseResponses(bytes);
      expect(p.interim.map((r) => r.status)).toEqual([100]);
      expect(p.responses.map((r) => [r.status, r.body, r.complete])).toEqual([
        [200, 'ok', true],
        [201, 'abcde', true],
        [204, '', true],
        [200, 'abc', false],
      ]);
      expect(p.responses[1]!.headers['set-cookie']).toBe('a, b');
    });

    it('reads an unframed body to EOF', () => {
      const p = parseResponses(Buffer.from('HTTP/1.0 502 Bad Gateway\r\n\r\n{"error":"x"}'), { eof: true });
      expect(p.responses[0]).toMatchObject({ status: 502, body: '{"error":"x"}', complete: true });
    });
  });
});
