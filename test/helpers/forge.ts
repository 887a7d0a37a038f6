import { createHmac, createPublicKey, generateKeyPairSync, createSign } from 'node:crypto';

const b64 = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

export function decodePart(token: string, index: 0 | 1): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[index]!, 'base64url').toString('utf8'));
}

/** A token with the same header and claims, re-encoded with a replaced payload (signature kept). */
export function tamperPayload(token: string, patch: Record<string, unknown>): string {
  const [h, , s] = token.split('.');
  return `${h}.${b64({ ...decodePart(token, 1), ...patch })}.${s}`;
}

/** alg:none with an empty signature (RFC 8725 §2.1). */
export function algNone(token: string, alg = 'none'): string {
  const header = { ...decodePart(token, 0), alg };
  return `${b64(header)}.${token.split('.')[1]}.`;
}

/** HS256 keyed with the issuer's RSA public key in PEM (key confusion, RFC 8725 §2.1). */
export function hs256WithPublicKey(token: string, publicJwk: Record<string, unknown>): string {
  const pem = createPublicKey({ key: publicJwk as any, format: 'jwk' }).export({ type: 'spki', format: 'pem' }) as string;
  const header = { ...decodePart(token, 0), alg: 'HS256' };
  const input = `${b64(header)}.${token.split('.')[1]}`;
  return `${input}.${createHmac('sha256', pem).update(input).digest('base64url')}`;
}

/** Signs the given header and claims with a fresh RSA key the issuer never published. */
export function signWithForeignKey(header: Record<string, unknown>, claims: Record<string, unknown>): string {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const input = `${b64(header)}.${b64(claims)}`;
  return `${input}.${createSign('RSA-SHA256').update(input).sign(privateKey).toString('base64url')}`;
}
