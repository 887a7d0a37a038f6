import { hash } from 'node:crypto';

/** How a token appears in the decision log: the SHA-256 of its `jti`, never the token. */
export function jtiHash(jti: string): string {
  return hash('sha256', jti, 'hex');
}
