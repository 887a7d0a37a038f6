import { afterAll, beforeAll, it } from 'vitest';
import { startRelayHarness, type RelayHarness } from '../helpers/relay-harness.js';
import { buildRequest, send } from './support.js';

let h: RelayHarness; let t: string;
beforeAll(async () => { h = await startRelayHarness({ relay: { client_header_timeout: 1, client_idle_timeout: 3 } }); t = await h.token(); });
afterAll(async () => { await h?.close(); });

const show = (name: string, r: any) => console.log(name, JSON.stringify({ st: r.responses.map((x: any) => [x.status, x.body.slice(0, 160), x.headers.connection]), closed: r.closedByServer, reset: r.reset, to: r.timedOut, ms: r.durationMs, up: h.upstream.requests.map((q) => [q.method, q.url, q.bodyBytes]), ce: h.upstream.clientErrors.map(e=>e.code) }));

it('probe', async () => {
  const cases: Array<[string, Buffer | string, any?]> = [
    ['GET body', buildRequest(h, '/relay/files/x', { token: t, body: 'hello' })],
    ['abs', buildRequest(h, 'http://evil.example/relay/files/x', { token: t })],
    ['abs same', buildRequest(h, `http://${new URL(h.url).host}/relay/files/x`, { token: t })],
    ['dup host', buildRequest(h, '/relay/files/x', { token: t, headers: [['Host', 'evil']] })],
    ['nul raw', buildRequest(h, '/relay/files/a\0b', { token: t })],
    ['frag', buildRequest(h, '/relay/files/a#b', { token: t })],
    ['backslash', buildRequest(h, '/relay/files/a\\..\\admin', { token: t })],
    ['20k header', buildRequest(h, '/relay/files/x', { token: t, headers: [['X-Big', 'a'.repeat(20000)]] })],
    ['TE identity,chunked', buildRequest(h, '/relay/files/uploads/x', { method: 'PUT', token: t, headers: [['Transfer-Encoding', 'identity, chunked']], body: '5\r\nhello\r\n0\r\n\r\n' })],
    ['underscore TE', buildRequest(h, '/relay/files/uploads/x', { method: 'PUT', token: t, headers: [['Transfer_Encoding', 'chunked'], ['X_Forwarded_For', '6.6.6.6']], body: 'hello' })],
    ['upgrade', buildRequest(h, '/relay/files/ws', { token: t, headers: [['Connection', 'Upgrade'], ['Upgrade', 'websocket']] })],
    ['slowloris', 'GET /relay/files/x HTTP/1.1\r\nHost: a\r\n', { timeoutMs: 8000, writeDelays: Array.from({length: 14}, () => ({ delayMs: 500, data: 'X-A: b\r\n' })) }],
    ['stall hdr', 'GET /relay/files/x HTTP/1.1\r\nHost: a\r\n', { timeoutMs: 8000 }],
  ];
  for (const [name, bytes, opts] of cases) {
    h.upstream.reset();
    const r = await send(h, bytes, { expectResponses: 1, closeGraceMs: 200, ...opts });
    show(name, r);
  }
}, 120000);
