import { createHmac, randomUUID } from 'node:crypto';
import { request } from 'undici';
import type { RotationHookConfig } from '../../config/config.js';
import { resolveSecretRef } from '../../config/secret-ref.js';
import { PortError } from '../../errors.js';
import { commandEnvironment, describeFailure, dropTrailingNewline, MAX_COMMAND_OUTPUT, runCommand } from './run-command.js';

/**
 * What Port asks a rotation hook to do. Every call also carries `request_id` (a fresh
 * UUID) and `timestamp` (unix s) in the body, so a signed HTTP request can't be replayed:
 * the receiver refuses an id it has seen and a timestamp outside its window.
 * - `rotate`: create a new value (answer it) — record `request_id` with what you created.
 * - `retire`: version N's overlap is over; delete it. `rotation_id` is the `request_id`
 *   of the rotate call that created it (absent for version 0), `value_id` the id you answered.
 * - `discard`: the value the rotate call `rotation_id` produced was never stored (another
 *   Port process stored its own version first, or the write failed); delete *that* value.
 *   It carries no `version`: the only version number it could name is the one
 *   the winner now serves to jobs, and a hook that keys values by version, or treats an
 *   unknown action as `retire`, would delete the live value.
 * A hook refuses (non-zero exit, non-2xx) an action it doesn't know.
 */
export type RotationHookRequest =
  | { action: 'rotate'; credential: string; version: number; previous_version: number }
  | { action: 'retire'; credential: string; version: number; rotation_id?: string; value_id?: string }
  | { action: 'discard'; credential: string; rotation_id: string; value_id?: string };

/** A new value from `rotate`, with the handles a later retire/discard names it by. */
export interface RotatedValue {
  value: string;
  /** The rotate call's `request_id`. */
  rotationId: string;
  /** The hook's own id for the value (HTTP hooks may answer `"id"`); not secret, it is logged. */
  valueId?: string;
}

/** The header carrying the HTTP hook's signature: `timestamp=<unix s>,signature=<hex>`. */
export const SIGNATURE_HEADER = 'x-port-signature';

/** An `id` a hook may answer: short, printable, so it can go into the decision log. */
const VALUE_ID = /^[\x21-\x7e]{1,256}$/;

/** A hook call failed; the message says how (status, timeout), never what the hook printed or answered. */
export class RotationHookError extends PortError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('rotation_hook_failed', message, 503, options);
  }
}

/** Asks the hook for a new value. */
export async function requestRotation(hook: RotationHookConfig, req: Extract<RotationHookRequest, { action: 'rotate' }>, timeoutSeconds: number): Promise<RotatedValue> {
  const call = hookCall(req);
  const answer = await callHook(hook, call, timeoutSeconds);
  return { ...parseRotated(hook, answer), rotationId: call.request_id };
}

/** Asks the hook to retire or discard a value; resolves once the hook confirmed (exit 0 or a 2xx answer). */
export async function requestRetirement(hook: RotationHookConfig, req: Exclude<RotationHookRequest, { action: 'rotate' }>, timeoutSeconds: number): Promise<void> {
  await callHook(hook, hookCall(req), timeoutSeconds);
}

type HookCall = RotationHookRequest & { request_id: string; timestamp: number };

function hookCall(req: RotationHookRequest): HookCall {
  return { ...req, request_id: randomUUID(), timestamp: Math.floor(Date.now() / 1000) };
}

/** The hook's stdout (command) or response body (HTTP), at most MAX_COMMAND_OUTPUT. */
async function callHook(hook: RotationHookConfig, call: HookCall, timeoutSeconds: number): Promise<string> {
  const body = JSON.stringify(call);
  if (hook.kind === 'http') return callHttp(hook, call.timestamp, body, timeoutSeconds);
  const result = await runCommand(hook.command, { timeoutSeconds, stdin: body, env: commandEnvironment(call.credential, hook.commandEnv) });
  if (!result.ok) throw new RotationHookError(`the rotation hook command ${describeFailure(result.failure)}`);
  return result.stdout;
}

function parseRotated(hook: RotationHookConfig, answer: string): { value: string; valueId?: string } {
  if (hook.kind === 'command') {
    const value = dropTrailingNewline(answer);
    if (value === '') throw new RotationHookError('the rotation hook command printed no value');
    return { value };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(answer);
  } catch {
    throw new RotationHookError('the rotation hook answered something other than JSON');
  }
  const { value, id } = (parsed ?? {}) as { value?: unknown; id?: unknown };
  if (typeof value !== 'string' || value === '') throw new RotationHookError('the rotation hook\'s answer has no "value" string');
  if (id === undefined) return { value };
  if (typeof id !== 'string' || !VALUE_ID.test(id)) throw new RotationHookError('the rotation hook\'s "id" is not a string of 1 to 256 printable ASCII characters');
  return { value, valueId: id };
}

/**
 * HMAC-SHA256 over `timestamp.body` (the Stripe/Slack convention: the timestamp is
 * signed so the receiver can refuse replays outside its window; the body's own
 * `request_id` lets it refuse a replay inside the window).
 */
export function signHookBody(secret: string, timestamp: number, body: string): string {
  return createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
}

async function callHttp(hook: Extract<RotationHookConfig, { kind: 'http' }>, timestamp: number, body: string, timeoutSeconds: number): Promise<string> {
  const secret = resolveSecretRef(hook.signingSecret.ref, hook.signingSecret.key, hook.signingSecret.baseDir);
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
  return text;
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
