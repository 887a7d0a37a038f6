import { describe, expect, it } from 'vitest';
import { downstreamResponseHeaders } from '../../src/relay/headers/index.js';

describe('downstreamResponseHeaders', () => {
  it('keeps end-to-end headers, including the upstream Set-Cookie values', () => {
    const out = downstreamResponseHeaders({
      'content-type': 'application/json',
      'content-length': '42',
      etag: '"abc"',
      'set-cookie': ['a=1; Path=/', 'b=2; Path=/'],
      'www-authenticate': 'Basic realm="registry"',
    });
    expect(out).toEqual({
      'content-type': 'application/json',
      'content-length': '42',
      etag: '"abc"',
      'set-cookie': ['a=1; Path=/', 'b=2; Path=/'],
      'www-authenticate': 'Basic realm="registry"',
    });
  });

  it.each([
    'connection',
    'keep-alive',
    'proxy-authenticate',
    'proxy-authorization',
    'te',
    'trailer',
    'transfer-encoding',
    'upgrade',
    'proxy-connection',
    'Transfer-Encoding',
    'Proxy-Authenticate',
  ])('drops the hop-by-hop header %s', (name) => {
    const out = downstreamResponseHeaders({ [name]: 'x', 'x-keep': '1' });
    expect(Object.keys(out).map((k) => k.toLowerCase())).not.toContain(name.toLowerCase());
    expect(out['x-keep']).toBe('1');
  });

  it('drops headers the upstream Connection header lists (string or array)', () => {
    expect(downstreamResponseHeaders({ connection: 'close, X-Internal', 'x-internal': 'secret', 'x-keep': '1' })).toEqual({ 'x-keep': '1' });
    expect(downstreamResponseHeaders({ connection: ['x-a', 'X-B'], 'x-a': '1', 'x-b': '2', 'x-c': '3' })).toEqual({ 'x-c': '3' });
    expect(downstreamResponseHeaders({ Connection: 'x-a', 'x-a': '1', 'x-c': '3' })).toEqual({ 'x-c': '3' });
  });

  it('skips undefined values, lower-cases names and merges names that differ only in case', () => {
    expect(downstreamResponseHeaders({ 'x-a': undefined, 'X-B': '1', 'x-b': ['2', '3'] })).toEqual({ 'x-b': ['1', '2', '3'] });
  });

  it('copies arrays rather than sharing them with the input', () => {
    const cookies = ['a=1'];
    const out = downstreamResponseHeaders({ 'set-cookie': cookies });
    (out['set-cookie'] as string[]).push('b=2');
    expect(cookies).toEqual(['a=1']);
  });
});
