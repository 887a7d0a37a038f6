import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import type { JWK } from 'jose';
import { PortError } from '../errors.js';

/**
 * Port's private signing keys at rest. With `issuer.key_encryption_key` set they are
 * sealed with AES-256-GCM under a key derived from that secret (HKDF-SHA256, RFC 5869),
 * with the key id as associated data so a sealed key can't be moved to another row;
 * whoever reads the database alone can then neither mint tokens nor forge audit
 * checkpoints. Without it they are stored as plain JWK JSON.
 */
const PREFIX = 'port-kw1';

export class KeyWrapError extends PortError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('signing_key_locked', message, 500, options);
  }
}

export function deriveKeyEncryptionKey(secret: string): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, 'port', 'port signing key wrap v1', 32));
}

export function sealPrivateKey(jwk: JWK, kid: string, kek: Buffer | undefined): string {
  const plain = JSON.stringify(jwk);
  if (!kek) return plain;
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', kek, iv).setAAD(Buffer.from(kid));
  const ct = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
  return [PREFIX, iv.toString('base64url'), ct.toString('base64url'), cipher.getAuthTag().toString('base64url')].join('.');
}

export function openPrivateKey(sealed: string, kid: string, kek: Buffer | undefined): JWK {
  if (!sealed.startsWith(`${PREFIX}.`)) return JSON.parse(sealed) as JWK;
  if (!kek) {
    throw new KeyWrapError(`signing key ${kid} is encrypted in the store; set issuer.key_encryption_key to the secret it was sealed with.`);
  }
  const [, iv, ct, tag] = sealed.split('.') as [string, string, string, string];
  try {
    const decipher = createDecipheriv('aes-256-gcm', kek, Buffer.from(iv, 'base64url')).setAAD(Buffer.from(kid));
    decipher.setAuthTag(Buffer.from(tag, 'base64url'));
    return JSON.parse(Buffer.concat([decipher.update(Buffer.from(ct, 'base64url')), decipher.final()]).toString('utf8')) as JWK;
  } catch (err) {
    throw new KeyWrapError(`signing key ${kid} does not open with issuer.key_encryption_key; is it the secret the key was sealed with?`, { cause: err });
  }
}
