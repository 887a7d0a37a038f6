import type { InjectConfig } from '../config/config.js';
import { RelayError } from './relay-error.js';

const TARGET = 'x-amz-target';
/**
 * One operation name: `<Service>_<version>.<Operation>` or `<Service>.<Operation>`
 * (DynamoDB_20120810.GetItem, TrentService.Decrypt, AmazonSSM.GetParameter).
 */
const TARGET_VALUE = /^[A-Za-z0-9_.-]{1,256}$/;

/** Whether an upstream's `forward_headers` lists `name` (lower-case): exactly, or by a `…-*` family. */
export function isForwardedAmzHeader(name: string, forward: readonly string[]): boolean {
  return forward.some((f) => (f.endsWith('*') ? name.startsWith(f.slice(0, -1)) : name === f));
}

/**
 * Drops every caller `x-amz-*` header the upstream doesn't forward, before signing:
 * they change what the service does, not only how — `x-amz-copy-source`
 * turns a PUT the policy allowed into CopyObject of any object the role can read,
 * `x-amz-acl`/`x-amz-grant-*` publish it, `x-amz-website-redirect-location` redirects it,
 * and `X-Amz-Target` picks the operation of JSON-protocol services (DynamoDB, KMS…) on
 * `POST /`. `x_amz_…` spellings go too (some front ends map `_` to `-`).
 */
export function dropUnlistedAmzHeaders(headers: Record<string, string | string[]>, forward: readonly string[]): void {
  for (const name of Object.keys(headers)) {
    const canonical = name.replaceAll('_', '-');
    if (!canonical.startsWith('x-amz-')) continue;
    if (name === canonical && isForwardedAmzHeader(name, forward)) continue;
    delete headers[name];
  }
}

/**
 * The operation the caller names in `X-Amz-Target`, when the upstream forwards that header:
 * it becomes `context.aws_target` of the `proxy` decision and exactly it is forwarded.
 * Undefined for other upstreams, or when the caller sent none. A repeated or malformed
 * value is refused (400): the service must not run another operation than the one decided.
 */
export function awsTargetOf(inject: InjectConfig | undefined, rawHeaders: readonly string[]): string | undefined {
  if (inject?.kind !== 'aws_sigv4' || !isForwardedAmzHeader(TARGET, inject.forwardHeaders)) return undefined;
  let value: string | undefined;
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    if ((rawHeaders[i] ?? '').toLowerCase() !== TARGET) continue;
    if (value !== undefined) throw new RelayError('invalid_request', 'X-Amz-Target was sent more than once; send one operation.', 400);
    value = rawHeaders[i + 1] ?? '';
  }
  if (value !== undefined && !TARGET_VALUE.test(value)) {
    throw new RelayError('invalid_request', 'X-Amz-Target must be one operation name, e.g. DynamoDB_20120810.GetItem.', 400);
  }
  return value;
}
