/**
 * Every refusal on the relay's listener is JSON `{error, error_description}` with a
 * specific status and no stack, token or secret. The relay's own refusals are checked case by case in the other files; this one
 * covers what is easy to forget: refusals written before the relay ever sees the request
 * (Node's parser, via the server's clientError handler), and credentials that must not be
 * echoed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRelayHarness, UPSTREAM_SECRET, type RelayHarness } from '../helpers/relay-harness.js';
import { buildRequest, expectJsonError, send, sendOne } from './support.js';

let h: RelayHarness;
let token: string;
beforeAll(async () => {
  h = await startRelayHarness({ relay: { client_header_timeout: 1 } });
  token = await h.token();
});
afterAll(async () => {
  await h?.close();
});

describe('relay refusals never echo credentials', () => {
  it('a 401 for a non-token Bearer value does not repeat it (here: the upstream\'s own secret)', async () => {
    const r = await sendOne(h, buildRequest(h, '/relay/files/x', { token: UPSTREAM_SECRET }));
    expectJsonError(r, 401, 'invalid_token');
    expect(r.headers['www-authenticate']).toMatch(/Bearer realm="port"/);
  });

  it('a 401 for Basic auth with a wrong password does not repeat it', async () => {
    const secret = 'caller-password-do-not-echo';
    const r = await sendOne(h, buildRequest(h, '/relay/files/x', { headers: [['Authorization', `Basic ${Buffer.from(`u:${secret}`).toString('base64')}`]] }));
    expectJsonError(r, 401, 'invalid_token', [secret, Buffer.from(`u:${secret}`).toString('base64')]);
  });

  it('a 401 for an unparseable Authorization header does not repeat it', async () => {
    const r = await sendOne(h, buildRequest(h, '/relay/files/x', { headers: [['Authorization', 'Token do-not-echo-me']] }));
    expectJsonError(r, 401, 'invalid_request', ['do-not-echo-me']);
  });

  it('a 403 names the normalised path and the reason, never the token or the query', async () => {
    const r = await sendOne(h, buildRequest(h, '/relay/files/admin?api_key=do-not-echo', { token }));
    const body = expectJsonError(r, 403, 'access_denied', [token, 'do-not-echo']);
    expect(body.error_description).toContain('/admin');
    expect(body.error_description).toContain('nobody reaches the admin area');
  });

  it('a 400 for a duplicate header names the header, never its values', async () => {
    const r = await sendOne(h, buildRequest(h, '/relay/files/x', { token, headers: [['Authorization', 'Bearer second-value-do-not-echo']] }));
    expectJsonError(r, 400, 'invalid_request', [token, 'second-value-do-not-echo']);
  });

  it('a 400 for a path trick never echoes the target', async () => {
    const r = await sendOne(h, buildRequest(h, '/relay/files/secret-name%2f..%2fadmin?token=do-not-echo', { token }));
    expectJsonError(r, 400, 'invalid_path', [token, 'secret-name', 'do-not-echo']);
  });
});

describe('refusals written by the server before the relay sees the request', () => {
  // Fastify's defaultClientErrorHandler answers `{"error":"Bad Request","message":"Client
  // Error","statusCode":400}` — Port installs no clientErrorHandler of its own.
  it.each([
    ['CL.TE (400)', 400, () => buildRequest(h, '/relay/files/uploads/x', { method: 'PUT', token, headers: [['Content-Length', '5'], ['Transfer-Encoding', 'chunked']], body: '0\r\n\r\n' })],
    ['duplicate Content-Length (400)', 400, () => buildRequest(h, '/relay/files/uploads/x', { method: 'PUT', token, headers: [['Content-Length', '5'], ['Content-Length', '6']], body: 'hello' })],
    ['raw NUL in the target (400)', 400, () => Buffer.from(`GET /relay/files/a\x00b HTTP/1.1\r\nHost: p\r\nAuthorization: Bearer ${token}\r\n\r\n`, 'latin1')],
    ['header over max_header_bytes (431)', 431, () => buildRequest(h, '/relay/files/x', { token, headers: [['X-Big', 'a'.repeat(20 * 1024)]] })],
  ])('%s answers JSON {error, error_description}', async (_name, status, bytes) => {
    const r = await send(h, bytes(), { expectResponses: 1 });
    expect(r.responses).toHaveLength(1);
    expectJsonError(r.responses[0]!, status, /^[a-z_]+$/, [token]);
  });

  it('a client_header_timeout refusal answers 408 JSON {error, error_description}', async () => {
    const r = await send(h, 'GET /relay/files/x HTTP/1.1\r\nHost: p\r\n', {
      expectResponses: 1,
      timeoutMs: 3_000,
      writeDelays: Array.from({ length: 12 }, (_, i) => ({ delayMs: 200, data: `X-${i}: a\r\n` })),
    });
    expect(r.responses).toHaveLength(1);
    expectJsonError(r.responses[0]!, 408, /^[a-z_]+$/);
  });

  it('whatever their shape today, parser refusals carry no stack, token or secret', async () => {
    const r = await send(h, buildRequest(h, '/relay/files/x', { token, headers: [['X-Big', 'a'.repeat(20 * 1024)]] }), { expectResponses: 1 });
    const text = r.raw.toString('latin1');
    expect(text).not.toContain(token.slice(-24));
    expect(text).not.toContain(UPSTREAM_SECRET);
    expect(text).not.toMatch(/\n\s+at\s|node:internal|node_modules/);
  });
});
