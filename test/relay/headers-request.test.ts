import { describe, expect, it } from 'vitest';
import { dropCgiAliases, upstreamRequestHeaders, type UpstreamRequestOptions } from '../../src/relay/headers/index.js';

const opts: UpstreamRequestOptions = {
  upstreamHost: 'artifacts.internal:8443',
  clientIp: '10.0.0.7',
  proto: 'https',
  publicHost: 'port.example',
  allowUpgrade: false,
};

const build = (raw: string[], o: Partial<UpstreamRequestOptions> = {}) => upstreamRequestHeaders(raw, { ...opts, ...o });

describe('upstreamRequestHeaders', () => {
  it('keeps end-to-end headers (names lower-cased), sets Host and X-Forwarded-* from Port', () => {
    const out = build([
      'Host', 'port.example',
      'User-Agent', 'git/2.43',
      'Accept', '*/*',
      'Content-Type', 'application/x-git-upload-pack-request',
      'Content-Length', '123',
      'Accept-Encoding', 'gzip',
    ]);
    expect(out).toEqual({
      'user-agent': 'git/2.43',
      accept: '*/*',
      'content-type': 'application/x-git-upload-pack-request',
      'content-length': '123',
      'accept-encoding': 'gzip',
      host: 'artifacts.internal:8443',
      'x-forwarded-for': '10.0.0.7',
      'x-forwarded-proto': 'https',
      'x-forwarded-host': 'port.example',
    });
  });

  it('keeps repeated fields as separate values, in order', () => {
    const out = build(['Accept', 'a', 'X-Trace', '1', 'accept', 'b', 'ACCEPT', 'c']);
    expect(out['accept']).toEqual(['a', 'b', 'c']);
    expect(out['x-trace']).toBe('1');
  });

  it.each([
    'Connection',
    'Keep-Alive',
    'Proxy-Authenticate',
    'Proxy-Authorization',
    'TE',
    'Trailer',
    'Transfer-Encoding',
    'Upgrade',
    'Proxy-Connection',
  ])('drops the hop-by-hop header %s (RFC 9110 §7.6.1)', (name) => {
    const out = build([name, 'x', 'X-Keep', '1']);
    expect(Object.keys(out)).not.toContain(name.toLowerCase());
    expect(out['x-keep']).toBe('1');
  });

  it.each(['Authorization', 'Cookie', 'Proxy-Authorization', 'authorization', 'COOKIE'])("drops the caller's %s", (name) => {
    const out = build([name, 'Bearer caller-token', 'X-Keep', '1']);
    expect(JSON.stringify(out)).not.toContain('caller-token');
    expect(out['x-keep']).toBe('1');
  });

  it.each([
    'X-Forwarded-For',
    'X-Forwarded-Proto',
    'X-Forwarded-Host',
    'X-Forwarded-Port',
    'X-Forwarded-Server',
    'Forwarded',
    'X-Real-IP',
    'X-Host',
    'X-HTTP-Host-Override',
    'X-Original-URL',
    'X-Rewrite-URL',
    'X-Forwarded-Prefix',
    'X-Forwarded-Uri',
    'X-Original-Host',
    'X-Forwarded-Scheme',
    'X-Forwarded-Ssl',
    'X-Url-Scheme',
    'Front-End-Https',
    'X-Client-IP',
    'True-Client-IP',
    'X-Cluster-Client-IP',
    'X-HTTP-Method-Override',
    'X-HTTP-Method',
    'X-Method-Override',
    'Expect',
  ])('drops the caller-supplied %s', (name) => {
    const out = build([name, 'evil.example', 'X-Keep', '1']);
    expect(JSON.stringify(out)).not.toContain('evil.example');
    expect(out['x-keep']).toBe('1');
  });

  it.each(['X_Forwarded_For', 'x_real_ip', 'X-Forwarded_Host', 'Transfer_Encoding', 'Proxy_Authorization', 'X_HTTP_Method_Override'])(
    'drops %s, which CGI/WSGI/Rack backends read as the dashed header',
    (name) => {
      const out = build([name, 'evil.example', 'X_Keep', '1']);
      expect(JSON.stringify(out)).not.toContain('evil.example');
      expect(out['x_keep']).toBe('1');
    },
  );

  it("never extends or trusts the caller's X-Forwarded-For chain", () => {
    const out = build(['X-Forwarded-For', '127.0.0.1', 'x-forwarded-for', '10.9.9.9, 192.168.0.1', 'Forwarded', 'for=127.0.0.1;host=admin']);
    expect(out['x-forwarded-for']).toBe('10.0.0.7');
    expect(out['forwarded']).toBeUndefined();
  });

  it("sets Host from configuration, whatever the caller's Host or override headers say", () => {
    const out = build(['Host', 'evil.example', 'X-Forwarded-Host', 'evil.example', 'X-Host', 'evil.example', 'X-HTTP-Host-Override', 'evil.example']);
    expect(out['host']).toBe('artifacts.internal:8443');
    expect(out['x-forwarded-host']).toBe('port.example');
    expect(JSON.stringify(out)).not.toContain('evil.example');
  });

  it('sets X-Forwarded-Proto from the option', () => {
    expect(build([], { proto: 'http' })['x-forwarded-proto']).toBe('http');
    expect(build(['X-Forwarded-Proto', 'http'], { proto: 'https' })['x-forwarded-proto']).toBe('https');
  });

  describe('Connection-listed headers (RFC 9110 §7.6.1)', () => {
    it('drops every header the Connection header names, across lines, case-insensitively', () => {
      const out = build(['Connection', 'X-Foo, keep-alive', 'connection', ' x-BAR ', 'X-Foo', '1', 'X-Bar', '2', 'X-Baz', '3', 'Keep-Alive', 'timeout=5']);
      expect(out).toEqual(expect.objectContaining({ 'x-baz': '3' }));
      expect(Object.keys(out)).not.toContain('x-foo');
      expect(Object.keys(out)).not.toContain('x-bar');
      expect(Object.keys(out)).not.toContain('keep-alive');
      expect(Object.keys(out)).not.toContain('connection');
    });

    it('drops a listed header that comes before the Connection header', () => {
      const out = build(['X-Foo', '1', 'Connection', 'X-Foo']);
      expect(Object.keys(out)).not.toContain('x-foo');
    });

    // Nathan Davison, "Abusing HTTP hop-by-hop request headers" (2019).
    it("cannot make Port's X-Forwarded-* or Host disappear", () => {
      const out = build([
        'Host', 'port.example',
        'Connection', 'close, X-Forwarded-For, X-Forwarded-Proto, X-Forwarded-Host, Host',
      ]);
      expect(out['x-forwarded-for']).toBe('10.0.0.7');
      expect(out['x-forwarded-proto']).toBe('https');
      expect(out['x-forwarded-host']).toBe('port.example');
      expect(out['host']).toBe('artifacts.internal:8443');
    });

    it('cannot strip Content-Length from the body the relay streams', () => {
      const out = build(['Content-Length', '5', 'Connection', 'Content-Length']);
      expect(out['content-length']).toBe('5');
    });

    it('ignores list members that are not field names', () => {
      const out = build(['Connection', 'x foo, , "x-keep", x-drop', 'X-Keep', '1', 'X-Drop', '2']);
      expect(out['x-keep']).toBe('1');
      expect(Object.keys(out)).not.toContain('x-drop');
    });
  });

  describe('Upgrade', () => {
    const ws = ['Host', 'port.example', 'Connection', 'Upgrade', 'Upgrade', 'websocket', 'Sec-WebSocket-Key', 'k', 'Sec-WebSocket-Version', '13'];

    it('is dropped unless the route allows it', () => {
      const out = build(ws);
      expect(Object.keys(out)).not.toContain('upgrade');
      expect(out['sec-websocket-key']).toBe('k');
    });

    it('is kept when allowed, even though Connection lists it; Connection itself is still dropped', () => {
      const out = build(ws, { allowUpgrade: true });
      expect(out['upgrade']).toBe('websocket');
      expect(Object.keys(out)).not.toContain('connection');
    });
  });

  describe('headers the relay injects (CGI-style upstreams merge X_Api_Key with X-Api-Key)', () => {
    it.each(['X-Api-Key', 'x-api-key', 'X_Api_Key', 'x_API-key', 'X-Api_Key'])('drops the caller\'s %s when X-Api-Key is injected', (name) => {
      const out = build([name, 'caller-key', 'X_Request_Tag', 'keep'], { injected: ['X-Api-Key'] });
      expect(JSON.stringify(out)).not.toContain('caller-key');
      expect(out['x_request_tag']).toBe('keep');
    });

    it('guards an injected name written with underscores against its dashed spelling', () => {
      const out = build(['X-Service-Token', 'caller-key', 'x-service_token', 'caller-key'], { injected: ['X_Service_Token'] });
      expect(JSON.stringify(out)).not.toContain('caller-key');
    });
  });

  describe('dropCgiAliases', () => {
    it('removes every name with the same CGI key (RFC 3875 §4.1.18), whatever its case or separator', () => {
      const headers: Record<string, string | string[]> = { 'x-api-key': 'a', x_api_key: 'b', 'x-api_key': ['c', 'd'], 'x-api-keys': 'keep', accept: 'keep' };
      dropCgiAliases(headers, 'X_Api-Key');
      expect(headers).toEqual({ 'x-api-keys': 'keep', accept: 'keep' });
    });
  });

  it('returns only string or string[] values and never mutates its input', () => {
    const raw = ['Accept', 'a', 'Accept', 'b', 'Cookie', 'c'];
    const copy = [...raw];
    const out = build(raw);
    expect(raw).toEqual(copy);
    for (const v of Object.values(out)) expect(typeof v === 'string' || (Array.isArray(v) && v.every((x) => typeof x === 'string'))).toBe(true);
  });
});
