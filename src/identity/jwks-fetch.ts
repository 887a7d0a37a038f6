import { request } from 'undici';
import { JwksFetchError } from './errors.js';

/** Buildkite's JWKS is a few keys; anything this large is not it. */
const MAX_JWKS_BYTES = 256 * 1024;

export interface JwksFetchOptions {
  /** Total deadline: connect, response head and the whole body together. */
  timeoutMs: number;
  /** Aborts the fetch from outside (shutdown). */
  signal?: AbortSignal;
}

/**
 * GETs a JWK Set (RFC 7517 §5) under one total deadline. undici's `headersTimeout` and
 * `bodyTimeout` are idle timeouts — each byte restarts them — so a server that drips a byte
 * every few seconds would hold a fetch guarded only by them forever; the deadline here
 * covers the whole exchange (undici docs, "Dispatcher.request": `signal`). Redirects are
 * not followed (undici's request follows none without its redirect interceptor).
 */
export async function fetchJwksDocument(url: string, opts: JwksFetchOptions): Promise<{ keys: unknown[] }> {
  const deadline = new AbortController();
  const timer = setTimeout(
    () => deadline.abort(new JwksFetchError('timeout', `the JWKS did not answer in full within ${opts.timeoutMs} ms`)),
    opts.timeoutMs,
  );
  const signal = opts.signal ? AbortSignal.any([deadline.signal, opts.signal]) : deadline.signal;
  // Whatever undici does with the signal, the deadline settles this fetch: racing it is the guarantee.
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_resolve, reject) => {
    onAbort = () => reject(abortReason(signal));
    signal.addEventListener('abort', onAbort, { once: true });
  });
  const work = fetchWithin(url, signal);
  try {
    return await Promise.race([work, aborted]);
  } finally {
    clearTimeout(timer);
    if (onAbort) signal.removeEventListener('abort', onAbort);
    // The race's loser must not surface as an unhandled rejection.
    aborted.catch(() => undefined);
    work.catch(() => undefined);
  }
}

async function fetchWithin(url: string, signal: AbortSignal): Promise<{ keys: unknown[] }> {
  let res: Awaited<ReturnType<typeof request>>;
  try {
    res = await request(url, { method: 'GET', headers: { accept: 'application/json' }, signal });
  } catch (err) {
    throw signal.aborted ? abortReason(signal) : new JwksFetchError('network', `the JWKS could not be reached (${errorCode(err)})`, { cause: err });
  }
  if (res.statusCode !== 200) {
    discard(res.body);
    throw new JwksFetchError('http_status', `the JWKS answered HTTP ${res.statusCode}`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of res.body) {
      size += (chunk as Buffer).length;
      if (size > MAX_JWKS_BYTES) {
        discard(res.body);
        throw new JwksFetchError('too_large', `the JWKS is larger than ${MAX_JWKS_BYTES} bytes`);
      }
      chunks.push(chunk as Buffer);
    }
  } catch (err) {
    if (err instanceof JwksFetchError) throw err;
    throw signal.aborted ? abortReason(signal) : new JwksFetchError('network', `the JWKS response broke off (${errorCode(err)})`, { cause: err });
  }
  let body: unknown;
  try {
    body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new JwksFetchError('invalid_json', 'the JWKS is not JSON');
  }
  const keys = (body as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys)) throw new JwksFetchError('no_keys', 'the JWKS has no "keys" array');
  return { keys };
}

/** Drops a response body unread; undici reports the destroy as an error nobody needs. */
function discard(body: NodeJS.ReadableStream & { destroy(): void }): void {
  body.on('error', () => undefined);
  body.destroy();
}

function abortReason(signal: AbortSignal): JwksFetchError {
  return signal.reason instanceof JwksFetchError ? signal.reason : new JwksFetchError('aborted', 'the JWKS fetch was stopped (Port is shutting down)');
}

function errorCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : 'connection failed';
}
