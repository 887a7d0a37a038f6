/**
 * Raw HTTP/1.x over a TCP socket, for the relay's smuggling and slow-client tests: writes
 * exactly the bytes it is given (optionally in chunks with delays), reads everything until
 * the server closes, the expected number of responses has arrived, or a timeout, and parses
 * what came back into responses (status line, headers, body; content-length, chunked and
 * read-until-close framing; several pipelined responses).
 *
 * Nothing here normalises the request: bare LF, duplicate Content-Length, obfuscated
 * Transfer-Encoding all go out as written.
 */
import { Socket } from 'node:net';

export interface RawResponse {
  httpVersion: string;
  status: number;
  statusText: string;
  /** Lower-case names; repeated headers joined with ", ". */
  headers: Record<string, string>;
  /** As received: [name, value] pairs in order. */
  rawHeaders: Array<[string, string]>;
  /** The body decoded from its framing (chunked bodies de-chunked), as UTF-8 text. */
  body: string;
  bodyBytes: Buffer;
  /** False when the bytes ran out before the framing said the body ended. */
  complete: boolean;
}

export interface RawRequestOptions {
  /** Overall limit; when it passes the socket is destroyed and `timedOut` is true. Default 5000. */
  timeoutMs?: number;
  /** Written after `bytes`, each after waiting its `delayMs` (slowloris-style clients). */
  writeDelays?: Array<{ delayMs: number; data: string | Buffer }>;
  /** Stop once this many complete final (non-1xx) responses have been parsed. */
  expectResponses?: number;
  /** After `expectResponses` arrived, how long to wait to see whether the server closes. Default 100. */
  closeGraceMs?: number;
  /** Half-close (send FIN) after everything is written. Default false. */
  endAfterWrite?: boolean;
  /** Treat every response as having no body (answers to HEAD). */
  head?: boolean;
}

export interface RawResult {
  /** Final responses (1xx interim responses other than 101 are skipped, listed in `interim`). */
  responses: RawResponse[];
  interim: RawResponse[];
  raw: Buffer;
  /** The server ended or reset the connection (as opposed to us giving up). */
  closedByServer: boolean;
  /** The connection ended with ECONNRESET / EPIPE rather than a FIN. */
  reset: boolean;
  timedOut: boolean;
  /** How many of `writeDelays` were written before the connection ended. */
  chunksWritten: number;
  /** Bytes after the last parsed response that did not form one (garbage or a partial response). */
  trailing: Buffer;
  durationMs: number;
  error?: string;
}

export function rawRequest(host: string, port: number, bytes: string | Buffer, opts: RawRequestOptions = {}): Promise<RawResult> {
  const timeoutMs = opts.timeoutMs ?? 5_000;
  const started = Date.now();
  const chunks: Buffer[] = [];
  let closedByServer = false;
  let reset = false;
  let timedOut = false;
  let chunksWritten = 0;
  let error: string | undefined;
  let finished = false;

  return new Promise((resolve) => {
    const socket = new Socket();
    const timers: NodeJS.Timeout[] = [];
    const later = (ms: number, fn: () => void) => timers.push(setTimeout(fn, ms));

    const finish = () => {
      if (finished) return;
      finished = true;
      for (const t of timers) clearTimeout(t);
      socket.destroy();
      const raw = Buffer.concat(chunks);
      const parsed = parseResponses(raw, { head: opts.head, eof: closedByServer });
      resolve({ ...parsed, raw, closedByServer, reset, timedOut, chunksWritten, durationMs: Date.now() - started, ...(error ? { error } : {}) });
    };

    later(timeoutMs, () => {
      timedOut = true;
      finish();
    });

    let waitingGrace = false;
    socket.on('data', (d: Buffer) => {
      chunks.push(d);
      if (opts.expectResponses && !waitingGrace) {
        const p = parseResponses(Buffer.concat(chunks), { head: opts.head, eof: false });
        const done = p.responses.filter((r) => r.complete).length;
        if (done >= opts.expectResponses) {
          waitingGrace = true;
          later(opts.closeGraceMs ?? 100, finish);
        }
      }
    });
    socket.on('end', () => {
      closedByServer = true;
      finish();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNRESET' || err.code === 'EPIPE') {
        reset = true;
        closedByServer = true;
      } else error = `${err.code ?? ''} ${err.message}`.trim();
      finish();
    });
    socket.on('close', () => {
      if (!finished) closedByServer = true;
      finish();
    });

    socket.connect(port, host, () => {
      socket.setNoDelay(true);
      socket.write(bytes);
      const writeRest = async () => {
        for (const c of opts.writeDelays ?? []) {
          await new Promise<void>((r) => later(c.delayMs, r));
          if (finished || socket.destroyed || !socket.writable) return;
          socket.write(c.data);
          chunksWritten++;
        }
        if (opts.endAfterWrite && !finished && socket.writable) socket.end();
      };
      void writeRest();
    });
  });
}

/** Convenience: `rawRequest` against `http://host:port` given as a URL string. */
export function rawRequestUrl(url: string, bytes: string | Buffer, opts?: RawRequestOptions): Promise<RawResult> {
  const u = new URL(url);
  return rawRequest(u.hostname, Number(u.port || 80), bytes, opts);
}

interface Parsed {
  responses: RawResponse[];
  interim: RawResponse[];
  trailing: Buffer;
}

/**
 * Splits a byte stream into HTTP/1.x responses. `eof` says the stream ended (so a body
 * without length framing runs to the end and is complete).
 */
export function parseResponses(buf: Buffer, opts: { head?: boolean; eof?: boolean } = {}): Parsed {
  const responses: RawResponse[] = [];
  const interim: RawResponse[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const headEnd = findHeaderEnd(buf, pos);
    if (!headEnd) break;
    const headText = buf.subarray(pos, headEnd.start).toString('latin1');
    const lines = headText.split(/\r?\n/);
    const m = /^(HTTP\/\d(?:\.\d)?) (\d{3})(?: (.*))?$/.exec(lines[0] ?? '');
    if (!m) break;
    const rawHeaders: Array<[string, string]> = [];
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1)) {
      const i = line.indexOf(':');
      if (i <= 0) continue;
      const name = line.slice(0, i);
      const value = line.slice(i + 1).trim();
      rawHeaders.push([name, value]);
      const k = name.toLowerCase();
      headers[k] = k in headers ? `${headers[k]}, ${value}` : value;
    }
    const status = Number(m[2]);
    const res: RawResponse = {
      httpVersion: m[1]!,
      status,
      statusText: m[3] ?? '',
      headers,
      rawHeaders,
      body: '',
      bodyBytes: Buffer.alloc(0),
      complete: true,
    };
    pos = headEnd.end;

    if (status >= 100 && status < 200 && status !== 101) {
      interim.push(res);
      continue;
    }
    if (status === 101) {
      // The rest belongs to the upgraded protocol.
      res.bodyBytes = buf.subarray(pos);
      res.body = res.bodyBytes.toString('utf8');
      responses.push(res);
      pos = buf.length;
      break;
    }
    const te = headers['transfer-encoding'];
    const cl = headers['content-length'];
    if (opts.head || status === 204 || status === 304) {
      // no body
    } else if (te && /(^|,)\s*chunked\s*$/i.test(te)) {
      const d = dechunk(buf, pos);
      res.bodyBytes = d.body;
      res.complete = d.complete;
      pos = d.end;
    } else if (cl !== undefined && /^\d+$/.test(cl)) {
      const n = Number(cl);
      res.bodyBytes = buf.subarray(pos, Math.min(buf.length, pos + n));
      res.complete = res.bodyBytes.length === n;
      pos += res.bodyBytes.length;
    } else {
      res.bodyBytes = buf.subarray(pos);
      res.complete = !!opts.eof;
      pos = buf.length;
    }
    res.body = res.bodyBytes.toString('utf8');
    responses.push(res);
    if (!res.complete) break;
  }
  return { responses, interim, trailing: buf.subarray(pos) };
}

function findHeaderEnd(buf: Buffer, from: number): { start: number; end: number } | undefined {
  for (let i = from; i < buf.length; i++) {
    if (buf[i] !== 0x0a) continue;
    // "\n\n" or "\n\r\n"
    if (buf[i + 1] === 0x0a) return { start: i > from && buf[i - 1] === 0x0d ? i - 1 : i, end: i + 2 };
    if (buf[i + 1] === 0x0d && buf[i + 2] === 0x0a) return { start: i > from && buf[i - 1] === 0x0d ? i - 1 : i, end: i + 3 };
  }
  return undefined;
}

function dechunk(buf: Buffer, from: number): { body: Buffer; end: number; complete: boolean } {
  const parts: Buffer[] = [];
  let pos = from;
  for (;;) {
    const nl = buf.indexOf(0x0a, pos);
    if (nl < 0) return { body: Buffer.concat(parts), end: buf.length, complete: false };
    const sizeLine = buf.subarray(pos, nl).toString('latin1').replace(/\r$/, '');
    const size = parseInt(sizeLine.split(';')[0]!.trim(), 16);
    if (Number.isNaN(size)) return { body: Buffer.concat(parts), end: buf.length, complete: false };
    pos = nl + 1;
    if (size === 0) {
      // trailers until an empty line
      for (;;) {
        const e = buf.indexOf(0x0a, pos);
        if (e < 0) return { body: Buffer.concat(parts), end: buf.length, complete: false };
        const line = buf.subarray(pos, e).toString('latin1').replace(/\r$/, '');
        pos = e + 1;
        if (line === '') return { body: Buffer.concat(parts), end: pos, complete: true };
      }
    }
    if (pos + size > buf.length) {
      parts.push(buf.subarray(pos));
      return { body: Buffer.concat(parts), end: buf.length, complete: false };
    }
    parts.push(buf.subarray(pos, pos + size));
    pos += size;
    // CRLF after the chunk data
    if (buf[pos] === 0x0d) pos++;
    if (buf[pos] === 0x0a) pos++;
  }
}
