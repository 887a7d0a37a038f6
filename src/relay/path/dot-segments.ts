import { PathRejectedError } from './errors.js';

/**
 * Merge empty segments, drop `.`, resolve `..` (RFC 3986 §5.2.4, except that climbing
 * above the root is refused rather than clamped: the caller asked for something outside
 * the route). A path ending in a dot segment or an empty segment keeps its trailing `/`,
 * as `remove_dot_segments` does. `segments` are canonical (see canonicalSegment), so
 * `%2E` has already become `.` and cannot hide a dot segment here.
 */
export function resolveDotSegments(segments: readonly string[]): string {
  const out: string[] = [];
  let trailingSlash = false;
  for (const segment of segments) {
    trailingSlash = true;
    if (segment === '' || segment === '.') continue;
    if (segment === '..') {
      if (out.length === 0) {
        throw new PathRejectedError('climbs_above_root', 'The relay path uses ".." to climb above the upstream\'s root.');
      }
      out.pop();
      continue;
    }
    // `..;x` and `.;x` are dot segments to Tomcat-style backends, which strip matrix
    // parameters before resolving (Orange Tsai, "Breaking Parser Logic", Black Hat USA 2018;
    // Envoy's path-parameter advisories). `;` elsewhere is an ordinary path character and stays.
    if (DOT_WITH_PARAMS.test(segment)) {
      throw new PathRejectedError('dot_segment_params', 'The relay path has a dot segment carrying ";" parameters.');
    }
    trailingSlash = false;
    out.push(segment);
  }
  if (out.length === 0) return '/';
  return '/' + out.join('/') + (trailingSlash ? '/' : '');
}

const DOT_WITH_PARAMS = /^\.{1,2}(?:;|%3B)/;
