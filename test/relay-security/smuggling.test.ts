/**
 * Request smuggling against the relay (James Kettle, "HTTP Desync Attacks: Request Smuggling
 * Reborn", 2019; RFC 9112 §6.1/§6.3; https://github.com/MDA2AV/Http11Probe smuggling/ and
 * content-length/). Every request here is
 * otherwise allowed (a deploy job may PUT under /uploads/ on `files`), so if Port's framing
 * and the upstream's ever disagreed, something would show up in the recording upstream:
 * each case asserts the exact status, that the connection is closed after a framing
 * refusal, and exactly what the upstream received — usually nothing.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startRelayHarness, type RelayHarness } from '../helpers/relay-harness.js';
import { buildRequest, expectJsonError, expectParserRefusal, KeepAliveConnection, send, sendOne, sleep } from './support.js';

let h: RelayHarness;
let token: string;
beforeAll(async () => {
  h = await startRelayHarness();
  token = await h.token();
});
afterAll(async () => {
  await h?.close();
});
beforeEach(() => h.upstream.reset());

const UPLOAD = '/relay/files/uploads/s.txt';
/** A request with the token and the given header lines and body (no automatic Content-Length). */
const put = (headers: Array<[string, string] | string>, body: string, target = UPLOAD) =>
  buildRequest(h, target, { method: 'PUT', token, headers, body, contentLength: false });
/** A complete, otherwise allowed request an attacker would like to smuggle to the upstream. */
const smuggled = () => buildRequest(h, '/relay/files/admin/smuggled', { token }).toString('latin1');

/** Let any late forwarding show up before asserting the upstream saw nothing. */
async function upstreamSawNothing(): Promise<void> {
  await sleep(150);
  expect(h.upstream.requests, JSON.stringify(h.upstream.requests.map((r) => r.url))).toHaveLength(0);
  expect(h.upstream.clientErrors).toHaveLength(0);
}

describe('CL.TE and TE.CL: Content-Length with Transfer-Encoding', () => {
  it.each([
    ['CL.TE', [['Content-Length', '6'], ['Transfer-Encoding', 'chunked']], `0\r\n\r\nG`],
    ['TE.CL', [['Transfer-Encoding', 'chunked'], ['Content-Length', '3']], `8\r\nSMUGGLED\r\n0\r\n\r\n`],
    ['CL.TE with a smuggled request', [['Content-Length', '5'], ['Transfer-Encoding', 'chunked']], `0\r\n\r\n${'GET /relay/files/admin HTTP/1.1\r\nHost: x\r\n\r\n'}`],
    ['CL + obfuscated TE (xchunked)', [['Content-Length', '5'], ['Transfer-Encoding', 'xchunked']], `0\r\n\r\n`],
    ['CL + TE on HTTP/1.0', [['Content-Length', '5'], ['Transfer-Encoding', 'chunked']], `0\r\n\r\n`],
  ] as Array<[string, Array<[string, string]>, string]>)('%s: 400, connection closed, nothing forwarded', async (name, headers, body) => {
    const bytes = name.includes('HTTP/1.0')
      ? buildRequest(h, UPLOAD, { method: 'PUT', token, headers, body, contentLength: false, version: 'HTTP/1.0' })
      : put(headers, body);
    const r = await send(h, bytes, { expectResponses: 1, closeGraceMs: 300 });
    expectParserRefusal(r, 400);
    await upstreamSawNothing();
  });
});

describe('TE.TE: obfuscated Transfer-Encoding', () => {
  const chunkedHello = '5\r\nhello\r\n0\r\n\r\n';
  it.each([
    ['xchunked', ['Transfer-Encoding: xchunked']],
    ['chunkedx', ['Transfer-Encoding: chunkedx']],
    ['chunked, identity', ['Transfer-Encoding: chunked, identity']],
    ['identity, chunked (llhttp accepts; Port must not)', ['Transfer-Encoding: identity, chunked']],
    ['gzip, chunked (llhttp accepts; Port must not)', ['Transfer-Encoding: gzip, chunked']],
    ['chunked, gzip', ['Transfer-Encoding: chunked, gzip']],
    ['leading comma', ['Transfer-Encoding: ,chunked']],
    ['quoted', ['Transfer-Encoding: "chunked"']],
    ['identity alone', ['Transfer-Encoding: identity']],
    ['unknown coding', ['Transfer-Encoding: cow']],
    ['two TE lines', ['Transfer-Encoding: chunked', 'Transfer-Encoding: chunked']],
    ['two TE lines, identity first', ['Transfer-Encoding: identity', 'Transfer-Encoding: chunked']],
    ['two TE lines, different case', ['Transfer-Encoding: chunked', 'transfer-encoding: identity']],
    ['space before colon', ['Transfer-Encoding : chunked']],
    ['vertical tab after value', ['Transfer-Encoding: chunked\x0b']],
    ['form feed before value', ['Transfer-Encoding: \x0cchunked']],
    ['NUL after value', ['Transfer-Encoding: chunked\x00']],
    ['obs-fold continuation', ['Transfer-Encoding:', ' chunked']],
    ['leading-space header line', ['X-Foo: bar', ' Transfer-Encoding: chunked']],
    ['bare LF before the TE line', ['X-Foo: bar\nTransfer-Encoding: chunked']],
    ['bare CR in the value', ['Transfer-Encoding: chunked\rX: y']],
  ] as Array<[string, string[]]>)('%s: 400, connection closed, nothing forwarded', async (_name, lines) => {
    const r = await send(h, put(lines, chunkedHello), { expectResponses: 1, closeGraceMs: 300 });
    expectParserRefusal(r, 400);
    await upstreamSawNothing();
  });

  it.each([
    ['tab before the value', 'Transfer-Encoding:\tchunked'],
    ['upper case', 'Transfer-Encoding: CHUNKED'],
    ['trailing space', 'Transfer-Encoding: chunked '],
  ])('RFC-legal spelling (%s) is read as chunked by both hops: one request, the de-chunked body', async (_name, line) => {
    const r = await send(h, Buffer.concat([put([line], '5\r\nhello\r\n0\r\n\r\n'), Buffer.from(smuggled(), 'latin1')]), { expectResponses: 2 });
    expect(r.responses.map((x) => x.status)).toEqual([200, 403]);
    await sleep(100);
    expect(h.upstream.requests).toHaveLength(1);
    expect(h.upstream.requests[0]).toMatchObject({ method: 'PUT', url: '/base/uploads/s.txt', bodyBytes: 5, bodyComplete: true });
    expect(h.upstream.requests[0]!.body!.toString()).toBe('hello');
    expect(h.upstream.clientErrors).toHaveLength(0);
  });

  it('Transfer-Encoding on HTTP/1.0 (faulty framing, RFC 9112 §6.1): at most one request forwarded, then the connection is closed', async () => {
    const bytes = Buffer.concat([
      buildRequest(h, UPLOAD, { method: 'PUT', token, headers: [['Transfer-Encoding', 'chunked']], body: '5\r\nhello\r\n0\r\n\r\n', contentLength: false, version: 'HTTP/1.0' }),
      Buffer.from(smuggled(), 'latin1'),
    ]);
    const r = await send(h, bytes, { expectResponses: 2, timeoutMs: 1_000 });
    expect(r.responses).toHaveLength(1);
    expect([200, 400]).toContain(r.responses[0]!.status);
    expect(r.closedByServer).toBe(true);
    await sleep(100);
    expect(h.upstream.requests.length).toBeLessThanOrEqual(1);
    for (const seen of h.upstream.requests) expect(seen).toMatchObject({ url: '/base/uploads/s.txt', bodyBytes: 5 });
  });

  it('Transfer_Encoding (underscore) is not framing: the body is read by Content-Length on both hops', async () => {
    const r = await sendOne(h, put([['Content-Length', '5'], ['Transfer_Encoding', 'chunked']].map(([a, b]) => `${a}: ${b}`), 'hello'));
    expect(r.status).toBe(200);
    await sleep(100);
    expect(h.upstream.requests).toHaveLength(1);
    expect(h.upstream.requests[0]).toMatchObject({ bodyBytes: 5, bodyComplete: true });
    expect(h.upstream.requests[0]!.headers['transfer-encoding']).toBeUndefined();
    expect(h.upstream.clientErrors).toHaveLength(0);
  });
});

describe('Content-Length obfuscations', () => {
  it.each([
    ['duplicate, same value', ['Content-Length: 5', 'Content-Length: 5']],
    ['duplicate, different values', ['Content-Length: 5', 'Content-Length: 6']],
    ['duplicate, different case', ['Content-Length: 5', 'content-length: 5']],
    ['comma list', ['Content-Length: 5, 5']],
    ['plus sign', ['Content-Length: +5']],
    ['negative', ['Content-Length: -5']],
    ['hex', ['Content-Length: 0x5']],
    ['space inside', ['Content-Length: 5 5']],
    ['space before colon', ['Content-Length : 5']],
    ['overflow', ['Content-Length: 99999999999999999999999']],
    ['underscore digit separator', ['Content-Length: 1_0']],
    ['obs-fold', ['Content-Length:', ' 5']],
  ] as Array<[string, string[]]>)('%s: 400, connection closed, nothing forwarded', async (_name, lines) => {
    const r = await send(h, put(lines, 'hello'), { expectResponses: 1, closeGraceMs: 300 });
    expectParserRefusal(r, 400);
    await upstreamSawNothing();
  });

  it('leading zeros are forwarded as the canonical decimal, never verbatim (an octal-reading hop would desync)', async () => {
    const r = await sendOne(h, put(['Content-Length: 010'], '0123456789'));
    expect(r.status).toBe(200);
    await sleep(100);
    expect(h.upstream.requests).toHaveLength(1);
    expect(h.upstream.requests[0]!.headers['content-length']).toBe('10');
    expect(h.upstream.requests[0]).toMatchObject({ bodyBytes: 10, bodyComplete: true });
  });

  it('a 16-digit Content-Length (llhttp takes it, Port\'s rule does not): 400 invalid_request, nothing forwarded', async () => {
    const r = await send(h, put(['Content-Length: 1000000000000000'], 'hello'), { expectResponses: 1, closeGraceMs: 300 });
    expectJsonError(expectParserRefusal(r, 400), 400, 'invalid_request', [token]);
    await upstreamSawNothing();
  });
});

describe('chunk framing', () => {
  it.each([
    ['0x prefix', '0x5\r\nhello\r\n0\r\n\r\n'],
    ['plus sign', '+5\r\nhello\r\n0\r\n\r\n'],
    ['size overflow', 'fffffffffffffffff\r\nhello\r\n0\r\n\r\n'],
    ['bare LF terminators', '5\nhello\n0\n\n'],
    ['space after size', '5 \r\nhello\r\n0\r\n\r\n'],
    ['underscore in size', '0_5\r\nhello\r\n0\r\n\r\n'],
  ])('%s: 400 and closed; the upstream gets no complete request', async (_name, body) => {
    const r = await send(h, put(['Transfer-Encoding: chunked'], body), { expectResponses: 1, closeGraceMs: 300 });
    expectParserRefusal(r, 400);
    await sleep(150);
    // The head may already be on its way to the upstream when the chunk fails to parse;
    // the upstream must then see a request it can never take for complete.
    for (const seen of h.upstream.requests) expect(seen).toMatchObject({ bodyComplete: false, aborted: true });
    expect(h.upstream.requests.length).toBeLessThanOrEqual(1);
  });

  it('missing CRLF after chunk data (the TE.CL desync): 400, the upstream request never completes', async () => {
    const r = await send(h, put(['Transfer-Encoding: chunked'], '5\r\nhelloX0\r\n\r\n'), { expectResponses: 1, closeGraceMs: 300 });
    expectParserRefusal(r, 400);
    await sleep(150);
    expect(h.upstream.requests.length).toBeLessThanOrEqual(1);
    for (const seen of h.upstream.requests) expect(seen).toMatchObject({ bodyComplete: false, aborted: true });
  });

  it('chunk extensions are consumed, not forwarded as data', async () => {
    const r = await sendOne(h, put(['Transfer-Encoding: chunked'], '5;name=value\r\nhello\r\n0;last\r\n\r\n'));
    expect(r.status).toBe(200);
    await sleep(100);
    expect(h.upstream.requests).toHaveLength(1);
    expect(h.upstream.requests[0]!.body!.toString()).toBe('hello');
  });

  it('trailers naming Authorization, Host, Content-Length or Transfer-Encoding never reach the upstream', async () => {
    const trailer = `5\r\nhello\r\n0\r\nAuthorization: Bearer caller-trailer\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n`;
    const r = await send(h, put(['Transfer-Encoding: chunked', 'Trailer: Authorization, X-Forwarded-For'], trailer), { expectResponses: 1, closeGraceMs: 200 });
    await sleep(150);
    // Either refused outright, or forwarded with Port's own framing and no trailer.
    if (r.responses[0]!.status === 200) {
      expect(h.upstream.requests).toHaveLength(1);
      const seen = h.upstream.requests[0]!;
      expect(seen.body!.toString()).toBe('hello');
      expect(JSON.stringify(seen.rawHeaders)).not.toContain('caller-trailer');
      expect(JSON.stringify(seen.rawHeaders)).not.toContain('6.6.6.6');
      expect(seen.headers.trailer).toBeUndefined();
    } else {
      expect(r.responses[0]!.status).toBe(400);
      for (const seen of h.upstream.requests) expect(seen.bodyComplete).toBe(false);
    }
    const framing = `5\r\nhello\r\n0\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\nHost: evil.example\r\n\r\n`;
    h.upstream.reset();
    const r2 = await send(h, put(['Transfer-Encoding: chunked'], framing), { expectResponses: 1, closeGraceMs: 200 });
    expect(r2.responses[0]!.status).toBe(400);
    await sleep(150);
    for (const seen of h.upstream.requests) expect(seen).toMatchObject({ bodyComplete: false, aborted: true });
  });
});

describe('pipelining: every request on a connection is authenticated and decided on its own', () => {
  it('a smuggled request behind a chunked body is parsed as its own request and denied by policy', async () => {
    const r = await send(h, put(['Transfer-Encoding: chunked'], `5\r\nhello\r\n0\r\n\r\n${smuggled()}`), { expectResponses: 2 });
    expect(r.responses.map((x) => x.status)).toEqual([200, 403]);
    expectJsonError(r.responses[1]!, 403, 'access_denied', [token]);
    await sleep(100);
    expect(h.upstream.requests.map((x) => x.url)).toEqual(['/base/uploads/s.txt']);
    expect(h.upstream.requests[0]!.body!.toString()).toBe('hello');
  });

  it('a smuggled request behind a Content-Length body, without a token, gets 401 of its own', async () => {
    const second = 'GET /relay/files/x HTTP/1.1\r\nHost: x\r\n\r\n';
    const r = await send(h, Buffer.concat([put(['Content-Length: 5'], 'hello'), Buffer.from(second)]), { expectResponses: 2 });
    expect(r.responses.map((x) => x.status)).toEqual([200, 401]);
    expectJsonError(r.responses[1]!, 401, 'invalid_request');
    expect(r.responses[1]!.headers['www-authenticate']).toMatch(/Bearer realm="port"/);
    await sleep(100);
    expect(h.upstream.requests).toHaveLength(1);
    expect(h.upstream.requests[0]).toMatchObject({ bodyBytes: 5, bodyComplete: true });
  });

  it('three pipelined requests: allowed, denied, unauthenticated', async () => {
    const bytes = Buffer.concat([
      buildRequest(h, '/relay/files/ok', { token }),
      buildRequest(h, '/relay/files/admin/users', { token }),
      buildRequest(h, '/relay/files/ok2', {}),
    ]);
    const r = await send(h, bytes, { expectResponses: 3 });
    expect(r.responses.map((x) => x.status)).toEqual([200, 403, 401]);
    await sleep(100);
    expect(h.upstream.requests.map((x) => x.url)).toEqual(['/base/ok']);
  });

  it('keep-alive revalidation: a token revoked between two requests on one connection is refused on the second', async () => {
    const fresh = await h.token();
    const c = await KeepAliveConnection.open(h);
    try {
      c.write(buildRequest(h, '/relay/files/first', { token: fresh }));
      const [first] = await c.read(1);
      expect(first!.status).toBe(200);
      expect((await h.post('/oauth/revoke', { token: fresh })).status).toBe(200);
      c.write(buildRequest(h, '/relay/files/first', { token: fresh }));
      const [second] = await c.read(1);
      expectJsonError(second!, 401, 'invalid_token', [fresh]);
      expect(h.upstream.requests.map((x) => x.url)).toEqual(['/base/first']);
    } finally {
      c.close();
    }
  });

  it('keep-alive: a second request with another Host, another upstream path and a caller X-Forwarded-For is judged afresh', async () => {
    const c = await KeepAliveConnection.open(h);
    try {
      c.write(buildRequest(h, '/relay/files/a', { token }));
      expect((await c.read(1))[0]!.status).toBe(200);
      c.write(buildRequest(h, '/relay/files/admin', { token, host: 'admin.internal', headers: [['X-Forwarded-For', '10.0.0.1']] }));
      expectJsonError((await c.read(1))[0]!, 403, 'access_denied');
      c.write(buildRequest(h, '/relay/files/b', { token, host: 'evil.example', headers: [['X-Forwarded-For', '10.0.0.1']] }));
      expect((await c.read(1))[0]!.status).toBe(200);
      expect(h.upstream.requests.map((x) => x.url)).toEqual(['/base/a', '/base/b']);
      for (const seen of h.upstream.requests) {
        expect(seen.headers.host).toBe(h.upstream.host);
        expect(seen.headers['x-forwarded-for']).toBe('127.0.0.1');
      }
    } finally {
      c.close();
    }
  });
});

describe('CL.0 and bodies on refused requests', () => {
  it('a denied request\'s body is consumed as body, never parsed as a request (CL.0)', async () => {
    const body = smuggled();
    const c = await KeepAliveConnection.open(h);
    try {
      c.write(buildRequest(h, '/relay/files/not-uploads/x', { method: 'POST', token, body }));
      expectJsonError((await c.read(1))[0]!, 403, 'access_denied');
      // Nothing more comes back for the body's bytes; the connection still frames correctly.
      expect(await c.read(1, 300)).toHaveLength(0);
      c.write(buildRequest(h, '/relay/files/after', { token }));
      expect((await c.read(1))[0]!.status).toBe(200);
      expect(h.upstream.requests.map((x) => x.url)).toEqual(['/base/after']);
    } finally {
      c.close();
    }
  });

  it('an unauthenticated request\'s body is consumed as body (401, nothing forwarded)', async () => {
    const r = await send(h, buildRequest(h, UPLOAD, { method: 'PUT', token: null, body: smuggled() }), { expectResponses: 2, timeoutMs: 1_000 });
    expect(r.responses.map((x) => x.status)).toEqual([401]);
    await upstreamSawNothing();
  });

  it('Expect: 100-continue on a denied request: 403, the body that follows is not a request', async () => {
    const head = buildRequest(h, '/relay/files/admin/x', { method: 'POST', token, headers: [['Expect', '100-continue'], ['Content-Length', String(smuggled().length)]] });
    const r = await send(h, head, { expectResponses: 2, timeoutMs: 1_000, writeDelays: [{ delayMs: 50, data: smuggled() }] });
    expect(r.responses.map((x) => x.status)).toEqual([403]);
    await upstreamSawNothing();
  });

  it('GET with a Content-Length body: the upstream gets one GET with exactly that body, never a second request', async () => {
    const body = smuggled();
    const r = await send(h, buildRequest(h, '/relay/files/get-with-body', { token, body }), { expectResponses: 2, timeoutMs: 1_000 });
    expect(r.responses.map((x) => x.status)).toEqual([200]);
    await sleep(100);
    expect(h.upstream.requests).toHaveLength(1);
    expect(h.upstream.requests[0]).toMatchObject({ method: 'GET', url: '/base/get-with-body', bodyBytes: body.length, bodyComplete: true });
    expect(h.upstream.clientErrors).toHaveLength(0);
  });
});

describe('request-line and Host framing', () => {
  it.each([
    ['bare LF line endings', 'GET /relay/files/x HTTP/1.1\nHost: a\n\n'],
    ['lower-case method', 'get /relay/files/x HTTP/1.1\r\nHost: a\r\n\r\n'],
    ['HTTP/1.2', 'GET /relay/files/x HTTP/1.2\r\nHost: a\r\n\r\n'],
    ['raw space in target', 'GET /relay/files/a b HTTP/1.1\r\nHost: a\r\n\r\n'],
    ['missing Host on HTTP/1.1', 'GET /relay/files/x HTTP/1.1\r\nX: y\r\n\r\n'],
    ['NUL in a header value', 'GET /relay/files/x HTTP/1.1\r\nHost: a\r\nX-A: b\x00c\r\n\r\n'],
    ['space in a header name', 'GET /relay/files/x HTTP/1.1\r\nHost: a\r\nX A: b\r\n\r\n'],
  ])('%s: 400 and closed, nothing forwarded', async (_name, text) => {
    const withToken = text.replace('Host: a\r\n', `Host: a\r\nAuthorization: Bearer ${token}\r\n`);
    const r = await send(h, withToken, { expectResponses: 1, closeGraceMs: 300 });
    expectParserRefusal(r, 400);
    await upstreamSawNothing();
  });

  it('CONNECT (authority-form) is never tunnelled: no 2xx, nothing forwarded', async () => {
    const before = h.upstream.connections();
    const r = await send(h, `CONNECT ${h.upstream.host} HTTP/1.1\r\nHost: ${h.upstream.host}\r\nAuthorization: Bearer ${token}\r\n\r\nGET /base/x HTTP/1.1\r\nHost: x\r\n\r\n`, { expectResponses: 1, closeGraceMs: 300 });
    for (const res of r.responses) expect(res.status).toBeGreaterThanOrEqual(400);
    expect(r.closedByServer).toBe(true);
    await upstreamSawNothing();
    expect(h.upstream.connections()).toBe(before);
  });
});
