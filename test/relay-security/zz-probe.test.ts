import { afterAll, beforeAll, it } from 'vitest';
import { startRelayHarness, type RelayHarness } from '../helpers/relay-harness.js';
import { buildRequest, send } from './support.js';

let h: RelayHarness; let t: string;
beforeAll(async () => {
  h = await startRelayHarness({ upstreams: (up) => ({
      files: { url: `${up.url}/base`, timeout: 2, max_body: '1MiB', inject: { bearer: 'env:PORT_TEST_UPSTREAM_SECRET' } },
      npm: { url: `${up.url}/npm`, encoded_slashes: 'keep' },
  }) });
  t = await h.token();
});
afterAll(async () => { await h?.close(); });
const show = (name: string, r: any) => console.log(name, JSON.stringify({ st: r.responses.map((x: any) => [x.status, x.body.slice(0, 120), x.headers.connection, x.complete]), closed: r.closedByServer, reset: r.reset, to: r.timedOut, ms: r.durationMs, up: h.upstream.requests.map((q) => [q.method, q.url, q.bodyBytes, q.bodyComplete, q.aborted, q.headers['content-length'], q.headers['transfer-encoding'], q.body?.toString()]), ce: h.upstream.clientErrors.map(e=>e.code) }));

it('probe', async () => {
  const P = (body: string, hdrs: Array<[string,string]|string>) => buildRequest(h, '/relay/files/uploads/x', { method: 'PUT', token: t, headers: hdrs, body });
  const cases: Array<[string, Buffer | string, any?]> = [
    ['CL 010', P('0123456789', [['Content-Length', '010']])],
    ['CL 5 trailing sp', P('hello', [['Content-Length', '5 ']])],
    ['chunk 0x5', P('0x5\r\nhello\r\n0\r\n\r\n', [['Transfer-Encoding', 'chunked']])],
    ['chunk ext', P('5;a=b\r\nhello\r\n0\r\n\r\n', [['Transfer-Encoding', 'chunked']])],
    ['chunk overflow', P('fffffffffffffffff\r\nhello\r\n0\r\n\r\n', [['Transfer-Encoding', 'chunked']])],
    ['chunk missing crlf', P('5\r\nhelloX0\r\n\r\n', [['Transfer-Encoding', 'chunked']])],
    ['chunk bare LF', P('5\nhello\n0\n\n', [['Transfer-Encoding', 'chunked']])],
    ['chunk trailers', P('5\r\nhello\r\n0\r\nAuthorization: Bearer evil\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\nHost: evil\r\n\r\n', [['Transfer-Encoding', 'chunked'], ['Trailer', 'Authorization']])],
    ['chunk smuggle pipelined', P('5\r\nhello\r\n0\r\n\r\n' + buildRequest(h, '/relay/files/admin', { token: t }).toString(), [['Transfer-Encoding', 'chunked']]), { expectResponses: 2 }],
    ['HTTP/1.0 TE', buildRequest(h, '/relay/files/uploads/x', { method: 'PUT', token: t, version: 'HTTP/1.0', headers: [['Transfer-Encoding', 'chunked']], body: '5\r\nhello\r\n0\r\n\r\n' })],
    ['TE tab', P('5\r\nhello\r\n0\r\n\r\n', [['Transfer-Encoding', '\tchunked']])],
    ['TE CHUNKED', P('5\r\nhello\r\n0\r\n\r\n', [['Transfer-Encoding', 'CHUNKED']])],
    ['TE vtab', P('5\r\nhello\r\n0\r\n\r\n', [['Transfer-Encoding', 'chunked\x0b']])],
    ['TE ff', P('5\r\nhello\r\n0\r\n\r\n', [['Transfer-Encoding', '\x0cchunked']])],
    ['TE comma', P('5\r\nhello\r\n0\r\n\r\n', [['Transfer-Encoding', ',chunked']])],
    ['TE quoted', P('5\r\nhello\r\n0\r\n\r\n', [['Transfer-Encoding', '"chunked"']])],
    ['TE identity', P('hello', [['Transfer-Encoding', 'identity']])],
    ['TE underscore+CL', P('hello', [['Content-Length', '5'], ['Transfer_Encoding', 'chunked']])],
    ['TE obs-fold', P('5\r\nhello\r\n0\r\n\r\n', ['Transfer-Encoding:', ' chunked'])],
    ['CONNECT', `CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\nAuthorization: Bearer ${t}\r\n\r\n`],
    ['OPTIONS *', `OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n`],
    ['npm %2Fadmin', buildRequest(h, '/relay/npm/%2Fadmin', { token: t })],
    ['npm a%2F%2Fadmin', buildRequest(h, '/relay/npm/a%2F%2Fadmin', { token: t })],
    ['npm @s%2fn', buildRequest(h, '/relay/npm/@s%2fn', { token: t })],
    ['HTTP/2.0', buildRequest(h, '/relay/files/x', { token: t, version: 'HTTP/2.0' })],
    ['no host', buildRequest(h, '/relay/files/x', { token: t, host: null })],
    ['no host 1.0', buildRequest(h, '/relay/files/x', { token: t, host: null, version: 'HTTP/1.0' })],
    ['host a@evil', buildRequest(h, '/relay/files/x', { token: t, host: 'a@evil' })],
    ['fullwidth', buildRequest(h, '/relay/files/a%EF%BC%8F..%EF%BC%8Fadmin', { token: t })],
    ['long', buildRequest(h, '/relay/files/' + 'a'.repeat(9000), { token: t })],
    ['lf', 'GET /relay/files/x HTTP/1.1\nHost: a\n\n'],
  ];
  for (const [name, bytes, opts] of cases) {
    h.upstream.reset();
    const r = await send(h, bytes, { expectResponses: 1, closeGraceMs: 200, timeoutMs: 3000, ...opts });
    await new Promise((r) => setTimeout(r, 100));
    show(name, r);
  }
}, 120000);
