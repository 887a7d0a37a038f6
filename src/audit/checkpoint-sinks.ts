/**
 * `audit.checkpoint_sinks`: ships each signed checkpoint out of Port's database as it is
 * made, so that an auditor holds copies an attacker with the database cannot take back
 * (`port audit verify --anchor FILE` then detects a log cut back, checkpoints and all).
 *
 * - `{file: PATH}` appends one JSON line per checkpoint (checkpoint-line.ts, the format
 *   of `port audit checkpoints export`) and fsyncs it before the next.
 * - `{url: URL, headers: {name: secret-ref}}` POSTs the same JSON object. Each attempt
 *   has a 5 s deadline; 5xx, 408, 429, timeouts and network errors are retried with
 *   exponential backoff (1 s, 2 s, 4 s, 8 s); redirects are not followed (undici's
 *   `request` does not). Header values are secrets: re-read on every send, never logged.
 *
 * Shipping never blocks or fails a decision or a checkpoint: `ship` only queues. Each sink
 * keeps its own queue, so checkpoints reach it in order. A checkpoint a sink could not
 * take after its retries is reported once through `onError` (naming the sink by number
 * and kind, a URL only by its origin) and dropped; the next one is still sent.
 */
import { open } from 'node:fs/promises';
import { request as undiciRequest, type Dispatcher } from 'undici';
import type { CheckpointSinkConfig } from '../config/config.js';
import { resolveSecretRef } from '../config/secret-ref.js';
import { PortError } from '../errors.js';
import { checkpointToJsonLine } from './checkpoint-line.js';
import type { CheckpointShipper } from './checkpointer.js';
import type { Checkpoint } from '../store/records/decisions.js';
import { AuditError } from './errors.js';

export interface CheckpointSinksOptions {
  /** Every checkpoint a sink finally could not take, once. Must not throw. */
  onError: (err: AuditError) => void;
  /** Deadline of one attempt, ms. Default 5,000. */
  timeoutMs?: number;
  /** Tries per checkpoint and sink. Default 5. */
  attempts?: number;
  /** Pause before the first retry, doubled for each further one, ms. Default 1,000. */
  backoffMs?: number;
  /** How long `close()` waits for queued deliveries, ms. Default 10,000. */
  closeTimeoutMs?: number;
  /** undici dispatcher (tests); the global one by default. */
  dispatcher?: Dispatcher;
}

type Attempt = { ok: true } | { ok: false; retry: boolean; message: string };

const MAX_RESPONSE_BYTES = 64 * 1024;

export class CheckpointSinks implements CheckpointShipper {
  private readonly queues: Promise<void>[];
  private readonly timeoutMs: number;
  private readonly attempts: number;
  private readonly backoffMs: number;
  /** Aborts backoff pauses once closing: what is queued gets one last try each. */
  private readonly closing = new AbortController();

  constructor(
    private readonly sinks: readonly CheckpointSinkConfig[],
    private readonly options: CheckpointSinksOptions,
  ) {
    this.queues = sinks.map(() => Promise.resolve());
    this.timeoutMs = options.timeoutMs ?? 5_000;
    this.attempts = options.attempts ?? 5;
    this.backoffMs = options.backoffMs ?? 1_000;
  }

  /** Sinks for `audit.checkpoint_sinks`, or undefined when none is configured. */
  static fromConfig(sinks: readonly CheckpointSinkConfig[], options: CheckpointSinksOptions): CheckpointSinks | undefined {
    return sinks.length === 0 ? undefined : new CheckpointSinks(sinks, options);
  }

  ship(checkpoint: Checkpoint): void {
    const line = checkpointToJsonLine(checkpoint);
    this.sinks.forEach((sink, i) => {
      this.queues[i] = this.queues[i]!.then(() => this.deliver(i, sink, checkpoint, line)).catch(() => undefined);
    });
  }

  /** Resolves when everything shipped so far was delivered or given up (tests). */
  async idle(): Promise<void> {
    await Promise.all(this.queues);
  }

  async close(): Promise<void> {
    this.closing.abort();
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.options.closeTimeoutMs ?? 10_000);
      timer.unref();
    });
    await Promise.race([this.idle(), deadline]);
    clearTimeout(timer);
  }

  private async deliver(index: number, sink: CheckpointSinkConfig, checkpoint: Checkpoint, line: string): Promise<void> {
    let result: Attempt = { ok: false, retry: true, message: 'not tried' };
    for (let n = 0; n < this.attempts; n++) {
      if (n > 0) {
        if (!result.ok && !result.retry) break;
        if (this.closing.signal.aborted) break;
        await pause(this.backoffMs * 2 ** (n - 1), this.closing.signal);
      }
      result = sink.kind === 'file' ? await appendLine(sink.path, line) : await this.post(sink, line);
      if (result.ok) return;
    }
    const name = sink.kind === 'file' ? `file ${sink.path}` : `URL ${origin(sink.url)}`;
    this.options.onError(
      new AuditError('audit_sink_failed', `checkpoint sink ${index + 1} (${name}) did not take checkpoint ${checkpoint.num}: ${result.ok ? 'ok' : result.message}`),
    );
  }

  private async post(sink: Extract<CheckpointSinkConfig, { kind: 'http' }>, line: string): Promise<Attempt> {
    const headers: Record<string, string> = { 'content-type': 'application/json', 'user-agent': 'Port audit checkpoint sink' };
    try {
      for (const [name, source] of Object.entries(sink.headers)) headers[name] = resolveSecretRef(source.ref, source.key, source.baseDir);
    } catch (err) {
      // resolveSecretRef names the key and the reference, never the value.
      return { ok: false, retry: true, message: err instanceof PortError ? err.message : 'a header secret cannot be read' };
    }
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, this.timeoutMs);
    try {
      const res = await undiciRequest(sink.url, {
        method: 'POST',
        headers,
        body: line,
        signal: controller.signal,
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.timeoutMs,
        ...(this.options.dispatcher ? { dispatcher: this.options.dispatcher } : {}),
      });
      // Read (and discard) the answer so the connection can be reused.
      await res.body.dump({ limit: MAX_RESPONSE_BYTES }).catch(() => undefined);
      const status = res.statusCode;
      if (status >= 200 && status < 300) return { ok: true };
      if (status >= 300 && status < 400) return { ok: false, retry: false, message: `answered ${status} (redirects are not followed)` };
      // RFC 9110 §15.5.9 (408) and RFC 6585 §4 (429) invite a retry; other 4xx will not change.
      return { ok: false, retry: status >= 500 || status === 408 || status === 429, message: `answered ${status}` };
    } catch (err) {
      if (timedOut) return { ok: false, retry: true, message: `no answer within ${this.timeoutMs / 1000} s` };
      // Only the error's code: a network error's message can name the host and port.
      return { ok: false, retry: true, message: `network error${errorCode(err)}` };
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Appends and fsyncs one line: on disk before the next checkpoint is written after it. */
async function appendLine(path: string, line: string): Promise<Attempt> {
  try {
    const file = await open(path, 'a', 0o644);
    try {
      await file.appendFile(line, 'utf8');
      await file.sync();
    } finally {
      await file.close();
    }
    return { ok: true };
  } catch (err) {
    return { ok: false, retry: true, message: `cannot append (${(err as NodeJS.ErrnoException).code ?? 'error'})` };
  }
}

function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    timer.unref();
    signal.addEventListener('abort', done, { once: true });
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });
}

/** A URL sink is named by its origin only: a path or query may carry a token. */
function origin(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return '(invalid URL)';
  }
}

function errorCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? ` (${code})` : '';
}
