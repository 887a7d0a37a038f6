/**
 * Approval notifications: when a request opens and when it
 * closes, a Slack incoming-webhook message and/or a generic JSON webhook, each with a
 * link to the request.
 *
 * Both URLs are secrets (a Slack webhook URL is its own credential), so they live in
 * the config as secret references, are re-read on every send (a rotated file applies
 * at once) and never appear in an error or a log line: a failure names only the sink
 * and what happened (`answered 500`, `timed out`, `network error (ECONNREFUSED)`).
 *
 * Sending never blocks or fails the approvals flow: `opened`/`closed` resolve once
 * every sink has been tried and never reject; failures go to `onError`. Each POST has
 * a 5 s deadline, is retried once on a 5xx, a timeout or a network error, and follows
 * no redirect (undici's `request` does not; a 3xx is a failure). Notifications for one
 * request are sent in order, so a quick close never overtakes its open.
 */
import { randomUUID } from 'node:crypto';
import { request as undiciRequest, type Dispatcher } from 'undici';
import type { DecisionLog } from '../audit/decision-log.js';
import { entityString } from '../audit/decision-from-policy.js';
import type { PortConfig, SecretSource } from '../config/config.js';
import { resolveSecretRef } from '../config/secret-ref.js';
import { ConfigError, PortError } from '../errors.js';
import { slackClosedMessage, slackOpenedMessage, webhookNotification, type NotificationEvent } from './notification-messages.js';
import type { ApprovalRequestRecord } from '../store/records/approvals.js';

/** What `ApprovalService` calls; `ApprovalNotifier` is the implementation. */
export interface ApprovalNotifications {
  /** A request opened. Resolves when sent (or given up); never rejects. */
  opened(request: ApprovalRequestRecord, link: string): Promise<void>;
  /** A request closed (`rejected`, `unblocked`, `unblock_failed`, `expired`). Never rejects. */
  closed(request: ApprovalRequestRecord, link: string): Promise<void>;
}

export type NotificationSink = 'slack' | 'webhook';

/** A notification that could not be delivered; the message never holds the URL. */
export class NotificationError extends PortError {
  constructor(
    readonly sink: NotificationSink,
    readonly event: NotificationEvent,
    readonly requestId: string,
    message: string,
    /** The sink's HTTP status, when it answered. */
    readonly httpStatus?: number,
  ) {
    super('notification_failed', message, 502);
  }
}

export interface ApprovalNotifierOptions {
  /** `approvals.notify.slack_webhook`: a Slack (or Slack-compatible) incoming-webhook URL. */
  slackWebhook?: SecretSource;
  /** `approvals.notify.webhook`: any URL that takes the JSON body of `webhookNotification`. */
  webhook?: SecretSource;
  /** Every failed delivery (after its retry), once. Must not throw. */
  onError: (err: NotificationError) => void;
  /** When set, each delivery is recorded as `approval_notified` (or `approval_notify_failed`). */
  log?: DecisionLog;
  /** Deadline of one attempt (headers and body), ms. Default 5,000. */
  timeoutMs?: number;
  /** Pause before the one retry, ms. Default 1,000. */
  retryDelayMs?: number;
  /** undici dispatcher (tests); the global one by default. */
  dispatcher?: Dispatcher;
  now?: () => number;
}

const SINK_NAMES: Record<NotificationSink, string> = { slack: 'Slack notification', webhook: 'webhook notification' };
const MAX_RESPONSE_BYTES = 64 * 1024;

type AttemptResult = { ok: true; status: number } | { ok: false; retry: boolean; message: string; status?: number };

export class ApprovalNotifier implements ApprovalNotifications {
  private readonly sinks: { sink: NotificationSink; source: SecretSource }[];
  private readonly timeoutMs: number;
  private readonly retryDelayMs: number;
  private readonly now: () => number;
  /** The tail of each request's notifications, so they go out in order. */
  private readonly chains = new Map<string, Promise<void>>();
  private readonly inFlight = new Set<Promise<void>>();

  constructor(private readonly options: ApprovalNotifierOptions) {
    this.sinks = [
      ...(options.slackWebhook ? [{ sink: 'slack' as const, source: options.slackWebhook }] : []),
      ...(options.webhook ? [{ sink: 'webhook' as const, source: options.webhook }] : []),
    ];
    this.timeoutMs = options.timeoutMs ?? 5_000;
    this.retryDelayMs = options.retryDelayMs ?? 1_000;
    this.now = options.now ?? Date.now;
  }

  /**
   * A notifier for `approvals.notify`, or undefined when no sink is configured. Each
   * reference is read once now so a secret that is not an http(s) URL fails at start
   * (ConfigError naming the key, never the value).
   */
  static fromConfig(config: PortConfig, options: Omit<ApprovalNotifierOptions, 'slackWebhook' | 'webhook'>): ApprovalNotifier | undefined {
    const notify = config.approvals.notify;
    if (!notify?.slackWebhook && !notify?.webhook) return undefined;
    for (const source of [notify.slackWebhook, notify.webhook]) if (source) checkUrlSecret(source);
    return new ApprovalNotifier({
      ...options,
      ...(notify.slackWebhook ? { slackWebhook: notify.slackWebhook } : {}),
      ...(notify.webhook ? { webhook: notify.webhook } : {}),
    });
  }

  opened(request: ApprovalRequestRecord, link: string): Promise<void> {
    return this.enqueue('approval.opened', request, link);
  }

  closed(request: ApprovalRequestRecord, link: string): Promise<void> {
    return this.enqueue('approval.closed', request, link);
  }

  /** Resolves when every notification started so far is done (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
  }

  private enqueue(event: NotificationEvent, request: ApprovalRequestRecord, link: string): Promise<void> {
    if (this.sinks.length === 0) return Promise.resolve();
    // Build the bodies now: the record may change after the caller returns.
    const bodies: Record<NotificationSink, string> = {
      slack: JSON.stringify(event === 'approval.opened' ? slackOpenedMessage(request, link) : slackClosedMessage(request, link)),
      webhook: JSON.stringify(webhookNotification(event, request, link)),
    };
    const previous = this.chains.get(request.id) ?? Promise.resolve();
    // sendAll reports its own failures; the catch only keeps the chain (and callers) from ever rejecting.
    const next = previous.then(() => this.sendAll(event, request, bodies)).catch(() => undefined);
    this.chains.set(request.id, next);
    this.inFlight.add(next);
    void next.finally(() => {
      this.inFlight.delete(next);
      if (this.chains.get(request.id) === next) this.chains.delete(request.id);
    });
    return next;
  }

  private async sendAll(event: NotificationEvent, request: ApprovalRequestRecord, bodies: Record<NotificationSink, string>): Promise<void> {
    await Promise.all(
      this.sinks.map(async ({ sink, source }) => {
        let failure: NotificationError | undefined;
        try {
          failure = await this.deliver(sink, source, event, request.id, bodies[sink]);
        } catch {
          // deliver() reports through its result; this is a bug guard, never the URL.
          failure = new NotificationError(sink, event, request.id, `${SINK_NAMES[sink]} for ${event} failed unexpectedly`);
        }
        await this.audit(sink, event, request, failure);
        if (failure) this.report(failure);
      }),
    );
  }

  /** Undefined when delivered; otherwise the error to report. */
  private async deliver(sink: NotificationSink, source: SecretSource, event: NotificationEvent, requestId: string, body: string): Promise<NotificationError | undefined> {
    const name = SINK_NAMES[sink];
    const fail = (message: string, status?: number) => new NotificationError(sink, event, requestId, `${name} for ${event} failed: ${message}`, status);
    let url: URL;
    try {
      url = new URL(resolveSecretRef(source.ref, source.key, source.baseDir));
    } catch (err) {
      // resolveSecretRef's errors name the key and the reference, never the value;
      // new URL()'s would carry the value, so it gets its own words.
      return fail(err instanceof PortError ? err.message : `${source.key} does not hold a valid URL`);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') return fail(`${source.key} does not hold an http(s) URL`);
    let result = await this.attempt(url, body);
    if (!result.ok && result.retry) {
      await new Promise((r) => setTimeout(r, this.retryDelayMs));
      result = await this.attempt(url, body);
    }
    return result.ok ? undefined : fail(result.message, result.status);
  }

  private async attempt(url: URL, body: string): Promise<AttemptResult> {
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, this.timeoutMs);
    try {
      const res = await undiciRequest(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': 'Port approvals notifier' },
        body,
        signal: controller.signal,
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.timeoutMs,
        ...(this.options.dispatcher ? { dispatcher: this.options.dispatcher } : {}),
      });
      // Read (and discard) the answer so the connection can be reused; its content is not ours to log.
      await res.body.dump({ limit: MAX_RESPONSE_BYTES }).catch(() => undefined);
      const status = res.statusCode;
      if (status >= 200 && status < 300) return { ok: true, status };
      if (status >= 300 && status < 400) return { ok: false, retry: false, status, message: `answered ${status} (redirects are not followed)` };
      return { ok: false, retry: status >= 500, status, message: `answered ${status}` };
    } catch (err) {
      if (timedOut || isTimeout(err)) return { ok: false, retry: true, message: `no answer within ${this.timeoutMs / 1000} s` };
      // Only the error's code: a network error's message can name the host and port.
      return { ok: false, retry: true, message: `network error${errorCode(err)}` };
    } finally {
      clearTimeout(timer);
    }
  }

  private async audit(sink: NotificationSink, event: NotificationEvent, request: ApprovalRequestRecord, failure: NotificationError | undefined): Promise<void> {
    if (!this.options.log) return;
    const build = `${request.build.organization}/${request.build.pipeline}/${request.build.number}`;
    try {
      await this.options.log.record([
        {
          id: randomUUID(),
          time: new Date(this.now()).toISOString(),
          principal: entityString({ type: 'Build', id: build }),
          action: failure ? 'approval_notify_failed' : 'approval_notified',
          resource: entityString({ type: 'BlockStep', id: `${build}/${request.step.step}` }),
          decision: failure ? 'deny' : 'allow',
          policies: [],
          reason: failure ? failure.message : `${SINK_NAMES[sink]} for ${event} delivered.`,
          context: { request_id: request.id, job_id: request.jobId, event, sink, status: request.status, ...(failure?.httpStatus ? { http_status: failure.httpStatus } : {}) },
        },
      ]);
    } catch (err) {
      this.report(new NotificationError(sink, event, request.id, `recording the ${SINK_NAMES[sink]} for ${event} failed: ${(err as Error).message}`));
    }
  }

  private report(err: NotificationError): void {
    try {
      this.options.onError(err);
    } catch {
      // An error handler that throws must not turn into an unhandled rejection.
    }
  }
}

function checkUrlSecret(source: SecretSource): void {
  const value = resolveSecretRef(source.ref, source.key, source.baseDir);
  let protocol: string | undefined;
  try {
    protocol = new URL(value).protocol;
  } catch {
    protocol = undefined;
  }
  if (protocol !== 'https:' && protocol !== 'http:') {
    throw new ConfigError(`${source.key}: the secret ${source.ref} points to is not an http(s) URL; store the webhook's full URL there.`);
  }
}

function isTimeout(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT';
}

function errorCode(err: unknown): string {
  const code = (err as { code?: unknown; cause?: { code?: unknown } } | null)?.code ?? (err as { cause?: { code?: unknown } } | null)?.cause?.code;
  return typeof code === 'string' && /^[A-Z0-9_]{2,40}$/.test(code) ? ` (${code})` : '';
}
