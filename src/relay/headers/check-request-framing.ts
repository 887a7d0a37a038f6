import { HeaderRejectedError } from './errors.js';
import { TOKEN } from './hop-by-hop.js';

/**
 * Refuse requests whose framing or identity headers two parsers could read differently
 * (RFC 9112 §6.1, §6.3; James Kettle, "HTTP Desync Attacks: Request Smuggling Reborn",
 * https://portswigger.net/research/http-desync-attacks-request-smuggling-reborn). Node's strict parser already refuses CL+TE,
 * duplicate CL and obfuscated TE; this is defence in depth, and the only guard against
 * what Node lets through: a second `Host` or `Authorization`, where Node keeps the first
 * and another hop might keep the last.
 *
 * `rawHeaders` is Node's `req.rawHeaders`: `[name, value, name, value, …]`.
 */
export function checkRequestFraming(rawHeaders: readonly string[]): void {
  let host = 0;
  let authorization = 0;
  let contentLength: string | undefined;
  let transferEncoding: string | undefined;

  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] ?? '';
    const value = rawHeaders[i + 1] ?? '';
    // CR/LF/NUL would split or truncate the header when it is written out again.
    if (!TOKEN.test(name)) {
      throw new HeaderRejectedError('invalid_header_name', 'A request header name is not a valid token (it contains a control character, space or separator).');
    }
    if (/[\r\n\0]/.test(value)) {
      throw new HeaderRejectedError('invalid_header_value', `The ${name.slice(0, 64)} header contains CR, LF or NUL.`);
    }
    switch (name.toLowerCase()) {
      case 'host':
        if (++host > 1) throw new HeaderRejectedError('duplicate_host', 'The request has more than one Host header.');
        break;
      case 'authorization':
        if (++authorization > 1) {
          throw new HeaderRejectedError('duplicate_authorization', 'The request has more than one Authorization header.');
        }
        break;
      case 'content-length':
        // Even equal values: RFC 9112 §6.3 allows folding them, Port does not guess.
        if (contentLength !== undefined) {
          throw new HeaderRejectedError('duplicate_content_length', 'The request has more than one Content-Length header.');
        }
        contentLength = value;
        break;
      case 'transfer-encoding':
        if (transferEncoding !== undefined) {
          throw new HeaderRejectedError('duplicate_transfer_encoding', 'The request has more than one Transfer-Encoding header.');
        }
        transferEncoding = value;
        break;
    }
  }

  // RFC 9112 §6.1: CL with TE "ought to be handled as an error" — the CL.TE/TE.CL desync.
  if (contentLength !== undefined && transferEncoding !== undefined) {
    throw new HeaderRejectedError('content_length_and_transfer_encoding', 'The request has both Content-Length and Transfer-Encoding.');
  }
  // Plain decimal, bounded: no sign, no hex, no lists, no overflow (Http11Probe content-length/*).
  if (contentLength !== undefined && !/^\d{1,15}$/.test(contentLength)) {
    throw new HeaderRejectedError('invalid_content_length', 'The Content-Length header is not a plain decimal number of at most 15 digits.');
  }
  // Only `chunked`, alone: `xchunked`, `chunked, identity`, `identity, chunked`, vertical
  // tabs… are the TE.TE obfuscations (Kettle 2019). OWS is SP / HTAB (RFC 9110 §5.6.3).
  if (transferEncoding !== undefined && !/^[ \t]*chunked[ \t]*$/i.test(transferEncoding)) {
    throw new HeaderRejectedError('invalid_transfer_encoding', 'The Transfer-Encoding header must be exactly "chunked".');
  }
}
