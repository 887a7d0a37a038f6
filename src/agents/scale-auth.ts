import { createHash, timingSafeEqual } from 'node:crypto';
import type { SecretSource } from '../config/config.js';
import { resolveSecretRef } from '../config/secret-ref.js';
import { ConfigError } from '../errors.js';

/** Who presented the bearer token of a scale request. */
export type AutoscalerCaller = { kind: 'autoscaler'; name: string } | { kind: 'missing' } | { kind: 'unknown' };

/**
 * Bearer authentication of autoscalers (`scaling.autoscalers.<name>.token`,
 * RFC 6750 §2.1). Tokens are read from their references on each request, so a rotated
 * file applies without a restart, and the presented token is compared with every
 * autoscaler's in constant time — all of them, whichever matches — so neither the answer
 * time nor the position of a match says anything about the tokens.
 */
export class AutoscalerAuthenticator {
  constructor(
    private readonly autoscalers: Readonly<Record<string, { token: SecretSource }>>,
    private readonly onError: (err: Error) => void = () => undefined,
  ) {}

  /**
   * Resolves every token now (a reference that does not resolve fails the start, not an
   * autoscaler's first call) and refuses two autoscalers sharing one: the decision log
   * must name the autoscaler that asked.
   */
  checkAtStart(): void {
    const seen = new Map<string, string>();
    for (const [name, { token }] of Object.entries(this.autoscalers)) {
      const value = resolveSecretRef(token.ref, token.key, token.baseDir);
      if (value === '') throw new ConfigError(`${token.key}: the token is empty; give the autoscaler a long random token.`);
      const digest = sha256(value).toString('hex');
      const other = seen.get(digest);
      if (other !== undefined) {
        throw new ConfigError(`scaling.autoscalers: "${other}" and "${name}" have the same token; give each autoscaler its own, so the decision log names the one that asked.`);
      }
      seen.set(digest, name);
    }
  }

  /** The autoscaler whose token the `Authorization` header carries. */
  identify(authorization: string | undefined): AutoscalerCaller {
    const m = /^Bearer +([\x21-\x7e]+)$/i.exec(authorization ?? '');
    if (!m) return { kind: 'missing' };
    const presented = sha256(m[1]!);
    const matches: string[] = [];
    for (const [name, { token }] of Object.entries(this.autoscalers)) {
      let expected: string;
      try {
        expected = resolveSecretRef(token.ref, token.key, token.baseDir);
      } catch (err) {
        // Fail closed: an autoscaler whose token can't be read can't be authenticated.
        this.onError(err as Error);
        continue;
      }
      if (expected !== '' && timingSafeEqual(presented, sha256(expected))) matches.push(name);
    }
    // Two autoscalers sharing a token since the start (a file rewritten): nobody can say which asked.
    return matches.length === 1 ? { kind: 'autoscaler', name: matches[0]! } : { kind: 'unknown' };
  }
}

/** Hashing first makes the comparison constant-time whatever the lengths. */
function sha256(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}
