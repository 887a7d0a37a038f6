/**
 * One HTTP exchange with the Buildkite API through undici, bounded in time (one
 * deadline for headers and body together) and in size. It never throws: the outcome
 * says what happened so the client can decide whether to retry.
 */
import { request, type Dispatcher } from 'undici';
import type { Headers } from './backoff.js';

export interface Attempt {
  method: 'GET' | 'PUT' | 'POST';
  url: string;
  headers: Record<string, string>;
  body?: string;
  timeoutMs: number;
  maxResponseBytes: number;
  dispatcher?: Dispatcher;
}

export type AttemptOutcome =
  | { kind: 'response'; status: number; headers: Headers; text: string }
  | { kind: 'timeout' }
  | { kind: 'too_large'; status: number }
  | { kind: 'network'; error: unknown };

export async function attempt(a: Attempt): Promise<AttemptOutcome> {
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, a.timeoutMs);
  try {
    const res = await request(a.url, {
      method: a.method,
      headers: a.headers,
      body: a.body,
      signal: controller.signal,
      headersTimeout: a.timeoutMs,
      bodyTimeout: a.timeoutMs,
      ...(a.dispatcher === undefined ? {} : { dispatcher: a.dispatcher }),
    });
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res.body) {
      const buf = chunk as Buffer;
      size += buf.length;
      if (size > a.maxResponseBytes) {
        res.body.destroy();
        return { kind: 'too_large', status: res.statusCode };
      }
      chunks.push(buf);
    }
    return { kind: 'response', status: res.statusCode, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') };
  } catch (error) {
    if (timedOut || isUndiciTimeout(error)) return { kind: 'timeout' };
    return { kind: 'network', error };
  } finally {
    clearTimeout(timer);
  }
}

function isUndiciTimeout(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT';
}
