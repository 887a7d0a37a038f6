import { createHash } from 'node:crypto';

/** How a token appears in the decision log: the SHA-256 of its `jti`, never the token. */
export function jtiHash(jti: string): string {
  return createHash('sha256').update(jti).digest('hex');
}
