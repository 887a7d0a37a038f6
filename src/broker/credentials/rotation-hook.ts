import { createHmac } from 'node:crypto';
import { request } from 'undici';
import type { RotationHookConfig } from '../../config/config.js';
import { resolveSecretRef } from '../../config/secret-ref.js';
import { PortError } from '../../errors.js';
import { describeFailure, dropTrailingNewline, MAX_COMMAND_OUTPUT, runCommand } from './run-command.js';

/** What Port asks a rotation hook to do (the JSON it gets on stdin or as the POST body). */
export type RotationHookRequest =
  | { action: 'rotate'; credential: string; version: number; previous_version: number }
  | { action: 'retire'; credential: string; version: number };

/** The header carrying the HTTP hook's signature: `timestamp=<unix s>,signature=<hex>`. */
export const SIGNATURE_HEADER = 'x-port-signature';

/** A hook call failed; the message says how (status, timeout), never what the hook printed or answered. */
export class RotationHookError extends PortError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('rotation_hook_failed', message, 503, options);
  }
}

/**
 * Calls the hook. For `rotate` it resolves to the new value; for `retire` to undefined
 * once the hook confirmed (exit 0 or a 2xx answer).
 */
export async function callRotationHook(hook: RotationHookConfig, req: RotationHookRequest, timeoutSeconds: number): Promise<string | undefined> {
  const body = JSON.stringify(req);
  return hook.kind === 'command' ? callCommand(hook.command, req, body, timeoutSeconds) : callHttp(hook, req, body, timeoutSeconds);
}

async function callCommand(command: string, req: RotationHookRequest, body: string, timeoutSeconds: number): Promise<string | undefined> {
  const result = await runCommand(command, { timeoutSeconds, stdin: body });
  if (!result.ok) throw new RotationHookError(`the rotation hook command ${describeFailure(result.failure)}`);
  if (req.action === 'retire') return undefined;
  const value = dropTrailingNewline(result.stdout);
  if (value === '') throw new RotationHookError('the rotation hook command printed no value');
  return value;
}

/**
 * HMAC-SHA256 over `timestamp.body` (the Stripe/Slack convention: the timestamp is
 * signed so the receiver can refuse replays outside its window).
 */
export function signHookBody(secret: string, timestamp: number, body: string): string {
  return createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
}

async function callHttp(hook: Extract<RotationHookConfig, { kind: 'http' }>, req: RotationHookRequest, body: string, timeoutSeconds: number): Promise<string | undefined> {
  const secret = resolveSecretRef(hook.signingSecret.ref, hook.signingSecret.key, hook.signingSecret.baseDir);
  const timestamp = Math.floor(Date.now() / 1000);
  let status: number;
  let text: string;
  try {
    const res = await request(hook.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json',
        [SIGNATURE_HEADER]: `timestamp=${timestamp},signature=${signHookBody(secret, timestamp, body)}`,
      },
      body,
      headersTimeout: timeoutSeconds * 1000,
      bodyTimeout: timeoutSeconds * 1000,
      signal: AbortSignal.timeout(timeoutSeconds * 1000),
    });
    status = res.statusCode;
    text = await readCapped(res.body);
  } catch (err) {
    if (err instanceof RotationHookError) throw err;
    const timedOut = (err as Error).name === 'TimeoutError' || /timeout/i.test((err as { code?: string }).code ?? '');
    throw new RotationHookError(timedOut ? `the rotation hook did not answer within ${timeoutSeconds} s` : `the rotation hook could not be reached (${(err as { code?: string }).code ?? 'error'})`, { cause: err });
  }
  if (status < 200 || status > 299) throw new RotationHookError(`the rotation hook answered HTTP ${status}`);
  if (req.action === 'retire') return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new RotationHookError('the rotation hook answered something other than JSON');
  }
  const value = (parsed as { value?: unknown } | null)?.value;
  if (typeof value !== 'string' || value === '') throw new RotationHookError('the rotation hook\'s answer has no "value" string');
  return value;
}

async function readCapped(body: AsyncIterable<Buffer>): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > MAX_COMMAND_OUTPUT) throw new RotationHookError(`the rotation hook answered more than ${MAX_COMMAND_OUTPUT / 1024} KiB`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}
