import { cgiFieldKey } from './cgi-name.js';
import { HOP_BY_HOP, connectionListed } from './hop-by-hop.js';

export interface UpstreamRequestOptions {
  /** `host[:port]` of the upstream's configured URL. */
  upstreamHost: string;
  /** The TCP peer's address (never a caller-supplied header). */
  clientIp: string;
  /** Scheme the caller used to reach Port. */
  proto: 'http' | 'https';
  /** Port's own public host, as configured. */
  publicHost: string;
  /** The route allows `Upgrade` (e.g. WebSocket); otherwise `upgrade` is stripped. */
  allowUpgrade: boolean;
  /**
   * Headers the relay sets afterwards for the upstream's credential (e.g. an `inject: header`
   * name). A caller's header with the same CGI key (cgi-name.ts) is dropped, not merged.
   */
  injected?: readonly string[];
}

/**
 * The caller's credentials: the upstream's are injected by the relay, the caller's never pass.
 * `dpop`: a proof for Port (RFC 9449 §4.1), meaningless to the upstream and tied to the caller's key.
 */
const CALLER_CREDENTIALS = ['authorization', 'cookie', 'proxy-authorization', 'dpop'];

/**
 * Headers by which a caller could claim to be someone or somewhere else, or make the
 * upstream act on another host, URL or method than the policy decided on (PortSwigger
 * Host-header labs, https://portswigger.net/web-security/host-header). Only Port sets forwarding information.
 */
const SPOOFABLE = [
  // httpoxy: CGI upstreams (git http-backend) turn `Proxy` into HTTP_PROXY.
  'proxy',
  // Forwarding and client-address claims.
  'forwarded',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'x-forwarded-port',
  'x-forwarded-server',
  'x-real-ip',
  // Host and URL overrides honoured by common frameworks (IIS/Symfony, Spring, Rails…).
  'x-host',
  'x-http-host-override',
  'x-original-url',
  'x-rewrite-url',
  'x-forwarded-prefix',
  'x-forwarded-uri',
  'x-original-host',
  'x-forwarded-scheme',
  'x-forwarded-ssl',
  'x-url-scheme',
  'front-end-https',
  'x-client-ip',
  'true-client-ip',
  'x-cluster-client-ip',
  // Method overrides: the policy decided on the request's method, not on one of these.
  'x-http-method-override',
  'x-http-method',
  'x-method-override',
];

/** Port's own fields: a caller's `Connection` must not strip them (Davison 2019); re-added below anyway. */
const PORT_SET = new Set(['host', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host']);
/** Framing is the relay's decision, not something `Connection` can take away from the body it streams. */
const FRAMING = new Set(['content-length']);

const DROP: ReadonlySet<string> = new Set([
  ...HOP_BY_HOP,
  ...CALLER_CREDENTIALS,
  ...SPOOFABLE,
  ...PORT_SET,
  // Node answers `100 Continue` at Port's edge; undici refuses to send `Expect` at all.
  'expect',
]);

/**
 * The headers to send upstream for a request, from Node's `req.rawHeaders`. Call
 * checkRequestFraming first: duplicates it refuses are not re-checked here. Names are
 * lower-cased; repeated fields stay separate lines (an array), in order.
 */
export function upstreamRequestHeaders(rawHeaders: readonly string[], opts: UpstreamRequestOptions): Record<string, string | string[]> {
  const connectionValues: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    if ((rawHeaders[i] ?? '').toLowerCase() === 'connection') connectionValues.push(rawHeaders[i + 1] ?? '');
  }
  // RFC 9110 §7.6.1: fields the Connection header lists are hop-by-hop too.
  const listed = connectionListed(connectionValues);

  const injected = opts.injected?.length ? new Set(opts.injected.map(cgiFieldKey)) : undefined;
  const out: Record<string, string | string[]> = {};
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = (rawHeaders[i] ?? '').toLowerCase();
    const value = rawHeaders[i + 1] ?? '';
    // `_` for `-`: CGI, WSGI and Rack map both to the same HTTP_X_FORWARDED_FOR (RFC 3875
    // §4.1.18; git http-backend is CGI), so `X_Forwarded_For` is the same spoof and
    // `X_Api_Key` the same credential as an injected `X-Api-Key`; Apache 2.4 and nginx drop
    // such names by default.
    const key = cgiFieldKey(name);
    if (name === 'upgrade' && opts.allowUpgrade) {
      // Kept even though the Upgrade request's `Connection: upgrade` lists it.
    } else if (DROP.has(key) || injected?.has(key) === true || (listed.has(name) && !FRAMING.has(name))) {
      continue;
    }
    const prev = out[name];
    if (prev === undefined) out[name] = value;
    else if (typeof prev === 'string') out[name] = [prev, value];
    else prev.push(value);
  }

  out['host'] = opts.upstreamHost;
  // The TCP peer only: a caller-supplied chain is never extended, so nothing in it is trusted.
  out['x-forwarded-for'] = opts.clientIp;
  out['x-forwarded-proto'] = opts.proto;
  out['x-forwarded-host'] = opts.publicHost;
  return out;
}
