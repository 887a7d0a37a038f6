/** Request and response header hygiene for the relay (RFC 9110 §7.6.1, RFC 9112 §6). */
export { checkRequestFraming } from './check-request-framing.js';
export { upstreamRequestHeaders, type UpstreamRequestOptions } from './upstream-request-headers.js';
export { downstreamResponseHeaders } from './downstream-response-headers.js';
export { HeaderRejectedError, type HeaderCheck } from './errors.js';
export { HOP_BY_HOP } from './hop-by-hop.js';
export { cgiFieldKey, dropCgiAliases } from './cgi-name.js';
