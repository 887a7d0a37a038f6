/**
 * Identifier shapes the simulator hands out, chosen to look like Buildkite's
 * (https://buildkite.com/docs/agent/v3/cli-oidc): UUIDs for jobs, agents, builds, pipelines, clusters and
 * queues; 40-hex commit SHAs; a UUIDv7-shaped `jti`.
 */
import { randomBytes, randomUUID } from 'node:crypto';

/** A random (v4) UUID, the shape of `job_id`, `agent_id` and the optional `*_id` claims. */
export function uuid(): string {
  return randomUUID();
}

/**
 * A UUIDv7 (RFC 9562 §5.7): 48-bit Unix-millisecond timestamp, version 7, variant 10,
 * random rest. Buildkite's `jti` looks like one (`0194b014-8517-7cef-…` in
 * rubygems/rubygems.org#5412), so the simulator's does too.
 */
export function uuidv7(nowMs: number = Date.now()): string {
  const bytes = randomBytes(16);
  const ts = BigInt(Math.max(0, Math.floor(nowMs)));
  for (let i = 0; i < 6; i++) bytes[i] = Number((ts >> BigInt(8 * (5 - i))) & 0xffn);
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x70;
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** `n` random bytes as lowercase hex. */
export function randomHex(bytes: number): string {
  return randomBytes(bytes).toString('hex');
}

/** A random 40-hex git commit SHA (`build_commit`). */
export function commitSha(): string {
  return randomHex(20);
}

/**
 * An opaque per-job access token (`BUILDKITE_AGENT_ACCESS_TOKEN` inside a job).
 * Buildkite does not document the format of job tokens; the simulator only needs
 * them to be unguessable and distinct per job.
 */
export function jobToken(): string {
  return randomBytes(32).toString('base64url');
}
