import { PathRejectedError } from './errors.js';
import { canonicalSegment } from './percent-segment.js';
import { resolveDotSegments } from './dot-segments.js';

export { PathRejectedError } from './errors.js';
export type { PathRejection } from './errors.js';

/** A relay request target split into the route's upstream, the canonical path and the raw query. */
export interface NormalizedTarget {
  /** Upstream name from `/relay/<upstream>/…`. */
  upstream: string;
  /** Canonical path below the route, starting with `/`: what the policy decides on and the upstream receives. */
  path: string;
  /** `''`, or `?…` exactly as received (byte for byte). */
  query: string;
}

export interface NormalizeOptions {
  /** Longest request target accepted, in bytes (the target is ASCII). Default 8 KiB. */
  maxTargetLength?: number;
  /** Most `/`-separated segments below the route. Default 256. */
  maxSegments?: number;
  /** Whether the route keeps `%2F` encoded instead of refusing it (see canonicalSegment). */
  keepEncodedSlashes?: (upstream: string) => boolean;
}

export const DEFAULT_MAX_TARGET_LENGTH = 8 * 1024;
export const DEFAULT_MAX_SEGMENTS = 256;

const ROUTE_PREFIX = '/relay/';
/** Same rule as `upstreams.<name>` in port.yaml; no percent-encoding, so one spelling per upstream. */
const UPSTREAM_NAME = /^[a-z0-9][a-z0-9_-]*$/;

/**
 * Canonicalise a relay request target (Node's `req.url`) once, so that the path the
 * policy decides on is byte for byte the path forwarded (the path-confusion authorization
 * bypasses of CVE-2019-9901 and CVE-2021-29492 in Envoy came from the two differing).
 * Throws PathRejectedError (400 `invalid_path`) for anything a later hop could read
 * differently.
 */
export function normalizeRelayPath(rawTarget: string, options: NormalizeOptions = {}): NormalizedTarget {
  const maxLength = options.maxTargetLength ?? DEFAULT_MAX_TARGET_LENGTH;
  const maxSegments = options.maxSegments ?? DEFAULT_MAX_SEGMENTS;

  if (rawTarget.length > maxLength) {
    throw new PathRejectedError('too_long', `The request target is longer than ${maxLength} bytes.`);
  }
  // Absolute-form (`http://host/…`), authority-form and `*` carry their own idea of the
  // target; only origin-form reaches the relay (RFC 9112 §3.2).
  if (!rawTarget.startsWith('/')) {
    throw new PathRejectedError('not_origin_form', 'The request target must be a path starting with "/".');
  }
  // Fragments never go on the wire; one here is a parser-differential attempt (CVE-2021-32779).
  if (rawTarget.includes('#')) {
    throw new PathRejectedError('fragment', 'The request target contains "#", which is never sent in a request.');
  }

  const q = rawTarget.indexOf('?');
  const rawPath = q < 0 ? rawTarget : rawTarget.slice(0, q);
  const query = q < 0 ? '' : rawTarget.slice(q);
  checkQuery(query);

  if (!rawPath.startsWith(ROUTE_PREFIX)) {
    throw new PathRejectedError('not_relay_route', 'The request path is not under /relay/.');
  }
  const afterPrefix = rawPath.slice(ROUTE_PREFIX.length);
  const slash = afterPrefix.indexOf('/');
  const upstream = slash < 0 ? afterPrefix : afterPrefix.slice(0, slash);
  const rest = slash < 0 ? '' : afterPrefix.slice(slash);
  if (!UPSTREAM_NAME.test(upstream)) {
    throw new PathRejectedError('invalid_upstream', 'The upstream name in /relay/<upstream>/ must be lower-case letters, digits, "-" and "_".');
  }

  if (countSlashes(rest) > maxSegments) {
    throw new PathRejectedError('too_many_segments', `The relay path has more than ${maxSegments} segments.`);
  }
  // rest is '' or '/…'; split('/') yields a leading '' for the root, which we skip.
  const keep = options.keepEncodedSlashes?.(upstream) ?? false;
  const segments = rest === '' ? [] : rest.slice(1).split('/').map((s) => canonicalSegment(s, keep));
  return { upstream, path: resolveDotSegments(segments), query };
}

/**
 * The query is forwarded untouched and the policy never sees it, so it is only checked
 * for bytes no request target may carry (RFC 3986 §3.4; Node's parser refuses most
 * already): controls, space and raw non-ASCII.
 */
function checkQuery(query: string): void {
  for (let i = 0; i < query.length; i++) {
    const c = query.charCodeAt(i);
    if (c === 0x00) throw new PathRejectedError('nul', 'The query string contains a NUL byte.');
    if (c < 0x20 || c === 0x7f) throw new PathRejectedError('control_character', 'The query string contains a control character.');
    if (c === 0x20) throw new PathRejectedError('invalid_character', 'The query string contains a raw space.');
    if (c > 0x7e) throw new PathRejectedError('non_ascii', 'The query string contains a raw non-ASCII character.');
  }
}

function countSlashes(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) === 0x2f) n++;
  return n;
}
