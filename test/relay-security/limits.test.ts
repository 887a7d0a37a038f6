/**
 * Size limits, slow clients, and slow, dead and misbehaving upstreams. Port serves the relay on the raw Node server with
 * `maxHeaderSize = relay.max_header_bytes`, `headersTimeout = relay.client_header_timeout`
 * and `server.timeout = relay.client_idle_timeout`; upstream timeouts are
 * `upstreams.<name>.timeout`. Small values here keep the suite fast.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startRelayHarness, type RelayHarness } from '../helpers/relay-harness.js';
import {
  buildRequest,
  deadPort,
  expectJsonError,
  expectParserRefusal,
  send,
  sendOne,
  sleep,
  startRawUpstream,
  waitUntil,
  type RawUpstream,
} from './support.js';

const HEADER_TIMEOUT_S = 1;
const IDLE_TIMEOUT_S = 3;
const MAX_HEADER = 8 * 1024;
const MAX_BODY = 1024;

let h: RelayHarness;
let token: string;
const raws: RawUpstream[] = [];

beforeAll(async () => {
  const dead = await deadPort();
  const raw = async (fn: Parameters<typeof startRawUpstream>[0]) => {
    const u = await startRawUpstream(fn);
    raws.push(u);
    return u;
  };
  const early = await raw((s) => s.destroy());
  const midLength = await raw((s) => {
    s.write(`HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n${'x'.repeat(100)}`);
    setTimeout(() => s.destroy(), 50);
  });
  const midChunked = await raw((s) => {
    s.write(`HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n64\r\n${'y'.repeat(100)}\r\n`);
    setTimeout(() => s.destroy(), 50);
  });
  const garbage = await raw((s) => s.end('HTTP/1.1 GARBAGE\r\n\r\n\x00\x01'));
  const nonHttp = await raw((s) => s.end('SSH-2.0-OpenSSH_9.6\r\n\r\n'));
  const badHeader = await raw((s) => s.end('HTTP/1.1 200 OK\r\nX-Bad: a\x00b\r\nContent-Length: 0\r\n\r\n'));
  const clte = await raw((s) => s.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'));
  const extra = await raw((s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\npoison!'));
  h = await startRelayHarness({
    relay: { client_header_timeout: HEADER_TIMEOUT_S, client_idle_timeout: IDLE_TIMEOUT_S, max_header_bytes: MAX_HEADER },
    upstream: { routes: { '/base/slow': { kind: 'slowHeaders', ms: 4_000 }, '/base/never': { kind: 'neverRespond' } } },
    upstreams: (up) => ({
      files: { url: `${up.url}/base`, timeout: 1, connect_timeout: 1, max_body: MAX_BODY, inject: { bearer: 'env:PORT_TEST_UPSTREAM_SECRET' } },
      patient: { url: `${up.url}/base`, timeout: 60 },
      dead: { url: `http://127.0.0.1:${dead}`, timeout: 1, connect_timeout: 1 },
      early: { url: early.url, timeout: 2 },
      midlength: { url: midLength.url, timeout: 2 },
      midchunked: { url: midChunked.url, timeout: 2 },
      garbage: { url: garbage.url, timeout: 2 },
      nonhttp: { url: nonHttp.url, timeout: 2 },
      badheader: { url: badHeader.url, timeout: 2 },
      clte: { url: clte.url, timeout: 2 },
      extra: { url: extra.url, timeout: 2 },
    }),
    policies: {
      'exchange.cedar': '@id("x")\npermit (principal, action == Port::Action::"exchange", resource);\n',
      'relay.cedar': '@id("all")\npermit (principal, action == Port::Action::"proxy", resource);\n',
    },
  });
  token = await h.token();
});
afterAll(async () => {
  await h?.close();
  for (const r of raws) await r.close();
});
beforeEach(() => h.upstream.reset());

async function upstreamSawNothing(): Promise<void> {
  await sleep(100);
  expect(h.upstream.requests.map((r) => r.url)).toEqual([]);
}

describe('server options', () => {
  it('the lenient HTTP parser is off, on the server and in the process (Node: it exposes the app to smuggling)', () => {
    const server = h.port.app.server as unknown as { insecureHTTPParser?: boolean };
    expect(server.insecureHTTPParser).toBe(false);
    expect(process.execArgv.join(' ')).not.toContain('insecure-http-parser');
    expect(process.env.NODE_OPTIONS ?? '').not.toContain('insecure-http-parser');
  });

  it('max_header_bytes, client_header_timeout and client_idle_timeout are the server\'s limits', () => {
    const server = h.port.app.server as unknown as { maxHeaderSize: number; headersTimeout: number; timeout: number };
    expect(server.maxHeaderSize).toBe(MAX_HEADER);
    expect(server.headersTimeout).toBe(HEADER_TIMEOUT_S * 1000);
    expect(server.timeout).toBe(IDLE_TIMEOUT_S * 1000);
  });

  // Node enforces headersTimeout only when its connection sweep runs, every
  // connectionsCheckingInterval (default 30 s): a 1 s header timeout becomes 30 s.
  it('the connection sweep runs at least as often as client_header_timeout', () => {
    const server = h.port.app.server as unknown as { connectionsCheckingInterval: number };
    expect(server.connectionsCheckingInterval).toBeLessThanOrEqual(HEADER_TIMEOUT_S * 1000);
  });
});

describe('oversized headers', () => {
  it('one header over max_header_bytes: 431, closed, nothing forwarded', async () => {
    // 12 KiB: under Node's 16 KiB default, so only the configured limit refuses it.
    const r = await send(h, buildRequest(h, '/relay/files/big', { token, headers: [['X-Big', 'a'.repeat(12 * 1024)]] }), { expectResponses: 1 });
    expectParserRefusal(r, 431);
    await upstreamSawNothing();
  });

  it('many small headers adding up to more than max_header_bytes: 431, closed, nothing forwarded', async () => {
    const headers = Array.from({ length: 200 }, (_, i) => [`X-H${i}`, 'v'.repeat(50)] as [string, string]);
    const r = await send(h, buildRequest(h, '/relay/files/many', { token, headers }), { expectResponses: 1 });
    expectParserRefusal(r, 431);
    await upstreamSawNothing();
  });

  it('a head just under the limit passes', async () => {
    const r = await sendOne(h, buildRequest(h, '/relay/files/under', { token, headers: [['X-Big', 'a'.repeat(4 * 1024)]] }));
    expect(r.status).toBe(200);
    expect(h.upstream.requests).toHaveLength(1);
  });
});

describe('oversized bodies', () => {
  it('Content-Length over max_body: 413 body_too_large before anything is forwarded, connection closed', async () => {
    const r = await sendOne(h, buildRequest(h, '/relay/files/up', { method: 'PUT', token, body: 'a'.repeat(MAX_BODY + 1) }));
    expectJsonError(r, 413, 'body_too_large', [token]);
    expect(r.headers.connection).toBe('close');
    expect(r.result.closedByServer).toBe(true);
    await upstreamSawNothing();
  });

  it('Content-Length over max_body, headers only (the body never sent): 413 at once', async () => {
    const r = await sendOne(h, buildRequest(h, '/relay/files/up', { method: 'PUT', token, headers: [['Content-Length', String(10 * 1024 ** 3)]] }));
    expectJsonError(r, 413, 'body_too_large', [token]);
    expect(r.result.durationMs).toBeLessThan(2_000);
    await upstreamSawNothing();
  });

  it('exactly max_body passes, whole', async () => {
    const r = await sendOne(h, buildRequest(h, '/relay/files/up', { method: 'PUT', token, body: 'a'.repeat(MAX_BODY) }));
    expect(r.status).toBe(200);
    expect(h.upstream.requests[0]).toMatchObject({ bodyBytes: MAX_BODY, bodyComplete: true });
  });

  it('chunked, all at once, over max_body: 413 (or cut); the upstream never gets more than max_body nor a complete request', async () => {
    const big = 'b'.repeat(3 * MAX_BODY);
    const body = `${big.length.toString(16)}\r\n${big}\r\n0\r\n\r\n`;
    const r = await send(h, buildRequest(h, '/relay/files/up', { method: 'PUT', token, headers: [['Transfer-Encoding', 'chunked']], body }), { expectResponses: 1 });
    expect(r.closedByServer).toBe(true);
    if (r.responses.length > 0) expectJsonError(r.responses[0]!, 413, 'body_too_large', [token]);
    await sleep(200);
    for (const seen of h.upstream.requests) {
      expect(seen.bodyBytes).toBeLessThanOrEqual(MAX_BODY);
      expect(seen.bodyComplete).toBe(false);
    }
  });

  it('chunked, streamed slowly past max_body: 413 (or cut); the upstream got at most max_body and an unfinished request', async () => {
    const chunk = `200\r\n${'c'.repeat(0x200)}\r\n`;
    const r = await send(h, buildRequest(h, '/relay/files/up', { method: 'PUT', token, headers: [['Transfer-Encoding', 'chunked']], body: chunk }), {
      expectResponses: 1,
      writeDelays: [...Array.from({ length: 5 }, () => ({ delayMs: 80, data: chunk })), { delayMs: 80, data: '0\r\n\r\n' }],
    });
    expect(r.closedByServer).toBe(true);
    if (r.responses.length > 0) expectJsonError(r.responses[0]!, 413, 'body_too_large', [token]);
    await sleep(200);
    expect(h.upstream.requests.length).toBeLessThanOrEqual(1);
    for (const seen of h.upstream.requests) {
      expect(seen.bodyBytes).toBeLessThanOrEqual(MAX_BODY);
      expect(seen.bodyComplete).toBe(false);
    }
  });
});

describe('slow clients', () => {
  const budgetMs = HEADER_TIMEOUT_S * 1000 + 1_500;

  // Each header line arrives well within the idle timeout, so only client_header_timeout can end this.
  it('slowloris, trickled headers: 408 (or closed) about client_header_timeout after the first byte', async () => {
    const r = await send(h, `GET /relay/files/slow-client HTTP/1.1\r\nHost: port\r\nAuthorization: Bearer ${token}\r\n`, {
      expectResponses: 1,
      timeoutMs: budgetMs + 1_500,
      writeDelays: Array.from({ length: 40 }, (_, i) => ({ delayMs: 250, data: `X-Slow-${i}: a\r\n` })),
    });
    expect(r.closedByServer).toBe(true);
    expect(r.durationMs).toBeLessThan(budgetMs);
    for (const res of r.responses) expect(res.status).toBe(408);
    await upstreamSawNothing();
  });

  // One stalled connection, judged by the two tests below (the bug and the backstop).
  let stalledHead: ReturnType<typeof send> | undefined;
  const stalled = () =>
    (stalledHead ??= send(h, `GET /relay/files/slow-client HTTP/1.1\r\nHost: port\r\n`, { expectResponses: 1, timeoutMs: IDLE_TIMEOUT_S * 1000 + 2_000 }));

  it('slowloris, stalled head: 408 (or closed) after client_header_timeout, not only at the idle timeout', async () => {
    const r = await stalled();
    expect(r.closedByServer).toBe(true);
    expect(r.durationMs).toBeLessThan(budgetMs);
    for (const res of r.responses) expect(res.status).toBe(408);
    await upstreamSawNothing();
  });

  it('slowloris, stalled head: the connection is closed by the idle timeout at the latest, nothing forwarded', async () => {
    const r = await stalled();
    expect(r.closedByServer).toBe(true);
    expect(r.durationMs).toBeLessThan(IDLE_TIMEOUT_S * 1000 + 1_000);
    for (const res of r.responses) expect(res.status).toBe(408);
    await upstreamSawNothing();
  });

  it('a stalled request body: closed after client_idle_timeout; the upstream request is aborted, never complete', async () => {
    const r = await send(h, buildRequest(h, '/relay/files/stalled', { method: 'PUT', token, headers: [['Content-Length', '100']], body: 'abc' }), {
      expectResponses: 1,
      timeoutMs: IDLE_TIMEOUT_S * 1000 + 3_000,
    });
    expect(r.closedByServer).toBe(true);
    expect(r.durationMs).toBeGreaterThanOrEqual(IDLE_TIMEOUT_S * 1000 - 200);
    expect(r.durationMs).toBeLessThan(IDLE_TIMEOUT_S * 1000 + 1_500);
    for (const res of r.responses) expect(res.status).toBeGreaterThanOrEqual(400);
    await waitUntil(() => h.upstream.requests[0]?.aborted, 2_000, 'the upstream request to be aborted');
    expect(h.upstream.requests).toHaveLength(1);
    expect(h.upstream.requests[0]).toMatchObject({ bodyBytes: 3, bodyComplete: false, aborted: true });
  });

  it('slow connections do not hold up others', async () => {
    const slow = Array.from({ length: 20 }, () =>
      send(h, 'GET /relay/files/x HTTP/1.1\r\nHost: port\r\n', { timeoutMs: 1_500, writeDelays: [{ delayMs: 700, data: 'X-A: b\r\n' }] }),
    );
    await sleep(100);
    const started = Date.now();
    const r = await sendOne(h, buildRequest(h, '/relay/files/fast', { token }));
    expect(r.status).toBe(200);
    expect(Date.now() - started).toBeLessThan(2_000);
    await Promise.all(slow);
  });
});

describe('slow, dead and misbehaving upstreams', () => {
  it('an upstream slower than upstreams.<name>.timeout: 504 upstream_timeout after about that long', async () => {
    const r = await sendOne(h, buildRequest(h, '/relay/files/slow', { token }), { timeoutMs: 6_000 });
    expectJsonError(r, 504, 'upstream_timeout', [token]);
    expect(r.result.durationMs).toBeGreaterThanOrEqual(900);
    expect(r.result.durationMs).toBeLessThan(2_500);
    // It did get the (allowed) request; Port gave up on it and closed that upstream request.
    expect(h.upstream.requests.map((x) => x.url)).toEqual(['/base/slow']);
    await waitUntil(() => h.upstream.requests[0]!.aborted, 2_000, 'the upstream request to be aborted');
  });

  it('a client that leaves before the upstream answers: the upstream request is aborted then, not at the upstream timeout', async () => {
    // `patient` waits 60 s for an answer; the client gives up after 300 ms.
    const r = await send(h, buildRequest(h, '/relay/patient/never', { token }), { timeoutMs: 300 });
    expect(r.timedOut).toBe(true);
    await waitUntil(() => h.upstream.requests[0]?.aborted, 10_000, 'the upstream request to be aborted');
    expect(h.upstream.requests.map((x) => x.url)).toEqual(['/base/never']);
  });

  it('an upstream that never answers: 504 upstream_timeout', async () => {
    const r = await sendOne(h, buildRequest(h, '/relay/files/never', { token }), { timeoutMs: 6_000 });
    expectJsonError(r, 504, 'upstream_timeout', [token]);
    expect(r.result.durationMs).toBeLessThan(2_500);
  });

  it('a dead upstream (connection refused): 502 upstream_unavailable, promptly', async () => {
    const r = await sendOne(h, buildRequest(h, '/relay/dead/x', { token }));
    expectJsonError(r, 502, 'upstream_unavailable', [token]);
    expect(r.result.durationMs).toBeLessThan(2_000);
  });

  it('an upstream that closes before answering: 502 upstream_unavailable', async () => {
    const r = await sendOne(h, buildRequest(h, '/relay/early/x', { token }));
    expectJsonError(r, 502, 'upstream_unavailable', [token]);
  });

  // undici's HTTPParserError extends Error, not UndiciError, and has no errno-style code,
  // so Relay's upstreamFailure() does not recognise it and answers 500 server_error.
  it.each([
    ['an invalid status line', 'garbage'],
    ['a non-HTTP protocol', 'nonhttp'],
    ['a NUL in a response header', 'badheader'],
  ])('an upstream that answers with %s: 502 upstream_unavailable', async (_name, route) => {
    const r = await sendOne(h, buildRequest(h, `/relay/${route}/x`, { token }));
    expectJsonError(r, 502, 'upstream_unavailable', [token]);
  });

  it('an upstream response with both Content-Length and Transfer-Encoding: 502, never relayed', async () => {
    const r = await sendOne(h, buildRequest(h, '/relay/clte/x', { token }));
    expectJsonError(r, 502, 'upstream_unavailable', [token]);
  });

  it('an upstream that closes mid-response (Content-Length): the caller sees the cut — no complete response, connection closed', async () => {
    const r = await send(h, buildRequest(h, '/relay/midlength/x', { token }), { expectResponses: 1, timeoutMs: 3_000 });
    expect(r.closedByServer).toBe(true);
    expect(r.timedOut).toBe(false);
    expect(r.responses).toHaveLength(1);
    expect(r.responses[0]!.status).toBe(200);
    expect(r.responses[0]!.complete).toBe(false);
    expect(r.responses[0]!.bodyBytes.length).toBeLessThan(1000);
  });

  it('an upstream that closes mid-response (chunked): no terminating chunk reaches the caller, connection closed', async () => {
    const r = await send(h, buildRequest(h, '/relay/midchunked/x', { token }), { expectResponses: 1, timeoutMs: 3_000 });
    expect(r.closedByServer).toBe(true);
    expect(r.timedOut).toBe(false);
    expect(r.responses).toHaveLength(1);
    expect(r.responses[0]!.complete).toBe(false);
    expect(r.raw.toString('latin1')).not.toMatch(/\r\n0\r\n\r\n$/);
  });

  it('bytes after an upstream response never become the answer to the next request (response queue poisoning)', async () => {
    const first = await sendOne(h, buildRequest(h, '/relay/extra/one', { token }));
    expect(first.status).toBe(200);
    expect(first.body).toBe('ok');
    await sleep(100);
    const second = await sendOne(h, buildRequest(h, '/relay/extra/two', { token }), { timeoutMs: 4_000 });
    expect(second.body).not.toContain('poison');
    expect([200, 502]).toContain(second.status);
  });
});
