import { posix } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PathRejectedError, normalizeRelayPath, type PathRejection } from '../../src/relay/path/normalize-path.js';
import { PortError } from '../../src/errors.js';

/** `[rest below /relay/up, expected canonical path or rejection reason]`. */
type Row = readonly [string, string | { reject: PathRejection }];

const reject = (reason: PathRejection) => ({ reject: reason });

function run(target: string): string | { reject: PathRejection } {
  try {
    return normalizeRelayPath(target).path;
  } catch (err) {
    if (err instanceof PathRejectedError) return { reject: err.reason };
    throw err;
  }
}

// Raw paths on which Node's WHATWG `URL` and decode-then-`path.posix.normalize` disagree.
const nodeParserDisagreements: Row[] = [
  ['/a/../admin', '/admin'],
  ['/a/%2e%2e/admin', '/admin'],
  ['/a/%2E%2E/admin', '/admin'],
  ['/a/.%2e/admin', '/admin'],
  ['/a%2f..%2fadmin', reject('encoded_slash')],
  ['/a/..%2fadmin', reject('encoded_slash')],
  ['/a\\..\\admin', reject('backslash')],
  ['/a/..;/admin', reject('dot_segment_params')],
  ['/admin;x=1/', '/admin;x=1/'],
  ['/a/%252e%252e/admin', reject('double_encoding')],
  ['/%61dmin', '/admin'],
  ['//admin', '/admin'],
];

// Traversal and encoding tricks, plus the Envoy path advisories (CVE-2019-9901, CVE-2021-29492,
// CVE-2021-32779, `..;` path parameters).
const traversalAndAdvisories: Row[] = [
  ['/..', reject('climbs_above_root')],
  ['/a/../..', reject('climbs_above_root')],
  ['/a/../../etc/passwd', reject('climbs_above_root')],
  ['/%2e%2e', reject('climbs_above_root')],
  ['/%2e%2e/admin', reject('climbs_above_root')],
  ['/.%2E/admin', reject('climbs_above_root')],
  ['/a/%2e/b', '/a/b'],
  ['/a%2Fb', reject('encoded_slash')],
  ['/something%2F..%2Fadmin', reject('encoded_slash')], // CVE-2021-29492
  ['/a%5cb', reject('encoded_backslash')],
  ['/a%5C..%5Cadmin', reject('encoded_backslash')],
  ['/%252e', reject('double_encoding')],
  ['/%252E%252E/admin', reject('double_encoding')],
  ['/%252f', reject('double_encoding')],
  ['/%25%32%65', reject('double_encoding')], // assembled by the unreserved decode itself
  ['/%25%32e%25%32e/admin', reject('double_encoding')],
  ['/a\\b', reject('backslash')],
  ['/\\\\evil/x', reject('backslash')],
  ['/user/..;foo=bar/admin', reject('dot_segment_params')], // BIT-envoy-2026-73551
  ['/a/.;x/admin', reject('dot_segment_params')],
  ['/a/..%3Bfoo/admin', reject('dot_segment_params')],
  ['/a/.%2e;x/admin', reject('dot_segment_params')],
  ['/a/%2e%2e%3b/admin', reject('dot_segment_params')],
  ['/admin;jsessionid=1', '/admin;jsessionid=1'],
  ['/a;x=1/b;y=2', '/a;x=1/b;y=2'],
  ['/;/admin', '/;/admin'],
  ['/a%00', reject('nul')],
  ['/a\u0000b', reject('nul')],
  ['/a%00.txt/../x', reject('nul')],
  ['/%c0%ae%c0%ae/admin', reject('invalid_utf8')], // overlong "."
  ['/%C0%AF', reject('invalid_utf8')], // overlong "/"
  ['/%e0%80%ae', reject('invalid_utf8')], // 3-byte overlong "."
  ['/%f0%80%80%ae', reject('invalid_utf8')], // 4-byte overlong "."
  ['/%80', reject('invalid_utf8')], // lone continuation byte
  ['/a%ae', reject('invalid_utf8')],
  ['/%c3', reject('invalid_utf8')], // truncated sequence
  ['/%c3a', reject('invalid_utf8')], // truncated, then ASCII
  ['/%c3%41%a9', reject('invalid_utf8')], // ASCII inside a sequence
  ['/%ed%a0%80', reject('invalid_utf8')], // UTF-16 surrogate
  ['/%f4%90%80%80', reject('invalid_utf8')], // beyond U+10FFFF
  ['/%ff', reject('invalid_utf8')],
  ['/caf%C3%A9', '/caf%C3%A9'],
  ['/caf%c3%a9', '/caf%C3%A9'],
  ['/%F0%9F%98%80', '/%F0%9F%98%80'],
  // Fullwidth solidus U+FF0F: stays encoded, one segment, not a separator.
  ['/a%EF%BC%8F..%EF%BC%8Fadmin', '/a%EF%BC%8F..%EF%BC%8Fadmin'],
  ['/a/%ef%bc%8f../admin', '/a/%EF%BC%8F../admin'],
  // `?` and `#` before dot segments.
  ['/a/%3F/../admin', '/a/admin'],
  ['/a%3f/../admin', '/admin'],
  ['/a%23/../admin', '/admin'],
  ['/info/../private', '/private'], // CVE-2019-9901
];

const percentRules: Row[] = [
  ['/%41%42%43', '/ABC'],
  ['/%7e%2D%2e%5F', '/~-._'],
  ['/a%2db', '/a-b'],
  // Characters a path carries raw with the same meaning are decoded, so a forbid on
  // `/@acme/*` can't be sidestepped with `%40acme` (or `a:b` with `a%3Ab`).
  ['/a%3ab', '/a:b'],
  ['/a%3Ab', '/a:b'],
  ['/a%20b', '/a%20b'],
  ['/a%2bb', '/a+b'],
  ['/%21%24%26%27%28%29%2A%2B%2C%3D%3A%40', "/!$&'()*+,=:@"],
  // ";" stays encoded: raw it starts path parameters for Tomcat-style backends.
  ['/a%3bb', '/a%3Bb'],
  ['/a;b', '/a;b'],
  // npm sends scoped names as `@scope%2fpkg`: refused like any encoded slash (see the report).
  ['/%40scope%2fpkg', reject('encoded_slash')],
  ['/@scope%2Fpkg', reject('encoded_slash')],
  ['/@scope/pkg', '/@scope/pkg'],
  ['/%40scope', '/@scope'],
  ['/100%25', '/100%25'],
  ['/100%25zz', '/100%25zz'],
  ['/100%25z1', '/100%25z1'],
  ['/%', reject('malformed_percent')],
  ['/%2', reject('malformed_percent')],
  ['/%2/x', reject('malformed_percent')],
  ['/%zz', reject('malformed_percent')],
  ['/%2g', reject('malformed_percent')],
  ['/%%41', reject('malformed_percent')],
  ['/%0a', reject('control_character')],
  ['/%0D%0AHost:%20evil', reject('control_character')],
  ['/%1f', reject('control_character')],
  ['/%7F', reject('control_character')],
  ['/%09', reject('control_character')],
  ['/a\tb', reject('control_character')],
  ['/a\rb', reject('control_character')],
  ['/a\u007fb', reject('control_character')],
  ['/caf\u00e9', reject('non_ascii')],
  ['/a\uff0fb', reject('non_ascii')],
  ['/a b', reject('invalid_character')],
  // Characters RFC 3986 does not allow in a path are encoded, so any URL parser leaves them alone.
  ['/a{b}', '/a%7Bb%7D'],
  ['/a|b^c', '/a%7Cb%5Ec'],
  ['/a"b<c>', '/a%22b%3Cc%3E'],
  ['/a`b', '/a%60b'],
  ['/[x]', '/%5Bx%5D'],
  ["/a!$&'()*+,;=:@b", "/a!$&'()*+,;=:@b"],
];

const segmentRules: Row[] = [
  ['', '/'],
  ['/', '/'],
  ['///', '/'],
  ['/a', '/a'],
  ['/a/', '/a/'],
  ['/a//', '/a/'],
  ['/a//b', '/a/b'],
  ['//a///b//', '/a/b/'],
  ['/./a/.', '/a/'],
  ['/a/.', '/a/'],
  ['/a/b/..', '/a/'],
  ['/a/b/../', '/a/'],
  ['/a/b/../c', '/a/c'],
  ['/a/..', '/'],
  ['/a/../', '/'],
  ['/a/./b/./c', '/a/b/c'],
  ['/...', '/...'],
  ['/a/.../b', '/a/.../b'],
  ['/.a/..b/b..', '/.a/..b/b..'],
  ['/.well-known/x', '/.well-known/x'],
  ['/a/b/c/../../d', '/a/d'],
];

describe('normalizeRelayPath: canonical path or rejection', () => {
  const tables: [string, Row[]][] = [
    ['URL vs posix normalisation', nodeParserDisagreements],
    ['traversal and advisories', traversalAndAdvisories],
    ['percent-encoding', percentRules],
    ['segments', segmentRules],
  ];
  for (const [name, rows] of tables) {
    describe(name, () => {
      it.each(rows.map(([rest, want]) => [rest, want] as const))('/relay/up%s', (rest, want) => {
        expect(run(`/relay/up${rest}`)).toEqual(want);
      });
    });
  }
});

describe('normalizeRelayPath: target form, route and query', () => {
  it.each([
    ['*', 'not_origin_form'],
    ['http://evil.example/relay/up/x', 'not_origin_form'],
    ['https://port.example/relay/up/x', 'not_origin_form'],
    ['evil.example:443', 'not_origin_form'],
    ['', 'not_origin_form'],
    ['relay/up/x', 'not_origin_form'],
    ['/relay/up/x#frag', 'fragment'],
    ['/relay/up/a#/../admin', 'fragment'],
    ['/relay/up/a?x=1#frag', 'fragment'],
    ['/relay/up#', 'fragment'],
    ['/relay', 'not_relay_route'],
    ['/relay?x=1', 'not_relay_route'],
    ['/RELAY/up/x', 'not_relay_route'],
    ['/%72elay/up/x', 'not_relay_route'],
    ['/other/up/x', 'not_relay_route'],
    ['/relayx/up/x', 'not_relay_route'],
    ['/relay/', 'invalid_upstream'],
    ['/relay//up/x', 'invalid_upstream'],
    ['/relay/Up/x', 'invalid_upstream'],
    ['/relay/%75p/x', 'invalid_upstream'],
    ['/relay/-up/x', 'invalid_upstream'],
    ['/relay/_up/x', 'invalid_upstream'],
    ['/relay/up;x=1/a', 'invalid_upstream'],
    ['/relay/../etc/passwd', 'invalid_upstream'],
    ['/relay/./up/x', 'invalid_upstream'],
    ['/relay/up.example/x', 'invalid_upstream'],
    ['/relay/up\\x', 'invalid_upstream'],
    ['/relay/up/x?a\u0000', 'nul'],
    ['/relay/up/x?a\r\nb', 'control_character'],
    ['/relay/up/x?a b', 'invalid_character'],
    ['/relay/up/x?caf\u00e9', 'non_ascii'],
  ] as const)('%j is rejected as %s', (target, reason) => {
    expect(run(target)).toEqual({ reject: reason });
  });

  it.each([
    ['/relay/up', { upstream: 'up', path: '/', query: '' }],
    ['/relay/up/', { upstream: 'up', path: '/', query: '' }],
    ['/relay/up?x=1', { upstream: 'up', path: '/', query: '?x=1' }],
    ['/relay/up/?x=1', { upstream: 'up', path: '/', query: '?x=1' }],
    ['/relay/artifacts_1-a/b/c', { upstream: 'artifacts_1-a', path: '/b/c', query: '' }],
    ['/relay/0/x', { upstream: '0', path: '/x', query: '' }],
    ['/relay/up/a?', { upstream: 'up', path: '/a', query: '?' }],
    ['/relay/up/a??x', { upstream: 'up', path: '/a', query: '??x' }],
    // `?` before dot segments: they belong to the query and are not resolved.
    ['/relay/up/a?/../admin', { upstream: 'up', path: '/a', query: '?/../admin' }],
    ['/relay/up/a/?../../x', { upstream: 'up', path: '/a/', query: '?../../x' }],
    // The query is byte for byte what was received: no decoding, no case change, no checks on %2F or "\".
    [
      "/relay/up/a/%7e/../b?x=%2f..%2F&y=%252e&z=a\\b&w=%c0%ae&e=&&=%ZZ;'",
      { upstream: 'up', path: '/a/b', query: "?x=%2f..%2F&y=%252e&z=a\\b&w=%c0%ae&e=&&=%ZZ;'" },
    ],
  ] as const)('%j', (target, want) => {
    expect(normalizeRelayPath(target)).toEqual(want);
  });

  it('refuses with a PortError of status 400 and code invalid_path that does not echo the target', () => {
    const secret = 'S3CR3T-TOKEN-VALUE';
    const targets = [
      `/relay/up/${secret}/%2f?t=${secret}`,
      `/relay/up/${secret}/..;x`,
      `/relay/up/${secret}%00`,
      `/relay/up/${secret}#${secret}`,
      `/relay/up/${'a/'.repeat(300)}${secret}`,
      `http://${secret}/x`,
    ];
    for (const target of targets) {
      let caught: unknown;
      try {
        normalizeRelayPath(target);
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(PathRejectedError);
      expect(caught).toBeInstanceOf(PortError);
      const err = caught as PathRejectedError;
      expect(err.status).toBe(400);
      expect(err.code).toBe('invalid_path');
      expect(err.message).not.toContain(secret);
      expect(err.message).toMatch(/^[A-Z][^\n]*\.$/); // one sentence
    }
  });
});

describe('normalizeRelayPath: bounded work', () => {
  it('accepts a target of exactly the maximum length and refuses one byte more', () => {
    const base = '/relay/up/';
    const at = base + 'a'.repeat(8 * 1024 - base.length);
    expect(at.length).toBe(8192);
    expect(normalizeRelayPath(at).path).toBe('/' + 'a'.repeat(8192 - base.length));
    expect(run(at + 'a')).toEqual({ reject: 'too_long' });
    // The query counts too.
    expect(run(`/relay/up/a?${'q'.repeat(8192)}`)).toEqual({ reject: 'too_long' });
  });

  it('honours a configured maximum length', () => {
    expect(() => normalizeRelayPath('/relay/up/abcdef', { maxTargetLength: 15 })).toThrow(PathRejectedError);
    expect(normalizeRelayPath('/relay/up/abcdef', { maxTargetLength: 16 }).path).toBe('/abcdef');
  });

  it('accepts 256 segments and refuses 257, empty ones included', () => {
    expect(normalizeRelayPath('/relay/up' + '/a'.repeat(256)).path).toBe('/a'.repeat(256));
    expect(run('/relay/up' + '/a'.repeat(257))).toEqual({ reject: 'too_many_segments' });
    expect(run('/relay/up' + '/'.repeat(257))).toEqual({ reject: 'too_many_segments' });
    expect(normalizeRelayPath('/relay/up/a/b/c', { maxSegments: 3 }).path).toBe('/a/b/c');
    expect(run('/relay/up/a/b/c/d')).toEqual('/a/b/c/d');
    expect(() => normalizeRelayPath('/relay/up/a/b/c/d', { maxSegments: 3 })).toThrow(PathRejectedError);
  });
});

/**
 * Differential checks ("policy sees X, upstream receives X"): every
 * canonical path the tables accept must be one no other reasonable parser reads differently.
 */
describe('normalizeRelayPath: the canonical path is a fixed point for other parsers', () => {
  const accepted = [...nodeParserDisagreements, ...traversalAndAdvisories, ...percentRules, ...segmentRules]
    .map(([, want]) => want)
    .filter((want): want is string => typeof want === 'string');

  it('has a corpus to check', () => {
    expect(accepted.length).toBeGreaterThan(50);
  });

  it.each(accepted)('%s', (path) => {
    // Idempotent: normalising the output again changes nothing.
    expect(normalizeRelayPath(`/relay/up${path}?q`)).toEqual({ upstream: 'up', path, query: '?q' });
    // WHATWG URL (undici, fetch, most Node code): same path, not a protocol-relative host.
    const url = new URL(path, 'http://upstream.internal');
    expect(url.host).toBe('upstream.internal');
    expect(url.pathname).toBe(path);
    // A backend that decodes once and then normalises (path.posix / many frameworks)
    // finds no dot segment, `//` or new separator to act on.
    const decoded = decodeURIComponent(path);
    expect(decoded.split('/').length).toBe(path.split('/').length);
    expect(posix.normalize(decoded)).toBe(decoded);
    expect(decoded).not.toContain('\\');
    // …and one that decodes twice finds no dot or separator hidden in a second layer.
    expect(decoded).not.toMatch(/%(2[eEfF]|5[cC])/);
    // A Tomcat-style backend that strips `;params` before resolving sees no dot segment either.
    const stripped = decoded.split('/').map((s) => s.split(';')[0]);
    expect(stripped.filter((s) => s === '.' || s === '..')).toEqual([]);
  });
});

describe('normalizeRelayPath: routes that keep encoded slashes (npm scoped packages)', () => {
  const keep = { keepEncodedSlashes: (upstream: string) => upstream === 'npm' };
  it.each([
    ['/relay/npm/@acme%2fwidget', '/@acme%2Fwidget'],
    ['/relay/npm/%40acme%2Fwidget/-/widget-1.0.0.tgz', '/@acme%2Fwidget/-/widget-1.0.0.tgz'],
  ])('%s keeps %%2F encoded as %s', (target, path) => {
    expect(normalizeRelayPath(target, keep)).toMatchObject({ upstream: 'npm', path });
  });
  it.each(['/relay/npm/a%2f..%2fadmin', '/relay/npm/..%2fadmin', '/relay/npm/a%2F.%2Fb', '/relay/npm/a%2F..;x%2Fb'])(
    '%s is refused: a dot segment between encoded slashes',
    (target) => {
      expect(() => normalizeRelayPath(target, keep)).toThrow(expect.objectContaining({ reason: 'encoded_slash' }));
    },
  );
  it('other routes still refuse %2F', () => {
    expect(() => normalizeRelayPath('/relay/files/@acme%2fwidget', keep)).toThrow(expect.objectContaining({ reason: 'encoded_slash' }));
  });
});
