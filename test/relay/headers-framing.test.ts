import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HeaderRejectedError, checkRequestFraming, type HeaderCheck } from '../../src/relay/headers/index.js';
import { PortError } from '../../src/errors.js';

function check(raw: string[]): HeaderCheck | 'ok' {
  try {
    checkRequestFraming(raw);
    return 'ok';
  } catch (err) {
    if (err instanceof HeaderRejectedError) return err.check;
    throw err;
  }
}

const base = ['Host', 'port.example', 'User-Agent', 'curl/8'];

describe('checkRequestFraming', () => {
  it.each([
    // Smuggling: CL.TE / TE.CL, duplicate CL (even equal), TE.TE (Kettle 2019; RFC 9112 §6.1, §6.3).
    ['CL + TE', ['Content-Length', '5', 'Transfer-Encoding', 'chunked'], 'content_length_and_transfer_encoding'],
    ['TE + CL', ['Transfer-Encoding', 'chunked', 'Content-Length', '5'], 'content_length_and_transfer_encoding'],
    ['CL + obfuscated TE', ['Content-Length', '5', 'Transfer-Encoding', 'xchunked'], 'content_length_and_transfer_encoding'],
    ['duplicate CL, equal', ['Content-Length', '5', 'Content-Length', '5'], 'duplicate_content_length'],
    ['duplicate CL, different', ['Content-Length', '5', 'content-length', '6'], 'duplicate_content_length'],
    ['two TE lines', ['Transfer-Encoding', 'chunked', 'Transfer-Encoding', 'chunked'], 'duplicate_transfer_encoding'],
    ['two TE lines, one identity', ['Transfer-Encoding', 'identity', 'transfer-encoding', 'chunked'], 'duplicate_transfer_encoding'],
    ['TE xchunked', ['Transfer-Encoding', 'xchunked'], 'invalid_transfer_encoding'],
    ['TE chunkedx', ['Transfer-Encoding', 'chunkedx'], 'invalid_transfer_encoding'],
    ['TE chunked, identity', ['Transfer-Encoding', 'chunked, identity'], 'invalid_transfer_encoding'],
    ['TE identity, chunked', ['Transfer-Encoding', 'identity, chunked'], 'invalid_transfer_encoding'],
    ['TE chunked, gzip', ['Transfer-Encoding', 'chunked, gzip'], 'invalid_transfer_encoding'],
    ['TE gzip, chunked', ['Transfer-Encoding', 'gzip, chunked'], 'invalid_transfer_encoding'],
    ['TE leading comma', ['Transfer-Encoding', ', chunked'], 'invalid_transfer_encoding'],
    ['TE identity', ['Transfer-Encoding', 'identity'], 'invalid_transfer_encoding'],
    ['TE empty', ['Transfer-Encoding', ''], 'invalid_transfer_encoding'],
    ['TE quoted', ['Transfer-Encoding', '"chunked"'], 'invalid_transfer_encoding'],
    ['TE vertical tab', ['Transfer-Encoding', '\u000bchunked'], 'invalid_transfer_encoding'],
    ['TE form feed', ['Transfer-Encoding', 'chunked\u000c'], 'invalid_transfer_encoding'],
    ['TE chunked;ext', ['Transfer-Encoding', 'chunked;q=1'], 'invalid_transfer_encoding'],
    ['TE NUL', ['Transfer-Encoding', 'chunked\u0000'], 'invalid_header_value'],
    ['TE with underscore is another header', ['Transfer_Encoding', 'chunked', 'Content-Length', '5'], 'ok'],
    ['space before colon', ['Transfer-Encoding ', 'chunked'], 'invalid_header_name'],
    // Content-Length: plain decimal, 1–15 digits (Http11Probe content-length/*).
    ['CL +5', ['Content-Length', '+5'], 'invalid_content_length'],
    ['CL -1', ['Content-Length', '-1'], 'invalid_content_length'],
    ['CL hex', ['Content-Length', '0x5'], 'invalid_content_length'],
    ['CL list', ['Content-Length', '5, 5'], 'invalid_content_length'],
    ['CL empty', ['Content-Length', ''], 'invalid_content_length'],
    ['CL with space', ['Content-Length', ' 5'], 'invalid_content_length'],
    ['CL 16 digits', ['Content-Length', '1234567890123456'], 'invalid_content_length'],
    ['CL fraction', ['Content-Length', '5.0'], 'invalid_content_length'],
    ['CL full-width digit', ['Content-Length', '\uff15'], 'invalid_content_length'],
    // Host and Authorization: Node keeps the first; another hop may keep the last.
    ['duplicate Host', ['Host', 'evil.example'], 'duplicate_host'],
    ['duplicate Host, other case', ['host', 'port.example'], 'duplicate_host'],
    ['duplicate Authorization', ['Authorization', 'Bearer a', 'authorization', 'Bearer b'], 'duplicate_authorization'],
    // CR, LF, NUL anywhere in a name or value.
    ['CR in value', ['X-A', 'a\rb'], 'invalid_header_value'],
    ['LF in value', ['X-A', 'a\nX-Injected: 1'], 'invalid_header_value'],
    ['CRLF in value', ['X-A', 'a\r\nb'], 'invalid_header_value'],
    ['NUL in value', ['Authorization', 'Bearer a\u0000b'], 'invalid_header_value'],
    ['CR in name', ['X-A\r', 'a'], 'invalid_header_name'],
    ['LF in name', ['X\nA', 'a'], 'invalid_header_name'],
    ['NUL in name', ['X-A\u0000', 'a'], 'invalid_header_name'],
    ['empty name', ['', 'a'], 'invalid_header_name'],
    ['colon in name', ['Host:', 'a'], 'invalid_header_name'],
  ] as const)('%s is refused (%s)', (_name, extra, want) => {
    expect(check([...base, ...extra])).toBe(want);
  });

  it.each([
    ['no body', []],
    ['CL 0', ['Content-Length', '0']],
    ['CL 15 digits', ['Content-Length', '999999999999999']],
    ['CL leading zeros', ['Content-Length', '005']],
    ['TE chunked', ['Transfer-Encoding', 'chunked']],
    ['TE Chunked', ['Transfer-Encoding', 'Chunked']],
    ['TE CHUNKED', ['Transfer-Encoding', 'CHUNKED']],
    ['TE " chunked" (optional whitespace)', ['Transfer-Encoding', ' chunked']],
    ['TE tab, chunked, space', ['Transfer-Encoding', '\tchunked ']],
    ['one Authorization', ['Authorization', 'Bearer a']],
    ['repeated ordinary headers', ['Accept', 'a', 'Accept', 'b', 'Cookie', 'a=1', 'Cookie', 'b=2']],
    ['tab and obs-text in a value', ['X-A', 'a\tb\u00e9']],
  ] as const)('%s is accepted', (_name, extra) => {
    expect(check([...base, ...extra])).toBe('ok');
  });

  it('accepts a request without Host (HTTP/1.0; Node requires it on 1.1)', () => {
    expect(check(['Accept', '*/*'])).toBe('ok');
  });

  it('answers 400 invalid_request, never echoing a header value', () => {
    const secret = 'Bearer S3CR3T';
    let caught: unknown;
    try {
      checkRequestFraming(['Authorization', secret, 'Authorization', `${secret}\r\n`]);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(PortError);
    const err = caught as HeaderRejectedError;
    expect([err.status, err.code]).toEqual([400, 'invalid_request']);
    expect(err.message).not.toContain('S3CR3T');
    expect(err.message).toContain('Authorization');
  });
});

/**
 * What Node 20's strict parser lets reach a request handler: duplicate Host and
 * Authorization; and, measured here, a Transfer-Encoding whose last coding is
 * not `chunked` (`xchunked`, `identity`, `gzip`…) also reaches the handler: llhttp emits
 * the request at headers-complete and only fails when it comes to the body, so a handler
 * that acts before reading the body (a relay) sees it. These are the cases this check
 * is the real guard for, not just defence in depth.
 */
describe('checkRequestFraming on what Node 20 actually passes to a handler', () => {
  let server: Server;
  let port: number;
  let seen: string[] | undefined;
  beforeAll(async () => {
    // Answers at once without reading the body, like a handler that decides before streaming.
    server = createServer((req, res) => {
      seen = req.rawHeaders;
      res.end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  /** Sends a raw request head; resolves with the status line and the rawHeaders the handler got, if it ran. */
  function send(headers: string): Promise<{ status: string; rawHeaders: string[] | undefined }> {
    seen = undefined;
    const head = `POST /relay/up/x HTTP/1.1\r\nHost: port.example\r\n${headers}Connection: close\r\n\r\n0\r\n\r\n`;
    return new Promise((resolve, reject) => {
      const socket = connect(port, '127.0.0.1', () => socket.end(head));
      let data = '';
      socket.on('data', (chunk: Buffer) => (data += chunk.toString('latin1')));
      socket.on('error', reject);
      socket.on('close', () => resolve({ status: data.split('\r\n')[0] ?? '', rawHeaders: seen }));
    });
  }

  it.each([
    ['duplicate Host', 'Host: evil.example\r\n', 'duplicate_host'],
    ['duplicate Authorization', 'Authorization: Bearer a\r\nAuthorization: Bearer b\r\n', 'duplicate_authorization'],
    ['TE xchunked', 'Transfer-Encoding: xchunked\r\n', 'invalid_transfer_encoding'],
    ['TE chunkedx', 'Transfer-Encoding: chunkedx\r\n', 'invalid_transfer_encoding'],
    ['TE identity', 'Transfer-Encoding: identity\r\n', 'invalid_transfer_encoding'],
    ['TE gzip', 'Transfer-Encoding: gzip\r\n', 'invalid_transfer_encoding'],
    ['TE gzip, chunked', 'Transfer-Encoding: gzip, chunked\r\n', 'invalid_transfer_encoding'],
    ['TE x then TE chunked', 'Transfer-Encoding: x\r\nTransfer-Encoding: chunked\r\n', 'duplicate_transfer_encoding'],
  ] as const)('%s reaches the handler, and is refused here (%s)', async (_name, headers, want) => {
    const r = await send(headers);
    expect(r.status).toMatch(/^HTTP\/1\.1 200/);
    expect(r.rawHeaders).toBeDefined();
    expect(check(r.rawHeaders ?? [])).toBe(want);
  });

  it('OWS around Transfer-Encoding reaches the handler trimmed, and is accepted', async () => {
    const r = await send('Transfer-Encoding:\t chunked \r\n');
    expect(r.rawHeaders).toContain('chunked');
    expect(check(r.rawHeaders ?? [])).toBe('ok');
  });

  it.each([
    ['CL + TE', 'Content-Length: 5\r\nTransfer-Encoding: chunked\r\n'],
    ['CL + TE xchunked', 'Content-Length: 5\r\nTransfer-Encoding: xchunked\r\n'],
    ['duplicate CL', 'Content-Length: 0\r\nContent-Length: 0\r\n'],
    ['CL +0', 'Content-Length: +0\r\n'],
    ['TE chunked, identity', 'Transfer-Encoding: chunked, identity\r\n'],
    ['TE chunked then TE x', 'Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n'],
    ['TE vertical tab', 'Transfer-Encoding: \u000bchunked\r\n'],
    ['space before colon', 'Transfer-Encoding : chunked\r\n'],
  ])('%s never reaches the handler (Node answers 400 itself)', async (_name, headers) => {
    const r = await send(headers);
    expect(r.status).toMatch(/^HTTP\/1\.1 400/);
    expect(r.rawHeaders).toBeUndefined();
  });
});
