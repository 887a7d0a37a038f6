import { afterAll, beforeAll, it } from 'vitest';
import { TEST_POLICIES } from '../helpers/port-harness.js';
import { startRelayHarness, type RelayHarness } from '../helpers/relay-harness.js';
import { buildRequest, send, deadPort, startRawUpstream } from './support.js';

let h: RelayHarness; let t: string;
beforeAll(async () => {
  const dead = await deadPort();
  const mid = await startRawUpstream((s) => { s.write('HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n' + 'x'.repeat(100)); setTimeout(() => s.destroy(), 50); });
  const mid2 = await startRawUpstream((s) => { s.destroy(); });
  h = await startRelayHarness({ relay: { client_header_timeout: 1, client_idle_timeout: 3 }, upstream: { routes: { '/base/slow': { kind: 'slowHeaders', ms: 3000 }, '/base/never': { kind: 'neverRespond' } } },
    upstreams: (up) => ({
      files: { url: `${up.url}/base`, timeout: 1, connect_timeout: 1, max_body: '1KiB', inject: { bearer: 'env:PORT_TEST_UPSTREAM_SECRET' } },
      dead: { url: `http://127.0.0.1:${dead}`, timeout: 1, connect_timeout: 1 },
      mid: { url: mid.url, timeout: 1 },
      mid2: { url: mid2.url, timeout: 1 },
      ws: { url: `${up.url}/base`, allow_upgrade: true },
    }),
    policies: { ...TEST_POLICIES, 'relay.cedar': '@id("all") permit (principal, action == Port::Action::"proxy", resource) unless { context.path like "/admin*" };' },
  });
  t = await h.token();
});
afterAll(async () => { await h?.close(); });

const show = (name: string, r: any) => console.log(name, JSON.stringify({ st: r.responses.map((x: any) => [x.status, x.body.slice(0, 300), x.headers.connection, x.complete]), closed: r.closedByServer, reset: r.reset, to: r.timedOut, ms: r.durationMs, raw: r.raw.toString('latin1').slice(0,200), up: h.upstream.requests.map((q) => [q.method, q.url, q.bodyBytes, q.aborted, q.rawHeaders.join('|')]), ce: h.upstream.clientErrors.map(e=>e.code) }));

it('probe', async () => {
  const big = 'a'.repeat(3000);
  const cases: Array<[string, Buffer | string, any?]> = [
    ['underscore', buildRequest(h, '/relay/files/x', { token: t, headers: [['X_Forwarded_For', '6.6.6.6'], ['Proxy', 'http://evil'], ['Transfer_Encoding', 'chunked'], ['Connection', 'X-Forwarded-For, Authorization, Host, Content-Length, X-Custom'], ['X-Custom', 'c'], ['Keep-Alive', 'timeout=5'], ['TE', 'trailers'], ['Trailer', 'X-T'], ['Proxy-Authorization', 'Basic eDp5'], ['Proxy-Connection', 'keep-alive'], ['Cookie', 'a=b'], ['Upgrade', 'websocket'], ['X-Forwarded-Host', 'evil'], ['Forwarded', 'for=6.6.6.6'], ['X-Real-IP', '6.6.6.6'], ['X-Keep', 'yes']] })],
    ['pipelined', Buffer.concat([buildRequest(h, '/relay/files/x', { token: t }), buildRequest(h, '/relay/files/admin', { token: t }), buildRequest(h, '/relay/files/y', {})]), { expectResponses: 3 }],
    ['CL too big', buildRequest(h, '/relay/files/x', { method: 'PUT', token: t, body: big })],
    ['chunked too big', buildRequest(h, '/relay/files/x', { method: 'PUT', token: t, headers: [['Transfer-Encoding', 'chunked']], body: `${(3000).toString(16)}\r\n${big}\r\n0\r\n\r\n` })],
    ['chunked too big slow', buildRequest(h, '/relay/files/x', { method: 'PUT', token: t, headers: [['Transfer-Encoding', 'chunked']], body: `200\r\n${'b'.repeat(512)}\r\n` }), { writeDelays: [1,2,3,4,5].map(() => ({ delayMs: 100, data: `200\r\n${'b'.repeat(512)}\r\n` })).concat([{delayMs: 100, data: '0\r\n\r\n'}]) }],
    ['slow upstream', buildRequest(h, '/relay/files/slow', { token: t })],
    ['never upstream', buildRequest(h, '/relay/files/never', { token: t })],
    ['dead', buildRequest(h, '/relay/dead/x', { token: t })],
    ['mid', buildRequest(h, '/relay/mid/x', { token: t })],
    ['mid2', buildRequest(h, '/relay/mid2/x', { token: t })],
    ['ws allowed', buildRequest(h, '/relay/ws/x', { token: t, headers: [['Connection', 'Upgrade'], ['Upgrade', 'websocket']] })],
    ['expect', buildRequest(h, '/relay/files/admin', { method: 'POST', token: t, headers: [['Expect', '100-continue'], ['Content-Length', '5']] }), { writeDelays: [{ delayMs: 100, data: 'hello' }] }],
    ['stall body', buildRequest(h, '/relay/files/x', { method: 'PUT', token: t, headers: [['Content-Length', '100']] , body: 'abc'}), { timeoutMs: 8000 }],
  ];
  for (const [name, bytes, opts] of cases) {
    h.upstream.reset();
    const r = await send(h, bytes, { expectResponses: 1, closeGraceMs: 300, ...opts });
    await new Promise((r) => setTimeout(r, 100));
    show(name, r);
  }
}, 120000);
